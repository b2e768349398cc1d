"""The data of a training run on real pairs: a file of ``source<TAB>target`` lines or a
built-in data set (cmudict, pinyin), split by source, with a tokenizer per side built from
the training split, and fingerprints of the files read.

    >>> data = load_run_data(TrainConfig(data="words.tsv", out="runs/words"))  # doctest: +SKIP
    >>> data.splits.train[:1], data.tokenizer.target, data.notes             # doctest: +SKIP

Splits: without ``valid``/``test`` files, ``pairs.split_by_source`` holds out about 5% of
the sources for validation and 5% for test (seeded by ``config.seed``; every line of one
source lands in one split).  A split given as a file replaces that held-out share, which
goes back to training; sources of a given file that are also in training are counted
and reported (the scores then measure recall, not generalization).
The pinyin data set also trains on every single character with its most frequent reading
(``datasets.pinyin_training_extras``), so that no held-out phrase has an unseen character.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from transformer.datasets import DATASETS, load_dataset, pinyin_training_extras
from transformer.pairs import describe_splits, group_by_source, overlap, read_pairs, split_by_source
from transformer.tasks import Pair, Splits
from transformer.tokenizer import CharTokenizer, TokenizerPair, tokenizer_for_texts
from transformer.train_config import TrainConfig


class DataChanged(ValueError):
    """A data file differs from the one a checkpoint was trained on."""


@dataclass
class RunData:
    splits: Splits
    tokenizer: TokenizerPair
    unit: str                 # what one target token is ("phonemes", "syllables", "characters", "tokens")
    fingerprints: dict        # "data"/"valid"/"test" -> fingerprint of what was read (see ``fingerprint``)
    extra_tokens: int         # the most target tokens a training pair has beyond its source's (decoding's cap)
    notes: list[str] = field(default_factory=list)  # lines for the user: sizes, skipped lines
    warnings: list[str] = field(default_factory=list)  # lines that need attention: overlaps

    def references(self, split: str) -> dict[str, list[str]]:
        """source -> its references (all the targets listed for it) in ``split``."""
        return group_by_source(getattr(self.splits, split))


def fingerprint(path) -> dict:
    """{"bytes": size, "sha256": hex digest} of a file, read in chunks."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return {"bytes": size, "sha256": digest.hexdigest()}


def pairs_fingerprint(pairs: list[Pair]) -> dict:
    """{"pairs": count, "sha256": of the pairs as source<TAB>target lines}: what a built-in
    data set gave (an update of its package can change it)."""
    digest = hashlib.sha256()
    for source, target in pairs:
        digest.update(f"{source}\t{target}\n".encode())
    return {"pairs": len(pairs), "sha256": digest.hexdigest()}


def _read(path: str, config: TrainConfig, notes: list[str]) -> tuple[list[Pair], dict]:
    """The pairs of a file and its fingerprint; a skipped bad line adds a note."""
    read = read_pairs(path, skip_bad_lines=config.skip_bad_lines)
    if read.skipped:
        first = read.skipped[0]
        notes.append(f"{path}: skipped {len(read.skipped):,} bad lines (the first, line {first[0]}: {first[1]})")
    return read.pairs, {"path": str(path), **fingerprint(path)}


def load_run_data(config: TrainConfig) -> RunData:
    """The splits, tokenizers and fingerprints of the real-data run ``config``.

    Raises PairsFileError (a bad file, one line), datasets.MissingDataPackage (the data
    set's package is not installed: how to install it), ValueError (too few sources)."""
    notes, warns, fingerprints = [], [], {}
    if config.data in DATASETS:

        pairs = load_dataset(config.data, keep_stress=config.keep_stress)
        fingerprints["data"] = {"dataset": config.data, **pairs_fingerprint(pairs)}
    else:
        pairs, fingerprints["data"] = _read(config.data, config, notes)
    train, valid, test = split_by_source(pairs, seed=config.seed)
    given = {}
    for name in ("valid", "test"):
        path = getattr(config, name)
        if path is not None:
            given[name], fingerprints[name] = _read(path, config, notes)
    if "valid" in given:
        train, valid = train + valid, given["valid"]
    if "test" in given:
        train, test = train + test, given["test"]
    if config.data == "pinyin":
        extras = pinyin_training_extras()
        train = train + extras
        notes.append(f"training also on {len(extras):,} single characters with their most frequent readings")
    splits = Splits(train, valid, test)
    notes.append(describe_splits(splits))
    for name, held in given.items():
        shared = overlap(train, held)
        if shared:
            warns.append(f"{shared:,} of {len(group_by_source(held)):,} {name} sources are also in the training "
                         "data")
    tokenizer = TokenizerPair(tokenizer_for_texts([s for s, _ in train], config.source_tokens),
                              tokenizer_for_texts([t for _, t in train], config.target_tokens))
    unit = target_unit(config.data, tokenizer.target)
    return RunData(splits, tokenizer, unit, fingerprints, extra_tokens(train, tokenizer), notes, warns)


def extra_tokens(pairs: list[Pair], tokenizer: TokenizerPair) -> int:
    """max(0, target tokens - source tokens) over ``pairs``: how far past its source's length
    an output may go (0 for pinyin, one syllable per character; 12 for CMUdict's 'fyi')."""
    return max([len(tokenizer.target.encode(t)) - len(tokenizer.source.encode(s)) for s, t in pairs] + [0])


def target_unit(data: str | None, target_tokenizer) -> str:
    """What one target token of a model is, for naming its error rate: the data set's
    symbols ("phonemes", "syllables"), else "characters" or "tokens" (symbols of a file)."""
    if data in DATASETS:
        return DATASETS[data].symbol + "s"
    return "characters" if isinstance(target_tokenizer, CharTokenizer) else "tokens"


def check_fingerprints(stored: dict, current: dict, checkpoint) -> None:
    """DataChanged (one line) when the data read now differs from what ``checkpoint`` was
    trained on."""
    for name, now in current.items():
        then = stored.get(name)
        if then != now:
            what = now.get("path") or now.get("dataset")
            raise DataChanged(
                f"{what} has changed since {checkpoint} was trained on it (then {describe_fingerprint(then)}, now "
                f"{describe_fingerprint(now)}); resume with the data it was trained on, or start a new run")


def describe_fingerprint(fp: dict | None) -> str:
    if fp is None:
        return "not used"
    size = f"{fp['bytes']:,} bytes" if "bytes" in fp else f"{fp['pairs']:,} pairs"
    return f"{size}, sha256 {fp['sha256'][:12]}"

"""Files of (source, target) pairs, and splits that never test a source the model was trained on.

A pairs file is UTF-8 text, one pair a line, the two sides separated by one tab (shown
here as <TAB>)::

    # word<TAB>phonemes
    thought<TAB>TH AO T
    knight<TAB>N AY T

Blank lines and lines whose first non-space character is ``#`` are skipped; a UTF-8 byte
order mark at the start and CRLF line ends are accepted.  Each side is normalized the
same way: surrounding whitespace is stripped and every inner run of whitespace (as
``str.split`` sees it: spaces, a ``\\r``, a no-break space) becomes one space.  A target
of symbols separated by spaces ("TH AO T") then reads the same however it was typed, and
a doubled space in a source, nearly always a slip, is not a character to learn.

Several lines with one source are alternative references (a word with two
pronunciations): ``group_by_source`` gathers them, and ``split_by_source`` keeps all of
them in one split.

    >>> group_by_source([("read", "R IY D"), ("read", "R EH D"), ("read", "R IY D")])
    {'read': ['R IY D', 'R EH D']}
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable, Iterator
from typing import BinaryIO, NamedTuple

from transformer.tasks import Pair, Splits

MAX_LINE_CHARS = 1_000
# Bytes read at most for one line: a UTF-8 character takes at most 4 bytes, plus a byte
# order mark and a CRLF.  A longer read without a line end is a line over MAX_LINE_CHARS,
# found without holding the whole line (a file without line ends could be gigabytes).
_READ_LIMIT = 4 * MAX_LINE_CHARS + 5
_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_FORMAT = "one source<TAB>target a line"
SPLIT_NAMES = ("train", "valid", "test")


class PairsFileError(ValueError):
    """A pairs file that cannot be used, in one line: ``"{path}:{line}: {what was wrong}; expected {what}"``
    (without ``:{line}`` for a problem of the whole file)."""


class PairsRead(NamedTuple):
    """What ``read_pairs`` found: the pairs in file order, the (line number, reason) of each
    line skipped with ``skip_bad_lines`` (blank and comment lines are not counted), and the path."""

    pairs: list[Pair]
    skipped: list[tuple[int, str]]
    path: str


def read_pairs(path, *, skip_bad_lines: bool = False) -> PairsRead:
    """The (source, target) pairs of a pairs file (format in the module docstring).

    A bad line (not exactly one tab, an empty side, invalid UTF-8, more than
    ``MAX_LINE_CHARS`` characters) raises ``PairsFileError`` naming the file and line, or,
    with ``skip_bad_lines``, is skipped and recorded in ``skipped``.  Refused whole, even
    with ``skip_bad_lines``: a missing file, a directory, a FIFO or device, a file with a
    NUL byte (binary) or in UTF-16, and a file with no pairs.  The file is read line by
    line, so memory grows with the pairs kept, never with the longest line.
    """
    path = os.fspath(path)
    _check_regular_file(path)
    pairs: list[Pair] = []
    skipped: list[tuple[int, str]] = []
    try:
        file = open(path, "rb")
    except OSError as error:
        raise PairsFileError(f"{path}: cannot be read ({error.strerror}); expected a readable file") from None
    with file:
        for number, text, problem in _decoded_lines(file, path):
            if problem is None:
                if not text.strip() or text.lstrip().startswith("#"):
                    continue
                pair, problem = _parse_line(text)
                if pair is not None:
                    pairs.append(pair)
                    continue
            if not skip_bad_lines:
                raise PairsFileError(f"{path}:{number}: {problem}")
            skipped.append((number, problem))
    if not pairs:
        why = f" ({len(skipped):,} bad lines skipped, the first on line {skipped[0][0]}: {skipped[0][1]})" \
            if skipped else ""
        raise PairsFileError(f"{path}: has no pairs{why}; expected {_FORMAT}")
    return PairsRead(pairs, skipped, path)


def _check_regular_file(path: str) -> None:
    """Refuse what is not a regular file before opening it (opening a FIFO would wait for a writer)."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise PairsFileError(f"{path}: no such file; expected a file with {_FORMAT}") from None
    except OSError as error:
        raise PairsFileError(f"{path}: cannot be read ({error.strerror}); expected a readable file") from None
    if stat.S_ISDIR(mode):
        raise PairsFileError(f"{path}: is a directory; expected a file with {_FORMAT}")
    if not stat.S_ISREG(mode):
        raise PairsFileError(f"{path}: not a regular file (a FIFO, socket or device); expected a file with {_FORMAT}")


def _decoded_lines(file: BinaryIO, path: str) -> Iterator[tuple[int, str | None, str | None]]:
    """(line number, text, None) for each line that is UTF-8 of at most MAX_LINE_CHARS
    characters, (line number, None, what is wrong) for any other; raises for a binary file."""
    number = 0
    while raw := file.readline(_READ_LIMIT):
        number += 1
        if number == 1 and raw.startswith(_UTF16_BOMS):
            raise PairsFileError(f"{path}: is UTF-16 text (it starts with a UTF-16 byte order mark); "
                                 "expected UTF-8 text")
        too_long = len(raw) == _READ_LIMIT and not raw.endswith(b"\n")
        while True:  # the rest of a too long line is read and dropped, but checked for NUL bytes
            if b"\0" in raw:
                raise PairsFileError(f"{path}: looks like a binary file (a NUL byte on line {number}); "
                                     f"expected UTF-8 text with {_FORMAT}")
            if not too_long or raw.endswith(b"\n") or not raw:
                break
            raw = file.readline(_READ_LIMIT)
        if too_long:
            yield number, None, f"the line has more than {MAX_LINE_CHARS:,} characters; " \
                                f"expected at most {MAX_LINE_CHARS:,}"
            continue
        if number == 1:
            raw = raw.removeprefix(_BOM)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            yield number, None, (f"invalid UTF-8 (byte 0x{raw[error.start]:02x} at byte offset {error.start} "
                                 "of the line); expected UTF-8 text")
            continue
        length = len(text.rstrip("\r\n"))
        if length > MAX_LINE_CHARS:
            yield number, None, f"the line has {length:,} characters; expected at most {MAX_LINE_CHARS:,}"
            continue
        yield number, text, None


def _parse_line(text: str) -> tuple[Pair | None, str | None]:
    """(pair, None) for a good line, (None, what is wrong) for a bad one."""
    tabs = text.count("\t")
    if tabs != 1:
        found = "no tab" if tabs == 0 else f"{tabs} tabs"
        return None, f"found {found}; expected exactly one tab between source and target"
    source, target = (" ".join(side.split()) for side in text.split("\t"))
    for name, side in (("source (before the tab)", source), ("target (after the tab)", target)):
        if not side:
            return None, f"the {name} is empty; expected text on both sides of the tab"
    return (source, target), None


# ---------------------------------------------------------------------------- references and splits


def group_by_source(pairs: Iterable[Pair]) -> dict[str, list[str]]:
    """source -> its distinct targets (the alternative references), both in first-seen order."""
    groups: dict[str, list[str]] = {}
    for source, target in pairs:
        targets = groups.setdefault(source, [])
        if target not in targets:
            targets.append(target)
    return groups


def source_score(source: str, seed: int = 0) -> float:
    """A number in [0, 1) fixed by the source and the seed: blake2b of ``f"{seed}:{source}"``."""
    digest = hashlib.blake2b(f"{seed}:{source}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2 ** 64


def split_of_score(score: float, valid_share: float, test_share: float) -> str:
    """Which split a source with this ``source_score`` belongs to:
    valid below ``valid_share``, test below ``valid_share + test_share``, train above."""
    if score < valid_share:
        return "valid"
    return "test" if score < valid_share + test_share else "train"


def split_by_source(pairs: list[Pair], *, valid_share: float = 0.05, test_share: float = 0.05,
                    seed: int = 0) -> Splits:
    """Train, valid and test pairs, every pair of one source in the same split.

    Each source goes where ``split_of_score(source_score(source, seed), ...)`` says, so
    about ``valid_share`` and ``test_share`` of the *sources* (not of the pairs) are held
    out.  Deciding by a hash of the source, rather than by shuffling the list, makes the
    split independent of the file's order, and adding lines to a file moves no existing
    source to another split: a test set stays a test set as the data grows.

    With few sources the hash can leave a split empty.  Then, for each empty split in
    the order train, valid, test, the source with the lowest score of the largest split
    moves there, so that each split has at least one source; that needs 3 distinct
    sources (fewer raise ``ValueError``), and only these moved sources can change split
    when lines are added.  Each split keeps the pairs in their order in ``pairs``.
    """
    if not (0 < valid_share < 1 and 0 < test_share < 1 and valid_share + test_share < 1):
        raise ValueError(f"valid_share={valid_share} and test_share={test_share}; "
                         "expected each above 0 and together below 1")
    sources = group_by_source(pairs)
    if len(sources) < 3:
        raise ValueError(f"cannot split {len(sources)} distinct source(s) into train, valid and test; "
                         "expected at least 3")
    scores = {source: source_score(source, seed) for source in sources}
    split_of = {source: split_of_score(score, valid_share, test_share) for source, score in scores.items()}
    members = {name: [source for source, split in split_of.items() if split == name] for name in SPLIT_NAMES}
    for name in SPLIT_NAMES:
        if not members[name]:
            donor = max(SPLIT_NAMES, key=lambda other: len(members[other]))
            moved = min(members[donor], key=lambda source: (scores[source], source))
            members[donor].remove(moved)
            members[name].append(moved)
            split_of[moved] = name
    lists: dict[str, list[Pair]] = {name: [] for name in SPLIT_NAMES}
    for pair in pairs:
        lists[split_of[pair[0]]].append(pair)
    return Splits(*(lists[name] for name in SPLIT_NAMES))


def overlap(train_pairs: Iterable[Pair], other_pairs: Iterable[Pair]) -> int:
    """How many distinct sources of ``other_pairs`` are also sources of ``train_pairs``."""
    trained = {source for source, _ in train_pairs}
    return len({source for source, _ in other_pairs} & trained)


def describe_splits(splits: Splits) -> str:
    """One line: ``"train 113,421 pairs (105,003 sources), valid ..., test ..."``."""
    return ", ".join(f"{name} {len(pairs):,} pairs ({len({source for source, _ in pairs}):,} sources)"
                     for name, pairs in zip(SPLIT_NAMES, splits))

"""Sequence-to-sequence tasks generated on the fly (nothing is downloaded), and batching.

Each task turns a numpy Generator into one (source_text, target_text) pair:

    copy       "90210"          -> "90210"
    reverse    "90210"          -> "01209"
    sort       "90210"          -> "00129"
    addition   "123+989"        -> "2111"   (1112 written least-significant digit first)
    dates      "Thu 26 Nov 2026" -> "2026-11-26"

``make_splits`` draws disjoint train/valid/test lists from a seed; ``tokenizer_for`` builds
the character vocabulary of a task; ``batches`` cuts pairs into padded id arrays.

    >>> splits = make_splits("reverse", n_train=3, n_valid=1, n_test=1, seed=0)
    >>> [len(s) for s in splits]
    [3, 1, 1]
    >>> batch = make_batch([("12", "21")], tokenizer_for("reverse"))
    >>> batch.src.tolist(), batch.tgt_in.tolist(), batch.tgt_out.tolist()
    ([[5, 6]], [[1, 6, 5]], [[6, 5, 2]])
"""

from __future__ import annotations

import datetime
import string
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import numpy as np

from transformer.tokenizer import BOS, EOS, CharTokenizer, Tokenizer, pad_rows

Pair = tuple[str, str]  # (source_text, target_text)
DIGITS = string.digits


# ---------------------------------------------------------------------------- digit strings

def random_digits(rng: np.random.Generator, min_len: int = 1, max_len: int = 10) -> str:
    """A digit string whose length is uniform in [min_len, max_len] (leading zeros allowed)."""
    length = int(rng.integers(min_len, max_len + 1))
    return "".join(DIGITS[d] for d in rng.integers(0, 10, size=length))


def copy_example(rng: np.random.Generator, min_len: int = 1, max_len: int = 10) -> Pair:
    """A digit string -> itself."""
    digits = random_digits(rng, min_len, max_len)
    return digits, digits


def reverse_example(rng: np.random.Generator, min_len: int = 1, max_len: int = 10) -> Pair:
    """A digit string -> the same digits in reverse order."""
    digits = random_digits(rng, min_len, max_len)
    return digits, digits[::-1]


def sort_example(rng: np.random.Generator, min_len: int = 1, max_len: int = 10) -> Pair:
    """A digit string -> its digits in ascending order."""
    digits = random_digits(rng, min_len, max_len)
    return digits, "".join(sorted(digits))


def count_digit_strings(min_len: int = 1, max_len: int = 10) -> int:
    """How many digit strings have a length in [min_len, max_len]."""
    return sum(10 ** length for length in range(min_len, max_len + 1))


# ---------------------------------------------------------------------------- addition

def addition_example(rng: np.random.Generator, max_operand: int = 999, reverse_answer: bool = True) -> Pair:
    """"a+b" with a, b uniform in [0, max_operand] -> the sum.

    By default the sum is written least-significant digit first ("123+989" -> "2111"),
    the order in which a person adds with carries, which makes the task easier to learn
    left to right.  ``reverse_answer=False`` writes it the usual way ("1112").
    """
    a, b = (int(x) for x in rng.integers(0, max_operand + 1, size=2))
    total = str(a + b)
    return f"{a}+{b}", total[::-1] if reverse_answer else total


# ---------------------------------------------------------------------------- dates

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
FIRST_DAY = datetime.date(1950, 1, 1)
LAST_DAY = datetime.date(2049, 12, 31)

# How a date can be written.  Fields: {d} day (5), {dd} day (05), {dth} ordinal day (5th),
# {m} month (3), {mm} month (03), {month} March, {mon} Mar, {yyyy} 2026, {yy} 26,
# {weekday} Thursday, {wkd} Thu.  Month names and numbers are our own tables, not strftime,
# whose names depend on the machine's locale.  No format writes the month before the day
# in digits only ("11/26/2026"): with day-first formats that would make "03/04" ambiguous.
DATE_FORMATS = (
    "{d} {month} {yyyy}",             # 26 November 2026
    "{weekday}, {d} {month} {yyyy}",  # Thursday, 26 November 2026
    "{dd}/{mm}/{yyyy}",               # 26/11/2026
    "{mon} {d}, {yyyy}",              # Nov 26, 2026
    "{d} {mon} {yy}",                 # 26 Nov 26
    "{month} {d}, {yyyy}",            # November 26, 2026
    "{yyyy}/{mm}/{dd}",               # 2026/11/26
    "{dd}.{mm}.{yyyy}",               # 26.11.2026
    "{dd}-{mon}-{yyyy}",              # 26-Nov-2026
    "{wkd} {d} {mon} {yyyy}",         # Thu 26 Nov 2026
    "{dth} {month} {yyyy}",           # 26th November 2026
    "{weekday} {dth} of {month} {yyyy}",  # Thursday 26th of November 2026
    "{d}/{m}/{yy}",                   # 26/11/26
    "{wkd}, {mon} {d} {yyyy}",        # Thu, Nov 26 2026
)
LETTER_CASES = (str, str.lower, str.upper)  # as written, lowercase, uppercase


def ordinal(n: int) -> str:
    """1 -> "1st", 2 -> "2nd", 3 -> "3rd", 11 -> "11th", 22 -> "22nd"."""
    if 11 <= n % 100 <= 13:
        return f"{n}th"
    suffix = {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def write_date(day: datetime.date, date_format: str) -> str:
    """A date written in one of DATE_FORMATS, e.g. "Thu 26 Nov 2026"."""
    month, weekday = MONTHS[day.month - 1], WEEKDAYS[day.weekday()]
    return date_format.format(
        d=day.day, dd=f"{day.day:02d}", dth=ordinal(day.day), m=day.month, mm=f"{day.month:02d}",
        month=month, mon=month[:3], yyyy=day.year, yy=f"{day.year % 100:02d}",
        weekday=weekday, wkd=weekday[:3])


def all_days() -> list[datetime.date]:
    """Every day from FIRST_DAY to LAST_DAY."""
    return [datetime.date.fromordinal(n) for n in range(FIRST_DAY.toordinal(), LAST_DAY.toordinal() + 1)]


def date_example(rng: np.random.Generator) -> Pair:
    """A date between 1950-01-01 and 2049-12-31 written by a person -> "YYYY-MM-DD".

    The day, the format (from DATE_FORMATS) and the letter case (as written, lower, upper)
    are uniform.  Two-digit years are read the usual way inside this range: 50-99 mean
    1950-1999 and 00-49 mean 2000-2049, so "26 nov 26" is 2026-11-26.
    """
    n_days = LAST_DAY.toordinal() - FIRST_DAY.toordinal() + 1
    day = datetime.date.fromordinal(FIRST_DAY.toordinal() + int(rng.integers(n_days)))
    date_format = DATE_FORMATS[int(rng.integers(len(DATE_FORMATS)))]
    letter_case = LETTER_CASES[int(rng.integers(len(LETTER_CASES)))]
    return letter_case(write_date(day, date_format)), day.isoformat()


def count_date_sources() -> int:
    """How many distinct source strings ``date_example`` can write (enumerates them: seconds).

    Fewer than days x formats x cases: digit-only formats look the same in every case,
    and "May" is both the full and the short name of a month.
    """
    return sum(len({case(write_date(day, f)) for f in DATE_FORMATS for case in LETTER_CASES})
               for day in all_days())


def date_alphabet() -> str:
    """Every character a date source or target can contain."""
    names = "".join(MONTHS + WEEKDAYS) + "stndrdth"  # ordinal suffixes
    literals = "".join(text for f in DATE_FORMATS for text, _, _, _ in string.Formatter().parse(f))
    written = names + literals + DIGITS + "-"  # "-" separates the ISO target's fields
    return "".join(sorted(set(written + written.lower() + written.upper())))


# ---------------------------------------------------------------------------- registry

@dataclass(frozen=True)
class Task:
    """A named way to make examples: ``generate(rng) -> (source, target)``.

    ``alphabet`` holds every character either side can contain; ``count_sources()`` is the
    exact number of distinct source strings (it may be slow, so only error messages ask).
    """

    name: str
    generate: Callable[[np.random.Generator], Pair]
    alphabet: str
    count_sources: Callable[[], int]


TASKS: dict[str, Task] = {
    "copy": Task("copy", copy_example, DIGITS, count_digit_strings),
    "reverse": Task("reverse", reverse_example, DIGITS, count_digit_strings),
    "sort": Task("sort", sort_example, DIGITS, count_digit_strings),
    "addition": Task("addition", addition_example, DIGITS + "+", lambda: 1000 * 1000),
    "addition_plain": Task("addition_plain", partial(addition_example, reverse_answer=False),
                           DIGITS + "+", lambda: 1000 * 1000),
    "dates": Task("dates", date_example, date_alphabet(), count_date_sources),
}


def get_task(task: str | Task) -> Task:
    """A Task, or the registered task of that name."""
    if isinstance(task, Task):
        return task
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {sorted(TASKS)}")
    return TASKS[task]


def tokenizer_for(task: str | Task) -> CharTokenizer:
    """The character tokenizer of a task: its whole alphabet, sorted (shared by both sides)."""
    return CharTokenizer(sorted(set(get_task(task).alphabet)))


# ---------------------------------------------------------------------------- splits

class Splits(NamedTuple):
    """Three disjoint lists of (source, target) pairs."""

    train: list[Pair]
    valid: list[Pair]
    test: list[Pair]


def make_splits(task: str | Task, n_train: int, n_valid: int, n_test: int, seed: int) -> Splits:
    """Disjoint train/valid/test lists of (source, target) pairs, the same for the same seed.

    Examples are drawn with ``np.random.default_rng(seed)`` and a source already drawn is
    drawn again, so no source is in two splits (or twice in one).  A side effect: in tasks
    with few short sources (10 one-digit strings), long ones are a little over-represented.
    Raises ValueError if the draws cannot find enough distinct sources: the task has too
    few, or nearly all of them were requested.
    """
    task = get_task(task)
    sizes = {"n_train": n_train, "n_valid": n_valid, "n_test": n_test}
    if any(n < 0 for n in sizes.values()):
        raise ValueError(f"make_splits: sizes must be >= 0, got {sizes}")
    wanted = n_train + n_valid + n_test
    rng = np.random.default_rng(seed)
    pairs: dict[str, str] = {}  # source -> target, in the order first drawn
    # Collecting k of N equally likely sources takes about N*ln(N/(N-k)) draws: under
    # 5N up to k = 0.99N.  So 10 draws per example suffice unless nearly all are wanted.
    max_draws = 10 * wanted + 1000
    draws = 0
    while len(pairs) < wanted and draws < max_draws:
        source, target = task.generate(rng)
        pairs.setdefault(source, target)
        draws += 1
    if len(pairs) < wanted:
        raise ValueError(f"make_splits: task {task.name!r} has {task.count_sources()} distinct sources, "
                         f"{wanted} were requested ({sizes}) and {draws} draws found {len(pairs)}; "
                         "ask for fewer")
    drawn = list(pairs.items())
    return Splits(drawn[:n_train], drawn[n_train:n_train + n_valid], drawn[n_train + n_valid:])


# ---------------------------------------------------------------------------- batches

@dataclass
class Batch:
    """A batch of B examples as id arrays, right-padded with PAD.

    src:     (B, S) int64   the source
    tgt_in:  (B, T) int64   BOS + target: what the decoder reads
    tgt_out: (B, T) int64   target + EOS: what it must predict, one step ahead of tgt_in
    src_texts, tgt_texts:   the B texts, for display
    """

    src: np.ndarray
    tgt_in: np.ndarray
    tgt_out: np.ndarray
    src_texts: list[str]
    tgt_texts: list[str]

    def __len__(self) -> int:
        return len(self.src_texts)


def make_batch(pairs: Sequence[Pair], tokenizer: Tokenizer) -> Batch:
    """(source, target) pairs -> one Batch."""
    sources = [tokenizer.encode(s) for s, _ in pairs]
    targets = [tokenizer.encode(t) for _, t in pairs]
    return _collate(pairs, sources, targets)


def _collate(pairs: Sequence[Pair], sources: Sequence[list[int]], targets: Sequence[list[int]]) -> Batch:
    """Pairs and their encodings (no specials) -> a Batch."""
    return Batch(
        src=pad_rows(sources),
        tgt_in=pad_rows([[BOS] + t for t in targets]),
        tgt_out=pad_rows([t + [EOS] for t in targets]),
        src_texts=[s for s, _ in pairs],
        tgt_texts=[t for _, t in pairs],
    )


def batches(pairs: Sequence[Pair], tokenizer: Tokenizer, batch_size: int,
            rng: np.random.Generator | None = None, shuffle: bool = True, bucket: bool = True,
            batches_per_bucket: int = 50) -> Iterator[Batch]:
    """One epoch of ``pairs`` as Batches of at most ``batch_size`` examples.

    ``shuffle`` draws the example order and the batch order from ``rng``, all of it when
    ``batches`` is called, so the epoch depends only on the Generator's state at that
    moment (save the state to resume exactly).  ``bucket`` sorts each run of
    ``batches_per_bucket`` batches by source length before cutting it, so a batch holds
    sources of similar length and little padding.  No example is dropped.
    """
    if batch_size < 1:
        raise ValueError(f"batches: batch_size must be >= 1, got {batch_size}")
    if shuffle and rng is None:
        raise ValueError("batches: shuffle=True needs rng (a numpy Generator); pass one or shuffle=False")
    sources = [tokenizer.encode(s) for s, _ in pairs]
    targets = [tokenizer.encode(t) for _, t in pairs]
    order = rng.permutation(len(pairs)) if shuffle else np.arange(len(pairs))
    groups = _cut_into_batches(order, [len(s) for s in sources], batch_size,
                               batches_per_bucket if bucket else None)
    if shuffle:
        groups = [groups[i] for i in rng.permutation(len(groups))]
    return (_collate([pairs[i] for i in g], [sources[i] for i in g], [targets[i] for i in g])
            for g in groups)


def _cut_into_batches(order: np.ndarray, lengths: Sequence[int], batch_size: int,
                      batches_per_bucket: int | None) -> list[np.ndarray]:
    """Example indices in ``order`` -> consecutive batches of indices.

    With ``batches_per_bucket``, each bucket of that many batches is first sorted by length
    (stably, so ties keep the shuffled order).
    """
    if batches_per_bucket is not None:
        size = batches_per_bucket * batch_size
        buckets = [order[i:i + size] for i in range(0, len(order), size)]
        order = np.concatenate([sorted(b, key=lambda i: lengths[i]) for b in buckets] or [order])
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]

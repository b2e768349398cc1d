"""Sequence-to-sequence tasks generated on the fly (nothing is downloaded), and batching.

Each task turns a numpy Generator into one (source_text, target_text) pair:

    copy       "90210"          -> "90210"
    reverse    "90210"          -> "01209"
    sort       "90210"          -> "00129"
    addition   "123+989"        -> "2111"   (1112 written least-significant digit first)
    dates      "Thu 26 Nov 2026" -> "2026-11-26"

``make_splits`` draws train/valid/test lists from a seed, so that every input length is
learned and measured (its docstring says how); ``tokenizer_for`` builds the character
vocabulary of a task; ``batches`` cuts pairs into padded id arrays.

    >>> splits = make_splits("reverse", n_train=3, n_valid=1, n_test=1, seed=0)
    >>> [len(s) for s in splits]
    [3, 1, 1]
    >>> batch = make_batch([("12", "21")], tokenizer_for("reverse"))
    >>> batch.src.tolist(), batch.tgt_in.tolist(), batch.tgt_out.tolist()
    ([[5, 6]], [[1, 6, 5]], [[6, 5, 2]])
"""

from __future__ import annotations

import bisect
import datetime
import re
import string
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import accumulate
from typing import NamedTuple

import numpy as np

from transformer.tokenizer import BOS, EOS, CharTokenizer, Tokenizer, TokenizerPair, pad_rows

Pair = tuple[str, str]  # (source_text, target_text)
DIGITS = string.digits


# ---------------------------------------------------------------------------- digit strings

DIGIT_LENGTHS = tuple(range(1, 11))


def length_cdf(weights: Sequence[float]) -> tuple[float, ...]:
    """The cumulative distribution of values drawn with these relative weights."""
    return tuple(total / sum(weights) for total in accumulate(weights))


def draw_weighted(rng: np.random.Generator, values: Sequence, cdf: tuple[float, ...]):
    """One of ``values``, drawn by the cumulative distribution ``cdf`` (see ``length_cdf``)."""
    return values[bisect.bisect_right(cdf, rng.random())]


# How the digit tasks draw a source's length.  Copy and reverse: P(L) = L/55.  Longer
# strings have more positions to get right, so they get more practice, while 1 and 2
# digits still make 1.8% and 3.6% of the examples, hundreds of times over in a training
# set.  Sort: uniform, P(L) = 1/10.  Its hard short inputs are repeated digits ("00" ->
# "00", not "0"): with P(L) = L/55 the tiny model got 90% of the two-digit strings right
# after 800 steps and 91% after 1,200, the misses being the doubled ones; uniform lengths
# gave 100% after 2,000 steps.
PROPORTIONAL_LENGTHS = length_cdf(DIGIT_LENGTHS)
UNIFORM_LENGTHS = length_cdf([1] * len(DIGIT_LENGTHS))


# How many distinct digits a string uses.  Uniform digits almost never repeat one digit
# throughout a long string (a 7-digit run is 10 strings of 10 million), yet "1111" and
# "0000000" are among the first things a person types.  With uniform digits only, the
# default reverse model answered "1111" with "111" (90 of the 100 one-digit runs right),
# and sort got 70 of those runs and 73% of strings of two distinct digits right.  So 1
# string in 5 is drawn from 1, 2 or 3 distinct digits (uniformly).  With the same step
# budgets, copy, reverse and sort for seeds 0-4 then got 300 of the 300 inputs of
# ``repeated_digit_inputs`` right, but for one miss (sort, seed 4), and ≥ 99.5% at every length.
FEW_DIGITS_SHARE = 0.2


def random_digits(rng: np.random.Generator, length: int | None = None,
                  lengths: tuple[float, ...] = PROPORTIONAL_LENGTHS) -> str:
    """A digit string (leading zeros allowed) of ``length`` digits, or of a length drawn
    from 1..10 by the cumulative distribution ``lengths``.  With probability
    FEW_DIGITS_SHARE its digits come from 1 to 3 distinct digits ("4444", "0101100")."""
    if length is None:
        length = draw_weighted(rng, DIGIT_LENGTHS, lengths)
    if rng.random() < FEW_DIGITS_SHARE:
        chosen = rng.choice(10, size=int(rng.integers(1, 4)), replace=False)
        return "".join(str(digit) for digit in rng.choice(chosen, size=length))
    return str(int(rng.integers(10 ** length))).zfill(length)


def repeated_digit_inputs(n_few: int = 200, seed: int = 0) -> list[str]:
    """Inputs a person types that the digit tasks' random test strings seldom are: every
    digit repeated 1 to 10 times ("7", "00", ..., "9999999999": 100 strings), then
    ``n_few`` strings of 3 to 10 digits drawn from 2 or 3 distinct digits ("1211",
    "30300"), fixed by ``seed``.  Training may hold some of them."""
    rng = np.random.default_rng(seed)
    runs = [digit * length for digit in DIGITS for length in DIGIT_LENGTHS]
    few = []
    for _ in range(n_few):
        chosen = rng.choice(10, size=int(rng.integers(2, 4)), replace=False)
        few.append("".join(str(digit) for digit in rng.choice(chosen, size=int(rng.integers(3, 11)))))
    return runs + few


def copy_answer(digits: str) -> str:
    """"90210" -> "90210"."""
    return digits


def reverse_answer(digits: str) -> str:
    """"90210" -> "01209"."""
    return digits[::-1]


def sort_answer(digits: str) -> str:
    """"90210" -> "00129"."""
    return "".join(sorted(digits))


def digit_example(rng: np.random.Generator, answer: Callable[[str], str],
                  lengths: tuple[float, ...] = PROPORTIONAL_LENGTHS) -> Pair:
    """A random digit string (see ``random_digits``) -> ``answer`` of it."""
    digits = random_digits(rng, lengths=lengths)
    return digits, answer(digits)


copy_example = partial(digit_example, answer=copy_answer)
reverse_example = partial(digit_example, answer=reverse_answer)
sort_example = partial(digit_example, answer=sort_answer, lengths=UNIFORM_LENGTHS)


def count_digit_strings(min_len: int = 1, max_len: int = 10) -> int:
    """How many digit strings have a length in [min_len, max_len]."""
    return sum(10 ** length for length in range(min_len, max_len + 1))


# ---------------------------------------------------------------------------- addition

# How addition draws an operand: its digit count d (1 to 3) first, with P(d) = d/6, then
# a number of d digits (0-9, 10-99 or 100-999).  Drawn uniformly from 0..999, an operand
# had one digit 1% of the time, so both had in 1 example of 10,000: 100,000 training
# examples held about ten one-digit sums, and the model answered "9+9" with "811".  Now
# both operands have one digit in 1 example of 36, and both three digits, the longest sums
# with the most carries to get right, in 1 of 4.
OPERAND_DIGITS = (1, 2, 3)
OPERAND_DIGIT_CDF = length_cdf(OPERAND_DIGITS)


def operands_with(digits: int) -> range:
    """The operands of ``digits`` digits, written without leading zeros: 0-9, 10-99, 100-999."""
    return range(0 if digits == 1 else 10 ** (digits - 1), 10 ** digits)


def sum_answer(source: str, reverse_answer: bool = True) -> str:
    """"123+989" -> "2111": the sum, least-significant digit first unless ``reverse_answer``
    is False ("1112")."""
    a, b = source.split("+")
    total = str(int(a) + int(b))
    return total[::-1] if reverse_answer else total


def addition_example(rng: np.random.Generator, reverse_answer: bool = True) -> Pair:
    """"a+b" with a, b in 0..999, each drawn by its digit count (OPERAND_DIGITS) -> the sum.

    By default the sum is written least-significant digit first ("123+989" -> "2111"),
    the order in which a person adds with carries, which makes the task easier to learn
    left to right.  ``reverse_answer=False`` writes it the usual way ("1112").
    """
    a, b = (operands_with(draw_weighted(rng, OPERAND_DIGITS, OPERAND_DIGIT_CDF)) for _ in range(2))
    source = f"{a[int(rng.integers(len(a)))]}+{b[int(rng.integers(len(b)))]}"
    return source, sum_answer(source, reverse_answer)


def addition_source(kind: tuple[int, int], i: int) -> str:
    """The i-th sum of ``kind`` = (digits of a, digits of b), in order: (1, 2), 0 -> "0+10"."""
    a, b = (operands_with(digits) for digits in kind)
    return f"{a[i // len(b)]}+{b[i % len(b)]}"


ADDITION_KINDS = {(a, b): len(operands_with(a)) * len(operands_with(b)) for a in OPERAND_DIGITS for b in OPERAND_DIGITS}


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
    "{yyyy}-{mm}-{dd}",               # 2026-11-26 (ISO 8601, the target itself)
    "{d} {mon} {yyyy}",               # 26 Nov 2026
    "{month} {dth}, {yyyy}",          # November 26th, 2026
    "{d}/{m}/{yyyy}",                 # 3/2/2026
    "{dd}-{mm}-{yyyy}",               # 26-11-2026
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


def max_date_sources() -> int:
    """How many distinct sources ``date_example`` can write, at most: days x (3 cases for a
    format with letters, 1 for a digit-only one) = 1,570,575.  Cheap, and close: some
    writings coincide ("May" is both the full and the short name of a month, "26/11/2026"
    is both {dd}/{mm}/{yyyy} and {d}/{m}/{yyyy}), and enumerating every writing of every day
    finds 1,545,475 distinct ones, in seconds."""
    n_days = LAST_DAY.toordinal() - FIRST_DAY.toordinal() + 1
    return n_days * sum(len({case(write_date(FIRST_DAY, f)) for case in LETTER_CASES}) for f in DATE_FORMATS)


# How each field of DATE_FORMATS is read back (case-insensitively) by check_date_source.
_FIELD_PATTERNS = {
    "d": r"(?P<day>\d{1,2})", "dd": r"(?P<day>\d{2})", "dth": r"(?P<day>\d{1,2})(?:st|nd|rd|th)",
    "m": r"(?P<month>\d{1,2})", "mm": r"(?P<month>\d{2})",
    "month": "(?P<month_name>" + "|".join(MONTHS) + ")",
    "mon": "(?P<month_name>" + "|".join(m[:3] for m in MONTHS) + ")",
    "yyyy": r"(?P<year>\d{4})", "yy": r"(?P<yy>\d{2})",
    "weekday": "(?:" + "|".join(WEEKDAYS) + ")", "wkd": "(?:" + "|".join(w[:3] for w in WEEKDAYS) + ")",
}
_FORMAT_PATTERNS = [re.compile("".join(re.escape(literal) + (_FIELD_PATTERNS[field] if field else "")
                                       for literal, field, _, _ in string.Formatter().parse(f)), re.IGNORECASE)
                    for f in DATE_FORMATS]


def check_date_source(text: str) -> None:
    """ValueError unless ``text`` is a real day from 1950 to 2049 written in one of
    DATE_FORMATS (any letter case).  A model asked about 2126, 31 February or "12/25/2026"
    (month first, which no format writes) would answer with a silent guess.  Two-digit
    years are read as the task writes them: 50-99 as 19xx, 00-49 as 20xx.  The weekday,
    which the model ignores, is not checked.
    """
    readings = []  # (year, month, day) of every format the text fits
    for pattern in _FORMAT_PATTERNS:
        match = pattern.fullmatch(text)
        if match:
            fields = match.groupdict()
            month = (int(fields["month"]) if fields.get("month") else
                     [m[:3].lower() for m in MONTHS].index(fields["month_name"][:3].lower()) + 1)
            if fields.get("year"):
                year = int(fields["year"])
            else:
                year = (1900 if int(fields["yy"]) >= 50 else 2000) + int(fields["yy"])
            readings.append((year, month, int(fields["day"])))
    if not readings:
        raise ValueError(f"{text!r} is not written in a way the dates task knows; write it like "
                         "'26 November 2026', 'Thu, Nov 26 2026', '26/11/2026' or '2026-11-26' (day before month)")
    real = []
    for year, month, day in readings:
        try:
            real.append(datetime.date(year, month, day))
        except ValueError:
            continue
    if not real:
        year, month, day = readings[0]
        raise ValueError(f"{text!r} names no real day (read as day {day}, month {month}, year {year}; "
                         "the day comes before the month)")
    if not any(FIRST_DAY <= day <= LAST_DAY for day in real):
        raise ValueError(f"{text!r}: the year {real[0].year} is outside {FIRST_DAY.year}-{LAST_DAY.year}, "
                         "the years the dates task covers")


def date_alphabet() -> str:
    """Every character a date source or target can contain."""
    names = "".join(MONTHS + WEEKDAYS) + "stndrdth"  # ordinal suffixes
    literals = "".join(text for f in DATE_FORMATS for text, _, _, _ in string.Formatter().parse(f))
    written = names + literals + DIGITS + "-"  # "-" separates the ISO target's fields
    return "".join(sorted(set(written + written.lower() + written.upper())))


# ---------------------------------------------------------------------------- registry

def check_digit_source(text: str) -> None:
    """ValueError unless ``text`` is 1 to 10 digits, the inputs the digit tasks cover."""
    if not re.fullmatch(r"\d{1,10}", text):
        raise ValueError(f"{text!r} is not a string of 1 to 10 digits, the inputs this task covers")


def check_addition_source(text: str) -> None:
    """ValueError unless ``text`` is "a+b" with a, b in 0..999 written without leading zeros."""
    if not re.fullmatch(r"(0|[1-9]\d{0,2})\+(0|[1-9]\d{0,2})", text):
        raise ValueError(f"{text!r} is not 'a+b' with a and b in 0..999 (no leading zeros), "
                         "the inputs this task covers")


@dataclass(frozen=True)
class Task:
    """A named way to make examples: ``generate(rng) -> (source, target)``.

    alphabet       every character either side can contain
    max_sources    how many distinct sources ``generate`` can write (exact, or for dates an
                   upper bound that is cheap to compute); ``make_splits`` checks requests
                   against it before drawing anything
    check_source   raises ValueError, naming the problem, for a text outside what the task
                   covers (a model would answer it with a silent guess); None accepts any text

    Tasks whose splits are drawn kind by kind (see ``make_splits``) also have:

    answer         source -> target
    kinds          {kind: how many sources it holds}: a digit task's kinds are the lengths
                   1..10, addition's the digit counts of a and b, (1, 1) to (3, 3)
    nth_source     (kind, i) -> the i-th source of that kind, for 0 <= i < kinds[kind]
    typed_inputs   () -> sources a person types that the random test split seldom holds,
                   scored apart by ``evaluation.score_typed_inputs`` (None: no such list)
    """

    name: str
    generate: Callable[[np.random.Generator], Pair]
    alphabet: str
    max_sources: int
    check_source: Callable[[str], None] | None = None
    answer: Callable[[str], str] | None = None
    kinds: dict | None = None
    nth_source: Callable[[object, int], str] | None = None
    typed_inputs: Callable[[], list[str]] | None = None


DIGIT_KINDS = {length: 10 ** length for length in DIGIT_LENGTHS}


def digit_source(length: int, i: int) -> str:
    """The i-th digit string of ``length`` digits: 7, 42 -> "0000042"."""
    return str(i).zfill(length)


def _digit_task(name: str, generate: Callable[[np.random.Generator], Pair], answer: Callable[[str], str]) -> Task:
    return Task(name, generate, DIGITS, count_digit_strings(), check_digit_source, answer, DIGIT_KINDS, digit_source,
                repeated_digit_inputs)


def _addition_task(name: str, reverse_answer: bool) -> Task:
    return Task(name, partial(addition_example, reverse_answer=reverse_answer), DIGITS + "+",
                sum(ADDITION_KINDS.values()), check_addition_source,
                partial(sum_answer, reverse_answer=reverse_answer), ADDITION_KINDS, addition_source)


TASKS: dict[str, Task] = {
    "copy": _digit_task("copy", copy_example, copy_answer),
    "reverse": _digit_task("reverse", reverse_example, reverse_answer),
    "sort": _digit_task("sort", sort_example, sort_answer),
    "addition": _addition_task("addition", reverse_answer=True),
    "addition_plain": _addition_task("addition_plain", reverse_answer=False),
    "dates": Task("dates", date_example, date_alphabet(), max_date_sources(), check_date_source),
}


def get_task(task: str | Task) -> Task:
    """A Task, or the registered task of that name."""
    if isinstance(task, Task):
        return task
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {sorted(TASKS)}")
    return TASKS[task]


def check_source(task: str | Task, text: str) -> None:
    """ValueError, naming the problem, if ``text`` is outside what ``task`` covers."""
    check = get_task(task).check_source
    if check is not None:
        check(text)


def tokenizer_for(task: str | Task) -> CharTokenizer:
    """The character tokenizer of a task: its whole alphabet, sorted (shared by both sides)."""
    return CharTokenizer(sorted(set(get_task(task).alphabet)))


# ---------------------------------------------------------------------------- splits

class Splits(NamedTuple):
    """Train, valid and test lists of (source, target) pairs."""

    train: list[Pair]
    valid: list[Pair]
    test: list[Pair]


# A kind with at most this many sources (1 and 2 digits: 10 and 100 strings; one-digit
# sums: 100) is shared: its sources are trained on and tested on.  Holding some of them
# out would leave inputs a user types and the model never sees, and the rest would be too
# few to measure with.
SHARED_MAX = 100


def make_splits(task: str | Task, n_train: int, n_valid: int, n_test: int, seed: int) -> Splits:
    """Train/valid/test lists of (source, target) pairs, the same for the same seed.

    Two designs, both drawn from ``np.random.default_rng(seed)``:

    - Tasks with kinds (copy, reverse and sort, whose kinds are the lengths 1..10;
      addition, whose kinds are the digit counts of a and b): what matters is that every
      kind is right, the short ones a person types first among them, so the held-out
      splits are drawn kind by kind and the training set draws the kind first (P(L) =
      L/55, for sort 1/10: see PROPORTIONAL_LENGTHS; for addition OPERAND_DIGITS), with
      repeats allowed: the 10 one-digit strings come up hundreds of times.  Valid and
      test give each kind an equal share of their size (a kind with fewer sources than its
      share gives all of them, and the rest is shared among the others), so a digit test
      split of 2,000 holds all 10 one- and 100 two-digit strings and ~236 of every longer
      length.  Kinds of more than SHARED_MAX sources are held out: their valid and test
      sources are distinct and never in training.  The smaller kinds are shared: valid
      and test contain sources that training contains too, so there they measure what the
      model learned, not how it generalizes.
    - Dates, whose writings are all about as long: every source is drawn once at most,
      so no source is in two splits or twice in one.

    Raises ValueError at once when more distinct sources are asked than the task holds.
    """
    task = get_task(task)
    sizes = {"n_train": n_train, "n_valid": n_valid, "n_test": n_test}
    if any(n < 0 for n in sizes.values()):
        raise ValueError(f"make_splits: sizes must be >= 0, got {sizes}")
    rng = np.random.default_rng(seed)
    if task.kinds is not None:
        return _splits_by_kind(task, n_train, n_valid, n_test, rng)
    return _distinct_splits(task, sizes, rng)


def _distinct_splits(task: Task, sizes: dict[str, int], rng: np.random.Generator) -> Splits:
    """Train, valid and test with no source drawn twice, cut from one list in draw order."""
    n_train, n_valid, wanted = sizes["n_train"], sizes["n_valid"], sum(sizes.values())
    if wanted > task.max_sources:
        raise ValueError(f"make_splits: task {task.name!r} has at most {task.max_sources} distinct sources "
                         f"and {wanted} were requested ({sizes}); ask for fewer")
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
        raise ValueError(f"make_splits: task {task.name!r}: {draws} draws found only {len(pairs)} distinct "
                         f"sources of the {wanted} requested ({sizes}); ask for fewer")
    drawn = list(pairs.items())
    return Splits(drawn[:n_train], drawn[n_train:n_train + n_valid], drawn[n_train + n_valid:])


def kind_shares(n: int, counts: dict) -> dict:
    """Split ``n`` examples equally among kinds holding ``counts[kind]`` sources each: the
    kinds with fewest sources first, each taking its equal share of what is left or all
    its sources if fewer.  (Lengths of 10 strings, 100, then plenty: 2000 -> 10, 100, 237,
    237, ...)"""
    shares, left = {}, n
    by_count = sorted(counts, key=counts.get)
    for i, kind in enumerate(by_count):
        shares[kind] = min(counts[kind], -(-left // (len(by_count) - i)))  # ceil
        left -= shares[kind]
    return {kind: shares[kind] for kind in counts}


def _splits_by_kind(task: Task, n_train: int, n_valid: int, n_test: int, rng: np.random.Generator) -> Splits:
    """The splits of a task with kinds (see ``make_splits``): test, then valid, then train."""
    counts = task.kinds
    test_shares, valid_shares = kind_shares(n_test, counts), kind_shares(n_valid, counts)
    for kind, count in counts.items():
        held = test_shares[kind] + valid_shares[kind]
        if count > SHARED_MAX and held > count // 2:  # training must keep most sources of every kind
            raise ValueError(
                f"make_splits: task {task.name!r} has {count} sources of the kind of {task.nth_source(kind, 0)!r} "
                f"and n_valid={n_valid}, "
                f"n_test={n_test} would hold out {held} of them, more than half; ask for fewer")
    test, valid, held_out = [], [], set()
    for kind, count in counts.items():
        if count <= SHARED_MAX:  # shared: test and valid each draw their own
            test += _distinct_sources(task, kind, test_shares[kind], rng)
            valid += _distinct_sources(task, kind, valid_shares[kind], rng)
        else:  # held out: one draw, so test and valid do not overlap
            drawn = _distinct_sources(task, kind, test_shares[kind] + valid_shares[kind], rng)
            test += drawn[:test_shares[kind]]
            valid += drawn[test_shares[kind]:]
            held_out.update(drawn)
    train = []
    while len(train) < n_train:
        source, _ = task.generate(rng)
        if source not in held_out:
            train.append(source)
    shuffled = [[sources[i] for i in rng.permutation(len(sources))] for sources in (train, valid, test)]
    return Splits(*([(s, task.answer(s)) for s in sources] for sources in shuffled))


def _distinct_sources(task: Task, kind, n: int, rng: np.random.Generator) -> list[str]:
    """``n`` distinct random sources of one kind."""
    return [task.nth_source(kind, int(i)) for i in rng.choice(task.kinds[kind], size=n, replace=False)]


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


def make_batch(pairs: Sequence[Pair], tokenizer: Tokenizer | TokenizerPair) -> Batch:
    """(source, target) pairs -> one Batch (sources encoded by ``tokenizer.source``,
    targets by ``tokenizer.target``)."""
    return _collate(pairs, *_encode_pairs(pairs, tokenizer))


def _encode_pairs(pairs: Sequence[Pair], tokenizer: Tokenizer | TokenizerPair):
    """(source ids, target ids) of every pair, each side by its own tokenizer."""
    sources = [tokenizer.source.encode(s) for s, _ in pairs]
    targets = [tokenizer.target.encode(t) for _, t in pairs]
    return sources, targets


def _collate(pairs: Sequence[Pair], sources: Sequence[list[int]], targets: Sequence[list[int]]) -> Batch:
    """Pairs and their encodings (no specials) -> a Batch."""
    return Batch(
        src=pad_rows(sources),
        tgt_in=pad_rows([[BOS] + t for t in targets]),
        tgt_out=pad_rows([t + [EOS] for t in targets]),
        src_texts=[s for s, _ in pairs],
        tgt_texts=[t for _, t in pairs],
    )


def batches(pairs: Sequence[Pair], tokenizer: Tokenizer | TokenizerPair, batch_size: int,
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
    sources, targets = _encode_pairs(pairs, tokenizer)
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

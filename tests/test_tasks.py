"""Tasks: every generated pair is right, splits hold out what they promise and cover every
length, they are reproducible, oversized requests fail at once, batches are shaped and
padded as documented, and each task's tokenizer covers everything it writes."""

import datetime
import re
from functools import partial

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from transformer.tasks import (
    DATE_FORMATS,
    FEW_DIGITS_SHARE,
    LETTER_CASES,
    TASKS,
    Task,
    addition_example,
    all_days,
    batches,
    check_source,
    copy_example,
    date_example,
    kind_shares,
    make_batch,
    make_splits,
    max_date_sources,
    ordinal,
    random_digits,
    repeated_digit_inputs,
    reverse_example,
    sort_example,
    tokenizer_for,
    write_date,
)
from transformer.tokenizer import BOS, EOS, PAD

seeds = st.integers(0, 2**32 - 1)


def draw(generate, seed, n=200):
    rng = np.random.default_rng(seed)
    return [generate(rng) for _ in range(n)]


# ---------------------------------------------------------------------------- digit tasks

@given(seeds)
def test_digit_tasks_are_right(seed):
    for source, target in draw(copy_example, seed):
        assert re.fullmatch(r"\d{1,10}", source) and target == source
    for source, target in draw(reverse_example, seed):
        assert re.fullmatch(r"\d{1,10}", source) and target == source[::-1]
    for source, target in draw(sort_example, seed):
        assert re.fullmatch(r"\d{1,10}", source)
        assert sorted(target) == sorted(source) and list(target) == sorted(target)


def test_digit_strings_cover_every_length():
    lengths = {len(s) for s, _ in draw(copy_example, seed=0, n=500)}
    assert lengths == set(range(1, 11))


@pytest.mark.parametrize("generate, weights", [(copy_example, range(1, 11)), (reverse_example, range(1, 11)),
                                               (sort_example, [1] * 10)])
def test_digit_lengths_are_drawn_as_documented(generate, weights):
    # copy and reverse: P(L) = L/55; sort: uniform
    counts = np.bincount([len(s) for s, _ in draw(generate, seed=0, n=55_000)], minlength=11)[1:]
    expected = 55_000 * np.array(weights) / sum(weights)
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected)), counts


def test_one_digit_string_in_five_uses_at_most_three_distinct_digits():
    # Uniform 10-digit strings almost never do (about 7 in 10,000): nearly all such strings
    # come from the FEW_DIGITS_SHARE draw, with 1, 2 or 3 distinct digits equally often.
    rng = np.random.default_rng(0)
    strings = [random_digits(rng, length=10) for _ in range(20_000)]
    distinct = np.bincount([len(set(s)) for s in strings], minlength=11)
    few = distinct[1:4].sum()
    assert abs(few - 4000) < 5 * np.sqrt(4000 * 0.8), distinct
    assert distinct[1] > 1000 and distinct[2] > 1000  # runs and two-digit strings are both common


def test_distinct_digit_counts_follow_the_documented_mixture():
    # P(d distinct digits in a string of L) = (1 - share) P_uniform(d) + share/3 sum_{c=1,2,3} P(d | c chosen),
    # with P(d | c) = C(c, d) surj(L, d) / c^L, surj(L, d) the maps of L positions onto d digits.
    from math import comb

    def onto(length, d):
        return sum((-1) ** j * comb(d, j) * (d - j) ** length for j in range(d + 1))

    n, length, share = 20_000, 10, FEW_DIGITS_SHARE
    expected = np.array([n * ((1 - share) * comb(10, d) * onto(length, d) / 10 ** length
                              + share / 3 * sum(comb(c, d) * onto(length, d) / c ** length for c in (1, 2, 3)))
                         for d in range(11)])
    rng = np.random.default_rng(0)
    counts = np.bincount([len(set(random_digits(rng, length=length))) for _ in range(n)], minlength=11)
    assert share == 0.2 and expected[1:4].min() > 1200  # each of 1, 2 and 3 distinct digits, over a thousand times
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(np.maximum(expected, 1))), (counts, expected.round())


def test_repeated_digit_inputs_hold_every_run_and_fixed_few_digit_strings():
    inputs = repeated_digit_inputs()
    assert inputs[:100] == [d * n for d in "0123456789" for n in range(1, 11)]
    assert len(inputs) == 300 and inputs == repeated_digit_inputs()
    assert all(2 <= len(set(s)) <= 3 and 3 <= len(s) <= 10 for s in inputs[100:] if len(set(s)) > 1)
    assert sum(len(set(s)) == 3 for s in inputs[100:]) > 50
    assert all(TASKS[name].typed_inputs is repeated_digit_inputs for name in ("copy", "reverse", "sort"))


def test_random_digits_of_a_given_length():
    rng = np.random.default_rng(0)
    assert len(random_digits(rng, length=7)) == 7 and random_digits(rng, length=1).isdigit()


@given(seeds)
def test_addition_answers_are_right_in_both_orders(seed):
    reversed_pairs = draw(addition_example, seed)
    plain_pairs = draw(partial(addition_example, reverse_answer=False), seed)
    for (source, backwards), (same_source, forwards) in zip(reversed_pairs, plain_pairs):
        assert source == same_source
        a, b = (int(x) for x in re.fullmatch(r"(\d{1,3})\+(\d{1,3})", source).groups())
        assert f"{a}+{b}" == source  # no leading zeros
        assert int(forwards) == a + b and forwards == str(a + b)
        assert backwards == forwards[::-1]


def operand_digits(source):
    return tuple(len(operand) for operand in source.split("+"))


def test_addition_operand_digit_counts_are_drawn_as_documented():
    # P(d) = d/6 for each operand, independently: one-digit sums 1/36, three-digit 1/4
    counts = np.zeros((3, 3))
    for source, _ in draw(addition_example, seed=0, n=36_000):
        a, b = operand_digits(source)
        counts[a - 1, b - 1] += 1
    expected = 36_000 * np.outer([1, 2, 3], [1, 2, 3]) / 36
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected)), counts


@pytest.mark.parametrize("name", ["addition", "addition_plain"])
def test_addition_kinds_number_every_sum_once(name):
    task = TASKS[name]
    every = [task.nth_source(kind, i) for kind, count in task.kinds.items() for i in range(count)]
    assert len(every) == len(set(every)) == task.max_sources == 1000 * 1000
    for kind, count in task.kinds.items():
        assert {operand_digits(task.nth_source(kind, i)) for i in (0, count // 3, count - 1)} == {kind}
    assert task.nth_source((1, 1), 99) == "9+9" and task.nth_source((1, 2), 0) == "0+10"


@pytest.mark.parametrize("name", ["copy", "reverse", "sort", "addition", "addition_plain"])
@given(seed=seeds)
def test_a_tasks_answer_is_the_target_it_generates(name, seed):
    for source, target in draw(TASKS[name].generate, seed, n=50):
        assert TASKS[name].answer(source) == target


# ---------------------------------------------------------------------------- dates

MONTH_NAMES = ["january", "february", "march", "april", "may", "june", "july", "august",
               "september", "october", "november", "december"]
WEEKDAY_NAMES = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


def parse_written_date(text):
    """An independent reader of human dates -> datetime.date, checking any weekday named.

    Words are month or weekday names (full or first three letters) or filler ("st", "of");
    with a month name the numbers are day then year; without one they are Y/M/D when the
    first has four digits, else D/M/Y.  Two-digit years: 50-99 -> 19xx, 00-49 -> 20xx.
    """
    month = weekday = None
    numbers = []
    for word in re.findall(r"[a-z]+|\d+", text.lower()):
        if word.isdigit():
            numbers.append(word)
        elif any(word in (m, m[:3]) for m in MONTH_NAMES):
            month = next(i + 1 for i, m in enumerate(MONTH_NAMES) if word in (m, m[:3]))
        elif any(word in (w, w[:3]) for w in WEEKDAY_NAMES):
            weekday = next(i for i, w in enumerate(WEEKDAY_NAMES) if word in (w, w[:3]))
        else:
            assert word in ("st", "nd", "rd", "th", "of"), f"unexpected word {word!r} in {text!r}"
    if month is not None:
        day, year = numbers
    elif len(numbers[0]) == 4:
        year, month, day = numbers
    else:
        day, month, year = numbers
    if len(year) == 2:
        year = ("19" if int(year) >= 50 else "20") + year
    parsed = datetime.date(int(year), int(month), int(day))
    if weekday is not None:
        assert parsed.weekday() == weekday, f"{text!r}: {parsed} is not a {WEEKDAY_NAMES[weekday]}"
    return parsed


@given(seeds)
def test_dates_targets_are_the_iso_form_of_the_written_date(seed):
    for source, target in draw(date_example, seed):
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", target)
        day = datetime.date.fromisoformat(target)
        assert datetime.date(1950, 1, 1) <= day <= datetime.date(2049, 12, 31)
        assert parse_written_date(source) == day, source


@pytest.mark.parametrize("day", [datetime.date(2026, 11, 26), datetime.date(2000, 2, 29),
                                 datetime.date(1950, 1, 1), datetime.date(2049, 12, 31),
                                 datetime.date(1999, 5, 3), datetime.date(2011, 8, 22)])
def test_every_format_and_case_reads_back_to_the_same_day(day):
    for date_format in DATE_FORMATS:
        for letter_case in LETTER_CASES:
            assert parse_written_date(letter_case(write_date(day, date_format))) == day


def test_date_formats_from_the_brief_are_written():
    day = datetime.date(2026, 11, 26)  # a Thursday
    written = {case(write_date(day, f)) for f in DATE_FORMATS for case in LETTER_CASES}
    for example in ["26 November 2026", "Thursday, 26 November 2026", "26/11/2026", "Nov 26, 2026",
                    "26 nov 26", "November 26, 2026", "2026/11/26", "26.11.2026", "26-Nov-2026",
                    "Thu 26 Nov 2026", "26th November 2026", "26 NOVEMBER 2026", "thu 26 nov 2026",
                    "2026-11-26", "26 Nov 2026", "November 26th, 2026", "26-11-2026"]:
        assert example in written


def test_dates_outside_the_years_covered_are_refused():
    for text in ["26 November 2126", "1949-12-31", "Thu 26 Nov 2050", "5/3/0026"]:
        with pytest.raises(ValueError, match="outside 1950-2049"):
            check_source("dates", text)
    for text in ["1950-01-01", "31 December 2049", "26 nov 26", "3/2/99"]:
        check_source("dates", text)


def test_dates_that_name_no_real_day_or_no_known_writing_are_refused():
    for text in ["31 February 2026", "12/25/2026", "29/02/2026", "2026-13-01"]:
        with pytest.raises(ValueError, match="names no real day"):
            check_source("dates", text)
    for text in ["tomorrow", "26  November 2026", "November 2026", "26 Novembre 2026", "2026"]:
        with pytest.raises(ValueError, match="not written in a way the dates task knows"):
            check_source("dates", text)
    for text in ["29/02/1996", "THURSDAY, 26 NOVEMBER 2026", "Monday, 26 November 2026"]:  # weekdays go unchecked
        check_source("dates", text)


def test_other_tasks_refuse_sources_they_do_not_cover():
    for task, text in [("copy", "12345678901"), ("reverse", ""), ("sort", "12a"), ("addition", "1000+1"),
                       ("addition_plain", "01+2"), ("addition", "12")]:
        with pytest.raises(ValueError, match="the inputs this task covers"):
            check_source(task, text)
    for task, text in [("copy", "7"), ("sort", "0123456789"), ("addition", "0+999")]:
        check_source(task, text)


@pytest.mark.parametrize("name", sorted(TASKS))
@given(seed=seeds)
def test_every_source_a_task_writes_passes_its_check(name, seed):
    for source, _ in draw(TASKS[name].generate, seed, n=100):
        check_source(name, source)


def test_the_cheap_count_of_date_sources_bounds_every_day():
    per_day = max_date_sources() // len(all_days())
    for day in all_days()[::997]:
        written = {case(write_date(day, f)) for f in DATE_FORMATS for case in LETTER_CASES}
        assert len(written) <= per_day


def test_ordinals():
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 30, 31)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd", "30th", "31st"]


def test_no_written_date_names_two_different_days():
    # Two years, one of them leap, through every format and case: a string must never be
    # the writing of two days (as "03/04" would be with both day-first and month-first).
    meaning = {}
    for day in all_days():
        if day.year not in (1996, 2049):
            continue
        for date_format in DATE_FORMATS:
            for letter_case in LETTER_CASES:
                assert meaning.setdefault(letter_case(write_date(day, date_format)), day) == day


def test_leap_days_appear():
    days = {target for _, target in draw(date_example, seed=1, n=20_000)}
    assert any(d.endswith("-02-29") for d in days)


# ---------------------------------------------------------------------------- splits

def held_out(source, name):
    """Sources that make_splits keeps out of training: all but 1- and 2-digit strings and one-digit sums."""
    if TASKS[name].kinds is None:
        return True
    return len(source) > 3 if "+" in source else len(source) >= 3


@pytest.mark.parametrize("name", sorted(TASKS))
def test_splits_have_the_sizes_asked_and_hold_out_what_they_promise(name):
    splits = make_splits(name, n_train=300, n_valid=50, n_test=50, seed=7)
    assert [len(s) for s in splits] == [300, 50, 50]
    train = [s for s, _ in splits.train]
    held = [s for s, _ in splits.valid + splits.test if held_out(s, name)]
    assert len(set(held)) == len(held) and not set(held) & set(train)
    if TASKS[name].kinds is None:
        assert len(set(train)) == len(train)  # no repeats at all
    expected = {"copy": lambda s: s, "reverse": lambda s: s[::-1], "sort": lambda s: "".join(sorted(s))}
    if name in expected:
        assert all(target == expected[name](source) for split in splits for source, target in split)


@pytest.mark.parametrize("seed", [0, 1])
def test_digit_test_split_covers_every_length_with_enough_examples(seed):
    splits = make_splits("copy", n_train=4000, n_valid=500, n_test=2000, seed=seed)
    test_sources = [s for s, _ in splits.test]
    by_length = {n: {s for s in test_sources if len(s) == n} for n in range(1, 11)}
    assert len(by_length[1]) == 10 and len(by_length[2]) == 100  # every short string
    assert all(len(by_length[n]) >= 200 for n in range(3, 11))
    assert len(set(test_sources)) == len(test_sources)
    train_sources = {s for s, _ in splits.train}
    assert by_length[1] <= train_sources  # shared: one-digit strings are trained on too
    assert not any(len(s) >= 3 and s in train_sources for s in test_sources)
    assert len([s for s, _ in splits.train if len(s) == 1]) > 30  # repeated, not drawn once


def test_kind_shares_are_equal_and_capped_by_what_a_length_holds():
    counts = {n: 10 ** n for n in range(1, 11)}
    assert kind_shares(2000, counts) == {1: 10, 2: 100, 3: 237, 4: 237, 5: 236, 6: 236, 7: 236, 8: 236,
                                           9: 236, 10: 236}
    assert kind_shares(20, counts) == {n: 2 for n in range(1, 11)}
    assert sum(kind_shares(12_345, counts).values()) == 12_345 and kind_shares(0, counts)[3] == 0


@pytest.mark.parametrize("name", sorted(TASKS))
def test_splits_are_deterministic_for_a_seed_and_differ_across_seeds(name):
    first = make_splits(name, 100, 20, 20, seed=3)
    assert make_splits(name, 100, 20, 20, seed=3) == first
    assert make_splits(name, 100, 20, 20, seed=4) != first


def test_splits_are_fixed_across_machines():
    # Pinned values: a change here means every saved experiment's data changed.
    splits = make_splits("addition", 2, 1, 1, seed=0)
    assert splits == ([("16+0", "61"), ("553+645", "8911")], [("6+3", "9")], [("8+5", "31")])
    splits = make_splits("reverse", 3, 1, 1, seed=0)
    assert splits == ([("00000", "00000"), ("606635775", "577536606"), ("503626972", "279626305")],
                      [("6", "6")], [("8", "8")])


def never_called(rng):
    raise AssertionError("make_splits drew examples before checking the sizes")


def test_more_distinct_sources_than_a_task_holds_is_refused_before_drawing():
    ten = Task("ten", never_called, "0123456789", 10, check_source=lambda text: None)
    with pytest.raises(ValueError, match=r"'ten' has at most 10 distinct sources and 11 were requested"):
        make_splits(ten, 6, 3, 2, seed=0)
    with pytest.raises(ValueError, match=f"'dates' has at most {TASKS['dates'].max_sources} distinct"):
        make_splits("dates", 2_000_000, 500, 1000, seed=0)


def test_an_upper_bound_that_is_not_reached_still_ends_with_a_clear_error():
    one_digit = Task("one_digit", lambda rng: (random_digits(rng, 1),) * 2, "0123456789", 12, lambda text: None)
    assert len(make_splits(one_digit, 6, 2, 2, seed=0).train) == 6  # exactly all 10 fit
    with pytest.raises(ValueError, match="'one_digit': .* draws found only 10 distinct sources of the 11"):
        make_splits(one_digit, 6, 3, 2, seed=0)


def test_digit_splits_refuse_to_hold_out_most_strings_of_a_length():
    with pytest.raises(ValueError, match="'sort' has 1000 sources of the kind of '000' .* hold out 1000 of them"):
        make_splits("sort", 10, 0, 10_000, seed=0)


def test_digit_training_sets_may_be_larger_than_held_out_sources_allow():
    assert len(make_splits("copy", 20_000, 0, 0, seed=0).train) == 20_000


def test_unknown_task_and_negative_sizes_are_errors():
    with pytest.raises(ValueError, match="unknown task 'multiply'"):
        make_splits("multiply", 1, 1, 1, seed=0)
    with pytest.raises(ValueError, match="n_valid"):
        make_splits("copy", 1, -1, 1, seed=0)


# ---------------------------------------------------------------------------- tokenizers

@pytest.mark.parametrize("name", sorted(TASKS))
@given(seed=seeds)
def test_tokenizer_for_covers_everything_a_task_writes(name, seed):
    tokenizer = tokenizer_for(name)
    for source, target in draw(TASKS[name].generate, seed, n=100):
        assert tokenizer.unknown_chars(source + target) == []
        assert tokenizer.decode(tokenizer.encode(source)) == source


def test_dates_tokenizer_covers_every_format_and_case():
    tokenizer = tokenizer_for("dates")
    for day in [datetime.date(2026, m, d) for m in range(1, 13) for d in (1, 2, 3, 7)]:
        for date_format in DATE_FORMATS:
            for letter_case in LETTER_CASES:
                assert tokenizer.unknown_chars(letter_case(write_date(day, date_format))) == []


def test_tokenizer_for_is_built_from_the_alphabet():
    assert tokenizer_for("reverse").chars == list("0123456789")
    assert tokenizer_for("addition").chars == list("+0123456789")


# ---------------------------------------------------------------------------- batches

PAIRS = make_splits("reverse", 230, 0, 0, seed=0).train
TOKENIZER = tokenizer_for("reverse")


def test_make_batch_places_bos_eos_and_padding():
    batch = make_batch([("123", "321"), ("4", "4")], TOKENIZER)
    one, two, three, four = (TOKENIZER.encode(c)[0] for c in "1234")
    assert batch.src.dtype == batch.tgt_in.dtype == batch.tgt_out.dtype == np.int64
    assert batch.src.tolist() == [[one, two, three], [four, PAD, PAD]]
    assert batch.tgt_in.tolist() == [[BOS, three, two, one], [BOS, four, PAD, PAD]]
    assert batch.tgt_out.tolist() == [[three, two, one, EOS], [four, EOS, PAD, PAD]]
    assert batch.src_texts == ["123", "4"] and batch.tgt_texts == ["321", "4"] and len(batch) == 2


def epoch(seed, **options):
    return list(batches(PAIRS, TOKENIZER, batch_size=16, rng=np.random.default_rng(seed), **options))


@pytest.mark.parametrize("bucket", [True, False])
def test_batches_cover_every_pair_once_with_consistent_arrays(bucket):
    seen = []
    for batch in epoch(0, bucket=bucket):
        b = len(batch)
        assert 1 <= b <= 16
        assert batch.src.shape == (b, max(map(len, batch.src_texts)))
        assert batch.tgt_in.shape == batch.tgt_out.shape == (b, max(map(len, batch.tgt_texts)) + 1)
        assert (batch.tgt_in[:, 0] == BOS).all()
        shifted = batch.tgt_out[:, :-1]  # tgt_in is tgt_out moved one step right, EOS dropped
        assert (batch.tgt_in[:, 1:] == np.where(shifted == EOS, PAD, shifted)).all()
        assert TOKENIZER.decode_batch(batch.src) == batch.src_texts
        assert TOKENIZER.decode_batch(batch.tgt_out) == batch.tgt_texts
        for row, target in zip(batch.tgt_out, batch.tgt_texts):
            assert row[len(target)] == EOS and (row[len(target) + 1:] == PAD).all()
        seen += zip(batch.src_texts, batch.tgt_texts)
    assert sorted(seen) == sorted(PAIRS)


def test_same_generator_state_gives_the_same_batches():
    first, again, other = epoch(5), epoch(5), epoch(6)
    assert [b.src_texts for b in first] == [b.src_texts for b in again]
    assert all((x.src == y.src).all() and (x.tgt_out == y.tgt_out).all() for x, y in zip(first, again))
    assert [b.src_texts for b in first] != [b.src_texts for b in other]


def test_resuming_from_a_saved_generator_state_repeats_the_next_epoch():
    rng = np.random.default_rng(11)
    list(batches(PAIRS, TOKENIZER, 16, rng=rng))
    saved = rng.bit_generator.state
    second_epoch = [b.src_texts for b in batches(PAIRS, TOKENIZER, 16, rng=rng)]
    resumed = np.random.default_rng()
    resumed.bit_generator.state = saved
    assert [b.src_texts for b in batches(PAIRS, TOKENIZER, 16, rng=resumed)] == second_epoch


def test_bucketing_reduces_padding():
    def padding(batch_list):
        return sum(int((b.src == PAD).sum()) for b in batch_list)
    assert padding(epoch(0, bucket=True)) < 0.5 * padding(epoch(0, bucket=False))


def test_bucketed_batches_come_in_shuffled_order():
    # Buckets are sorted by length; the batch order must not be, or training would see
    # all the short examples first.
    shortest = [min(map(len, b.src_texts)) for b in epoch(0, bucket=True)]
    assert shortest != sorted(shortest) and shortest != sorted(shortest, reverse=True)


def test_unshuffled_batches_keep_the_order_and_need_no_generator():
    plain = list(batches(PAIRS, TOKENIZER, 16, shuffle=False, bucket=False))
    assert [p for b in plain for p in zip(b.src_texts, b.tgt_texts)] == PAIRS
    with pytest.raises(ValueError, match="shuffle=True needs rng"):
        batches(PAIRS, TOKENIZER, 16)

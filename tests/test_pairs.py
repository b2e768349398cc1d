"""Pairs files: every accepted form reads as documented, every bad input is refused in one
line naming the file, the line and what was expected (or skipped and recorded), and the
grouped split never puts one source in two splits, whatever the order or later additions."""

import os
import random
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transformer.pairs import (
    MAX_LINE_CHARS,
    PairsFileError,
    describe_splits,
    group_by_source,
    overlap,
    read_pairs,
    source_score,
    split_by_source,
    split_of_score,
)
from transformer.tasks import Splits


def write(tmp_path, data: bytes | str, name="pairs.tsv"):
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


# ---------------------------------------------------------------------------- what is accepted


def test_reads_pairs_in_order_skipping_blank_and_comment_lines(tmp_path):
    path = write(tmp_path, "# word\tphonemes\n\nthought\tTH AO T\n   \n  # indented comment\nknight\tN AY T\n"
                           "C#\tS IY SH AA R P\n")
    read = read_pairs(path)
    assert read.pairs == [("thought", "TH AO T"), ("knight", "N AY T"), ("C#", "S IY SH AA R P")]
    assert read.skipped == [] and read.path == str(path)


def test_sides_are_stripped_and_inner_whitespace_collapsed(tmp_path):
    path = write(tmp_path, "  thought \t  TH   AO\u00a0 T  \nice  cream\tAY S K R IY M\n")
    assert read_pairs(path).pairs == [("thought", "TH AO T"), ("ice cream", "AY S K R IY M")]


def test_bom_crlf_and_a_last_line_without_line_end_are_accepted(tmp_path):
    path = write(tmp_path, b"\xef\xbb\xbfthought\tTH AO T\r\n# note\r\n\r\nknight\tN AY T")
    assert read_pairs(path).pairs == [("thought", "TH AO T"), ("knight", "N AY T")]


def test_utf8_text_and_a_line_of_exactly_max_line_chars_are_accepted(tmp_path):
    # 998 CJK characters take 2,994 bytes: the limit counts characters, not bytes
    long_source = "银" * (MAX_LINE_CHARS - 2)
    path = write(tmp_path, f"银行\tyin2 hang2\n{long_source}\tx\n")
    assert read_pairs(path).pairs == [("银行", "yin2 hang2"), (long_source, "x")]


# ---------------------------------------------------------------------------- bad lines

BAD_LINES = [
    # (file contents, bad line number, what the message must say)
    ("ok\tfine\nno tab here\n", 2, "found no tab; expected exactly one tab between source and target"),
    ("a\tb\tc\nok\tfine\n", 1, "found 2 tabs; expected exactly one tab"),
    ("ok\tfine\n\t  TH AO T\n", 2, "the source (before the tab) is empty; expected text on both sides of the tab"),
    ("ok\tfine\n# c\nthought\t   \r\n", 3, "the target (after the tab) is empty; expected text on both sides"),
    (b"ok\tfine\nab\xffc\td\n", 2, "invalid UTF-8 (byte 0xff at byte offset 2 of the line); expected UTF-8 text"),
    (b"\xef\xbb\xbfok\tfine\n\xe9t\xe9\tx\n", 2, "invalid UTF-8 (byte 0xe9 at byte offset 0"),
    ("ok\tfine\n\n" + "a" * MAX_LINE_CHARS + "\tb\n", 3,
     f"the line has {MAX_LINE_CHARS + 2:,} characters; expected at most {MAX_LINE_CHARS:,}"),
    ("ok\tfine\n" + "x" * 50_000 + "\tb\n", 2,
     f"the line has more than {MAX_LINE_CHARS:,} characters; expected at most {MAX_LINE_CHARS:,}"),
    ("# " + "long comment " * 100 + "\nok\tfine\n", 1, "characters; expected at most"),
]


@pytest.mark.parametrize("data, line, says", BAD_LINES)
def test_a_bad_line_is_refused_naming_file_line_and_expectation(tmp_path, data, line, says):
    path = write(tmp_path, data)
    with pytest.raises(PairsFileError) as caught:
        read_pairs(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:{line}: ") and says in message and "\n" not in message


@pytest.mark.parametrize("data, line, says", BAD_LINES)
def test_skip_bad_lines_skips_and_records_the_line(tmp_path, data, line, says):
    path = write(tmp_path, data)
    read = read_pairs(path, skip_bad_lines=True)
    assert [number for number, _ in read.skipped] == [line] and says in read.skipped[0][1]
    assert read.pairs == [("ok", "fine")]


def test_skip_bad_lines_counts_every_bad_line_by_its_file_line_number(tmp_path):
    path = write(tmp_path, "# header\n\na\tb\nbad\n\n# x\nc\t\nd\te\nf\tg\th\n")
    read = read_pairs(path, skip_bad_lines=True)
    assert read.pairs == [("a", "b"), ("d", "e")]
    assert [number for number, _ in read.skipped] == [4, 7, 9]
    assert "found no tab" in read.skipped[0][1] and "target (after the tab) is empty" in read.skipped[1][1]


def test_a_line_too_long_is_skipped_without_losing_the_line_count(tmp_path):
    path = write(tmp_path, "a\tb\n" + "y" * 20_000 + "\n" + "z" * 9_000 + "\tq\nc\td\nbad\n")
    read = read_pairs(path, skip_bad_lines=True)
    assert read.pairs == [("a", "b"), ("c", "d")]
    assert [number for number, _ in read.skipped] == [2, 3, 5]


# ---------------------------------------------------------------------------- bad files


def refused_whole(path, says, **kwargs):
    with pytest.raises(PairsFileError) as caught:
        read_pairs(path, **kwargs)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and says in message and "expected" in message and "\n" not in message
    return message


@pytest.mark.parametrize("skip", [False, True])
def test_a_nul_byte_anywhere_refuses_the_file_as_binary(tmp_path, skip):
    path = write(tmp_path, b"a\tb\nc\td\ne\x00\tf\ng\th\n")
    refused_whole(path, "looks like a binary file (a NUL byte on line 3); expected UTF-8 text", skip_bad_lines=skip)
    long_binary = write(tmp_path, b"a\tb\n" + b"x" * 30_000 + b"\x00" + b"y" * 10, name="long.bin")
    refused_whole(long_binary, "looks like a binary file (a NUL byte on line 2)", skip_bad_lines=skip)


def test_a_utf16_file_is_refused_as_such(tmp_path):
    path = write(tmp_path, "thought\tTH AO T\n".encode("utf-16"))
    refused_whole(path, "is UTF-16 text (it starts with a UTF-16 byte order mark); expected UTF-8 text")


@pytest.mark.parametrize("data", ["", "\n\n  \n", "# only\n# comments\n", "\ufeff"])
def test_a_file_without_pairs_is_refused(tmp_path, data):
    refused_whole(write(tmp_path, data), "has no pairs; expected one source<TAB>target a line")


def test_a_file_of_bad_lines_skipped_is_refused_saying_why(tmp_path):
    path = write(tmp_path, "# x\nno tab\nnone here\n")
    message = refused_whole(path, "has no pairs (2 bad lines skipped, the first on line 2: found no tab; "
                                  "expected exactly one tab between source and target)", skip_bad_lines=True)
    assert message.endswith("; expected one source<TAB>target a line")


def test_a_missing_file_and_a_directory_are_refused(tmp_path):
    refused_whole(tmp_path / "absent.tsv", "no such file; expected a file with one source<TAB>target a line")
    refused_whole(tmp_path / "absent" / "x.tsv", "no such file")
    refused_whole(tmp_path, "is a directory; expected a file with one source<TAB>target a line")


@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="needs /dev/null")
def test_a_device_is_refused_as_not_a_regular_file():
    refused_whole("/dev/null", "not a regular file (a FIFO, socket or device); expected a file")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "pipe.tsv"
    os.mkfifo(fifo)

    def unblock():  # a read_pairs that opened the FIFO would wait for a writer: be one, and fail the test
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:  # no reader: read_pairs did not open it
            pass

    timer = threading.Timer(5.0, unblock)
    timer.start()
    try:
        refused_whole(fifo, "not a regular file (a FIFO, socket or device)")
    finally:
        timer.cancel()


@pytest.mark.skipif(os.geteuid() == 0 if hasattr(os, "geteuid") else True, reason="root reads any file")
def test_an_unreadable_file_is_refused(tmp_path):
    path = write(tmp_path, "a\tb\n")
    path.chmod(0)
    refused_whole(path, "cannot be read (Permission denied); expected a readable file")


# ---------------------------------------------------------------------------- references


def test_group_by_source_keeps_first_seen_order_and_drops_duplicate_targets():
    pairs = [("read", "R IY D"), ("a", "AH"), ("read", "R EH D"), ("read", "R IY D"), ("a", "EY"), ("a", "AH")]
    assert group_by_source(pairs) == {"read": ["R IY D", "R EH D"], "a": ["AH", "EY"]}
    assert list(group_by_source(pairs)) == ["read", "a"]


def test_overlap_counts_distinct_sources_of_the_other_list_seen_in_training():
    train = [("a", "1"), ("b", "2"), ("b", "3")]
    other = [("b", "9"), ("b", "8"), ("c", "2"), ("a", "1"), ("d", "1")]
    assert overlap(train, other) == 2
    assert overlap(train, [("x", "1"), ("y", "b")]) == 0


def test_describe_splits_counts_pairs_and_sources():
    splits = Splits([("a", "1"), ("a", "2"), ("b", "1")] * 1000, [("c", "3")], [("d", "4"), ("e", "5")])
    assert describe_splits(splits) == ("train 3,000 pairs (2 sources), valid 1 pairs (1 sources), "
                                       "test 2 pairs (2 sources)")


# ---------------------------------------------------------------------------- the grouped split

sources = st.text(alphabet="abcdef", min_size=1, max_size=4)
pair_lists = st.lists(st.tuples(sources, st.sampled_from(["1", "2", "3"])), min_size=1, max_size=40)
seeds = st.integers(0, 2**32 - 1)
shares = st.sampled_from([(0.05, 0.05), (0.2, 0.1), (0.3, 0.3)])


def split_sources(splits):
    return [{source for source, _ in part} for part in splits]


@given(pair_lists, seeds, shares)
def test_split_partitions_the_pairs_and_keeps_each_source_in_one_split(pairs, seed, share):
    if len(group_by_source(pairs)) < 3:
        with pytest.raises(ValueError, match=r"distinct source\(s\) into train, valid and test; expected at least 3"):
            split_by_source(pairs, valid_share=share[0], test_share=share[1], seed=seed)
        return
    splits = split_by_source(pairs, valid_share=share[0], test_share=share[1], seed=seed)
    assert sorted(pairs) == sorted(splits.train + splits.valid + splits.test)
    train, valid, test = split_sources(splits)
    assert not (train & valid or train & test or valid & test)
    assert train and valid and test  # each split has at least one source
    for part in splits:  # each split keeps the file order
        assert part == [pair for pair in pairs if pair in part]
    # only sources moved to fill an empty split are not where their hash puts them
    misplaced = [source for part, name in zip((train, valid, test), ("train", "valid", "test")) for source in part
                 if split_of_score(source_score(source, seed), *share) != name]
    assert len(misplaced) <= 2


@given(pair_lists, seeds, st.randoms(use_true_random=False))
def test_split_is_deterministic_and_independent_of_the_order_of_lines(pairs, seed, rng):
    if len(group_by_source(pairs)) < 3:
        return
    shuffled = list(pairs)
    rng.shuffle(shuffled)
    first, again, reordered = (split_by_source(p, seed=seed) for p in (pairs, list(pairs), shuffled))
    assert first == again
    assert [sorted(part) for part in first] == [sorted(part) for part in reordered]


@given(pair_lists, pair_lists, seeds)
def test_appending_lines_moves_at_most_the_sources_that_filled_an_empty_split(pairs, more, seed):
    if len(group_by_source(pairs)) < 3:
        return
    before = split_sources(split_by_source(pairs, seed=seed))
    after = split_sources(split_by_source(pairs + more, seed=seed))
    moved = [source for old, new in zip(before, after) for source in old - new]
    assert len(moved) <= 4  # at most 2 moved to fill splits before, and 2 after


def test_appending_lines_to_a_large_file_moves_no_source():
    rng = random.Random(0)
    words = list(dict.fromkeys("".join(rng.choices("abcdefghij", k=6)) for _ in range(600)))
    pairs = [(word, str(rng.randrange(3))) for word in words[:500]]
    more = [(word, "x") for word in words[450:]]  # new targets for old sources, and new sources
    before, after = (split_sources(split_by_source(p, seed=3)) for p in (pairs, pairs + more))
    for old, new in zip(before, after):
        assert old <= new
    assert all(len(part) >= 10 for part in before[1:])  # about 5% of 500 sources each
    assert split_sources(split_by_source(pairs, seed=4)) != before  # the seed matters


def test_shares_count_sources_and_bad_shares_are_refused():
    pairs = [(f"w{i}", t) for i in range(4000) for t in ("a", "b")]
    train, valid, test = split_sources(split_by_source(pairs, valid_share=0.1, test_share=0.2))
    assert 320 < len(valid) < 480 and 680 < len(test) < 920 and len(train) == 4000 - len(valid) - len(test)
    for valid_share, test_share in [(0.0, 0.1), (0.5, 0.5), (-0.1, 0.2), (0.1, 1.0)]:
        with pytest.raises(ValueError, match="expected each above 0 and together below 1"):
            split_by_source(pairs, valid_share=valid_share, test_share=test_share)


def test_three_sources_fill_every_split():
    splits = split_by_source([("a", "1"), ("b", "2"), ("b", "3"), ("c", "4")], seed=0)
    assert sorted(len(part) for part in split_sources(splits)) == [1, 1, 1]

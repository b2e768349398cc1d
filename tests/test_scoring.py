"""Word and token error rates: edit distances and scores computed by hand, the metric laws
of the edit distance against a second implementation, and decoding a model's answers."""

from functools import cache

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transformer import scoring
from transformer.decoding import translate
from transformer.scoring import (
    closest_reference,
    decode_and_score,
    edit_distance,
    error_rate_name,
    format_scores,
    format_scores_by_length,
    score,
)
from transformer.tokenizer import CharTokenizer, SymbolTokenizer, TokenizerPair

# ---------------------------------------------------------------------------- edit distance


@pytest.mark.parametrize("a, b, distance", [
    ("kitten", "sitting", 3),    # k->s, e->i, insert g
    ("flaw", "lawn", 2),         # delete f, insert n
    ("intention", "execution", 5),
    ("", "", 0),
    ("", "abc", 3),              # three insertions
    ("abc", "", 3),              # three deletions
    ("abc", "abc", 0),
    ("ab", "ba", 2),             # no transpositions: two substitutions
    (["TH", "AO1", "T"], ["T", "AO1", "T"], 1),
    (["AH0", "B", "AW1", "T"], ["B", "AW1", "T"], 1),
    (["TH", "AO1", "T"], ["T", "H", "AO1", "T"], 2),   # symbols are compared whole, not by letter
    (("yin2", "hang2"), ("yin2", "xing2"), 1),
])
def test_edit_distances_computed_by_hand(a, b, distance):
    assert edit_distance(a, b) == distance == edit_distance(b, a)


@cache
def reference_distance(a: tuple, b: tuple) -> int:
    """The recursive definition, straight from the recurrence."""
    if not a or not b:
        return len(a) + len(b)
    return min(reference_distance(a[1:], b) + 1, reference_distance(a, b[1:]) + 1,
               reference_distance(a[1:], b[1:]) + (a[0] != b[0]))


words = st.lists(st.sampled_from(["AA", "B", "T", "TH"]), max_size=6).map(tuple)


@given(words, words, words)
def test_edit_distance_is_a_metric_that_agrees_with_the_recursive_definition(a, b, c):
    d = edit_distance
    assert d(a, b) == reference_distance(a, b)
    assert d(a, b) == d(b, a)
    assert (d(a, b) == 0) == (a == b)
    assert d(a, c) <= d(a, b) + d(b, c)
    assert abs(len(a) - len(b)) <= d(a, b) <= max(len(a), len(b))
    assert d(list(a), b) == d(a, b) and d("".join(a), "".join(a)) == 0


# ---------------------------------------------------------------------------- scores by hand

def test_a_word_right_by_its_second_pronunciation_counts_right():
    result = score(["D AE1 T AH0", "K AE1 T"], [["D EY1 T AH0", "D AE1 T AH0"], ["K AE1 T S"]])
    assert result["examples"] == 2 and result["word_errors"] == 1 and result["word_error_rate"] == 0.5
    assert result["errors"] == 1 and result["reference_tokens"] == 4 + 4   # "D AE1 T AH0" and "K AE1 T S"
    assert result["token_error_rate"] == 1 / 8


def test_the_closest_reference_is_scored_and_ties_go_to_the_shorter():
    # "T AH0 M EY1 T OW0": one substitution from the first reference (6 tokens), one
    # deletion from the second (7 tokens), three from the third: a tie, won by the shorter.
    refs = ["T AH0 M EY1 T OW0 Z", "T AH0 M AA1 T OW0", "T OW0 M AA1 T OW0 Z"]
    result = score(["T AH0 M EY1 T OW0"], [refs])
    assert (result["errors"], result["reference_tokens"]) == (1, 6)
    assert closest_reference("T AH0 M EY1 T OW0".split(), [r.split() for r in refs]) == (1, 1)
    # the closest is not the first: two edits from "K AH0 AE1", none from "K AE1 T"
    assert closest_reference(["K", "AE1", "T"], [["K", "AH0", "AE1"], ["K", "AE1", "T"]]) == (0, 1)
    # equal distance and length: the earlier reference
    assert closest_reference(["A"], [["B"], ["C"]]) == (1, 0)


def test_the_token_error_rate_is_a_corpus_ratio_not_a_mean_of_word_rates():
    predictions = ["A B C D E F G H I X", "Y"]
    references = [["A B C D E F G H I J"], ["Z"]]
    result = score(predictions, references)
    assert (result["errors"], result["reference_tokens"]) == (2, 11)
    assert result["token_error_rate"] == 2 / 11                  # not (1/10 + 1/1) / 2 = 0.55
    assert result["word_error_rate"] == 1.0


def test_the_rate_divides_by_the_reference_length_and_an_empty_prediction_deletes_everything():
    result = score(["", "A B C D"], [["A B C"], ["A B"]])
    assert (result["errors"], result["reference_tokens"]) == (3 + 2, 3 + 2)   # 3 deletions; 2 insertions
    assert result["token_error_rate"] == 1.0 and result["word_error_rate"] == 1.0


def test_characters_are_scored_with_split_list():
    result = score(["kitten", "cat"], [["sitting"], ["cat"]], split=list)
    assert (result["errors"], result["reference_tokens"]) == (3, 7 + 3)
    assert result["word_error_rate"] == 0.5
    spaced = score(["T AO T"], [["T  AO T"]])  # str.split: spacing does not matter
    assert spaced["word_error_rate"] == 0.0


def test_by_length_groups_sources_by_their_length_in_characters():
    sources = ["cat", "dog", "thought", "cat"]
    predictions = ["K AE1 T", "D AO1 G Z", "TH AO1 T", "K AH0 T"]
    references = [["K AE1 T"], ["D AO1 G"], ["TH AO1 T", "TH AA1 T"], ["K AE1 T"]]
    result = score(predictions, references, sources=sources)
    assert result["by_length"] == {
        "3": {"examples": 3, "word_error_rate": 2 / 3, "token_error_rate": (0 + 1 + 1) / 9},
        "7": {"examples": 1, "word_error_rate": 0.0, "token_error_rate": 0.0},
    }
    assert list(score(["a"], [["a"]], sources=["x y z"], source_split=str.split)["by_length"]) == ["3"]
    assert score(predictions, references)["by_length"] == {}
    ordered = score(["a"] * 3, [["a"]] * 3, sources=["1234567890", "12", "123456789"])["by_length"]
    assert list(ordered) == ["2", "9", "10"]   # by length, not as strings


@pytest.mark.parametrize("args, message", [
    ((["A"], [["A"], ["B"]]), "1 predictions but 2 reference lists"),
    ((["A"], ["A"]), r"references\[0\] must be a non-empty list of reference strings, got 'A'"),
    ((["A", "B"], [["A"], []]), r"references\[1\] must be a non-empty list"),
    ((["A"], [["A", "  "]]), r"references\[0\] holds an empty reference"),
    (([], []), "no predictions"),
])
def test_malformed_input_is_refused(args, message):
    with pytest.raises(ValueError, match=message):
        score(*args)
    with pytest.raises(ValueError, match="2 predictions but 1 sources"):
        score(["A", "B"], [["A"], ["B"]], sources=["a"])


# ---------------------------------------------------------------------------- reports

def test_error_rate_names():
    assert error_rate_name("phonemes") == error_rate_name("phoneme") == "phoneme error rate"
    assert error_rate_name("syllables") == "syllable error rate"
    assert error_rate_name("characters") == "character error rate"
    assert error_rate_name("symbols") == error_rate_name("words") == "token error rate"


def test_format_scores_gives_exactly_two_lines():
    result = {"word_error_rate": 0.27312, "token_error_rate": 0.061249}
    assert format_scores(result, "phonemes") == "word error rate: 27.31%\nphoneme error rate: 6.12%"
    assert format_scores(result, "syllables").splitlines()[1] == "syllable error rate: 6.12%"


def test_format_scores_by_length_is_a_table_with_the_worst_length():
    result = score(["K AE1 T", "D AO1 G Z", "TH AO1 T", "K AH0 T"],
                   [["K AE1 T"], ["D AO1 G"], ["TH AO1 T"], ["K AE1 T"]], sources=["cat", "dog", "thought", "cat"])
    assert format_scores_by_length(result, "phonemes") == "\n".join([
        "length  examples  word error  phoneme error",
        "     3         3      66.67%         22.22%",
        "     7         1       0.00%          0.00%",
        "   all         4      50.00%         16.67%   worst: length 3, word error 66.67%",
    ])
    no_lengths = score(["A"], [["A"]])
    assert format_scores_by_length(no_lengths).splitlines() == [
        "length  examples  word error  token error",
        "   all         1       0.00%        0.00%"]


# ---------------------------------------------------------------------------- decoding a model

WORDS = [("thought", "TH AO1 T"), ("cat", "K AE1 T"), ("about", "AH0 B AW1 T"), ("dog", "D AO1 G"),
         ("a", "AH0"), ("to", "T UW1")]
PAIR = TokenizerPair(CharTokenizer.from_texts(w for w, _ in WORDS), SymbolTokenizer.from_texts(p for _, p in WORDS))


@pytest.fixture(scope="module")
def model():
    from transformer.train import TrainConfig, build_model

    return build_model(TrainConfig.for_task("copy", model="micro", seed=1), PAIR)


def test_decode_and_score_decodes_each_distinct_source_once_in_length_sorted_batches(model, monkeypatch):
    sources = ["thought", "cat", "a", "about", "cat", "dog", "to", "a"]
    references = [[dict(WORDS)[s]] for s in sources]
    calls = []

    def recording_translate(m, tokenizer, texts, **kwargs):
        calls.append(list(texts))
        return translate(m, tokenizer, texts, **kwargs)

    monkeypatch.setattr(scoring, "translate", recording_translate)
    result = decode_and_score(model, PAIR, sources, references, batch_size=2, max_len=6)
    assert calls == [["a", "to"], ["cat", "dog"], ["about", "thought"]]
    expected = translate(model, PAIR, sources, max_len=6)
    assert result["predictions"] == expected
    assert {k: v for k, v in result.items() if k != "predictions"} == score(expected, references, sources=sources)
    assert sorted(result["by_length"]) == ["1", "2", "3", "5", "7"]


def test_decode_and_score_with_beam_search_and_a_progress_bar(model, capsys):
    sources = ["cat", "dog"]
    result = decode_and_score(model, PAIR, sources, [["K AE1 T"], ["D AO1 G"]], beam_size=3, max_len=6,
                              progress=True)
    assert result["predictions"] == translate(model, PAIR, sources, beam_size=3, max_len=6)
    assert "2/2" in capsys.readouterr().err

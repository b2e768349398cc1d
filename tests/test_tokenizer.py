"""Tokenizers: exact round trips, unknown characters and symbols, BPE training, batches,
files, pairs of tokenizers (one per side) and the rule that picks characters or symbols."""

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from transformer.tokenizer import (
    BOS,
    EOS,
    FIRST_MERGE_ID,
    MAX_SYMBOLS,
    NUM_SPECIAL,
    PAD,
    UNK,
    BPETokenizer,
    CharTokenizer,
    SymbolTokenizer,
    TokenizerPair,
    load_tokenizer,
    looks_like_symbols,
    split_into_chunks,
    tokenizer_for_texts,
    tokenizer_from_dict,
)

ALPHABET = "abc xyz,0123"

# A small corpus with repeated words (so merges pay off), digits, punctuation, runs of
# spaces, newlines and non-ASCII text (multi-byte UTF-8).
CORPUS = [
    f"the {animal} sat on the {thing} {n} times, then {verb} away."
    for n, (animal, thing, verb) in enumerate(
        [("cat", "mat", "ran"), ("dog", "log", "walked"), ("bird", "wire", "flew"),
         ("fish", "rock", "swam"), ("cat", "log", "ran")] * 20)
] + ["naïve café — Straße 東京 🙂🙂", "indented  twice\n\tand tabbed", "snake_case_names here"]


@pytest.fixture(scope="module")
def bpe():
    return BPETokenizer.train(CORPUS, vocab_size=FIRST_MERGE_ID + 50)


@pytest.fixture(scope="module")
def char():
    return CharTokenizer.from_texts([ALPHABET])


# ---------------------------------------------------------------------------- round trips

@given(st.text())
def test_chunks_join_back_to_the_text(text):
    assert "".join(split_into_chunks(text)) == text


@given(text=st.text())
def test_bpe_round_trips_any_unicode_text(bpe, text):
    ids = bpe.encode(text)
    assert all(i >= 4 for i in ids)  # plain text never encodes to a special token
    assert bpe.decode(ids) == text
    assert bpe.decode(np.array(bpe.encode(text, add_bos=True, add_eos=True))) == text


@given(text=st.text(alphabet=ALPHABET))
def test_char_round_trips_text_over_its_alphabet(char, text):
    ids = char.encode(text, add_bos=True, add_eos=True)
    assert ids[0] == BOS and ids[-1] == EOS and len(ids) == len(text) + 2
    assert char.decode(ids) == text
    assert char.decode(np.array(ids, dtype=np.int64)) == text


def test_special_ids_are_fixed(char, bpe):
    for tok in (char, bpe):
        assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id) == (PAD, BOS, EOS, UNK) == (0, 1, 2, 3)


def test_decode_writes_specials_unless_skipped(char):
    ids = [BOS] + char.encode("ab") + [EOS, PAD, UNK]
    assert char.decode(ids) == "ab"
    assert char.decode(ids, skip_special=False) == "<bos>ab<eos><pad><unk>"


def test_decode_rejects_ids_outside_the_vocabulary(char):
    with pytest.raises(ValueError, match=r"outside \[0, 16\)"):
        char.decode([4, 16])
    with pytest.raises(ValueError, match="1-D"):
        char.decode([[4, 5]])


# ---------------------------------------------------------------------------- characters

def test_char_vocabulary_is_sorted_and_deterministic():
    tok = CharTokenizer.from_texts(["cab", "ba!"])
    assert tok.chars == ["!", "a", "b", "c"]
    assert tok.vocab_size == 8
    assert tok.encode("abc!") == [5, 6, 7, 4]


def test_len_is_the_vocabulary_size(char, bpe):
    assert len(CharTokenizer.from_texts(["cab", "ba!"])) == 8  # 4 specials + 4 characters
    for tok in (char, bpe):
        assert len(tok) == tok.vocab_size
        tok.decode(list(range(len(tok))), skip_special=False)  # every id below len() decodes
        with pytest.raises(ValueError):
            tok.decode([len(tok)])


def test_unknown_characters_become_unk_and_are_listed(char):
    assert char.encode("aQb?Q") == [char.char_to_id["a"], UNK, char.char_to_id["b"], UNK, UNK]
    assert char.unknown_chars("aQb?Q") == ["Q", "?"]
    assert char.unknown_chars("abc") == []


def test_char_vocabulary_rejects_bad_entries():
    with pytest.raises(ValueError, match="more than once"):
        CharTokenizer(["a", "b", "a"])
    with pytest.raises(ValueError, match="single characters"):
        CharTokenizer(["ab"])


# ---------------------------------------------------------------------------- BPE training

def test_bpe_compresses_its_training_corpus(bpe):
    n_bytes = sum(len(t.encode("utf-8")) for t in CORPUS)
    n_tokens = sum(len(bpe.encode(t)) for t in CORPUS)
    assert len(bpe.merges) == 50
    assert n_tokens < 0.6 * n_bytes


def test_bpe_training_is_deterministic(bpe):
    again = BPETokenizer.train(CORPUS, vocab_size=FIRST_MERGE_ID + 50)
    assert again.merges == bpe.merges
    shuffled = BPETokenizer.train(CORPUS[::-1], vocab_size=FIRST_MERGE_ID + 50)
    assert shuffled.merges == bpe.merges  # merges depend on the counts, not the order of texts


def test_bpe_learns_the_most_frequent_pair_first_and_breaks_ties_by_smallest_ids():
    # (c, d) and (a, b) both occur twice, (e, f) once: the tie goes to (a, b), the smaller ids.
    tok = BPETokenizer.train(["cd", "cd", "ef", "ab", "ab"], vocab_size=FIRST_MERGE_ID + 1)
    a, b = 4 + ord("a"), 4 + ord("b")
    assert tok.merges == [(a, b)]
    assert tok.encode("ab") == [FIRST_MERGE_ID]


def test_bpe_encoding_applies_merges_in_learned_order():
    a, b, c = (4 + ord(ch) for ch in "abc")
    # "abc" can become (ab)c or a(bc): the merge learned first (lower rank) wins.
    assert BPETokenizer([(a, b), (b, c)]).encode("abc") == [FIRST_MERGE_ID, c]
    assert BPETokenizer([(b, c), (a, b)]).encode("abc") == [a, FIRST_MERGE_ID]
    # Later merges build on earlier tokens: "abab" -> (ab)(ab) -> ((ab)(ab)).
    abab = BPETokenizer([(a, b), (FIRST_MERGE_ID, FIRST_MERGE_ID)])
    assert abab.encode("abab") == [FIRST_MERGE_ID + 1] and abab.token_text(FIRST_MERGE_ID + 1) == "abab"


def test_bpe_never_merges_across_chunks():
    # "a b" is always written with the space, yet no token may hold "a" and " b" together.
    tok = BPETokenizer.train(["a b"] * 10, vocab_size=FIRST_MERGE_ID + 10)
    assert all(" " not in tok.token_text(i)[1:] for i in range(tok.vocab_size))
    assert [tok.token_text(i) for i in tok.encode("a b")] == ["a", " b"]


def test_bpe_stops_when_no_pair_repeats():
    tok = BPETokenizer.train(["abcd"], vocab_size=FIRST_MERGE_ID + 50)
    assert tok.merges == [] and tok.vocab_size == FIRST_MERGE_ID
    with pytest.raises(ValueError, match="vocab_size=100"):
        BPETokenizer.train(["abcd"], vocab_size=100)


# ---------------------------------------------------------------------------- batches

def test_encode_batch_pads_on_the_right(char):
    batch = char.encode_batch(["ab", "", "abc"], add_bos=True)
    assert batch.dtype == np.int64 and batch.shape == (3, 4)
    assert batch[:, 0].tolist() == [BOS] * 3
    assert batch[0, 3] == PAD and (batch[1, 1:] == PAD).all() and (batch[2] != PAD).all()
    assert char.decode_batch(batch) == ["ab", "", "abc"]


def test_encode_batch_pad_to(bpe):
    batch = bpe.encode_batch(["the cat", "the"], add_eos=True, pad_to=6)
    assert batch.shape == (2, 6) and batch[1, 1] == EOS and (batch[1, 2:] == PAD).all()
    assert bpe.decode_batch(batch.tolist()) == ["the cat", "the"]
    with pytest.raises(ValueError, match="pad_to=1"):
        bpe.encode_batch(["the cat"], pad_to=1)
    assert bpe.encode_batch([]).shape == (0, 0)


# ---------------------------------------------------------------------------- files

@pytest.mark.parametrize("which", ["char", "bpe"])
def test_save_load_round_trip(tmp_path, char, bpe, which):
    tok = {"char": char, "bpe": bpe}[which]
    path = tmp_path / "tok.json"
    tok.save(path)
    loaded = load_tokenizer(path)
    assert type(loaded) is type(tok) and loaded.vocab_size == tok.vocab_size
    texts = ALPHABET.split() + CORPUS[-3:] + ["unseen ✓ text 42"]
    assert [loaded.encode(t) for t in texts] == [tok.encode(t) for t in texts]
    assert type(tok).load(path).vocab_size == tok.vocab_size
    assert [p.name for p in tmp_path.iterdir()] == ["tok.json"]  # no temporary file left


def test_load_with_the_wrong_class_is_an_error(tmp_path, char):
    path = tmp_path / "tok.json"
    char.save(path)
    with pytest.raises(ValueError, match="not a BPETokenizer"):
        BPETokenizer.load(path)


@pytest.mark.parametrize("content, message", [
    ("{not json", "invalid JSON"),
    ("[1, 2]", "found 'list'"),
    ('{"type": "words"}', "found 'words'"),
    ('{"type": "char"}', "missing field 'chars'"),
    ('{"type": "char", "chars": "abc"}', "'chars' must be a list"),
    ('{"type": "char", "chars": ["a", "a"]}', "more than once"),
    ('{"type": "bpe", "merges": [[4, 5, 6]]}', "pairs"),
    ('{"type": "bpe", "merges": [[4, 999]]}', "refers to id 999"),
])
def test_malformed_files_give_a_clear_error_naming_the_file(tmp_path, content, message):
    path = tmp_path / "broken.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message) as info:
        load_tokenizer(path)
    assert str(path) in str(info.value)


def test_saved_file_is_readable_json(tmp_path, char):
    path = tmp_path / "tok.json"
    char.save(path)
    assert json.loads(path.read_text(encoding="utf-8")) == {"type": "char", "chars": char.chars}


def test_to_dict_round_trips_and_bad_dicts_are_named():
    for tokenizer in (CharTokenizer.from_texts(["abc"]), BPETokenizer.train(["aaab aaab aab"] * 5, 270)):
        again = tokenizer_from_dict(tokenizer.to_dict())
        assert type(again) is type(tokenizer) and again.encode("aab c") == tokenizer.encode("aab c")
    with pytest.raises(ValueError, match=r"ckpt: not a tokenizer .*found 'wordpiece'"):
        tokenizer_from_dict({"type": "wordpiece"}, source="ckpt")
    with pytest.raises(ValueError, match="ckpt: malformed char tokenizer: missing field"):
        tokenizer_from_dict({"type": "char"}, source="ckpt")


# ---------------------------------------------------------------------------- symbols

PHONEMES = ["TH AO1 T", "K AE1 T", "AH0 B AW1 T", "T"]


@pytest.fixture(scope="module")
def symbols():
    return SymbolTokenizer.from_texts(PHONEMES)


def test_symbol_vocabulary_is_sorted_and_encodes_by_symbol(symbols):
    assert symbols.symbols == ["AE1", "AH0", "AO1", "AW1", "B", "K", "T", "TH"]
    assert symbols.vocab_size == NUM_SPECIAL + 8 and symbols.units == symbols.symbols
    assert symbols.encode("TH AO1 T", add_bos=True, add_eos=True) == [BOS, 11, 6, 10, EOS]
    assert symbols.encode("  TH\tAO1\n T ") == [11, 6, 10]  # any whitespace separates, none is a symbol
    assert symbols.decode([BOS, 11, 6, 10, EOS, PAD]) == "TH AO1 T"
    assert symbols.decode([11, EOS, 6, UNK], skip_special=False) == "TH <eos> AO1 <unk>"
    assert symbols.encode("") == [] and symbols.decode([]) == ""


@given(st.lists(st.sampled_from(sorted({s for text in PHONEMES for s in text.split()})), max_size=12),
       st.sampled_from([" ", "  ", "\t", " \n "]))
def test_symbol_round_trips_any_list_of_known_symbols(symbols, units, space):
    ids = symbols.encode(space.join(units))
    assert len(ids) == len(units) and all(i >= NUM_SPECIAL for i in ids)
    assert symbols.decode(ids) == " ".join(units)
    assert symbols.decode(np.array(symbols.encode(" ".join(units), add_bos=True, add_eos=True))) == " ".join(units)


def test_unknown_units_are_named_for_either_kind(symbols, char):
    assert symbols.encode("TH IY1 TH Z") == [11, UNK, 11, UNK]
    assert symbols.unknown("TH IY1 TH Z IY1") == ["IY1", "Z"]
    assert symbols.unknown("T AO1") == []
    assert char.unknown("aQb?Q") == char.unknown_chars("aQb?Q") == ["Q", "?"]
    assert char.units == char.chars and char.split("ab c") == ["a", "b", " ", "c"]
    assert symbols.split(" TH  AO1 ") == ["TH", "AO1"]


def test_symbol_vocabulary_rejects_bad_entries():
    with pytest.raises(ValueError, match="more than once"):
        SymbolTokenizer(["AA", "B", "AA"])
    for bad in ("", "A A", "B\n", 7):
        with pytest.raises(ValueError, match="without whitespace"):
            SymbolTokenizer(["AA", bad])


# ---------------------------------------------------------------------------- one tokenizer per side

def test_a_lone_tokenizer_is_both_of_its_sides(char, symbols):
    for tok in (char, symbols):
        assert tok.source is tok and tok.target is tok


def test_a_pair_round_trips_through_dicts_and_files(tmp_path, char, symbols):
    pair = TokenizerPair(char, symbols)
    data = pair.to_dict()
    assert data == {"type": "pair", "source": char.to_dict(), "target": symbols.to_dict()}
    again = tokenizer_from_dict(json.loads(json.dumps(data)))
    assert again == pair and again != TokenizerPair(symbols, char) and again != char
    assert again.source.encode("ab c") == char.encode("ab c") and again.target.decode([11, 6]) == "TH AO1"
    path = tmp_path / "pair.json"
    pair.save(path)
    assert TokenizerPair.load(path) == pair == load_tokenizer(path)
    assert hash(TokenizerPair.load(path)) == hash(pair)
    with pytest.raises(ValueError, match="holds a TokenizerPair, not a CharTokenizer"):
        CharTokenizer.load(path)
    char.save(path)
    with pytest.raises(ValueError, match="holds a CharTokenizer, not a TokenizerPair"):
        TokenizerPair.load(path)
    with pytest.raises(AttributeError):
        pair.vocab_size  # noqa: B018  (a pair has no single vocabulary: code must name the side)
    with pytest.raises(TypeError, match="the target must be a Tokenizer, got TokenizerPair"):
        TokenizerPair(char, pair)


@pytest.mark.parametrize("data, message", [
    ({"type": "pair", "source": {"type": "char", "chars": ["a"]}}, "malformed pair tokenizer: missing field 'target'"),
    ({"type": "pair", "target": {"type": "char", "chars": ["a"]}}, "malformed pair tokenizer: missing field 'source'"),
    ({"type": "pair", "source": {"type": "pair", "source": {}, "target": {}}, "target": {"type": "char", "chars": []}},
     r"source side: not a tokenizer \(.*found 'pair'\)"),
    ({"type": "pair", "source": {"type": "char", "chars": []}, "target": [[[["deep"]]]]},
     "target side: not a tokenizer .*found 'list'"),
    ({"type": "pair", "source": {"type": "char", "chars": []}, "target": {"type": "symbol", "symbols": ["A B"]}},
     "target side: malformed symbol tokenizer: .*without whitespace, got 'A B'"),
    ({"type": "pair", "source": {"type": "char", "chars": []}, "target": {"type": "symbol"}},
     "target side: malformed symbol tokenizer: missing field 'symbols'"),
    ({"type": "symbol", "symbols": "AA B"}, "'symbols' must be a list"),
    ({"type": "x" * 500}, r"found 'xxxx.*\.\.\.\)$"),
])
def test_malformed_pairs_and_symbol_vocabularies_are_refused_in_one_line(data, message):
    with pytest.raises(ValueError, match=message) as info:
        tokenizer_from_dict(data, source="run.json")
    text = str(info.value)
    assert text.startswith("run.json: ") and "\n" not in text and len(text) < 300


# ---------------------------------------------------------------------------- choosing a side's tokenizer

@pytest.mark.parametrize("name, texts, kind", [
    ("phonemes", ["TH AO1 T", "K AE1 T", "D AO1 G Z"], SymbolTokenizer),
    ("pinyin", ["yin2 hang2", "zhong1 guo2", "ren2"], SymbolTokenizer),
    ("pinyin with tone marks", ["yín háng", "zhōng guó"], SymbolTokenizer),
    ("spaced phoneme letters", ["T AA", "K AE T"], SymbolTokenizer),  # "AA" is one symbol, not 'A', 'A'
    ("English words", ["thought", "cat", "about"], CharTokenizer),
    ("digits", ["123", "9981", "7"], CharTokenizer),
    ("spaced digits", ["1 2 3", "9 9 8"], CharTokenizer),
    ("ISO dates", ["2024-01-05", "1999-12-31"], CharTokenizer),
    ("written dates", ["5 January 2024", "31 December 1999"], CharTokenizer),
    ("sums", ["12 + 7", "3 + 45"], CharTokenizer),
    ("single spaced letters", ["T H O", "C A T"], CharTokenizer),
    ("nothing", [], CharTokenizer),
])
def test_auto_picks_symbols_for_phonemes_and_pinyin_and_characters_otherwise(name, texts, kind):
    assert type(tokenizer_for_texts(texts)) is kind, name
    assert looks_like_symbols(texts) is (kind is SymbolTokenizer)


def test_auto_spells_a_vocabulary_beyond_max_symbols_by_characters():
    many = [f"ab{i} cd{i}" for i in range(MAX_SYMBOLS // 2)]  # exactly MAX_SYMBOLS distinct units
    assert type(tokenizer_for_texts(many)) is SymbolTokenizer
    assert type(tokenizer_for_texts(many + ["ef"])) is CharTokenizer


def test_a_kind_can_be_forced():
    assert tokenizer_for_texts(["TH AO1 T"], kind="chars").chars == [" ", "1", "A", "H", "O", "T"]
    assert tokenizer_for_texts(["thought", "cat"], kind="symbols").symbols == ["cat", "thought"]
    with pytest.raises(ValueError, match=r"kind must be one of \('auto', 'chars', 'symbols'\), got 'words'"):
        tokenizer_for_texts(["a"], kind="words")

"""Greedy and beam decoding: cache equivalence, beam 1 = greedy, exhaustive optimality, bounds."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
from transformer.decoding import beam_search, greedy_decode, length_normalizer, translate
from transformer.model import Transformer, TransformerConfig
from transformer.tokenizer import BOS, EOS, PAD, CharTokenizer


def model_for(vocab=9, seed=0, **overrides):
    settings_ = dict(d_model=16, n_heads=2, n_encoder_layers=2, n_decoder_layers=2, d_ff=32, dropout=0.1, max_len=24)
    settings_.update(overrides)
    return Transformer(TransformerConfig(vocab, vocab, **settings_), seed=seed)


sources = hnp.arrays(np.int64, st.tuples(st.integers(1, 3), st.integers(1, 6)), elements=st.integers(4, 8))


@settings(max_examples=10)
@given(sources, st.integers(0, 3))
def test_cached_and_uncached_greedy_agree_on_tokens_and_logits(src, seed):
    model = model_for(seed=seed)
    cached, cached_logits = greedy_decode(model, src, max_len=8, return_logits=True)
    plain, plain_logits = greedy_decode(model, src, max_len=8, use_cache=False, return_logits=True)
    np.testing.assert_array_equal(cached, plain)
    np.testing.assert_allclose(cached_logits, plain_logits, rtol=1e-4, atol=1e-5)


@settings(max_examples=10)
@given(sources, st.integers(0, 3))
def test_beam_size_one_equals_greedy(src, seed):
    model = model_for(seed=seed)
    np.testing.assert_array_equal(beam_search(model, src, beam_size=1, max_len=8), greedy_decode(model, src, 8))


@settings(max_examples=5)
@given(sources, st.integers(0, 3))
def test_cached_and_uncached_beam_search_agree(src, seed):
    model = model_for(seed=seed)
    np.testing.assert_array_equal(beam_search(model, src, 3, max_len=6),
                                  beam_search(model, src, 3, max_len=6, use_cache=False))


def sequence_score(model, src, hypothesis, alpha):
    """log p(hypothesis | src) / lp, by one teacher-forced pass."""
    model.eval()
    with mg.no_grad():
        logits = model(src, np.array([[BOS] + hypothesis[:-1]]))
    log_probs = mg.log_softmax(logits, -1).data[0].astype(np.float64)
    return sum(log_probs[t, token] for t, token in enumerate(hypothesis)) / length_normalizer(len(hypothesis), alpha)


def test_wide_beam_finds_the_exhaustive_optimum():
    vocab, max_len = 6, 3
    model = model_for(vocab=vocab, seed=4)
    src = np.array([[4, 5, 4]])
    candidates = [list(seq[:seq.index(EOS) + 1]) if EOS in seq else list(seq)
                  for seq in itertools.product(range(vocab), repeat=max_len)]
    unique = {tuple(c) for c in candidates}
    best = max(unique, key=lambda h: sequence_score(model, src, list(h), 0.6))
    row = [int(t) for t in beam_search(model, src, beam_size=vocab ** 2, max_len=max_len)[0]]
    found = row[:row.index(EOS) + 1] if EOS in row else row  # drop the padding after EOS
    assert tuple(found) == best


@settings(max_examples=10)
@given(sources, st.integers(1, 5))
def test_rows_end_with_eos_then_padding_within_max_len(src, max_len):
    model = model_for()
    for tokens in (greedy_decode(model, src, max_len), beam_search(model, src, 2, max_len=max_len)):
        assert tokens.shape[0] == src.shape[0] and tokens.shape[1] <= max_len
        for row in tokens:
            if EOS in row:
                end = list(row).index(EOS)
                assert (row[end + 1:] == PAD).all()


def test_decoding_restores_training_mode_and_records_nothing():
    model = model_for()
    model.train()
    tokens = greedy_decode(model, np.array([[4, 5]]), 4)
    assert model.training and tokens.dtype == np.int64


def test_bad_arguments_are_clear():
    model = model_for()
    with pytest.raises(ValueError, match="max_len must be in"):
        greedy_decode(model, np.array([[4, 5]]), 99)
    with pytest.raises(ValueError, match="beam_size must be at least 1"):
        beam_search(model, np.array([[4, 5]]), 0)
    with pytest.raises(ValueError, match="token id 50 is out of range"):
        greedy_decode(model, np.array([[4, 50]]))


def test_translate_returns_strings():
    tokenizer = CharTokenizer.from_texts(["abc"])
    model = model_for(vocab=tokenizer.vocab_size)
    out = translate(model, tokenizer, ["ab", "c"], max_len=5)
    assert len(out) == 2 and all(isinstance(s, str) for s in out)
    assert len(translate(model, tokenizer, ["ab"], beam_size=2, max_len=5)) == 1

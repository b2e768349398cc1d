"""Greedy and beam decoding: cache equivalence on any model, the tokens never chosen,
beam 1 = greedy, exhaustive optimality, the length normalizer, bounds."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
from transformer.decoding import beam_search, greedy_decode, length_normalizer, translate
from transformer.model import Transformer, TransformerConfig
from transformer.tokenizer import BOS, EOS, PAD, UNK, CharTokenizer


def model_for(vocab=9, seed=0, **overrides):
    settings_ = dict(d_model=16, n_heads=2, n_encoder_layers=2, n_decoder_layers=2, d_ff=32, dropout=0.1, max_len=24)
    settings_.update(overrides)
    return Transformer(TransformerConfig(vocab, vocab, **settings_), seed=seed)


sources = hnp.arrays(np.int64, st.tuples(st.integers(1, 3), st.integers(1, 6)), elements=st.integers(4, 8))


@st.composite
def untrained_models(draw):
    """A random untrained Transformer (float64, so float round-off cannot break an argmax
    tie) and a batch of sources with padding: (model, src (B, S))."""
    n_heads = draw(st.sampled_from([1, 2, 4]))
    vocab = draw(st.integers(6, 13))
    config = TransformerConfig(
        vocab, vocab, d_model=4 * n_heads * draw(st.integers(1, 2)), n_heads=n_heads,
        n_encoder_layers=draw(st.integers(1, 2)), n_decoder_layers=draw(st.integers(1, 2)),
        d_ff=draw(st.sampled_from([8, 32])), dropout=draw(st.sampled_from([0.0, 0.1])),
        norm_first=draw(st.booleans()), max_len=16)
    model = Transformer(config, seed=draw(st.integers(0, 2**16)), dtype=np.float64)
    lengths = draw(st.lists(st.integers(1, 6), min_size=1, max_size=4))
    src = np.full((len(lengths), max(lengths)), PAD, dtype=np.int64)
    for row, length in enumerate(lengths):  # source tokens may include UNK: it is an input
        src[row, :length] = draw(st.lists(st.integers(UNK, vocab - 1), min_size=length, max_size=length))
    return model, src


def assert_well_formed(tokens, max_len):
    """Each row: allowed tokens, then EOS and only PAD after it; or, without EOS, max_len allowed tokens."""
    assert tokens.shape[1] <= max_len
    for row in tokens.tolist():
        body = row[:row.index(EOS)] if EOS in row else row
        assert not {PAD, BOS, UNK} & set(body), f"a token that is never chosen was emitted: {row}"
        if EOS in row:
            assert set(row[len(body) + 1:]) <= {PAD}, f"something other than PAD after EOS: {row}"
        else:
            assert len(row) == max_len, f"a row without EOS stopped before max_len {max_len}: {row}"


@settings(max_examples=40)
@given(untrained_models())
def test_cached_and_uncached_greedy_agree_on_any_model(model_and_src):
    model, src = model_and_src
    cached, cached_logits = greedy_decode(model, src, max_len=10, return_logits=True)
    plain, plain_logits = greedy_decode(model, src, max_len=10, use_cache=False, return_logits=True)
    np.testing.assert_array_equal(cached, plain)
    assert_well_formed(cached, 10)
    # Logits exist up to each row's EOS; after it nothing is decoded, and both paths say NaN.
    np.testing.assert_allclose(cached_logits, plain_logits, rtol=1e-9, atol=1e-9, equal_nan=True)
    decoded = np.arange(cached.shape[1])[None, :] <= np.array(
        [row.index(EOS) if EOS in row else len(row) for row in cached.tolist()])[:, None]
    assert np.isfinite(cached_logits[decoded]).all() and np.isnan(cached_logits[~decoded]).all()


@settings(max_examples=25)
@given(untrained_models(), st.integers(2, 4))
def test_cached_and_uncached_beam_search_agree_on_any_model(model_and_src, beam_size):
    model, src = model_and_src
    cached = beam_search(model, src, beam_size, max_len=8)
    np.testing.assert_array_equal(cached, beam_search(model, src, beam_size, max_len=8, use_cache=False))
    assert_well_formed(cached, 8)


def test_a_model_that_prefers_the_tokens_never_chosen_still_decodes_real_tokens():
    """Rig the output layer so PAD, BOS and UNK get by far the highest logits: the decoders
    must pass over them (before the rule, greedy emitted PAD here and the paths diverged)."""
    model = model_for(vocab=9, tie_output=False, dropout=0.0)
    bias = np.zeros(9, dtype=model.output.bias.data.dtype)
    bias[[PAD, BOS, UNK]] = 50.0
    model.output.bias.data[...] = bias
    src = np.array([[4, 5, 6], [7, 8, PAD]])
    for tokens in (greedy_decode(model, src, 6), greedy_decode(model, src, 6, use_cache=False),
                   beam_search(model, src, 3, max_len=6), beam_search(model, src, 3, max_len=6, use_cache=False)):
        assert_well_formed(tokens, 6)
    _, logits = greedy_decode(model, src, 6, return_logits=True)
    assert np.isin(logits[:, 0].argmax(-1), [PAD, BOS, UNK]).all()  # the model's raw logits are returned


@settings(max_examples=10)
@given(sources, st.integers(0, 3))
def test_beam_size_one_equals_greedy(src, seed):
    model = model_for(seed=seed)
    np.testing.assert_array_equal(beam_search(model, src, beam_size=1, max_len=8), greedy_decode(model, src, 8))


def sequence_score(model, src, hypothesis, alpha):
    """log p(hypothesis | src) / ((5 + |Y|) / 6)^α (GNMT's normalizer, written out here), by
    one teacher-forced pass."""
    model.eval()
    with mg.no_grad():
        logits = model(src, np.array([[BOS] + hypothesis[:-1]]))
    log_probs = mg.log_softmax(logits, -1).data[0].astype(np.float64)
    return sum(log_probs[t, token] for t, token in enumerate(hypothesis)) / ((5 + len(hypothesis)) / 6) ** alpha


def test_length_normalizer_values():
    assert length_normalizer(1, 0.6) == 1.0  # (5 + 1) / 6 = 1
    assert length_normalizer(7, 0.6) == pytest.approx(2 ** 0.6)
    assert length_normalizer(4, 1.0) == pytest.approx(1.5)
    assert length_normalizer(13, 0.5) == pytest.approx(3 ** 0.5)
    assert length_normalizer(9, 0.0) == 1.0


def test_wide_beam_finds_the_exhaustive_optimum():
    vocab, max_len = 6, 3
    model = model_for(vocab=vocab, seed=4)
    src = np.array([[4, 5, 4]])
    allowed = [t for t in range(vocab) if t not in (PAD, BOS, UNK)]
    candidates = [list(seq[:seq.index(EOS) + 1]) if EOS in seq else list(seq)
                  for seq in itertools.product(allowed, repeat=max_len)]
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
        assert tokens.shape[0] == src.shape[0]
        assert_well_formed(tokens, max_len)


@pytest.mark.parametrize("decode", [greedy_decode, beam_search], ids=["greedy", "beam"])
def test_decoding_restores_training_mode_and_records_nothing(decode, monkeypatch):
    model = model_for()
    model.train()
    outputs = []
    project = model.project
    monkeypatch.setattr(model, "project", lambda h: outputs.append(project(h)) or outputs[-1])
    tokens = decode(model, np.array([[4, 5]]), max_len=4)
    assert model.training and tokens.dtype == np.int64
    assert outputs and all(out.is_leaf and not out.requires_grad for out in outputs)  # no graph was recorded


def test_bad_arguments_are_clear():
    model = model_for()
    with pytest.raises(ValueError, match="max_len must be in"):
        greedy_decode(model, np.array([[4, 5]]), 99)
    with pytest.raises(ValueError, match="beam_size must be at least 1"):
        beam_search(model, np.array([[4, 5]]), 0)
    with pytest.raises(ValueError, match="token id 50 is out of range"):
        greedy_decode(model, np.array([[4, 50]]))
    for decode in (greedy_decode, beam_search):
        with pytest.raises(ValueError, match="source row 1 is empty"):
            decode(model, np.array([[4, 5], [PAD, PAD]]))
        with pytest.raises(ValueError, match="source row 0 is empty"):
            decode(model, np.zeros((1, 0), dtype=np.int64))


def test_translate_returns_the_decoded_text_before_eos(monkeypatch):
    tokenizer = CharTokenizer.from_texts(["abc"])  # a=4, b=5, c=6
    model = model_for(vocab=tokenizer.vocab_size)
    decoded = np.array([[4, 5, EOS, PAD], [6, EOS, PAD, PAD], [4, 4, 6, 4]])  # the last row never ended
    calls = []
    for name in ("greedy_decode", "beam_search"):
        monkeypatch.setattr(f"transformer.decoding.{name}", lambda m, src, *a, **k: calls.append(src) or decoded)
    texts = ["ab", "c", "abcab"]
    for beam_size in (1, 2):
        assert translate(model, tokenizer, texts, beam_size=beam_size) == ["ab", "c", "aaca"]
    np.testing.assert_array_equal(calls[0], [[4, 5, 0, 0, 0], [6, 0, 0, 0, 0], [4, 5, 6, 4, 5]])
    assert len(calls) == 2
    assert translate(model, tokenizer, []) == []
    with pytest.raises(ValueError, match="nothing to translate in ''"):
        translate(model, tokenizer, ["ab", ""])


# ----------------------------------------------------------------------------- guards at their edges


def rigged_model(seed, eos_bias, vocab=8, max_len=16):
    """An untrained float64 model whose output bias favours EOS by ``eos_bias``."""
    config = TransformerConfig(vocab, vocab, d_model=16, n_heads=2, n_encoder_layers=1, n_decoder_layers=1, d_ff=32,
                               dropout=0.0, max_len=max_len, tie_output=False)
    model = Transformer(config, seed=seed, dtype=np.float64)
    model.output.bias.data[EOS] += eos_bias
    return model


def reference_beam_search(model, src, beam_size, max_len, alpha):
    """Beam search written plainly, one hypothesis at a time, every prefix re-run from
    scratch: extend every kept hypothesis by every allowed token, walk the candidates from
    the most probable down, finishing those that end in EOS, until ``beam_size`` go on;
    stop when ``beam_size`` have finished (or none goes on); after ``max_len`` steps the
    unfinished compete too.  Finished hypotheses score log p / ((5 + |Y|) / 6)^alpha."""
    model.eval()
    allowed = [t for t in range(model.config.tgt_vocab_size) if t not in (PAD, BOS, UNK)]

    def log_probs(prefix):
        with mg.no_grad():
            logits = model(src, np.array([[BOS, *prefix]])).data[0, -1]
        return logits - logits.max() - np.log(np.exp(logits - logits.max()).sum())

    def normalized(score, hypothesis):
        return score / ((5 + len(hypothesis)) / 6) ** alpha

    beams, finished = [((), 0.0)], []
    for _ in range(max_len):
        candidates = sorted(((score + lp[t], prefix + (t,)) for prefix, score in beams
                             for lp in [log_probs(prefix)] for t in allowed), key=lambda c: -c[0])
        beams = []
        for score, hypothesis in candidates:
            if hypothesis[-1] == EOS:
                finished.append((normalized(score, hypothesis), hypothesis))
            else:
                beams.append((hypothesis, score))
                if len(beams) == beam_size:
                    break
        if len(finished) >= beam_size or not beams:
            break
    else:
        finished += [(normalized(score, hypothesis), hypothesis) for hypothesis, score in beams]
    return list(max(finished)[1])


def until_eos(row):
    row = [int(t) for t in row]
    return row[:row.index(EOS) + 1] if EOS in row else row


def test_beam_search_equals_a_plain_reference_where_eos_competes_early():
    src = np.array([[4, 5, 6, 7]])
    lengths = set()
    for seed in range(8):
        # EOS from unbiased to likely at the first step, with length normalizers from mild to
        # strong, so that early finished hypotheses compete with longer and unfinished ones.
        for eos_bias, alpha in ((0.0, 0.6), (1.0, 2.0), (2.0, 3.0)):
            model = rigged_model(seed, eos_bias)
            for beam_size in (2, 3):
                expected = reference_beam_search(model, src, beam_size, 4, alpha)
                found = until_eos(beam_search(model, src, beam_size, max_len=4, length_penalty=alpha)[0])
                assert found == expected, (seed, eos_bias, alpha, beam_size)
                lengths.add(len(expected) if expected[-1] == EOS else "unfinished")
    assert {1, 2, "unfinished"} <= lengths  # the cases hold winners that end at step 1, at 2, and none
    model = rigged_model(2, 2.0)
    assert until_eos(beam_search(model, src, 2, max_len=4, length_penalty=3.0, use_cache=False)[0]) == \
        reference_beam_search(model, src, 2, 4, 3.0)


@pytest.mark.parametrize("favoured", [PAD, BOS, UNK], ids=["PAD", "BOS", "UNK"])
def test_tokens_never_chosen_stay_unchosen_however_likely_the_model_makes_them(favoured):
    model = rigged_model(0, 0.0)
    model.output.bias.data[favoured] += 50.0  # nearly all the probability
    src = np.array([[4, 5, 6], [7, 7, PAD]])
    for tokens in (greedy_decode(model, src, 5), greedy_decode(model, src, 5, use_cache=False),
                   beam_search(model, src, 3, max_len=5), beam_search(model, src, 3, max_len=5, use_cache=False)):
        assert_well_formed(tokens, 5)
        assert favoured not in tokens[:, 0]


def test_max_len_is_accepted_up_to_the_model_s_positions_minus_bos_and_refused_past_it():
    model = rigged_model(0, -50.0)  # EOS never wins: every row runs to max_len
    src = np.array([[4, 5]])
    for decode in (greedy_decode, beam_search):
        assert decode(model, src, max_len=1).shape == (1, 1)
        assert decode(model, src, max_len=15).shape == (1, 15)  # BOS + 15 tokens fill the 16 positions
        assert decode(model, np.full((1, 12), 4)).shape == (1, 15)  # default: min(12 + 16, 15)
        assert decode(rigged_model(0, -50.0, max_len=40), src).shape == (1, 18)  # default: 2 + 16
        for bad in (0, 16):
            with pytest.raises(ValueError, match=rf"decoding: max_len must be in \[1, 15\] for this model, got {bad}"):
                decode(model, src, max_len=bad)


def test_a_row_s_default_cap_is_its_own_source_length_so_batch_mates_never_change_its_output():
    model = rigged_model(0, -50.0, max_len=40)  # EOS never wins: every row runs to its cap
    short, long = [4, 5], [4] * 12
    batch = np.array([short + [PAD] * 10, long])
    for decode in (greedy_decode, beam_search):
        alone = decode(model, np.array([short]))
        together = decode(model, batch)
        assert alone.shape == (1, 18)  # 2 + 16
        assert together.shape == (2, 28)  # 12 + 16
        np.testing.assert_array_equal(together[0, :18], alone[0])
        assert (together[0, 18:] == PAD).all()
        np.testing.assert_array_equal(together[1], decode(model, np.array([long]))[0])


def test_extra_tokens_sets_how_far_past_its_source_a_row_may_run():
    model = rigged_model(0, -50.0, max_len=40)  # EOS never wins: every row runs to its cap
    batch = np.array([[4, 5, PAD], [4, 4, 4]])
    for decode in (greedy_decode, beam_search):
        assert (decode(model, batch, extra_tokens=0) != PAD).sum(axis=1).tolist() == [2, 3]
        assert (decode(model, batch, extra_tokens=3) != PAD).sum(axis=1).tolist() == [5, 6]
        for bad in (-1, 1.5, None):
            with pytest.raises(ValueError, match="extra_tokens must be an integer >= 0"):
                decode(model, batch, extra_tokens=bad)

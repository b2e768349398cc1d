"""The Transformer: gradient checks of every part, masking laws, and clear errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
from minigrad import nn
from minigrad.testing import arrays, check_grad, module_gradcheck
from transformer.attention import MultiHeadAttention, causal_mask, padding_mask, scaled_dot_product_attention
from transformer.embedding import Embeddings
from transformer.layers import Decoder, DecoderLayer, Encoder, EncoderLayer, FeedForward
from transformer.loss import sequence_loss
from transformer.model import Transformer, TransformerConfig
from transformer.tokenizer import BOS, PAD

F64 = np.float64
D, H, V = 4, 2, 7  # tiny sizes: gradient checks stay fast


def tiny_config(**overrides):
    settings_ = dict(d_model=D, n_heads=H, n_encoder_layers=1, n_decoder_layers=1, d_ff=8, dropout=0.0, max_len=16)
    settings_.update(overrides)
    return TransformerConfig(V, V, **settings_)


def tokens(draw_shape=(2, 4), low=4, high=V):
    return hnp.arrays(np.int64, draw_shape, elements=st.integers(low, high - 1))


class WithLoss(nn.Module):
    """model(src, tgt_in) followed by the label-smoothed loss against tgt_out."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, src, tgt_in, tgt_out):
        return sequence_loss(self.model(src, tgt_in), tgt_out, label_smoothing=0.1)


# --------------------------------------------------------------------------- gradient checks


@given(arrays((2, 3, 3)), arrays((2, 4, 3)), arrays((2, 4, 2)), st.data())
def test_attention_gradcheck_with_and_without_mask(q, k, v, data):
    mask = data.draw(st.none() | hnp.arrays(bool, (2, 3, 4)))
    check_grad(lambda q_, k_, v_: scaled_dot_product_attention(q_, k_, v_, mask)[0], q, k, v)


@given(arrays((2, 3, 4)), arrays((2, 5, 4)), arrays((2, 5, 3)), st.data())
def test_fused_attention_equals_the_composed_function(q, k, v, data):
    mask = data.draw(st.none() | hnp.arrays(bool, (2, 3, 5)))
    p, seed = data.draw(st.sampled_from([0.0, 0.3])), data.draw(st.integers(0, 9))
    cotangent = np.random.default_rng(seed).standard_normal((2, 3, 3))
    results = []
    for fused in (True, False):
        leaves = [mg.Tensor(a, requires_grad=True) for a in (q, k, v)]
        if fused:
            out, weights = mg.attention(*leaves, mask, p, np.random.default_rng(seed))
        else:
            out, weights = scaled_dot_product_attention(*leaves, mask, nn.Dropout(p, np.random.default_rng(seed)))
            weights = weights.data
        out.backward(mg.Tensor(cotangent))
        results.append([out.data, weights] + [t.grad.data for t in leaves])
    for fused, composed in zip(*results):
        np.testing.assert_allclose(fused, composed, rtol=1e-10, atol=1e-12)


@given(arrays((2, 3, D)), arrays((2, 2, D)), st.booleans())
def test_multi_head_attention_gradcheck(x, memory, masked):
    mha = MultiHeadAttention(D, H, rng=np.random.default_rng(1), dtype=F64)
    mask = np.array([[[[True, False]]], [[[True, True]]]]) if masked else None
    module_gradcheck(mha, x, memory, memory, mask, full_jacobian_max=64)


@given(arrays((2, 3, D)), st.sampled_from(["relu", "gelu"]))
def test_feed_forward_gradcheck(x, activation):
    ffn = FeedForward(D, 6, activation=activation, rng=np.random.default_rng(2), dtype=F64)
    module_gradcheck(ffn, x)


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_and_decoder_layers_gradcheck(norm_first):
    rng = np.random.default_rng(3)
    x, memory = rng.standard_normal((2, 3, D)), rng.standard_normal((2, 4, D))
    src_mask = padding_mask(np.array([[5, 5, 5, 0], [5, 5, 5, 5]]), PAD)
    tgt_mask = causal_mask(3)
    common = dict(d_model=D, n_heads=H, d_ff=6, dropout=0.0, activation="gelu", norm_first=norm_first,
                  rng=rng, dtype=F64)
    # Hundreds of parameters: random projections vᵀJu instead of the whole Jacobian.
    projections = dict(full_jacobian_max=64, projections=4)
    module_gradcheck(EncoderLayer(**common), memory, src_mask, **projections)
    module_gradcheck(DecoderLayer(**common), x, memory, src_mask, tgt_mask, **projections)
    module_gradcheck(Encoder(2, **common), memory, src_mask, **projections)
    module_gradcheck(Decoder(2, **common), x, memory, src_mask, tgt_mask, **projections)


@pytest.mark.parametrize("positional", ["sinusoidal", "learned"])
def test_embeddings_gradcheck(positional):
    emb = Embeddings(V, D, 8, 0.0, pad_id=PAD, positional=positional, rng=np.random.default_rng(4), dtype=F64)
    module_gradcheck(emb, np.array([[4, 4, 5], [6, 4, 4]]))  # repeated ids add up


@pytest.mark.parametrize("options", [
    dict(), dict(tie_output=False), dict(share_embeddings=True), dict(norm_first=True, activation="gelu"),
    dict(positional="learned"),
])
def test_whole_transformer_with_loss_gradcheck(options):
    model = Transformer(tiny_config(**options), seed=5, dtype=F64)
    src = np.array([[4, 5, 6, PAD], [6, 5, 4, 5]])
    tgt_in = np.array([[BOS, 4, 6, PAD], [BOS, 5, 5, 4]])
    tgt_out = np.array([[4, 6, 2, PAD], [5, 5, 4, 2]])
    module_gradcheck(WithLoss(model), src, tgt_in, tgt_out)


# --------------------------------------------------------------------------- masking laws


def eval_model(**options):
    model = Transformer(tiny_config(**options), seed=6)
    return model.eval()


@settings(max_examples=15)
@given(tokens((2, 4)), tokens((2, 5)), st.integers(1, 4), st.integers(4, V - 1))
def test_causality_later_target_tokens_never_change_earlier_logits(src, tgt, position, new_token):
    model = eval_model()
    before = model(src, tgt).data
    changed = tgt.copy()
    changed[:, position] = new_token
    after = model(src, changed).data
    np.testing.assert_array_equal(before[:, :position], after[:, :position])


@settings(max_examples=15)
@given(tokens((2, 4)), tokens((2, 3)), st.integers(1, 3))
def test_appending_source_padding_changes_nothing(src, tgt, n_pad):
    model = eval_model()
    padded = np.concatenate([src, np.full((2, n_pad), PAD)], axis=1)
    np.testing.assert_allclose(model(src, tgt).data, model(padded, tgt).data, rtol=1e-5, atol=1e-6)


def test_masked_keys_get_zero_weight_and_zero_gradient():
    rng = np.random.default_rng(7)
    q, k, v = (mg.Tensor(rng.standard_normal(s), requires_grad=True) for s in [(2, 3, 4), (2, 5, 4), (2, 5, 4)])
    mask = np.ones((2, 3, 5), dtype=bool)
    mask[:, :, 3:] = False
    mask[1, 2, :] = False  # a query that may attend to nothing
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    assert (weights.data[~mask] == 0).all()
    np.testing.assert_allclose(weights.data[0].sum(-1), 1.0, rtol=1e-6)
    assert not np.isnan(out.data).any()
    (out * mg.Tensor(rng.standard_normal(out.shape))).sum().backward()
    assert (k.grad.data[:, 3:] == 0).all() and (v.grad.data[:, 3:] == 0).all()


@given(arrays((2, 3, D)), arrays((2, 5, D)))
def test_attention_rows_sum_to_one(x, memory):
    mha = MultiHeadAttention(D, H, rng=np.random.default_rng(8))
    mha.keep_weights = True
    mha(mg.Tensor(x), mg.Tensor(memory), mg.Tensor(memory))
    np.testing.assert_allclose(mha.weights.sum(-1), 1.0, rtol=1e-6)
    assert mha.weights.shape == (2, H, 3, 5)


@given(arrays((2, 3, D)), arrays((2, 4, D)))
def test_one_head_equals_single_head_attention(x, memory):
    mha = MultiHeadAttention(D, 1, rng=np.random.default_rng(9), dtype=F64)
    x, memory = mg.Tensor(x), mg.Tensor(memory)
    expected, _ = scaled_dot_product_attention(mha.w_q(x), mha.w_k(memory), mha.w_v(memory))
    np.testing.assert_allclose(mha(x, memory, memory).data, mha.w_o(expected).data, rtol=1e-12, atol=1e-12)


@given(arrays((2, 3, 8)))
def test_split_and_merge_heads_round_trip(x):
    mha = MultiHeadAttention(8, 4)
    heads = mha.split_heads(mg.Tensor(x))
    assert heads.shape == (2, 4, 3, 2)
    np.testing.assert_array_equal(heads.data[:, 1], x[:, :, 2:4])
    np.testing.assert_array_equal(mha.merge_heads(heads).data, x)


def test_same_seed_same_model_bit_for_bit():
    a, b = Transformer(tiny_config(), seed=3), Transformer(tiny_config(), seed=3)
    for (name, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)


def test_tied_output_has_no_parameters_of_its_own():
    # That the projection really is the target embedding (values and gradients): test_formulas.py.
    model = Transformer(tiny_config(), seed=0)
    assert model.output is None
    names = [name for name, _ in model.named_parameters()]
    assert "tgt_embed.tokens.weight" in names and not any(n.startswith("output") for n in names)


# --------------------------------------------------------------------------- clear errors


def test_shape_errors_name_the_layer_and_shapes():
    model = eval_model()
    with pytest.raises(ValueError, match=r"src must be \(batch, length\).*shape \(4,\)"):
        model(np.array([4, 5, 6, 4]), np.array([[1, 4]]))
    with pytest.raises(ValueError, match="token id 99 is out of range for a vocabulary of 7"):
        model(np.array([[4, 99]]), np.array([[1, 4]]))
    with pytest.raises(ValueError, match="src has batch size 2.*tgt has 1"):
        model(np.array([[4, 5], [5, 4]]), np.array([[1, 4]]))
    with pytest.raises(TypeError, match="integer token ids"):
        model(np.array([[4.0, 5.0]]), np.array([[1, 4]]))
    with pytest.raises(ValueError, match="exceed max_len=16"):
        model(np.full((1, 20), 4), np.array([[1, 4]]))
    with pytest.raises(ValueError, match=r"MultiHeadAttention: query has shape \(2, 3, 5\), expected"):
        MultiHeadAttention(D, H)(mg.zeros(2, 3, 5), mg.zeros(2, 3, 5), mg.zeros(2, 3, 5))


def test_config_errors():
    with pytest.raises(ValueError, match="not divisible"):
        TransformerConfig(5, 5, d_model=10, n_heads=3)
    with pytest.raises(ValueError, match="share_embeddings"):
        TransformerConfig(5, 6, share_embeddings=True)


@pytest.mark.parametrize("positional", ["sinusoidal", "learned"])
def test_sequences_of_exactly_max_len_positions_are_accepted_and_one_more_is_refused(positional):
    model = Transformer(tiny_config(positional=positional, max_len=16))
    assert model(np.full((1, 16), 4), np.full((1, 16), 4)).shape == (1, 16, V)
    with pytest.raises(ValueError, match="positions up to 17 exceed max_len=16"):
        model(np.full((1, 17), 4), np.array([[BOS]]))
    with pytest.raises(ValueError, match="positions up to 17 exceed max_len=16"):
        model(np.array([[4]]), np.full((1, 17), 4))
    embed = model.tgt_embed  # one step at a time, as cached decoding feeds it
    assert embed(np.array([[4]]), start=15).shape == (1, 1, D)
    with pytest.raises(ValueError, match="positions up to 17 exceed max_len=16"):
        embed(np.array([[4]]), start=16)

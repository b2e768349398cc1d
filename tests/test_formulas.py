"""The paper's formulas, each written out here on its own and compared with the code:
the positional table, the √d_model embedding scale, the 1/√d_k attention scale, the
order of residual and normalization (post-norm and pre-norm), the feed-forward network,
the label-smoothed target distribution, and the tied output projection.

Training a model would notice most of these bugs only slowly, if at all (a model with
a swapped sin/cos or no residual still learns the copy task a little); these tests notice
them directly, in a fraction of a second.
"""

import math

import numpy as np
import pytest

import minigrad as mg
from transformer.attention import MultiHeadAttention, causal_mask, padding_mask
from transformer.embedding import Embeddings, sinusoidal_table
from transformer.layers import Decoder, DecoderLayer, Encoder, EncoderLayer, FeedForward
from transformer.loss import sequence_loss
from transformer.model import Transformer, TransformerConfig
from transformer.tokenizer import BOS, PAD

F64 = np.float64


def rng(seed=0):
    return np.random.default_rng(seed)


def np_softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


# --------------------------------------------------------------------------- positional encoding (§3.5)


@pytest.mark.parametrize("max_len, d_model", [(6, 4), (5, 5), (40, 16)])
def test_positional_table_is_sin_at_even_and_cos_at_odd_dimensions(max_len, d_model):
    table = sinusoidal_table(max_len, d_model)
    assert table.shape == (max_len, d_model)
    for pos in range(max_len):
        for dim in range(d_model):
            i = dim // 2  # the pair (2i, 2i+1) shares the frequency 1 / 10000^(2i/d_model)
            angle = pos / 10000 ** (2 * i / d_model)
            expected = math.sin(angle) if dim % 2 == 0 else math.cos(angle)
            assert table[pos, dim] == pytest.approx(expected, abs=1e-12), (pos, dim)


def test_positional_table_spot_values():
    table = sinusoidal_table(3, 6)
    np.testing.assert_allclose(table[0], [0, 1, 0, 1, 0, 1], atol=1e-15)
    assert table[1, 0] == pytest.approx(math.sin(1.0)) and table[1, 1] == pytest.approx(math.cos(1.0))
    # Dimensions 2 and 3 turn at 1/10000^(2/6) = 10000^(-1/3) = 0.046416 radians per position.
    assert table[2, 2] == pytest.approx(math.sin(2 * 0.0464158883), rel=1e-8)
    assert table[2, 5] == pytest.approx(math.cos(2 * 0.0021544347), rel=1e-8)


# --------------------------------------------------------------------------- embeddings (§3.4)


@pytest.mark.parametrize("positional", ["sinusoidal", "learned"])
def test_embedding_is_sqrt_d_model_times_the_token_row_plus_the_position(positional):
    emb = Embeddings(9, 16, 10, 0.0, pad_id=PAD, positional=positional, rng=rng(1), dtype=F64)
    tokens = np.array([[4, 5, 6], [7, 8, PAD]])
    table = emb.tokens.weight.data
    positions = sinusoidal_table(10, 16) if positional == "sinusoidal" else emb.positions.weight.data
    # √16 = 4: not 1 (a missing scale) and not 16 (scaling by d_model).
    np.testing.assert_allclose(emb(tokens, start=2).data, 4.0 * table[tokens] + positions[2:5], rtol=1e-12)
    assert np.all(table[PAD] == 0)


# --------------------------------------------------------------------------- attention (§3.2)


@pytest.mark.parametrize("fused", [True, False])
def test_multi_head_attention_is_the_papers_formula_with_scale_one_over_sqrt_d_k(fused):
    d_model, heads, d_k = 8, 2, 4  # √d_k = 2: not √d_model, not d_k
    mha = MultiHeadAttention(d_model, heads, rng=rng(2), dtype=F64)
    mha.fused = fused
    for linear in (mha.w_q, mha.w_k, mha.w_v, mha.w_o):
        linear.bias.data[:] = rng(3).standard_normal(d_model)
    x, memory = rng(4).standard_normal((2, 3, d_model)), rng(5).standard_normal((2, 4, d_model))
    mask = np.array([[True, True, False, False], [True, True, True, True]])[:, None, None, :]
    out = mha(mg.Tensor(x), mg.Tensor(memory), mg.Tensor(memory), mask).data

    def project(a, linear):
        return a @ linear.weight.data + linear.bias.data

    q, k, v = project(x, mha.w_q), project(memory, mha.w_k), project(memory, mha.w_v)
    heads_out = []
    for h in range(heads):
        cols = slice(h * d_k, (h + 1) * d_k)
        scores = q[..., cols] @ np.swapaxes(k[..., cols], -1, -2) / 2.0
        scores = np.where(mask[:, 0], scores, -np.inf)
        heads_out.append(np_softmax(scores) @ v[..., cols])
    expected = project(np.concatenate(heads_out, axis=-1), mha.w_o)
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)


def test_causal_mask_lets_position_i_see_positions_up_to_i():
    np.testing.assert_array_equal(causal_mask(3)[0, 0], [[1, 0, 0], [1, 1, 0], [1, 1, 1]])
    np.testing.assert_array_equal(padding_mask(np.array([[5, 6, PAD]]), PAD)[0, 0, 0], [1, 1, 0])


# --------------------------------------------------------------------------- residual and normalization (§3.1)

D, H, FF = 4, 2, 6


def with_distinct_norms(module):
    """Give every LayerNorm its own weight and bias, so one cannot stand in for another."""
    generator = rng(6)
    for name, p in module.named_parameters():
        if ".norm" in "." + name or name.startswith("norm"):
            weight = name.endswith("weight")
            p.data[:] = generator.uniform(0.5, 1.5, p.shape) if weight else generator.normal(size=p.shape)
    return module


def close(a, b):
    np.testing.assert_allclose(a.data, b.data, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer_residual_and_normalization_order(norm_first):
    layer = with_distinct_norms(EncoderLayer(D, H, FF, 0.0, "relu", norm_first, rng=rng(7), dtype=F64))
    x = mg.Tensor(rng(8).standard_normal((2, 3, D)))
    mask = padding_mask(np.array([[5, 5, PAD], [5, 5, 5]]), PAD)

    def attend(h):
        return layer.self_attn(h, h, h, mask)

    if norm_first:  # pre-norm: x + Sublayer(LayerNorm(x))
        h = x + attend(layer.norm1(x))
        expected = h + layer.ffn(layer.norm2(h))
    else:  # post-norm, the paper's: LayerNorm(x + Sublayer(x))
        h = layer.norm1(x + attend(x))
        expected = layer.norm2(h + layer.ffn(h))
    close(layer(x, mask), expected)


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_residual_and_normalization_order(norm_first):
    layer = with_distinct_norms(DecoderLayer(D, H, FF, 0.0, "relu", norm_first, rng=rng(9), dtype=F64))
    x, memory = mg.Tensor(rng(10).standard_normal((2, 3, D))), mg.Tensor(rng(11).standard_normal((2, 4, D)))
    src_mask, tgt_mask = padding_mask(np.array([[5, 5, 5, PAD], [5, 5, 5, 5]]), PAD), causal_mask(3)
    sublayers = [lambda h: layer.self_attn(h, h, h, tgt_mask),
                 lambda h: layer.cross_attn(h, memory, memory, src_mask), layer.ffn]
    expected = x
    for sublayer, norm in zip(sublayers, (layer.norm1, layer.norm2, layer.norm3)):
        expected = expected + sublayer(norm(expected)) if norm_first else norm(expected + sublayer(expected))
    close(layer(x, memory, src_mask, tgt_mask), expected)


@pytest.mark.parametrize("norm_first", [False, True])
def test_stacks_end_with_a_layer_norm_only_when_pre_norm(norm_first):
    common = dict(d_model=D, n_heads=H, d_ff=FF, dropout=0.0, activation="relu", norm_first=norm_first,
                  rng=rng(12), dtype=F64)
    encoder, decoder = with_distinct_norms(Encoder(2, **common)), with_distinct_norms(Decoder(2, **common))
    x, memory = mg.Tensor(rng(13).standard_normal((1, 3, D))), mg.Tensor(rng(14).standard_normal((1, 2, D)))
    src_mask, tgt_mask = np.ones((1, 1, 1, 2), bool), causal_mask(3)
    h, y = memory, x
    for layer in encoder.layers:
        h = layer(h, src_mask)
    for layer in decoder.layers:
        y = layer(y, memory, src_mask, tgt_mask)
    assert (encoder.norm is None) == (decoder.norm is None) == (not norm_first)
    close(encoder(memory, src_mask), encoder.norm(h) if norm_first else h)
    close(decoder(x, memory, src_mask, tgt_mask), decoder.norm(y) if norm_first else y)


# --------------------------------------------------------------------------- feed-forward (§3.3)


@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_feed_forward_is_two_linear_maps_with_the_activation_between(activation):
    ffn = FeedForward(D, FF, activation=activation, rng=rng(15), dtype=F64)
    ffn.linear1.bias.data[:] = rng(16).standard_normal(FF)
    ffn.linear2.bias.data[:] = rng(17).standard_normal(D)
    x = rng(18).standard_normal((2, 3, D))
    hidden = x @ ffn.linear1.weight.data + ffn.linear1.bias.data
    if activation == "relu":
        hidden = np.maximum(hidden, 0)
    else:
        hidden = hidden * 0.5 * (1 + np.vectorize(math.erf)(hidden / math.sqrt(2)))
    expected = hidden @ ffn.linear2.weight.data + ffn.linear2.bias.data
    np.testing.assert_allclose(ffn(mg.Tensor(x)).data, expected, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- label smoothing (§5.4)


@pytest.mark.parametrize("epsilon", [0.0, 0.1, 0.4])
def test_sequence_loss_is_cross_entropy_against_the_smoothed_distribution(epsilon):
    vocab = 6
    logits = rng(19).standard_normal((2, 4, vocab))
    targets = np.array([[4, 5, 2, PAD], [3, PAD, PAD, PAD]])
    # torch semantics: the target distribution is (1 - ε)·one-hot + ε/V over all V classes;
    # padding targets are left out of the loss and of the count it is averaged over.
    q = (1 - epsilon) * np.eye(vocab)[targets] + epsilon / vocab
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    counted = targets != PAD
    expected = -(q * log_p).sum(-1)[counted].sum() / counted.sum()

    x = mg.Tensor(logits, requires_grad=True)
    loss = sequence_loss(x, targets, label_smoothing=epsilon)
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    loss.backward()
    expected_grad = np.where(counted[..., None], (np.exp(log_p) - q) / counted.sum(), 0.0)
    np.testing.assert_allclose(x.grad.data, expected_grad, rtol=1e-10, atol=1e-15)


def test_full_smoothing_targets_the_uniform_distribution():
    logits = rng(20).standard_normal((3, 5))
    loss = mg.cross_entropy(mg.Tensor(logits), np.array([0, 4, 2]), label_smoothing=1.0, reduction="none")
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    np.testing.assert_allclose(loss.data, -log_p.mean(-1), rtol=1e-12)


# --------------------------------------------------------------------------- tied output projection (§3.4)


def test_tied_output_projection_is_the_target_embedding_and_collects_both_gradients():
    config = dict(d_model=D, n_heads=H, n_encoder_layers=1, n_decoder_layers=1, d_ff=FF, dropout=0.0, max_len=8)
    tied = Transformer(TransformerConfig(7, 7, **config), seed=3, dtype=F64)
    table = tied.tgt_embed.tokens.weight
    h = rng(21).standard_normal((2, 3, D))
    np.testing.assert_array_equal(tied.project(mg.Tensor(h)).data, h @ table.data.T)  # logits = h Eᵀ

    # The same model with a separate output layer holding a copy of Eᵀ: the tied table's
    # gradient must be the sum of the gradients of its two uses.
    untied = Transformer(TransformerConfig(7, 7, tie_output=False, **config), seed=3, dtype=F64)
    for name, p in tied.named_parameters():
        np.testing.assert_array_equal(dict(untied.named_parameters())[name].data, p.data)
    with mg.no_grad():
        untied.output.weight.copy_(table.data.T)
        untied.output.bias.fill_(0.0)
    src = np.array([[4, 5, 6, PAD], [6, 5, 4, 5]])
    tgt_in, tgt_out = np.array([[BOS, 4, 6], [BOS, 5, 5]]), np.array([[4, 6, 2], [5, 5, 4]])
    for model in (tied, untied):
        sequence_loss(model(src, tgt_in), tgt_out).backward()
    as_embedding, as_output = untied.tgt_embed.tokens.weight.grad.data, untied.output.weight.grad.data.T
    assert np.abs(as_embedding).max() > 1e-3 and np.abs(as_output).max() > 1e-3  # both uses matter
    np.testing.assert_allclose(table.grad.data, as_embedding + as_output, rtol=1e-10, atol=1e-14)


def test_shared_embeddings_are_one_table_for_source_target_and_output():
    config = dict(d_model=D, n_heads=H, n_encoder_layers=1, n_decoder_layers=1, d_ff=FF, dropout=0.0, max_len=8)
    model = Transformer(TransformerConfig(7, 7, share_embeddings=True, **config), seed=3, dtype=F64)
    assert model.src_embed is model.tgt_embed
    names = [name for name, _ in model.named_parameters()]
    assert "src_embed.tokens.weight" in names and not any(n.startswith("tgt_embed") for n in names)
    h = rng(22).standard_normal((1, 2, D))
    np.testing.assert_array_equal(model.project(mg.Tensor(h)).data, h @ model.src_embed.tokens.weight.data.T)

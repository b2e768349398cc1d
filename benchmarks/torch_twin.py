"""A PyTorch twin of transformer.model.Transformer, for timing only.

Same architecture as our model with its benchmark settings: token embedding scaled by
√d_model plus a fixed sinusoidal table, post-norm encoder/decoder layers, multi-head
attention with four separate Linear projections (q, k, v, o) written with plain ops
(matmul, masked_fill with -inf, softmax, matmul — NOT torch's fused
scaled_dot_product_attention), ReLU FFN, dropout 0, output projection tied to the
target embedding, F.cross_entropy(label_smoothing=0.1, ignore_index=PAD), float32.

Module and parameter names mirror ours (``encoder.layers.0.self_attn.w_q.weight``), so
``load_minigrad_weights`` can copy a minigrad model in and ``check_twin`` can verify
that both compute the same loss and gradients.  nn.Linear stores (out, in), the
transpose of minigrad's (in, out) layout: which arrays are transposed comes from
transformer.interop, the one place that maps our layout onto torch's.  (For the model
built from torch.nn's own Transformer layers, see transformer/torch_model.py.)
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.configs import PAD, TrainConfig
from transformer.interop import linear_weight_names


def sinusoidal_table(max_len: int, d_model: int) -> torch.Tensor:
    """PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(...), float32."""
    position = torch.arange(max_len, dtype=torch.float64)[:, None]
    frequency = torch.exp(-math.log(10000.0) * torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    table = torch.zeros(max_len, d_model, dtype=torch.float64)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: d_model // 2])
    return table.float()


class TokenEmbedding(nn.Module):
    """E ~ N(0, 1/d_model) with a zero padding row."""

    def __init__(self, vocab: int, d_model: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(vocab, d_model) * d_model ** -0.5)
        with torch.no_grad():
            self.weight[PAD] = 0

    def forward(self, tokens):
        return F.embedding(tokens, self.weight, padding_idx=PAD)


class Embeddings(nn.Module):
    """tokens (B, T) -> √d·E[token] + PE[position]."""

    def __init__(self, vocab: int, d_model: int, max_len: int = 256):
        super().__init__()
        self.d_model = d_model
        self.tokens = TokenEmbedding(vocab, d_model)
        self.register_buffer("position_table", sinusoidal_table(max_len, d_model), persistent=False)

    def forward(self, tokens):
        return self.tokens(tokens) * math.sqrt(self.d_model) + self.position_table[: tokens.shape[1]]


def linear(d_in: int, d_out: int) -> nn.Linear:
    """nn.Linear with Xavier-uniform weight and zero bias, as minigrad's Linear."""
    layer = nn.Linear(d_in, d_out)
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class MultiHeadAttention(nn.Module):
    """softmax(Q Kᵀ/√d_k, masked) V per head, with plain ops; mask True = may attend."""

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.n_heads, self.d_k = n_heads, d_model // n_heads
        self.w_q, self.w_k = linear(d_model, d_model), linear(d_model, d_model)
        self.w_v, self.w_o = linear(d_model, d_model), linear(d_model, d_model)

    def split_heads(self, x):  # (B, T, d) -> (B, H, T, d_k)
        b, t, _ = x.shape
        return x.view(b, t, self.n_heads, self.d_k).transpose(1, 2)

    def forward(self, query, key, value, mask):
        q = self.split_heads(self.w_q(query))
        k = self.split_heads(self.w_k(key))
        v = self.split_heads(self.w_v(value))
        scores = (q * (1.0 / math.sqrt(self.d_k))) @ k.transpose(-1, -2)  # (B, H, Tq, Tk)
        scores = scores.masked_fill(~mask, float("-inf"))
        out = torch.softmax(scores, dim=-1) @ v
        b, _, t, _ = out.shape
        return self.w_o(out.transpose(1, 2).reshape(b, t, -1))


class FeedForward(nn.Module):
    def __init__(self, d_model: int, d_ff: int):
        super().__init__()
        self.linear1, self.linear2 = linear(d_model, d_ff), linear(d_ff, d_model)

    def forward(self, x):
        return self.linear2(torch.relu(self.linear1(x)))


class EncoderLayer(nn.Module):
    """Post-norm: x = LN(x + SelfAttn(x)); x = LN(x + FFN(x))."""

    def __init__(self, d_model, n_heads, d_ff):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads)
        self.ffn = FeedForward(d_model, d_ff)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)

    def forward(self, x, src_mask):
        x = self.norm1(x + self.self_attn(x, x, x, src_mask))
        return self.norm2(x + self.ffn(x))


class DecoderLayer(nn.Module):
    """Post-norm masked self-attention, cross-attention on the memory, FFN."""

    def __init__(self, d_model, n_heads, d_ff):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads)
        self.cross_attn = MultiHeadAttention(d_model, n_heads)
        self.ffn = FeedForward(d_model, d_ff)
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(d_model) for _ in range(3))

    def forward(self, x, memory, src_mask, tgt_mask):
        x = self.norm1(x + self.self_attn(x, x, x, tgt_mask))
        x = self.norm2(x + self.cross_attn(x, memory, memory, src_mask))
        return self.norm3(x + self.ffn(x))


class Stack(nn.Module):
    def __init__(self, layers):
        super().__init__()
        self.layers = nn.ModuleList(layers)


class TorchTransformer(nn.Module):
    """forward(src, tgt_in) -> logits (B, T, V); output projection = tgt embeddingᵀ."""

    def __init__(self, c: TrainConfig):
        super().__init__()
        self.src_embed = Embeddings(c.vocab, c.d_model)
        self.tgt_embed = Embeddings(c.vocab, c.d_model)
        self.encoder = Stack([EncoderLayer(c.d_model, c.n_heads, c.d_ff) for _ in range(c.n_encoder_layers)])
        self.decoder = Stack([DecoderLayer(c.d_model, c.n_heads, c.d_ff) for _ in range(c.n_decoder_layers)])

    def forward(self, src, tgt_in):
        src_mask = (src != PAD)[:, None, None, :]  # (B, 1, 1, S)
        t = tgt_in.shape[1]
        causal = torch.tril(torch.ones(t, t, dtype=torch.bool, device=tgt_in.device))
        tgt_mask = (tgt_in != PAD)[:, None, None, :] & causal  # (B, 1, T, T)
        x = self.src_embed(src)
        for layer in self.encoder.layers:
            x = layer(x, src_mask)
        memory = x
        y = self.tgt_embed(tgt_in)
        for layer in self.decoder.layers:
            y = layer(y, memory, src_mask, tgt_mask)
        return y @ self.tgt_embed.tokens.weight.T


def sequence_loss(logits, targets):
    """Mean label-smoothed (0.1) cross-entropy over non-PAD targets."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                           ignore_index=PAD, label_smoothing=0.1)


def make_optimizer(model):
    return torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9)


def load_minigrad_weights(twin: TorchTransformer, model) -> None:
    """Copy every parameter of a minigrad Transformer into the twin (by name;
    Linear weights transposed).  Raises if any name or shape does not match."""
    ours = dict(model.named_parameters())
    theirs = dict(twin.named_parameters())
    if set(ours) != set(theirs):
        raise ValueError(f"parameter names differ: only minigrad {sorted(set(ours) - set(theirs))}, "
                         f"only twin {sorted(set(theirs) - set(ours))}")
    linear = linear_weight_names(model)
    with torch.no_grad():
        for name, p in theirs.items():
            array = ours[name].data.T if name in linear else ours[name].data
            p.copy_(torch.from_numpy(np.ascontiguousarray(array)))

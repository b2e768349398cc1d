"""Encoder and decoder stacks (paper §3.1, figure 1) and their feed-forward sublayer (§3.3).

Every sublayer is wrapped in a residual connection and layer normalization.  The paper
normalizes after the residual sum (post-norm, the default here); ``norm_first=True``
normalizes the sublayer's input instead (pre-norm), which trains deep stacks without
warmup and needs one more LayerNorm at the end of each stack.
"""

from __future__ import annotations

import numpy as np

import minigrad as mg
from minigrad import nn
from transformer.attention import KVCache, MultiHeadAttention


def residual(x, sublayer, norm, dropout, norm_first):
    """Post-norm: LayerNorm(x + Dropout(Sublayer(x))).   Pre-norm: x + Dropout(Sublayer(LayerNorm(x))).

    The sublayer computes an update that is *added* to x, so information (and gradient)
    can pass through the stack unchanged where the update is small.
    """
    if norm_first:
        return x + dropout(sublayer(norm(x)))
    return norm(x + dropout(sublayer(x)))


class FeedForward(nn.Module):
    """FFN(x) = act(x W₁ + b₁) W₂ + b₂, applied at every position independently.
    (B, T, d_model) -> (B, T, d_ff) -> (B, T, d_model).  act: "relu" (paper) or "gelu"."""

    def __init__(self, d_model, d_ff, dropout=0.0, activation="relu", *, rng=None, dropout_rng=None,
                 dtype=np.float32):
        super().__init__()
        if activation not in ("relu", "gelu"):
            raise ValueError(f"FeedForward: activation must be 'relu' or 'gelu', got {activation!r}")
        self.activation = activation
        self.linear1 = nn.Linear(d_model, d_ff, rng=rng, dtype=dtype)
        self.linear2 = nn.Linear(d_ff, d_model, rng=rng, dtype=dtype)
        self.dropout = nn.Dropout(dropout, dropout_rng)

    def forward(self, x):
        h = self.linear1(x)
        h = mg.relu(h) if self.activation == "relu" else mg.gelu(h)
        return self.linear2(self.dropout(h))


class EncoderLayer(nn.Module):
    """Self-attention over the source, then the feed-forward network."""

    def __init__(self, d_model, n_heads, d_ff, dropout, activation, norm_first, *, rng=None,
                 dropout_rng=None, dtype=np.float32):
        super().__init__()
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout, rng=rng, dropout_rng=dropout_rng, dtype=dtype)
        self.ffn = FeedForward(d_model, d_ff, dropout, activation, rng=rng, dropout_rng=dropout_rng, dtype=dtype)
        self.norm1 = nn.LayerNorm(d_model, dtype=dtype)
        self.norm2 = nn.LayerNorm(d_model, dtype=dtype)
        self.dropout = nn.Dropout(dropout, dropout_rng)

    def forward(self, x, src_mask):
        """x (B, S, d_model), src_mask (B, 1, 1, S) -> (B, S, d_model)"""
        x = residual(x, lambda h: self.self_attn(h, h, h, src_mask), self.norm1, self.dropout, self.norm_first)
        return residual(x, self.ffn, self.norm2, self.dropout, self.norm_first)


class DecoderLayer(nn.Module):
    """Masked self-attention over the target so far, cross-attention over the encoder
    output (queries from the decoder, keys and values from the memory), then the FFN."""

    def __init__(self, d_model, n_heads, d_ff, dropout, activation, norm_first, *, rng=None,
                 dropout_rng=None, dtype=np.float32):
        super().__init__()
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout, rng=rng, dropout_rng=dropout_rng, dtype=dtype)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, dropout, rng=rng, dropout_rng=dropout_rng, dtype=dtype)
        self.ffn = FeedForward(d_model, d_ff, dropout, activation, rng=rng, dropout_rng=dropout_rng, dtype=dtype)
        self.norm1 = nn.LayerNorm(d_model, dtype=dtype)
        self.norm2 = nn.LayerNorm(d_model, dtype=dtype)
        self.norm3 = nn.LayerNorm(d_model, dtype=dtype)
        self.dropout = nn.Dropout(dropout, dropout_rng)

    def forward(self, x, memory, src_mask, tgt_mask, cache=None):
        """x (B, T, d_model), memory (B, S, d_model), src_mask (B, 1, 1, S), tgt_mask
        (B, 1, T, T) -> (B, T, d_model).  ``cache``: (self KVCache, cross KVCache) when
        decoding one step at a time."""
        self_cache, cross_cache = cache if cache is not None else (None, None)
        x = residual(x, lambda h: self.self_attn(h, h, h, tgt_mask, self_cache),
                     self.norm1, self.dropout, self.norm_first)
        x = residual(x, lambda h: self.cross_attn(h, memory, memory, src_mask, cross_cache),
                     self.norm2, self.dropout, self.norm_first)
        return residual(x, self.ffn, self.norm3, self.dropout, self.norm_first)


class Encoder(nn.Module):
    """N encoder layers (plus a final LayerNorm when pre-norm)."""

    def __init__(self, n_layers, d_model, n_heads, d_ff, dropout, activation, norm_first, *, rng=None,
                 dropout_rng=None, dtype=np.float32):
        super().__init__()
        self.layers = nn.ModuleList(
            EncoderLayer(d_model, n_heads, d_ff, dropout, activation, norm_first, rng=rng,
                         dropout_rng=dropout_rng, dtype=dtype) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model, dtype=dtype) if norm_first else None

    def forward(self, x, src_mask):
        for layer in self.layers:
            x = layer(x, src_mask)
        return x if self.norm is None else self.norm(x)


class Decoder(nn.Module):
    """N decoder layers (plus a final LayerNorm when pre-norm)."""

    def __init__(self, n_layers, d_model, n_heads, d_ff, dropout, activation, norm_first, *, rng=None,
                 dropout_rng=None, dtype=np.float32):
        super().__init__()
        self.layers = nn.ModuleList(
            DecoderLayer(d_model, n_heads, d_ff, dropout, activation, norm_first, rng=rng,
                         dropout_rng=dropout_rng, dtype=dtype) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model, dtype=dtype) if norm_first else None

    def new_cache(self):
        """One (self-attention, cross-attention) KVCache pair per layer."""
        return [(KVCache(static=False), KVCache(static=True)) for _ in self.layers]

    def forward(self, x, memory, src_mask, tgt_mask, cache=None):
        for i, layer in enumerate(self.layers):
            x = layer(x, memory, src_mask, tgt_mask, None if cache is None else cache[i])
        return x if self.norm is None else self.norm(x)

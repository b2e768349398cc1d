"""Attention (paper §3.2): scaled dot-product attention, multi-head attention, masks,
and the key/value cache used for incremental decoding.

Shapes: B batch, H heads, Tq query positions, Tk key positions, d_model = H · d_k.
Masks are boolean and True where a query MAY attend to a key; they broadcast to
(B, H, Tq, Tk).
"""

from __future__ import annotations

import math

import numpy as np

import minigrad as mg
from minigrad import nn


def padding_mask(tokens: np.ndarray, pad_id: int) -> np.ndarray:
    """(B, S) token ids -> (B, 1, 1, S): True at real tokens, False at padding, so no
    query attends to a padded key."""
    return (np.asarray(tokens) != pad_id)[:, None, None, :]


def causal_mask(length: int) -> np.ndarray:
    """(1, 1, T, T) lower triangle: position i may attend to positions 0..i only (the
    paper's "subsequent" mask), so the decoder cannot peek at the tokens it predicts."""
    return np.tril(np.ones((length, length), dtype=bool))[None, None]


def scaled_dot_product_attention(q, k, v, mask=None, dropout=None):
    """Attention(Q, K, V) = softmax(Q Kᵀ / √d_k) V.

    q (..., Tq, d_k), k (..., Tk, d_k), v (..., Tk, d_v); mask broadcastable to
    (..., Tq, Tk).  Each query scores every key by a dot product; dividing by √d_k keeps
    the scores' variance near 1 so the softmax does not saturate (where its gradient
    vanishes).  The softmax turns each row of scores into a distribution over keys, and
    the output is that weighted average of the values.  Masked keys get score -inf, so
    exactly zero weight (a row with nothing to attend to gives zeros, not NaN).
    Returns (output (..., Tq, d_v), weights (..., Tq, Tk)).
    """
    scores = (q * (1.0 / math.sqrt(q.shape[-1]))) @ k.swapaxes(-1, -2)  # (..., Tq, Tk)
    if mask is not None:
        scores = scores.masked_fill(~mask, -np.inf)
    weights = mg.softmax(scores, axis=-1)
    if dropout is not None:
        weights = dropout(weights)
    return weights @ v, weights


class KVCache:
    """Keys and values of earlier positions, kept between decoding steps.

    Self-attention appends each new step's keys/values (``static=False``); cross-attention
    projects the encoder memory once and reuses it (``static=True``).  Tensors are
    (B, H, T, d_k).
    """

    def __init__(self, static: bool):
        self.static = static
        self.k = self.v = None

    def __len__(self):
        return 0 if self.k is None else self.k.shape[-2]

    def update(self, k, v):
        """Add this step's keys/values; returns all of them."""
        if self.k is None or self.static:
            self.k, self.v = k, v
        else:
            self.k = mg.concatenate([self.k, k], axis=-2)
            self.v = mg.concatenate([self.v, v], axis=-2)
        return self.k, self.v

    def reorder(self, batch_index: np.ndarray):
        """Pick batch rows (beam search keeps the cache of each surviving hypothesis)."""
        if self.k is not None:
            self.k, self.v = self.k[batch_index], self.v[batch_index]


class MultiHeadAttention(nn.Module):
    """MultiHead(Q, K, V) = Concat(head₁, …, head_H) W_O,  headᵢ = Attention(Q W_Qⁱ, K W_Kⁱ, V W_Vⁱ).

    The H heads are computed at once: project to d_model, split d_model into H pieces of
    d_k = d_model / H, attend in each, and concatenate back.  Different heads can look
    for different relations at the same cost as one full-width head.

    ``keep_weights = True`` keeps the last attention weights (B, H, Tq, Tk) in
    ``self.weights`` (a numpy array) for plotting.  ``fused = False`` computes attention
    with ``scaled_dot_product_attention`` (six graph nodes) instead of ``mg.attention``
    (one node, the same function, faster).
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, *, rng=None,
                 dropout_rng=None, dtype=np.float32):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"MultiHeadAttention: d_model={d_model} is not divisible by n_heads={n_heads}")
        self.d_model, self.n_heads, self.d_k = d_model, n_heads, d_model // n_heads
        self.w_q = nn.Linear(d_model, d_model, rng=rng, dtype=dtype)
        self.w_k = nn.Linear(d_model, d_model, rng=rng, dtype=dtype)
        self.w_v = nn.Linear(d_model, d_model, rng=rng, dtype=dtype)
        self.w_o = nn.Linear(d_model, d_model, rng=rng, dtype=dtype)
        self.dropout = nn.Dropout(dropout, dropout_rng)
        self.keep_weights = False
        self.weights = None
        self.fused = True  # minigrad's one-op attention; False runs the composed function above

    def split_heads(self, x):
        """(B, T, d_model) -> (B, H, T, d_k)"""
        b, t, _ = x.shape
        return x.reshape(b, t, self.n_heads, self.d_k).transpose(0, 2, 1, 3)

    def merge_heads(self, x):
        """(B, H, T, d_k) -> (B, T, d_model)"""
        b, _, t, _ = x.shape
        return x.transpose(0, 2, 1, 3).reshape(b, t, self.d_model)

    def forward(self, query, key, value, mask=None, cache: KVCache | None = None):
        """query (B, Tq, d_model), key/value (B, Tk, d_model) -> (B, Tq, d_model)."""
        for name, x in (("query", query), ("key", key), ("value", value)):
            if x.ndim != 3 or x.shape[-1] != self.d_model:
                raise ValueError(f"{self._qualified_name}: {name} has shape {x.shape}, "
                                 f"expected (batch, length, {self.d_model})")
        q = self.split_heads(self.w_q(query))  # (B, H, Tq, d_k)
        if cache is not None and cache.static and cache.k is not None:
            k, v = cache.k, cache.v  # encoder memory, projected on the first step
        else:
            k = self.split_heads(self.w_k(key))  # (B, H, Tk, d_k)
            v = self.split_heads(self.w_v(value))
            if cache is not None:
                k, v = cache.update(k, v)
        if self.fused:
            p = self.dropout.p if self.training else 0.0
            out, weights = mg.attention(q, k, v, mask, p, self.dropout.rng)
        else:
            out, weights = scaled_dot_product_attention(q, k, v, mask, self.dropout)
            weights = weights.data
        if self.keep_weights:
            self.weights = weights
        return self.w_o(self.merge_heads(out))

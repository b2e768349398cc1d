"""Input embeddings (paper §3.4) and positional encodings (§3.5)."""

from __future__ import annotations

import math

import numpy as np

import minigrad as mg
from minigrad import nn
from minigrad.nn import init


def sinusoidal_table(max_len: int, d_model: int) -> np.ndarray:
    """(max_len, d_model):  PE[pos, 2i] = sin(pos / 10000^(2i/d)),  PE[pos, 2i+1] = cos(…).

    Each pair of dimensions is a sine/cosine of one frequency, from 1 to 1/10000, so a
    fixed offset k is a rotation of every pair: the model can attend by relative position.
    """
    position = np.arange(max_len)[:, None]
    frequency = np.exp(-math.log(10000.0) * np.arange(0, d_model, 2) / d_model)
    table = np.zeros((max_len, d_model))
    table[:, 0::2] = np.sin(position * frequency)
    table[:, 1::2] = np.cos(position * frequency[: d_model // 2])
    return table


class Embeddings(nn.Module):
    """Token ids (B, T) -> vectors (B, T, d_model):  Dropout(√d_model · E[token] + PE[position]).

    E is initialized N(0, 1/d_model), so √d_model·E has unit scale like the positional
    encoding, and E stays a sensible output projection when tied (logits = h Eᵀ).  Small
    values also keep float32 attention logits out of the denormal range (slow on CPUs).
    ``positional``: "sinusoidal" (fixed, as the paper) or "learned".
    """

    def __init__(self, vocab_size: int, d_model: int, max_len: int, dropout: float, *, pad_id: int,
                 positional="sinusoidal", rng=None, dropout_rng=None, dtype=np.float32):
        super().__init__()
        self.d_model, self.max_len, self.positional = d_model, max_len, positional
        self.tokens = nn.Embedding(vocab_size, d_model, padding_idx=pad_id, rng=rng, dtype=dtype)
        init.normal_(self.tokens.weight, std=d_model ** -0.5, rng=rng)
        with mg.no_grad():  # re-zero the padding row the re-initialization filled
            self.tokens.weight[pad_id] = 0
        if positional == "sinusoidal":
            self.register_buffer("position_table", sinusoidal_table(max_len, d_model).astype(dtype),
                                 persistent=False)
        elif positional == "learned":
            self.positions = nn.Embedding(max_len, d_model, rng=rng, dtype=dtype)
            init.normal_(self.positions.weight, std=0.02, rng=rng)
        else:
            raise ValueError(f"Embeddings: positional must be 'sinusoidal' or 'learned', got {positional!r}")
        self.dropout = nn.Dropout(dropout, dropout_rng)

    def forward(self, tokens, start: int = 0):
        """tokens (B, T) at positions start..start+T-1 (start > 0 when decoding step by step)."""
        length = tokens.shape[1]
        if start + length > self.max_len:
            raise ValueError(f"{self._qualified_name}: positions up to {start + length} "
                             f"exceed max_len={self.max_len}")
        x = self.tokens(tokens) * math.sqrt(self.d_model)
        if self.positional == "sinusoidal":
            x = x + self.position_table[start:start + length]
        else:
            x = x + self.positions(np.arange(start, start + length))
        return self.dropout(x)

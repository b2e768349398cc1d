"""The encoder-decoder Transformer of "Attention Is All You Need" (figure 1).

    src tokens ─ Embeddings ─ Encoder ──────────── memory
                                                     │
    tgt tokens ─ Embeddings ─ Decoder (masked self-attn, cross-attn on memory, FFN)
                                 └─ output projection ─ logits over the vocabulary

Initialization: Linear weights Xavier-uniform with zero bias (as the Annotated
Transformer), token embeddings N(0, 1/d_model) (so √d_model·E is of unit scale and the
tied output projection gives logits of unit scale), LayerNorm weight 1 and bias 0.
Everything is drawn from one Generator: the same seed builds the same model, bit for bit.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

import minigrad as mg
from minigrad import nn
from transformer.attention import causal_mask, padding_mask
from transformer.embedding import Embeddings
from transformer.layers import Decoder, Encoder
from transformer.tokenizer import PAD


@dataclass
class TransformerConfig:
    """Hyper-parameters. Defaults are the paper's base model; ``tiny()`` trains in
    minutes on a laptop CPU."""

    src_vocab_size: int
    tgt_vocab_size: int
    d_model: int = 512
    n_heads: int = 8
    n_encoder_layers: int = 6
    n_decoder_layers: int = 6
    d_ff: int = 2048
    dropout: float = 0.1
    max_len: int = 256
    norm_first: bool = False  # False: post-norm as in the paper; True: pre-norm
    activation: str = "relu"  # or "gelu"
    positional: str = "sinusoidal"  # or "learned"
    tie_output: bool = True  # output projection = target embedding matrixᵀ
    share_embeddings: bool = False  # one embedding for source and target (needs one vocabulary)
    pad_id: int = PAD

    def __post_init__(self):
        if self.d_model % self.n_heads:
            raise ValueError(f"TransformerConfig: d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
        if self.share_embeddings and self.src_vocab_size != self.tgt_vocab_size:
            raise ValueError("TransformerConfig: share_embeddings needs src_vocab_size == tgt_vocab_size, got "
                             f"{self.src_vocab_size} and {self.tgt_vocab_size}")
        if self.activation not in ("relu", "gelu"):
            raise ValueError(f"TransformerConfig: activation must be 'relu' or 'gelu', got {self.activation!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"TransformerConfig: dropout must be in [0, 1), got {self.dropout}")

    @classmethod
    def tiny(cls, src_vocab_size, tgt_vocab_size, **overrides):
        """d_model 64, 4 heads, 2+2 layers, d_ff 256: the size our task targets are measured at."""
        settings = dict(d_model=64, n_heads=4, n_encoder_layers=2, n_decoder_layers=2, d_ff=256, dropout=0.1)
        settings.update(overrides)
        return cls(src_vocab_size, tgt_vocab_size, **settings)

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"TransformerConfig: unknown settings {sorted(unknown)}")
        return cls(**values)


class Transformer(nn.Module):
    """``forward(src, tgt_in)`` -> logits (B, T, tgt_vocab_size).

    src (B, S) and tgt_in (B, T) are int token ids padded with ``pad_id``; tgt_in starts
    with BOS and the logits at position t predict target token t (teacher forcing).
    """

    def __init__(self, config: TransformerConfig, *, seed: int = 0, dtype=np.float32):
        super().__init__()
        self.config = c = config
        rng = np.random.default_rng(seed)
        # Dropout masks come from their own stream, saved in checkpoints, so a resumed run
        # draws the same masks as an uninterrupted one.
        self.dropout_rng = np.random.default_rng([seed, 1])
        layer = dict(d_model=c.d_model, n_heads=c.n_heads, d_ff=c.d_ff, dropout=c.dropout, activation=c.activation,
                     norm_first=c.norm_first, rng=rng, dropout_rng=self.dropout_rng, dtype=dtype)
        embed = dict(d_model=c.d_model, max_len=c.max_len, dropout=c.dropout, pad_id=c.pad_id,
                     positional=c.positional, rng=rng, dropout_rng=self.dropout_rng, dtype=dtype)
        self.src_embed = Embeddings(c.src_vocab_size, **embed)
        self.tgt_embed = self.src_embed if c.share_embeddings else Embeddings(c.tgt_vocab_size, **embed)
        self.encoder = Encoder(c.n_encoder_layers, **layer)
        self.decoder = Decoder(c.n_decoder_layers, **layer)
        self.output = None if c.tie_output else nn.Linear(c.d_model, c.tgt_vocab_size, rng=rng, dtype=dtype)

    # ----------------------------------------------------------------- masks

    def src_mask(self, src):
        """(B, S) -> (B, 1, 1, S): attend to real source tokens only."""
        return padding_mask(src, self.config.pad_id)

    def tgt_mask(self, tgt):
        """(B, T) -> (B, 1, T, T): attend to earlier, real target tokens only."""
        return padding_mask(tgt, self.config.pad_id) & causal_mask(tgt.shape[1])

    # ----------------------------------------------------------------- the three stages

    def encode(self, src, src_mask=None):
        """src (B, S) -> memory (B, S, d_model)"""
        src = self._check_tokens("src", src, self.config.src_vocab_size)
        src_mask = self.src_mask(src) if src_mask is None else src_mask
        return self.encoder(self.src_embed(src), src_mask)

    def decode(self, tgt, memory, src_mask, tgt_mask=None, cache=None, start: int = 0):
        """tgt (B, T) -> decoder output (B, T, d_model), attending to memory (B, S, d_model).

        For incremental decoding pass ``cache = self.decoder.new_cache()`` and feed one new
        token per call at position ``start``; earlier keys/values come from the cache, so
        no mask is needed for self-attention.
        """
        tgt = self._check_tokens("tgt", tgt, self.config.tgt_vocab_size)
        if tgt.shape[0] != memory.shape[0]:
            raise ValueError(f"Transformer.decode: tgt has batch size {tgt.shape[0]} but memory has "
                             f"{memory.shape[0]} (shape {memory.shape})")
        if tgt_mask is None and cache is None:
            tgt_mask = self.tgt_mask(tgt)
        return self.decoder(self.tgt_embed(tgt, start), memory, src_mask, tgt_mask, cache)

    def project(self, h):
        """(B, T, d_model) -> logits (B, T, tgt_vocab_size). Tied: logits = h Eᵀ."""
        if self.output is None:
            return h @ self.tgt_embed.tokens.weight.T
        return self.output(h)

    def forward(self, src, tgt_in):
        src = self._check_tokens("src", src, self.config.src_vocab_size)
        tgt_in = self._check_tokens("tgt", tgt_in, self.config.tgt_vocab_size)
        if src.shape[0] != tgt_in.shape[0]:
            raise ValueError(f"Transformer: src has batch size {src.shape[0]} (shape {src.shape}) but tgt has "
                             f"{tgt_in.shape[0]} (shape {tgt_in.shape})")
        src_mask = self.src_mask(src)
        memory = self.encode(src, src_mask)
        return self.project(self.decode(tgt_in, memory, src_mask))

    # ----------------------------------------------------------------- helpers

    def attention_modules(self):
        """{"encoder.layers.0.self_attn": module, ...} for every attention block."""
        from transformer.attention import MultiHeadAttention

        return {name: m for name, m in self.named_modules() if isinstance(m, MultiHeadAttention)}

    @staticmethod
    def _check_tokens(name, tokens, vocab_size):
        tokens = np.asarray(tokens.data if isinstance(tokens, mg.Tensor) else tokens)
        if tokens.ndim != 2:
            raise ValueError(f"Transformer: {name} must be (batch, length) token ids, got shape {tokens.shape}")
        if tokens.dtype.kind not in "iu":
            raise TypeError(f"Transformer: {name} must hold integer token ids, got dtype {tokens.dtype}")
        if tokens.size and (tokens.min() < 0 or tokens.max() >= vocab_size):
            bad = tokens[(tokens < 0) | (tokens >= vocab_size)].flat[0]
            raise ValueError(f"Transformer: {name} token id {int(bad)} is out of range for a vocabulary "
                             f"of {vocab_size}")
        return tokens

"""transformer.model.Transformer rebuilt from torch.nn layers (needs torch; see
transformer/interop.py to move weights in and out).

    src ─ Embeddings ─ nn.TransformerEncoder ───────── memory
    tgt ─ Embeddings ─ nn.TransformerDecoder(memory) ─ logits = h Eᵀ (or nn.Linear)

Embeddings are √d_model·E[token] + PE[position] then dropout, as ours.  The stacks are
``nn.TransformerEncoder``/``nn.TransformerDecoder`` with ``norm=None`` for the post-norm
model: ``nn.Transformer`` always puts a LayerNorm after each stack, which the paper's
post-norm model does not have (only pre-norm needs one).  ``state_dict()`` names are
torch's, listed in docs/state_dict.md.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from transformer.decoding import EXTRA_TOKENS, NEVER_CHOSEN, _until_eos, max_lengths
from transformer.embedding import sinusoidal_table
from transformer.model import TransformerConfig
from transformer.tokenizer import BOS, EOS


class Embeddings(nn.Module):
    """tokens (B, T) at positions start.. -> Dropout(√d·E[token] + PE[position]) (B, T, d)."""

    def __init__(self, vocab_size: int, c: TransformerConfig):
        super().__init__()
        self.d_model, self.positional = c.d_model, c.positional
        self.tokens = nn.Embedding(vocab_size, c.d_model, padding_idx=c.pad_id)
        if c.positional == "sinusoidal":
            self.register_buffer("position_table", torch.from_numpy(sinusoidal_table(c.max_len, c.d_model)),
                                 persistent=False)
        else:
            self.positions = nn.Embedding(c.max_len, c.d_model)
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, tokens, start: int = 0):
        x = self.tokens(tokens) * math.sqrt(self.d_model)
        length = tokens.shape[1]
        if self.positional == "sinusoidal":
            x = x + self.position_table[start:start + length]
        else:
            x = x + self.positions(torch.arange(start, start + length, device=tokens.device))
        return self.dropout(x)


class TorchTransformer(nn.Module):
    """``forward(src, tgt_in)`` -> logits (B, T, V), the same function as our Transformer
    for the same ``config`` and weights.  Masks: PAD keys are ignored, and the decoder's
    self-attention is causal."""

    def __init__(self, config: TransformerConfig, dtype=torch.float32):
        super().__init__()
        self.config = c = config
        self.src_embed = Embeddings(c.src_vocab_size, c)
        self.tgt_embed = self.src_embed if c.share_embeddings else Embeddings(c.tgt_vocab_size, c)
        layer = dict(d_model=c.d_model, nhead=c.n_heads, dim_feedforward=c.d_ff, dropout=c.dropout,
                     activation=c.activation, batch_first=True, norm_first=c.norm_first)
        self.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(**layer), c.n_encoder_layers,
                                             norm=nn.LayerNorm(c.d_model) if c.norm_first else None,
                                             enable_nested_tensor=False)
        self.decoder = nn.TransformerDecoder(nn.TransformerDecoderLayer(**layer), c.n_decoder_layers,
                                             norm=nn.LayerNorm(c.d_model) if c.norm_first else None)
        self.output = None if c.tie_output else nn.Linear(c.d_model, c.tgt_vocab_size)
        self.to(dtype)

    def encode(self, src):
        """src (B, S) -> memory (B, S, d)"""
        return self.encoder(self.src_embed(src), src_key_padding_mask=src == self.config.pad_id)

    def decode(self, tgt, memory, src):
        """tgt (B, T) -> (B, T, d), attending to memory (B, S, d) of src (B, S)."""
        t = tgt.shape[1]
        causal = torch.triu(torch.ones(t, t, dtype=torch.bool, device=tgt.device), diagonal=1)  # True: may not attend
        return self.decoder(self.tgt_embed(tgt), memory, tgt_mask=causal,
                            tgt_key_padding_mask=tgt == self.config.pad_id,
                            memory_key_padding_mask=src == self.config.pad_id)

    def project(self, h):
        """(B, T, d) -> logits (B, T, V); tied: h Eᵀ."""
        return h @ self.tgt_embed.tokens.weight.T if self.output is None else self.output(h)

    def forward(self, src, tgt_in):
        return self.project(self.decode(tgt_in, self.encode(src), src))


@torch.no_grad()
def greedy_decode(module: TorchTransformer, src, max_len: int | None = None,
                  extra_tokens: int = EXTRA_TOKENS) -> np.ndarray:
    """As transformer.decoding.greedy_decode (without a KV cache: each step re-runs the
    decoder on the prefix; PAD, BOS and UNK are never chosen).  src (B, S) -> tokens
    (B, T) int64, EOS then PAD per row."""
    was_training = module.training
    module.eval()
    caps = torch.as_tensor(max_lengths(module.config.max_len, src, max_len, extra_tokens))
    src = torch.as_tensor(np.asarray(src))
    memory = module.encode(src)
    tokens = torch.full((src.shape[0], 1), BOS, dtype=torch.int64)
    finished = torch.zeros(src.shape[0], dtype=torch.bool)
    for step in range(int(caps.max())):
        logits = module.project(module.decode(tokens, memory, src)[:, -1])  # (B, V)
        logits[:, list(NEVER_CHOSEN)] = -math.inf
        next_token = torch.where(finished, module.config.pad_id, logits.argmax(-1))
        tokens = torch.cat([tokens, next_token[:, None]], dim=1)
        finished |= (next_token == EOS) | (step + 1 >= caps)
        if finished.all():
            break
    module.train(was_training)
    return tokens[:, 1:].numpy()


def translate(module: TorchTransformer, tokenizer, texts, extra_tokens: int = EXTRA_TOKENS) -> list[str]:
    """Source strings -> greedy translations, as transformer.decoding.translate."""
    tokens = greedy_decode(module, tokenizer.source.encode_batch(list(texts)), extra_tokens=extra_tokens)
    return [tokenizer.target.decode(_until_eos(row)) for row in tokens]

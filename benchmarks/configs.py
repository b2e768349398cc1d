"""The three training-step configurations, the random token batches both frameworks
get, and the analytic matmul FLOP count of one training step.

FLOPs (one multiply-add = 2 FLOPs; matmuls only — softmax, layer norm, elementwise ops
and Adam are left out, so this is the work a BLAS could do, not all the work).
B batch, S source length, T target length, d = d_model, f = d_ff, V = target vocab,
Le / Ld encoder / decoder layers (attention FLOPs do not depend on the number of heads):

    encoder layer   = 4·(2·B·S·d·d)          Q, K, V, O projections
                    + 2·(2·B·S·S·d)          Q·Kᵀ scores and weights·V
                    + 2·(2·B·S·d·f)          the two FFN matmuls
    decoder layer   = 4·(2·B·T·d·d) + 2·(2·B·T·T·d)      masked self-attention
                    + 2·(2·B·T·d·d)                      cross-attn Q and O (on T positions)
                    + 2·(2·B·S·d·d)                      cross-attn K and V (on the S memory positions)
                    + 2·(2·B·T·S·d)                      cross-attn scores and weights·V
                    + 2·(2·B·T·d·f)                      FFN
    output          = 2·B·T·d·V                          tied projection h·Eᵀ
    forward         = Le·encoder layer + Ld·decoder layer + output
    training step   = 3 · forward        (backward of y = a·b needs ā = ȳ·bᵀ and b̄ = aᵀ·ȳ:
                                          two matmuls of the forward's size)

Masked positions are counted (both frameworks compute the full score matrices).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

PAD, BOS = 0, 1  # as transformer.tokenizer


@dataclass(frozen=True)
class TrainConfig:
    name: str
    d_model: int
    n_heads: int
    n_encoder_layers: int
    n_decoder_layers: int
    d_ff: int
    vocab: int
    batch: int
    length: int  # source length = target length

    def to_dict(self):
        return asdict(self)


CONFIGS = {
    "tiny": TrainConfig("tiny", 64, 4, 2, 2, 256, 64, 32, 16),
    "small": TrainConfig("small", 128, 4, 2, 2, 512, 1000, 32, 32),
    "base": TrainConfig("base", 256, 8, 3, 3, 1024, 8000, 16, 64),
}


def forward_matmul_flops(c: TrainConfig) -> int:
    """FLOPs of the matmuls in one forward pass (formula in the module docstring)."""
    B, S, T, d, f, V = c.batch, c.length, c.length, c.d_model, c.d_ff, c.vocab
    encoder_layer = 4 * 2 * B * S * d * d + 2 * 2 * B * S * S * d + 2 * 2 * B * S * d * f
    decoder_layer = (4 * 2 * B * T * d * d + 2 * 2 * B * T * T * d
                     + 2 * 2 * B * T * d * d + 2 * 2 * B * S * d * d + 2 * 2 * B * T * S * d
                     + 2 * 2 * B * T * d * f)
    output = 2 * B * T * d * V
    return c.n_encoder_layers * encoder_layer + c.n_decoder_layers * decoder_layer + output


def train_step_flops(c: TrainConfig) -> int:
    """Forward + backward matmul FLOPs of one training step: 3 × forward."""
    return 3 * forward_matmul_flops(c)


def tokens_per_step(c: TrainConfig) -> int:
    """Source + target positions per step, padding included (both sides are computed)."""
    return c.batch * c.length * 2


def make_batch(c: TrainConfig, seed: int = 0):
    """(src, tgt_in, tgt_out) int64 arrays of shape (batch, length), the same for both
    frameworks.  Each row has a random real length in [length/2, length]; the rest is
    PAD.  tgt_in starts with BOS; tgt_out is tgt_in shifted left (padding where the
    row ends), so the loss ignores the padded targets."""
    rng = np.random.default_rng(seed)
    B, L, V = c.batch, c.length, c.vocab
    src = rng.integers(4, V, size=(B, L))
    body = rng.integers(4, V, size=(B, L + 1))
    body[:, 0] = BOS
    for i in range(B):
        src[i, rng.integers(L // 2, L + 1):] = PAD
        body[i, rng.integers(L // 2, L + 1) + 1:] = PAD
    return src.astype(np.int64), body[:, :-1].astype(np.int64), body[:, 1:].astype(np.int64)

"""Looking inside a model: its attention weights on one example, and the graph of one
forward pass with its loss (for minigrad.viz)."""

from __future__ import annotations

import numpy as np

import minigrad as mg
from transformer.decoding import EXTRA_TOKENS, greedy_decode
from transformer.loss import sequence_loss
from transformer.plots import AttentionMap
from transformer.tasks import get_task, make_batch
from transformer.tokenizer import BOS, EOS


def token_labels(tokenizer, ids) -> list[str]:
    """One readable label per id: the character ("␣" for a space) or symbol, or <bos>/<eos>/<pad>."""
    return [tokenizer.decode([i], skip_special=False).replace(" ", "␣") for i in ids]


def attention_maps(model, tokenizer, text: str, extra_tokens: int = EXTRA_TOKENS) -> tuple[list[AttentionMap], str]:
    """Decode ``text`` greedily (at most its length + ``extra_tokens`` tokens), then run one
    teacher-forced pass on (text, output) with every attention block keeping its weights.
    Returns one AttentionMap per block (in model order) and the output text.

    Encoder rows and columns, and cross-attention columns, are labelled with the source
    units (``tokenizer.source``); decoder rows with the target token produced at that
    position (the output and its EOS); decoder self-attention columns with the target
    tokens read there (BOS + output), all by ``tokenizer.target``.
    """
    src = np.array([tokenizer.source.encode(text)])           # (1, S)
    produced = [int(t) for t in greedy_decode(model, src, extra_tokens=extra_tokens)[0]]  # EOS last, if produced
    produced = produced[:produced.index(EOS) + 1] if EOS in produced else produced
    tgt_in = np.array([[BOS] + produced[:-1]])                 # (1, T): what the decoder reads
    blocks = model.attention_modules()
    was_training = model.training
    model.eval()
    try:
        for block in blocks.values():
            block.keep_weights = True
        with mg.no_grad():
            model(src, tgt_in)
    finally:
        for block in blocks.values():
            block.keep_weights = False
        model.train(was_training)
    source = token_labels(tokenizer.source, src[0])
    read, written = (token_labels(tokenizer.target, ids) for ids in (tgt_in[0], produced))
    maps = []
    for name, block in blocks.items():
        if name.startswith("encoder"):
            rows, columns = source, source
        elif name.endswith("cross_attn"):
            rows, columns = written, source
        else:
            rows, columns = written, read
        maps.append(AttentionMap(name, block.weights[0], rows, columns))  # weights (H, Tq, Tk)
        block.weights = None
    output = tokenizer.target.decode([t for t in produced if t != EOS])
    return maps, output


def model_loss(model, tokenizer, task: str, batch_size: int = 2, seed: int = 0):
    """The label-smoothed loss of ``model`` on ``batch_size`` fresh examples of ``task``:
    a scalar Tensor whose graph is one forward pass (in training mode, with dropout)."""
    rng = np.random.default_rng(seed)
    batch = make_batch([get_task(task).generate(rng) for _ in range(batch_size)], tokenizer)
    was_training = model.training
    model.train()
    try:
        logits = model(batch.src, batch.tgt_in)  # (B, T, V)
        loss = sequence_loss(logits, batch.tgt_out)
    finally:
        model.train(was_training)
    loss.name = "loss"
    return loss

"""Training and decoding throughput on real data, run as its own process:

    python -m benchmarks.g2p_bench --framework minigrad --threads 1

The CMUdict configuration of ``python -m transformer train --data cmudict``: its model
(the "small" size: d_model 128, 4 heads, 3+3 layers, d_ff 512, post-norm, tied output),
its batch size and label smoothing, on real batches of its training split.  The PyTorch
side is ``transformer.torch_model.TorchTransformer`` (torch.nn.TransformerEncoder and
TransformerDecoder layers) holding the same initial weights (``interop.to_torch``).

What is timed:

    training   one full step of train.py's loop: zero_grad, forward, label-smoothed
               loss, backward, gradient clipping to norm 1, Adam.  The first ``--warmup``
               batches are untimed; then batch after batch of the same fixed sequence
               (bucketed by length as training draws them) for ``--budget`` seconds.
               Reported as target tokens per second (non-PAD tokens of tgt_out, EOS
               included) over all timed steps.
    decoding   greedy decoding of ``--words`` test words in batches of 200 sorted by
               length, as ``evaluate`` decodes; words per second.  Ours uses its KV
               cache; torch.nn's decoder has none, so its loop re-runs the decoder on the
               prefix each step (transformer.torch_model.greedy_decode), as a user of
               nn.TransformerDecoder does.

The last stdout line is a JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from benchmarks.common import peak_rss_mb

DATASET = "cmudict"


def real_data(seed: int = 0):
    """(train pairs, test sources, tokenizer pair, train settings) as ``train --data cmudict`` builds them."""
    from transformer.run_data import load_run_data
    from transformer.train_config import TrainConfig

    config = TrainConfig.for_data(DATASET, seed=seed)
    data = load_run_data(config)
    test_sources = sorted({source for source, _ in data.splits.test})
    return data.splits.train, test_sources, data.tokenizer, config


def minigrad_model(config, tokenizer):
    from transformer.train import build_model

    model = build_model(config, tokenizer)
    model.train()
    return model


def fixed_batches(pairs, tokenizer, batch_size, n, seed=0):
    """The first ``n`` batches of one training epoch (bucketed, shuffled), as id arrays."""
    from transformer.tasks import batches

    epoch = batches(pairs, tokenizer, batch_size, np.random.default_rng([seed, 2]))
    return [next(epoch) for _ in range(n)]


def minigrad_runner(model, config):
    import minigrad as mg
    from minigrad.optim import clip_grad_norm_
    from transformer.loss import sequence_loss

    optimizer = mg.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9)

    def train_step(batch):
        optimizer.zero_grad()
        loss = sequence_loss(model(batch.src, batch.tgt_in), batch.tgt_out, config.label_smoothing)
        loss.backward()
        clip_grad_norm_(optimizer.params, config.clip_norm)
        optimizer.step()

    def decode(src):
        from transformer.decoding import greedy_decode

        return greedy_decode(model, src)

    return train_step, decode


def torch_runner(model, config, threads):
    import torch

    from benchmarks.side_by_side import torch_train_step
    from transformer.interop import to_torch
    from transformer.torch_model import greedy_decode

    torch.set_num_threads(threads)
    module = to_torch(model).train()
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9)

    def train_step(batch):
        torch_train_step(module, optimizer, batch, config)

    def decode(src):
        return greedy_decode(module, src)

    return train_step, decode


def measure(framework: str, threads: int, warmup: int, budget: float, words: int) -> dict:
    from transformer.tokenizer import PAD

    load_before = os.getloadavg()[0]
    train_pairs, test_sources, tokenizer, config = real_data()
    model = minigrad_model(config, tokenizer)
    runner = torch_runner(model, config, threads) if framework == "torch" else minigrad_runner(model, config)
    train_step, decode = runner
    batches = fixed_batches(train_pairs, tokenizer, config.batch_size, 400)

    for batch in batches[:warmup]:
        train_step(batch)
    seconds, tokens, steps = 0.0, 0, 0
    while seconds < budget and steps < len(batches) - warmup:
        batch = batches[warmup + steps]
        t0 = time.perf_counter()
        train_step(batch)
        seconds += time.perf_counter() - t0
        tokens += int((batch.tgt_out != PAD).sum())
        steps += 1

    sources = sorted(test_sources[:words], key=len)
    decode(tokenizer.source.encode_batch(sources[:50]))  # warm-up
    t0 = time.perf_counter()
    for start in range(0, len(sources), 200):
        decode(tokenizer.source.encode_batch(sources[start:start + 200]))
    decode_seconds = time.perf_counter() - t0
    return {"framework": framework, "threads": threads, "steps_timed": steps,
            "train_seconds": seconds, "target_tokens_per_s": tokens / seconds, "ms_per_step": 1000 * seconds / steps,
            "words_decoded": len(sources), "decode_seconds": decode_seconds,
            "words_per_s": len(sources) / decode_seconds, "peak_rss_mb": peak_rss_mb(),
            "model": model.config.to_dict(), "batch_size": config.batch_size,
            "load_average_1min": [load_before, os.getloadavg()[0]]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", choices=("minigrad", "torch"), required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--budget", type=float, default=20.0, help="seconds of timed training steps")
    parser.add_argument("--words", type=int, default=2000, help="test words to decode")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.framework, args.threads, args.warmup, args.budget, args.words)))


if __name__ == "__main__":
    main()

"""One training-step measurement, run as its own process:

    python -m benchmarks.train_bench --framework minigrad --config tiny --threads 1

What is timed: ``zero_grad`` + forward + label-smoothed loss + backward + Adam step on
one fixed batch (benchmarks.configs.make_batch), each step timed on its own with
perf_counter after ``--warmup`` untimed steps; we report the median and IQR.  The
parent starts a fresh process per (framework, config, threads) with the thread
variables already in the environment, so the RSS high-water mark (ru_maxrss) printed
at the end (VmHWM, see benchmarks.common.peak_rss_mb) belongs to this run alone.  The last stdout line is a JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

from benchmarks.common import peak_rss_mb, ru_maxrss_mb, summarize
from benchmarks.configs import CONFIGS, TrainConfig, make_batch, tokens_per_step, train_step_flops


def build_minigrad_model(c: TrainConfig):
    """Our Transformer at config ``c``: post-norm, ReLU, dropout 0, sinusoidal
    positions, tied output projection, float32, seed 0."""
    from transformer.model import Transformer, TransformerConfig

    config = TransformerConfig(c.vocab, c.vocab, d_model=c.d_model, n_heads=c.n_heads,
                               n_encoder_layers=c.n_encoder_layers, n_decoder_layers=c.n_decoder_layers,
                               d_ff=c.d_ff, dropout=0.0, max_len=256, norm_first=False,
                               activation="relu", positional="sinusoidal", tie_output=True)
    return Transformer(config, seed=0)


def minigrad_step(c: TrainConfig, src, tgt_in, tgt_out):
    """A step function for our Transformer, and a check that runs after one step:
    the loss and every parameter gradient must be float32."""
    import numpy as np

    import minigrad as mg
    from transformer.loss import sequence_loss

    model = build_minigrad_model(c)
    model.train()
    optimizer = mg.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9)

    def step():
        optimizer.zero_grad()
        loss = sequence_loss(model(src, tgt_in), tgt_out, label_smoothing=0.1)
        loss.backward()
        optimizer.step()
        return loss

    def check_float32(loss):
        bad = [n for n, p in model.named_parameters() if p.grad is None or p.grad.dtype != np.float32]
        assert loss.dtype == np.float32, f"loss is {loss.dtype}"
        assert not bad, f"gradients missing or not float32: {bad[:5]}"
        return float(loss.item()), model.num_parameters()

    return step, check_float32


def torch_step(c: TrainConfig, src, tgt_in, tgt_out):
    """The same step for the PyTorch twin (benchmarks.torch_twin)."""
    import torch

    from benchmarks import torch_twin

    torch.manual_seed(0)
    model = torch_twin.TorchTransformer(c)
    model.train()
    optimizer = torch_twin.make_optimizer(model)
    src, tgt_in, tgt_out = (torch.from_numpy(a) for a in (src, tgt_in, tgt_out))

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = torch_twin.sequence_loss(model(src, tgt_in), tgt_out)
        loss.backward()
        optimizer.step()
        return loss

    def check_float32(loss):
        bad = [n for n, p in model.named_parameters() if p.grad is None or p.grad.dtype != torch.float32]
        assert loss.dtype == torch.float32, f"loss is {loss.dtype}"
        assert not bad, f"gradients missing or not float32: {bad[:5]}"
        return float(loss.item()), sum(p.numel() for p in model.parameters())

    return step, check_float32


def measure(framework: str, c: TrainConfig, threads: int, warmup: int, max_steps: int, budget: float) -> dict:
    """Build the model, warm up, then time single steps until ``max_steps`` or
    ``budget`` seconds (at least 5 steps)."""
    load_before = os.getloadavg()[0]
    if framework == "torch":
        import torch

        torch.set_num_threads(threads)
    else:
        import transformer.model  # noqa: F401  (so the next line counts the import)
    rss_imports = peak_rss_mb()
    src, tgt_in, tgt_out = make_batch(c)
    build = torch_step if framework == "torch" else minigrad_step
    step, check_float32 = build(c, src, tgt_in, tgt_out)
    rss_model = peak_rss_mb()
    first_loss, n_params = check_float32(step())
    for _ in range(warmup - 1):
        step()
    faults_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    times, start = [], time.perf_counter()
    while len(times) < max_steps and (len(times) < 5 or time.perf_counter() - start < budget):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    stats = summarize(times)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before) / len(times)
    return {
        "framework": framework, "config": c.name, "threads": threads,
        "step_s": stats, "steps_timed": len(times),
        "tokens_per_s": tokens_per_step(c) / stats["median"],
        "gflops_per_s": train_step_flops(c) / stats["median"] / 1e9,
        "peak_rss_mb": peak_rss_mb(), "ru_maxrss_mb": ru_maxrss_mb(),
        "rss_after_imports_mb": rss_imports, "rss_after_build_mb": rss_model,
        "minor_page_faults_per_step": faults,
        "load_average_1min": [load_before, os.getloadavg()[0]],
        "first_loss": first_loss, "parameters": n_params, "float32_checked": True,
        "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                               "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_",
                                               "MINIGRAD_TUNE_MALLOC")},
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", choices=("minigrad", "torch"), required=True)
    parser.add_argument("--config", choices=sorted(CONFIGS), required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30, help="at most this many timed steps")
    parser.add_argument("--budget", type=float, default=10.0, help="seconds of timed steps (at least 5 steps)")
    args = parser.parse_args(argv)
    result = measure(args.framework, CONFIGS[args.config], args.threads, args.warmup, args.steps, args.budget)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

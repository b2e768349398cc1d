"""Run the benchmark suite and write benchmarks/results/latest.json.

    python -m benchmarks                      # everything, ~5-10 minutes
    python -m benchmarks --quick              # fewer sizes and repeats, ~1 minute
    python -m benchmarks --only train --threads 1 --configs tiny small

Every measurement runs in a fresh child process whose OMP/OPENBLAS/MKL_NUM_THREADS are
set before numpy or torch is imported (and torch.set_num_threads is called), so thread
counts are what the table says and each training run's peak RSS is its own.  Results
are medians with the IQR as spread; the machine may be shared, so look at the spread.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from importlib import metadata

from benchmarks import report
from benchmarks.common import child_environment, machine_info, run_child
from benchmarks.configs import CONFIGS, train_step_flops

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "latest.json")


def torch_installed() -> bool:
    try:
        metadata.version("torch")
        return True
    except metadata.PackageNotFoundError:
        return False


def run_ops(args) -> dict:
    """Per-op overhead at one thread."""
    extra = ["--quick"] if args.quick else []
    return run_child("benchmarks.ops_bench", extra + ["--threads", "1"], threads=1)


def run_kernels(args) -> dict:
    """Kernel timings for every thread count."""
    configs = args.configs if not args.quick else [c for c in args.configs if c != "base"] or ["tiny"]
    out = {}
    for threads in args.threads:
        extra = ["--quick"] if args.quick else []
        out[str(threads)] = run_child("benchmarks.kernels_bench",
                                      extra + ["--threads", str(threads), "--configs", *configs], threads=threads)
    return out


def run_train(args, with_torch: bool) -> dict:
    """Twin check per config, then one fresh process per (config, threads, framework),
    minigrad and torch back to back so they see the same machine load."""
    steps = args.repeats or (8 if args.quick else 30)
    budget = "2" if args.quick else "10"
    checks, runs = {}, []
    for name in args.configs:
        if with_torch:
            checks[name] = run_child("benchmarks.check_twin", ["--config", name], threads=1)
        for threads in args.threads:
            for framework in ("minigrad", "torch") if with_torch else ("minigrad",):
                cmd = ["--framework", framework, "--config", name, "--threads", str(threads),
                       "--steps", str(steps), "--budget", budget, "--warmup", "2" if args.quick else "3"]
                result = run_child("benchmarks.train_bench", cmd, threads=threads)
                result.setdefault("framework", framework)
                result.setdefault("config", name)
                result.setdefault("threads", threads)
                runs.append(result)
                print(f"  {report.train_progress(result)}", flush=True)
    return {"twin_check": checks, "runs": runs,
            "flops_per_step": {name: train_step_flops(CONFIGS[name]) for name in args.configs}}


def run_g2p(args, with_torch: bool) -> dict:
    """Real-data throughput (benchmarks.g2p_bench): one fresh process per (threads, framework)."""
    extra = ["--budget", "5", "--words", "400"] if args.quick else []
    runs = []
    for threads in args.threads:
        for framework in ("minigrad", "torch") if with_torch else ("minigrad",):
            result = run_child("benchmarks.g2p_bench", ["--framework", framework, "--threads", str(threads), *extra],
                               threads=threads)
            runs.append(result)
            print(f"  {framework} {threads}t: {result['ms_per_step']:.0f} ms/step, "
                  f"{result['words_per_s']:.0f} words/s decoded", flush=True)
    return {"runs": runs}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer sizes, steps and repeats (~1 minute)")
    parser.add_argument("--only", nargs="+", choices=("ops", "kernels", "train", "g2p"),
                        default=["ops", "kernels", "train", "g2p"], help="run only these parts")
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2], help="thread counts (default 1 2)")
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=None,
                        help="training configs (default tiny small base; --quick: tiny small)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="at most this many timed training steps per run (default 30; --quick 8)")
    parser.add_argument("--output", default=RESULTS, help=f"JSON file to write (default {RESULTS})")
    args = parser.parse_args(argv)
    if args.configs is None:
        args.configs = ["tiny", "small"] if args.quick else list(CONFIGS)
    return args


def main(argv=None):
    args = parse_args(argv)
    started = time.time()
    with_torch = torch_installed()
    _, notes = child_environment(1)
    results = {"command": "python -m benchmarks " + " ".join(sys.argv[1:] if argv is None else argv),
               "started": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine_info(),
               "notes": notes + ["PyTorch attention uses plain ops (matmul, masked_fill, softmax), "
                                 "not the fused scaled_dot_product_attention"]}
    print(report.machine_header(results["machine"], notes))
    if not with_torch:
        print("PyTorch: not installed (minigrad-only numbers; ratios and torch targets are skipped)")
    if "ops" in args.only:
        print("\n== per-op overhead (1 thread) ...", flush=True)
        results["ops"] = run_ops(args)
        print(report.ops_table(results["ops"]))
    if "kernels" in args.only:
        print("\n== kernels ...", flush=True)
        results["kernels"] = run_kernels(args)
        print(report.kernels_table(results["kernels"]))
    if "train" in args.only:
        print("\n== training step (fresh process per run) ...", flush=True)
        results["train"] = run_train(args, with_torch)
        print(report.twin_table(results["train"]["twin_check"]))
        print(report.train_table(results["train"]))
    if "g2p" in args.only:
        print("\n== real data: CMUdict training and decoding (fresh process per run) ...", flush=True)
        results["g2p"] = run_g2p(args, with_torch)
        print(report.g2p_table(results["g2p"]))
    results["targets"] = report.targets(results, with_torch)
    print(report.targets_table(results["targets"]))
    results["elapsed_s"] = time.time() - started
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(results, f, indent=1)
    print(f"\nwrote {args.output} ({results['elapsed_s']:.0f} s)")


if __name__ == "__main__":
    main()

"""Where does a minigrad training step spend its time?  (1 thread, measurement only.)

    python -m benchmarks.profile_train --configs tiny small base

Five looks at the same step (zero_grad + forward + loss + backward + Adam, as
benchmarks.train_bench), each in a fresh 1-thread child process:

1. py-spy (if installed): sample a warmed-up step loop at 250 Hz with native frames and
   sort every sample into a category by its innermost frames — BLAS (OpenBLAS),
   numpy C kernels (split by the minigrad op that called them), libc (malloc, free,
   memcpy), the garbage collector, or Python overhead (by file: engine, ops, model).
2. cProfile: call counts per step and the top functions by tottime and cumtime
   (the profiler inflates Python-heavy code; use it for counts, py-spy for fractions).
3. GC: time inside collections (gc.callbacks) and the step with gc.disable().
4. Op audit: every op output of one step (forward and backward), recorded by wrapping
   minigrad.ops.record at runtime: dtypes (anything not float32?), subnormal values
   (attention probabilities, activations, gradients), view ops that copied, matmul
   operands that are not contiguous.
5. malloc: step time and minor page faults with minigrad's mallopt tuning, without it
   (MINIGRAD_TUNE_MALLOC=0), and without it but with MALLOC_MMAP_THRESHOLD_ /
   MALLOC_TRIM_THRESHOLD_ in the child's environment.

Output: a report on stdout and benchmarks/results/profile.json.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import gc
import json
import os
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
import time

from benchmarks.common import child_environment, code_version, run_child, summarize
from benchmarks.configs import CONFIGS, make_batch

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "profile.json")
MATMUL_FUNCTIONS = {"matmul", "linear", "grad_a", "grad_b"}


def build_step(config_name):
    from benchmarks.train_bench import minigrad_step

    c = CONFIGS[config_name]
    step, _ = minigrad_step(c, *make_batch(c))
    for _ in range(3):
        step()
    return step


# --------------------------------------------------------------------------- 1. py-spy


def loop(config_name, seconds):
    """Child side of the py-spy run: warm up, say "ready", then step for ``seconds``."""
    step = build_step(config_name)
    print("ready", flush=True)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        step()


def categorize(stack: str) -> str:
    """The category of one py-spy sample (frames outermost first, ';'-separated)."""
    frames = stack.split(";")
    if any("gc_collect" in f for f in frames):
        return "GC (cyclic collector)"
    leaf = frames[-1]
    python = [f for f in frames if re.search(r"\.py:\d+\)$", f)]
    inner = python[-1] if python else ""
    function = inner.split(" (")[0].split(".")[0] if inner else ""
    where = inner.rsplit("(", 1)[-1] if inner else ""
    if "openblas" in leaf:
        return "BLAS (OpenBLAS sgemm)"
    if "optimizers.py" in where:
        return "Adam (numpy + Python)"
    if "_multiarray_umath" in leaf or "libm." in leaf:
        if function in MATMUL_FUNCTIONS:
            return "numpy C inside matmul ops (copies, non-BLAS loops)"
        for name in ("layer_norm", "softmax", "cross_entropy", "embedding"):
            if name in function or (name == "layer_norm" and function in ("grad_x", "statistics")):
                return f"numpy C kernels: {name}"
        return "numpy C kernels: other elementwise/reductions"
    if "libc." in leaf:
        return "libc (malloc/free/memcpy/memset)"
    if "minigrad/autograd.py" in where or "minigrad/tensor.py" in where:
        return "Python: engine (record, Tensor, run_backward)"
    if "minigrad/ops.py" in where:
        return "Python: op wrappers in ops.py"
    if "numpy/" in where:
        return "Python: numpy's Python wrappers (fromnumeric, _methods)"
    if "nn/module.py" in where or "transformer/" in where or "nn/layers.py" in where:
        return "Python: modules and model code"
    return "other (interpreter, imports, profiler)"


def pyspy(config_name, seconds):
    """Sample a warmed-up child with py-spy; fractions of samples per category."""
    exe = shutil.which("py-spy")
    if exe is None:
        return {"error": "py-spy not installed (pip install py-spy)"}
    env, _ = child_environment(1)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    child = subprocess.Popen([sys.executable, "-m", "benchmarks.profile_train", "--loop", config_name,
                              "--seconds", str(seconds + 3)], env=env, cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        child.stdout.readline()  # "ready"
        with tempfile.NamedTemporaryFile(suffix=".txt") as out:
            done = subprocess.run([exe, "record", "--pid", str(child.pid), "--duration", str(int(seconds)), "--native",
                                   "--rate", "250", "--format", "raw", "--output", out.name],
                                  capture_output=True, text=True)
            lines = open(out.name).read().splitlines()
    finally:
        child.wait()
    if not lines:
        return {"error": f"py-spy gave no samples: {done.stderr.strip()[-500:]}"}
    counts, by_function, total = collections.Counter(), collections.Counter(), 0
    for line in lines:
        stack, n = line.rsplit(" ", 1)
        category = categorize(stack)
        counts[category] += int(n)
        total += int(n)
        if category.startswith(("numpy C", "BLAS", "libc")):  # which Python line called the kernel
            python = [f for f in stack.split(";") if re.search(r"\.py:\d+\)$", f)]
            by_function[f"{category.split(' (')[0]} <- {python[-1] if python else '?'}"] += int(n)
    return {"samples": total, "fractions": {k: v / total for k, v in counts.most_common()},
            "kernel_time_by_calling_line": {k: v / total for k, v in by_function.most_common(25)}}


# --------------------------------------------------------------------------- 2. cProfile


def cprofile(config_name, steps):
    step = build_step(config_name)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(steps):
        step()
    profiler.disable()
    stats = pstats.Stats(profiler)
    total = stats.total_tt

    def top(key, n=25):
        rows = []
        for (file, line, name), (_cc, nc, tt, ct, _) in stats.stats.items():
            rows.append({"function": f"{os.path.relpath(file) if file.startswith('/') else file}:{line}({name})",
                         "calls_per_step": nc / steps, "tottime_ms_per_step": tt / steps * 1e3,
                         "cumtime_ms_per_step": ct / steps * 1e3})
        return sorted(rows, key=lambda r: -r[key])[:n]

    by_file = collections.Counter()
    for (file, _, _name), (_, _, tt, _, _) in stats.stats.items():
        label = file if not file.startswith("/") else os.path.relpath(file)
        label = "numpy (Python)" if "numpy" in label else label
        by_file[label] += tt
    calls = {name: sum(v[1] for (_, _, n), v in stats.stats.items() if n == name) / steps
             for name in ("record", "_wrap", "run_backward", "send", "__call__")}
    return {"profiled_ms_per_step": total / steps * 1e3, "calls_per_step": calls,
            "tottime_by_file_fraction": {k: v / total for k, v in by_file.most_common(12)},
            "top_tottime": top("tottime_ms_per_step"), "top_cumtime": top("cumtime_ms_per_step")}


# --------------------------------------------------------------------------- 3. GC


def gc_cost(config_name, steps):
    """Time spent in collections per step, and the step time with the collector off
    (alternating blocks of steps so machine load affects both alike)."""
    step = build_step(config_name)
    spent, started = [0.0, 0], [0.0]

    def callback(phase, info):
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            spent[0] += time.perf_counter() - started[0]
            spent[1] += 1

    gc.callbacks.append(callback)
    on, off = [], []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        on.append(time.perf_counter() - t0)
    gc.callbacks.remove(callback)
    in_gc = spent[0] / steps
    collections_per_step = spent[1] / steps
    for _ in range(steps):
        gc.disable()
        t0 = time.perf_counter()
        step()
        off.append(time.perf_counter() - t0)
        gc.enable()
    return {"gc_ms_per_step": in_gc * 1e3, "collections_per_step": collections_per_step,
            "step_ms_gc_on": summarize(on)["median"] * 1e3, "step_ms_gc_off": summarize(off)["median"] * 1e3,
            "gc_fraction": in_gc / summarize(on)["median"]}


# --------------------------------------------------------------------------- 4. op audit


def _blas_friendly(a) -> bool:
    """Can numpy hand each 2-D matrix of ``a`` to BLAS without copying?  numpy's rule
    (is_blasable2d): one of the two inner strides is the item size and the other a
    multiple of it, at least as long as the matching row or column."""
    if a.ndim < 2:
        return True
    (s0, s1), (n0, n1), item = a.strides[-2:], a.shape[-2:], a.itemsize
    rows_ok = s1 == item and s0 % item == 0 and s0 // item >= n1
    cols_ok = s0 == item and s1 % item == 0 and s1 // item >= n0
    return rows_ok or cols_ok


def audit(config_name):
    """Wrap minigrad.ops.record for one step and inspect every output it wraps."""
    import numpy as np

    import minigrad.autograd as autograd
    from minigrad import ops

    step = build_step(config_name)
    tiny = np.finfo(np.float32).tiny
    per_op = collections.defaultdict(lambda: {"count": 0, "dtypes": set(), "subnormal": 0, "elements": 0,
                                              "copied_views": 0, "noncontiguous_matmul_inputs": 0})
    original = ops.record

    def spy(op, data, inputs, *vjps):
        phase = "forward" if autograd.STATE.grad_enabled else "backward"
        row = per_op[f"{phase}:{op}"]
        row["count"] += 1
        row["dtypes"].add(str(data.dtype))
        if data.dtype.kind == "f":
            row["subnormal"] += int(np.count_nonzero((data != 0) & (np.abs(data) < tiny)))
            row["elements"] += data.size
        if op in ("reshape", "transpose", "swapaxes", "squeeze", "unsqueeze") and inputs:
            if not np.shares_memory(data, inputs[0].data):
                row["copied_views"] += 1
        if op == "matmul":
            row["noncontiguous_matmul_inputs"] += sum(1 for t in inputs if not _blas_friendly(t.data))
        return original(op, data, inputs, *vjps)

    ops.record = spy
    try:
        step()
    finally:
        ops.record = original
    rows = {k: {**v, "dtypes": sorted(v["dtypes"])} for k, v in sorted(per_op.items())}
    not_float32 = {k: v["dtypes"] for k, v in rows.items() if any(d != "float32" for d in v["dtypes"]
                                                                 if d not in ("bool",))}
    return {"ops": rows, "op_outputs_per_step": sum(v["count"] for v in rows.values()),
            "not_float32": not_float32,
            "subnormal_values": {k: v["subnormal"] for k, v in rows.items() if v["subnormal"]},
            "copied_views": {k: v["copied_views"] for k, v in rows.items() if v["copied_views"]},
            "noncontiguous_matmul_inputs": sum(v["noncontiguous_matmul_inputs"] for v in rows.values())}


# --------------------------------------------------------------------------- 5. malloc


MALLOC_VARIANTS = {
    "default (minigrad's mallopt)": {},
    "MINIGRAD_TUNE_MALLOC=0": {"MINIGRAD_TUNE_MALLOC": "0"},
    "MINIGRAD_TUNE_MALLOC=0 + MALLOC_MMAP_THRESHOLD_/TRIM_THRESHOLD_=1 GiB":
        {"MINIGRAD_TUNE_MALLOC": "0", "MALLOC_MMAP_THRESHOLD_": str(2**30), "MALLOC_TRIM_THRESHOLD_": str(2**30)},
}


def malloc_variants(config_name, budget):
    out = {}
    for label, extra in MALLOC_VARIANTS.items():
        r = run_child("benchmarks.train_bench", ["--framework", "minigrad", "--config", config_name, "--threads", "1",
                                                 "--budget", str(budget), "--steps", "30"], threads=1, extra_env=extra)
        out[label] = r if "error" in r else {"step_ms": r["step_s"]["median"] * 1e3,
                                             "iqr_ms": r["step_s"]["iqr"] * 1e3,
                                             "minor_faults_per_step": r["minor_page_faults_per_step"],
                                             "peak_rss_mb": r["peak_rss_mb"]}
    return out


# --------------------------------------------------------------------------- driver


def part(name, config_name, steps):
    """Child side: run one part and print its JSON."""
    fn = {"cprofile": lambda: cprofile(config_name, steps), "gc": lambda: gc_cost(config_name, steps),
          "audit": lambda: audit(config_name)}[name]
    print(json.dumps(fn()))


def steps_for(config_name):
    return {"tiny": 40, "small": 10, "base": 4}[config_name]


def print_report(name, r):
    print(f"\n######## {name}")
    spy = r.get("pyspy", {})
    if "fractions" in spy:
        print(f"py-spy, {spy['samples']} samples:")
        for k, v in spy["fractions"].items():
            print(f"  {v:6.1%}  {k}")
        print("  native time by the Python line that called it (top 12):")
        for k, v in list(spy["kernel_time_by_calling_line"].items())[:12]:
            print(f"    {v:6.1%}  {k}")
    else:
        print(f"py-spy: {spy.get('error')}")
    g = r.get("gc", {})
    if "gc_ms_per_step" in g:
        print(f"GC: {g['gc_ms_per_step']:.2f} ms/step in {g['collections_per_step']:.1f} collections "
              f"({g['gc_fraction']:.1%}); step {g['step_ms_gc_on']:.1f} ms with GC, "
              f"{g['step_ms_gc_off']:.1f} ms without")
    cp = r.get("cprofile", {})
    if "top_tottime" in cp:
        print(f"cProfile: {cp['profiled_ms_per_step']:.1f} ms/step under the profiler; calls/step "
              + ", ".join(f"{k} {v:.0f}" for k, v in cp["calls_per_step"].items()))
        for row in cp["top_tottime"][:12]:
            print(f"  tottime {row['tottime_ms_per_step']:8.2f} ms  cum {row['cumtime_ms_per_step']:8.2f} ms  "
                  f"{row['calls_per_step']:7.0f} calls  {row['function']}")
    a = r.get("audit", {})
    if "ops" in a:
        print(f"op audit: {a['op_outputs_per_step']} op outputs per step; not float32: {a['not_float32'] or 'none'}; "
              f"subnormal values: {a['subnormal_values'] or 'none'}; copied views: {a['copied_views'] or 'none'}; "
              f"non-contiguous matmul operands: {a['noncontiguous_matmul_inputs']}")
    for label, m in r.get("malloc", {}).items():
        if "error" in m:
            print(f"malloc {label}: {m['error'][-200:]}")
        else:
            print(f"malloc {label}: {m['step_ms']:.1f} ms (IQR {m['iqr_ms']:.1f}), "
                  f"{m['minor_faults_per_step']:.0f} minor faults/step, peak {m['peak_rss_mb']:.0f} MB")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["tiny", "small", "base"], choices=sorted(CONFIGS))
    parser.add_argument("--seconds", type=int, default=8, help="py-spy sampling time per config")
    parser.add_argument("--skip-malloc", action="store_true")
    parser.add_argument("--loop", help=argparse.SUPPRESS)  # child: step loop for py-spy
    parser.add_argument("--part", help=argparse.SUPPRESS)  # child: one part
    parser.add_argument("--steps", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.loop:
        return loop(args.loop, args.seconds)
    if args.part:
        return part(args.part, args.configs[0], args.steps)
    results = {"code": code_version(), "load_average_at_start": os.getloadavg()}
    for name in args.configs:
        r = {"pyspy": pyspy(name, args.seconds)}
        for p in ("gc", "cprofile", "audit"):
            r[p] = run_child("benchmarks.profile_train", ["--part", p, "--configs", name,
                                                          "--steps", str(steps_for(name))], threads=1)
        if not args.skip_malloc:
            r["malloc"] = malloc_variants(name, budget=6)
        results[name] = r
        print_report(name, r)
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump(results, f, indent=1)
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()

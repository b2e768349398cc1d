"""Helpers every benchmark shares: timing statistics, thread settings for child
processes, machine information, and the optional PyTorch import.

Nothing here measures by itself; the functions only time what they are given.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from importlib import metadata

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
# Set in the parent's environment, these make current numpy's OpenBLAS pick a slower
# code path; children drop both together and the output says so.
OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


# --------------------------------------------------------------------------- timing


def summarize(samples: list[float]) -> dict:
    """Median, quartiles and IQR of ``samples`` (any unit), plus min and count."""
    ordered = sorted(samples)
    if len(ordered) >= 2:
        q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    else:
        q1 = q3 = ordered[0]
    return {"median": statistics.median(ordered), "q1": q1, "q3": q3, "iqr": q3 - q1,
            "min": ordered[0], "n": len(ordered)}


def time_per_call(fn, *, min_time: float = 0.02, repeats: int = 7, warmup: int = 3, unit: float = 1.0) -> dict:
    """Time per call of ``fn()`` in seconds × ``unit`` (1e3: ms, 1e6: µs): after ``warmup``
    calls, pick a loop count so one repeat lasts about ``min_time``, time ``repeats`` such
    loops with perf_counter and summarize the per-call times (median over repeats, IQR
    as the spread)."""
    for _ in range(warmup):
        fn()
    loops, elapsed = 1, 0.0
    while True:  # grow the loop until one timing is long enough to trust
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_time or loops >= 1_000_000:
            break
        loops *= 2 if elapsed == 0 else max(2, min(10, int(min_time / elapsed * 1.2) + 1))
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        samples.append((time.perf_counter() - start) / loops * unit)
    result = summarize(samples)
    result["loops"] = loops
    return result


def peak_rss_mb() -> float:
    """This process's resident-set high-water mark in MiB.

    VmHWM from /proc/self/status belongs to this program's own address space.
    ru_maxrss (the fallback) is NOT enough on its own: Linux carries the parent's
    high-water mark across fork + exec, so a child of a big parent reports the parent's
    size (see ``ru_maxrss_mb``)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return ru_maxrss_mb()


def ru_maxrss_mb() -> float:
    """getrusage's ru_maxrss (KiB on Linux) in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------- threads and children


def child_environment(threads: int, extra: dict | None = None) -> tuple[dict, list[str]]:
    """Environment for a child that must use ``threads`` BLAS/OpenMP threads.

    Returns (env, notes): notes say which OpenBLAS overrides were dropped."""
    env = dict(os.environ)
    for name in THREAD_VARIABLES:
        env[name] = str(threads)
    notes = []
    present = [name for name in OPENBLAS_OVERRIDES if name in env]
    if present:
        for name in OPENBLAS_OVERRIDES:
            env.pop(name, None)
        notes.append(f"unset {', '.join(present)} in child processes (they slow numpy's OpenBLAS)")
    env.update(extra or {})
    return env, notes


def run_child(module: str, args: list[str], threads: int, extra_env: dict | None = None,
              timeout: float = 900) -> dict:
    """Run ``python -m module args`` in a fresh process with ``threads`` threads and
    return the JSON object it prints on its last stdout line (or an error record)."""
    env, _ = child_environment(threads, extra_env)
    cmd = [sys.executable, "-m", module, *args]
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout,
                              cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s: {' '.join(cmd)}"}
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0 or not lines:
        return {"error": f"exit code {done.returncode}: {done.stderr.strip()[-2000:]}"}
    return json.loads(lines[-1])


def import_torch():
    """torch if it is installed, else None (PyTorch is never a dependency)."""
    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    return torch


# --------------------------------------------------------------------------- machine


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def blas_info() -> list[dict]:
    """What threadpoolctl sees (BLAS library, version, threads), if it is installed;
    otherwise numpy's build configuration of BLAS."""
    if importlib.util.find_spec("threadpoolctl") is not None:
        from threadpoolctl import threadpool_info

        return [{k: info.get(k) for k in ("internal_api", "version", "num_threads", "architecture",
                                          "filepath")} for info in threadpool_info()]
    import numpy as np

    try:
        config = np.show_config(mode="dicts")
        return [{"build_blas": config.get("Build Dependencies", {}).get("blas", {})}]
    except TypeError:  # older numpy without mode=
        return [{"build_blas": "unknown (install threadpoolctl for details)"}]


def code_version() -> dict:
    """The commit measured, and whether minigrad/ or transformer/ had uncommitted edits."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return None

    return {"commit": git("rev-parse", "HEAD"),
            "uncommitted_changes": git("status", "--porcelain", "--", "minigrad", "transformer")}


def machine_info() -> dict:
    import numpy as np

    try:
        torch_version = metadata.version("torch")  # without importing it into this process
    except metadata.PackageNotFoundError:
        torch_version = None
    return {
        "cpu_model": cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": np.__version__,
        "blas": blas_info(),
        "torch": torch_version,
        "openblas_overrides_in_parent": {k: os.environ[k] for k in OPENBLAS_OVERRIDES if k in os.environ},
        "code": code_version(),
        "load_average_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }

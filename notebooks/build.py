"""Regenerate the notebooks: each ``NN_name.py`` (jupytext percent format, the source of
truth) becomes ``NN_name.ipynb``, executed top to bottom with its outputs and figures.

    python notebooks/build.py                  # all notebooks, full sizes (what is committed)
    python notebooks/build.py 02 04            # only the notebooks whose names start so
    python notebooks/build.py --quick          # small sizes (NOTEBOOK_QUICK=1), still asserting every claim
    python notebooks/build.py --check          # fail if a committed .ipynb differs from its .py source

The kernel runs with OPENBLAS_NUM_THREADS=1 and in the notebooks folder, so a notebook
reads and writes files next to itself.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
TIMEOUT = 600  # seconds per cell


def sources(prefixes=()) -> list[Path]:
    """The notebook sources NN_name.py, in order, optionally only those starting with a prefix."""
    found = sorted(p for p in HERE.glob("[0-9][0-9]_*.py"))
    return [p for p in found if not prefixes or any(p.name.startswith(x) for x in prefixes)]


def read_source(path: Path) -> nbformat.NotebookNode:
    """The .py source as a notebook without outputs, with the kernel named."""
    nb = jupytext.read(path)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata.pop("jupytext", None)
    return nb


def execute(nb: nbformat.NotebookNode, quick: bool) -> nbformat.NotebookNode:
    """Run every cell in a fresh kernel; raises nbclient's CellExecutionError on the first failure."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", MPLBACKEND="module://matplotlib_inline.backend_inline")
    env["NOTEBOOK_QUICK"] = "1" if quick else "0"
    root = str(HERE.parent)
    env["PYTHONPATH"] = root + os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else root
    client = NotebookClient(nb, timeout=TIMEOUT, kernel_name="python3", record_timing=False,
                            resources={"metadata": {"path": str(HERE)}})
    client.execute(env=env)  # passed on to the kernel manager's start_kernel
    return nb


def kernel_cpu_seconds() -> float:
    """CPU time (user + system) of the finished child processes: the kernels run so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cell_sources(nb) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


def check(paths: list[Path]) -> list[str]:
    """Problems: a .ipynb missing, or whose cells differ from its .py source, or without outputs."""
    problems = []
    for py in paths:
        ipynb = py.with_suffix(".ipynb")
        if not ipynb.exists():
            problems.append(f"{ipynb.name} is missing: run python notebooks/build.py {py.name[:2]}")
            continue
        committed = nbformat.read(ipynb, as_version=4)
        if cell_sources(committed) != cell_sources(read_source(py)):
            problems.append(f"{ipynb.name} differs from {py.name}: run python notebooks/build.py {py.name[:2]}")
        elif not any(c.get("outputs") for c in committed.cells if c.cell_type == "code"):
            problems.append(f"{ipynb.name} has no outputs: run python notebooks/build.py {py.name[:2]}")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("prefixes", nargs="*", help="build only notebooks whose names start with these")
    parser.add_argument("--quick", action="store_true", help="small sizes; write nothing, just run")
    parser.add_argument("--check", action="store_true", help="check the .ipynb files match their sources")
    args = parser.parse_args(argv)
    paths = sources(args.prefixes)
    if not paths:
        print(f"no notebook matches {args.prefixes}", file=sys.stderr)
        return 1
    if args.check:
        problems = check(paths)
        print("\n".join(problems) or f"{len(paths)} notebooks match their sources")
        return 1 if problems else 0
    for py in paths:
        start, cpu_start = time.perf_counter(), kernel_cpu_seconds()
        nb = execute(read_source(py), quick=args.quick)
        seconds, cpu = time.perf_counter() - start, kernel_cpu_seconds() - cpu_start
        if not args.quick:
            out = py.with_suffix(".ipynb")
            tmp = out.with_suffix(".ipynb.tmp")
            nbformat.write(nb, tmp)
            os.replace(tmp, out)
        print(f"{py.name}: {seconds:.0f} s, {cpu:.0f} s of kernel CPU"
              + (" (quick)" if args.quick else f" -> {py.with_suffix('.ipynb').name}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

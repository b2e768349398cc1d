"""Per-op overhead: microseconds for forward + backward of one op on a tiny tensor.

    python -m benchmarks.ops_bench [--quick]

For each op and size (1 element, 64×64) one call does: build the output from leaf
tensors that require grad, run backward with a fixed cotangent of the output's shape,
and drop the leaves' gradients.  Three versions of the same math:

* minigrad — ``y = op(x); y.backward(g); x.grad = None``;
* numpy    — the forward and the VJP hand-written with numpy calls and nothing else
             (no graph, no wrappers: the floor a Python engine could reach);
* torch    — as minigrad, with torch tensors (skipped when torch is not installed).

Timing: benchmarks.common.time_per_call (median over repeats, IQR).  Last stdout line:
JSON.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from benchmarks.common import import_torch, time_per_call

SIZES = {"1": (1, 1), "64x64": (64, 64)}
OPS = ("add", "mul", "matmul", "sum", "softmax", "layer_norm", "reshape_transpose")


# --------------------------------------------------------------------------- numpy, by hand


def _np_softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def numpy_case(op, x, y, w, b, g):
    """A function doing op's forward and backward with plain numpy."""
    if op == "add":
        def run():
            out = x + y
            return out, g, g
    elif op == "mul":
        def run():
            out = x * y
            return out, g * y, g * x
    elif op == "matmul":
        def run():
            out = x @ y
            return out, g @ y.T, x.T @ g
    elif op == "sum":
        def run():
            out = x.sum()
            return out, np.broadcast_to(g, x.shape)
    elif op == "softmax":
        def run():
            out = _np_softmax(x)
            return out, out * (g - (g * out).sum(axis=-1, keepdims=True))
    elif op == "layer_norm":
        def run():
            mu = x.mean(axis=-1, keepdims=True)
            c = x - mu
            rstd = 1 / np.sqrt((c * c).mean(axis=-1, keepdims=True) + 1e-5)
            xhat = c * rstd
            out = xhat * w + b
            gh = g * w
            gx = (gh - gh.mean(axis=-1, keepdims=True) - xhat * (gh * xhat).mean(axis=-1, keepdims=True)) * rstd
            return out, gx, (g * xhat).sum(axis=0), g.sum(axis=0)
    elif op == "reshape_transpose":
        def run():
            out = x.reshape(-1, x.shape[0]).T
            return out, g.T.reshape(x.shape)
    return run


# --------------------------------------------------------------------------- minigrad and torch


def forward(lib, op, x, y, w, b):
    """op applied with ``lib`` (the minigrad module or torch)."""
    if op == "add":
        return x + y
    if op == "mul":
        return x * y
    if op == "matmul":
        return x @ y
    if op == "sum":
        return x.sum()
    if op == "softmax":
        return lib.softmax(x, -1) if lib.__name__ == "minigrad" else lib.softmax(x, dim=-1)
    if op == "layer_norm":
        if lib.__name__ == "minigrad":
            return lib.layer_norm(x, w, b, 1e-5)
        return lib.nn.functional.layer_norm(x, x.shape[-1:], w, b, 1e-5)
    if op == "reshape_transpose":
        return x.reshape(-1, x.shape[0]).T
    raise ValueError(op)


def graph_case(lib, op, arrays, cotangent_of):
    """A function doing forward + backward with an autograd library on fresh leaves."""
    x, y, w, b = arrays
    leaves = (x, y, w, b)
    g = cotangent_of(forward(lib, op, x, y, w, b))

    def run():
        out = forward(lib, op, x, y, w, b)
        out.backward(g)
        for t in leaves:
            t.grad = None

    return run


def inputs(shape, rng):
    """x, y (shape), w, b (last axis), all float32."""
    x, y = (rng.standard_normal(shape).astype(np.float32) for _ in range(2))
    w, b = (rng.standard_normal(shape[-1:]).astype(np.float32) for _ in range(2))
    return x, y, w, b


def bench(quick: bool = False) -> dict:
    import minigrad as mg

    torch = import_torch()
    min_time, repeats = (0.01, 5) if quick else (0.03, 9)
    rng = np.random.default_rng(0)
    results = []
    for size_name, shape in SIZES.items():
        x, y, w, b = inputs(shape, rng)
        for op in OPS:
            out_shape = forward(mg, op, *(mg.tensor(a) for a in (x, y, w, b))).shape
            g = np.asarray(rng.standard_normal(out_shape), dtype=np.float32)
            row = {"op": op, "size": size_name}
            row["numpy_us"] = time_per_call(numpy_case(op, x, y, w, b, g), min_time=min_time, repeats=repeats,
                                            unit=1e6)
            mg_arrays = [mg.tensor(a, requires_grad=True) for a in (x, y, w, b)]
            row["minigrad_us"] = time_per_call(graph_case(mg, op, mg_arrays, lambda out: mg.tensor(g)),
                                               min_time=min_time, repeats=repeats, unit=1e6)
            if torch is not None:
                t_arrays = [torch.tensor(a, requires_grad=True) for a in (x, y, w, b)]
                row["torch_us"] = time_per_call(graph_case(torch, op, t_arrays, lambda out: torch.from_numpy(g)),
                                                min_time=min_time, repeats=repeats, unit=1e6)
            results.append(row)
    return {"torch_available": torch is not None, "rows": results}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (BLAS threads come "
                        "from the environment the parent sets)")
    args = parser.parse_args(argv)
    torch = import_torch()
    if torch is not None:
        torch.set_num_threads(args.threads)
    print(json.dumps(bench(args.quick)))


if __name__ == "__main__":
    main()

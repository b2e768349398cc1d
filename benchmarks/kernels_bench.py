"""Kernels: forward + backward time of the Transformer's heavy ops at the three
configurations' sizes, minigrad vs PyTorch.

    python -m benchmarks.kernels_bench [--quick]

One call = forward on leaves that require grad, backward with a fixed random cotangent
(a scalar 1 for cross_entropy), then drop the gradients.  Kernels and shapes:

* matmul (batched)  (B·H, T, d_k) @ (B·H, d_k, T)  — the attention scores
* linear matmul     (B·T, d) @ (d, d_ff)           — the first FFN matmul
* softmax           (B, H, T, T) over the last axis
* layer_norm        (B, T, d) with weight and bias
* cross_entropy     (B·T, V) logits, label smoothing 0.1, ignore_index 0 (some targets PAD)
* attention         multi-head self-attention module (4 projections, padding mask) on (B, T, d):
                    transformer.attention.MultiHeadAttention vs benchmarks.torch_twin's

Shapes come from the tiny, small and base configs.  Timing: time_per_call (median, IQR).
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from benchmarks.common import import_torch, time_per_call
from benchmarks.configs import CONFIGS, PAD


def shapes(c):
    B, T, d, H, f, V = c.batch, c.length, c.d_model, c.n_heads, c.d_ff, c.vocab
    return {
        "matmul_batched": ((B * H, T, d // H), (B * H, d // H, T)),
        "matmul_linear": ((B * T, d), (d, f)),
        "softmax": ((B, H, T, T),),
        "layer_norm": ((B, T, d),),
        "cross_entropy": ((B * T, V),),
        "attention": ((B, T, d),),
    }


def make_arrays(kernel, shape_args, c, rng):
    """Float32 inputs, and int targets / masks where the kernel needs them."""
    arrays = [rng.standard_normal(s).astype(np.float32) for s in shape_args]
    if kernel == "layer_norm":
        d = shape_args[0][-1]
        arrays += [np.ones(d, np.float32), np.zeros(d, np.float32)]
    extra = {}
    if kernel == "cross_entropy":
        n, v = shape_args[0]
        targets = rng.integers(1, v, size=n)
        targets[rng.random(n) < 0.2] = PAD
        extra["targets"] = targets
    if kernel == "attention":
        b, t, _ = shape_args[0]
        mask = np.ones((b, 1, 1, t), dtype=bool)
        mask[: b // 2, ..., t // 2:] = False  # half the rows padded to half length
        extra["mask"] = mask
    return arrays, extra


def minigrad_case(kernel, arrays, extra, c, g):
    import minigrad as mg
    from transformer.attention import MultiHeadAttention

    leaves = [mg.tensor(a, requires_grad=True) for a in arrays]
    if kernel == "attention":
        module = MultiHeadAttention(c.d_model, c.n_heads, rng=np.random.default_rng(0))
        leaves += list(module.parameters())
    cotangent = mg.tensor(g) if g is not None else None

    def forward():
        x = leaves[0]
        if kernel.startswith("matmul"):
            return x @ leaves[1]
        if kernel == "softmax":
            return mg.softmax(x, -1)
        if kernel == "layer_norm":
            return mg.layer_norm(x, leaves[1], leaves[2], 1e-5)
        if kernel == "cross_entropy":
            return mg.cross_entropy(x, extra["targets"], ignore_index=PAD, label_smoothing=0.1)
        return module(x, x, x, extra["mask"])

    def run():
        forward().backward(cotangent)
        for t in leaves:
            t.grad = None

    return run


def torch_case(torch, kernel, arrays, extra, c, g):
    from benchmarks.torch_twin import MultiHeadAttention

    F = torch.nn.functional
    leaves = [torch.tensor(a, requires_grad=True) for a in arrays]
    if kernel == "attention":
        module = MultiHeadAttention(c.d_model, c.n_heads)
        leaves += list(module.parameters())
        mask = torch.from_numpy(extra["mask"])
    targets = torch.from_numpy(extra["targets"]) if "targets" in extra else None
    cotangent = torch.from_numpy(g) if g is not None else None

    def forward():
        x = leaves[0]
        if kernel.startswith("matmul"):
            return x @ leaves[1]
        if kernel == "softmax":
            return torch.softmax(x, dim=-1)
        if kernel == "layer_norm":
            return F.layer_norm(x, x.shape[-1:], leaves[1], leaves[2], 1e-5)
        if kernel == "cross_entropy":
            return F.cross_entropy(x, targets, ignore_index=PAD, label_smoothing=0.1)
        return module(x, x, x, mask)

    def run():
        forward().backward(cotangent)
        for t in leaves:
            t.grad = None

    return run


def output_shape(kernel, shape_args):
    if kernel.startswith("matmul"):
        a, b = shape_args
        return a[:-1] + b[-1:]
    if kernel == "cross_entropy":
        return None  # scalar loss: backward() with the default 1
    return shape_args[0]


def bench(quick: bool = False, configs=("tiny", "small", "base")) -> dict:
    torch = import_torch()
    min_time, repeats = (0.02, 3) if quick else (0.05, 7)
    rng = np.random.default_rng(0)
    rows = []
    for name in configs:
        c = CONFIGS[name]
        for kernel, shape_args in shapes(c).items():
            arrays, extra = make_arrays(kernel, shape_args, c, rng)
            out = output_shape(kernel, shape_args)
            g = None if out is None else rng.standard_normal(out).astype(np.float32)
            row = {"kernel": kernel, "config": name, "shapes": [list(s) for s in shape_args]}
            row["minigrad_ms"] = time_per_call(minigrad_case(kernel, arrays, extra, c, g),
                                               min_time=min_time, repeats=repeats, unit=1e3)
            if torch is not None:
                row["torch_ms"] = time_per_call(torch_case(torch, kernel, arrays, extra, c, g),
                                                min_time=min_time, repeats=repeats, unit=1e3)
            rows.append(row)
    return {"torch_available": torch is not None, "rows": rows}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--configs", nargs="+", default=["tiny", "small", "base"], choices=sorted(CONFIGS))
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (BLAS threads come "
                        "from the environment the parent sets)")
    args = parser.parse_args(argv)
    torch = import_torch()
    if torch is not None:
        torch.set_num_threads(args.threads)
    print(json.dumps(bench(args.quick, args.configs)))


if __name__ == "__main__":
    main()

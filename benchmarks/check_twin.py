"""Is the PyTorch twin really the same model?  Copy a minigrad Transformer's weights
into benchmarks.torch_twin, run one forward + backward on the benchmark batch in both,
and compare the loss and every parameter gradient.

    python -m benchmarks.check_twin --config tiny [--float64]

Prints one JSON line: loss of each, |loss difference|, and the largest relative
gradient difference max|g_torch - g_minigrad| / max(max|g_torch|, 1e-3·largest gradient)
over parameters.  The timing comparison is only meaningful when these are at float32
round-off level.  ``--float64`` runs both models in float64, where round-off can no
longer hide a real difference: at base the float32 gap of 4.5e-3 (in an FFN weight)
shrinks to 3e-14, so it is round-off, not a difference in the math.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from benchmarks import torch_twin
from benchmarks.configs import CONFIGS, make_batch
from benchmarks.train_bench import build_minigrad_model
from transformer.interop import linear_weight_names


def compare(config_name: str, float64: bool = False) -> dict:
    c = CONFIGS[config_name]
    src, tgt_in, tgt_out = make_batch(c)
    from transformer.loss import sequence_loss

    model = build_minigrad_model(c)  # exactly the model the benchmark times
    twin = torch_twin.TorchTransformer(c)
    torch_twin.load_minigrad_weights(twin, model)
    if float64:
        for p in model.parameters():
            p.data = p.data.astype(np.float64)
        twin.double()
    loss = sequence_loss(model(src, tgt_in), tgt_out, label_smoothing=0.1)
    loss.backward()
    torch_loss = torch_twin.sequence_loss(twin(*(torch.from_numpy(a) for a in (src, tgt_in))),
                                          torch.from_numpy(tgt_out))
    torch_loss.backward()

    ours = dict(model.named_parameters())
    linear = linear_weight_names(model)
    largest = max(float(p.grad.abs().max()) for p in twin.parameters())
    worst, worst_name = 0.0, None
    for name, p in twin.named_parameters():
        g_torch = p.grad.numpy()
        g_ours = ours[name].grad.data.T if name in linear else ours[name].grad.data
        # The key bias gets a gradient that is zero in exact math (softmax ignores a shift
        # shared by all keys), so its own scale is round-off; floor the scale at 1e-3 of
        # the largest gradient of the model.
        scale = max(float(np.abs(g_torch).max()), 1e-3 * largest)
        diff = float(np.abs(g_torch - g_ours).max()) / scale
        if diff > worst:
            worst, worst_name = diff, name
    return {"config": c.name, "dtype": str(loss.dtype),
            "loss_minigrad": float(loss.item()), "loss_torch": float(torch_loss.item()),
            "loss_abs_diff": abs(float(loss.item()) - float(torch_loss.item())),
            "max_rel_grad_diff": worst, "worst_parameter": worst_name}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="tiny")
    parser.add_argument("--float64", action="store_true", help="run both models in float64")
    args = parser.parse_args(argv)
    print(json.dumps(compare(args.config, args.float64)))


if __name__ == "__main__":
    main()

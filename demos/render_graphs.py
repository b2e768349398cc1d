"""Render computation graphs into SVG files, and print how big they are.

    python demos/render_graphs.py                   # everything, into demos/out/
    python demos/render_graphs.py --only neuron --out docs/img   # the README picture

Each demo is a function ``(out_dir) -> None`` listed in DEMOS: the neuron, softmax fused
against composed, one attention head, and the whole (tiny, untrained) Transformer with its
loss at depth 1 and 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import minigrad as mg  # noqa: E402
from minigrad import ops, reference  # noqa: E402
from minigrad.tracing import trace  # noqa: E402
from minigrad.viz import render, to_dot  # noqa: E402


def count_nodes(dot) -> dict:
    """Ops, tensors and edges in a Digraph, from the ids to_dot gives them."""
    lines = [line.strip() for line in dot.source.splitlines()]
    return {
        "ops": sum(line.startswith("op") and " [" in line and "->" not in line for line in lines),
        "tensors": sum(line[:1] == "t" and line[1:2].isdigit() and "->" not in line for line in lines),
        "edges": sum("->" in line for line in lines),
    }


def neuron() -> mg.Tensor:
    """micrograd's neuron, o = tanh(w·x + b), with tensors instead of scalars."""
    x = mg.tensor([2.0, 0.0], name="x")
    w = mg.tensor([-3.0, 1.0], requires_grad=True, name="w")
    b = mg.tensor(6.8813735870195432, requires_grad=True, name="b")
    with mg.name_scope("neuron"):
        o = ((x * w).sum() + b).tanh()
    o.name = "o"
    return o


def demo_neuron(out: Path):
    """The forward graph of one neuron with values, gradients and backward step numbers."""
    o = neuron()
    with trace() as steps:
        o.backward(retain_graph=True)
    print(steps)
    path = render(o, out / "neuron.svg", show_data=True, show_grad=True, trace=steps,
                  title="o = tanh(w·x + b)")
    print(f"neuron: {count_nodes(to_dot(o))} -> {path}")


def demo_neuron_backward(out: Path):
    """The same neuron, drawn as its backward pass: one VJP node per op."""
    o = neuron()
    with trace() as steps:
        o.backward(retain_graph=True)
    path = render(o, out / "neuron_backward.svg", backward=True, show_grad=True, trace=steps)
    print(f"neuron, backward view: {count_nodes(to_dot(o, backward=True))} -> {path}")


def demo_softmax(out: Path):
    """Backward graphs of softmax: one fused op (ops.softmax) against the composed
    version built from exp, max, sum and div (minigrad.reference.softmax)."""
    rng = np.random.default_rng(0)
    cotangent = mg.tensor(rng.standard_normal((2, 5)).astype(np.float32), name="cotangent")
    for label, softmax in (("fused", ops.softmax), ("composed", reference.softmax)):
        x = mg.tensor(rng.standard_normal((2, 5)).astype(np.float32), requires_grad=True, name="x")
        with mg.name_scope(f"{label} softmax"):
            y = softmax(x, -1)
        loss = (y * cotangent).sum()
        loss.name = "loss"
        with trace() as steps:
            loss.backward(retain_graph=True)
        path = render(loss, out / f"softmax_{label}_backward.svg", backward=True, trace=steps,
                      title=f"backward of softmax, {label}")
        print(f"softmax {label}: {count_nodes(to_dot(y))['ops']} op(s) alone; with the loss's mul and sum, "
              f"forward {count_nodes(to_dot(loss))}, backward "
              f"{count_nodes(to_dot(loss, backward=True))}, {len(steps)} VJP steps -> {path}")


def demo_attention_head(out: Path):
    """One head of self-attention over 4 positions of width 8: the projections, the
    scaled scores, the masked softmax and the weighted sum of the values."""
    from transformer.attention import MultiHeadAttention, causal_mask

    rng = np.random.default_rng(0)
    attention = MultiHeadAttention(d_model=8, n_heads=1, rng=rng)
    x = mg.tensor(rng.standard_normal((1, 4, 8)).astype(np.float32), name="x")
    y = attention(x, x, x, causal_mask(4))
    y.name = "y"
    path = render(y, out / "attention_head.svg", title="one attention head (causal mask)")
    print(f"attention head: {count_nodes(to_dot(y))} -> {path}")


def demo_model(out: Path):
    """The tiny Transformer's forward pass and loss on a batch of 2 dates, collapsed to
    depth 1 (encoder, decoder, embeddings as boxes) and depth 2 (layers as boxes, folded)."""
    from transformer.inspection import model_loss
    from transformer.model import Transformer, TransformerConfig
    from transformer.tasks import tokenizer_for

    tokenizer = tokenizer_for("dates")
    model = Transformer(TransformerConfig.tiny(tokenizer.vocab_size, tokenizer.vocab_size))
    loss = model_loss(model, tokenizer, "dates")
    print(f"model: {count_nodes(to_dot(loss))} in full")
    for depth in (1, 2):
        path = render(loss, out / f"model_depth{depth}.svg", depth=depth, fold_repeats=True,
                      title=f"Transformer forward + loss, depth {depth}")
        print(f"model at depth {depth}: {count_nodes(to_dot(loss, depth=depth, fold_repeats=True))} -> {path}")


DEMOS = {
    "neuron": demo_neuron,
    "neuron_backward": demo_neuron_backward,
    "softmax": demo_softmax,
    "attention_head": demo_attention_head,
    "model": demo_model,
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out",
                        help="folder for the SVG files (default: demos/out/)")
    parser.add_argument("--only", choices=sorted(DEMOS), action="append",
                        help="run only this demo (repeatable)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.only or DEMOS:
        DEMOS[name](args.out)


if __name__ == "__main__":
    main()

"""A short tour of minigrad's autograd: from one neuron to a matrix product.

    python demos/autograd_tour.py            # prints the backward traces, writes SVGs to demos/out/

Each stop builds a small computation, runs ``backward()`` under ``minigrad.trace()`` so
every VJP step is printed (op, shapes, gradient norms), checks the gradient against a
formula, and draws the graph.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import minigrad as mg  # noqa: E402
from minigrad.viz import render  # noqa: E402


def rounded(values):
    """Values as a list of floats rounded to 6 digits: float32 noise (1.0000003576...) hidden."""
    return np.round(np.asarray(values, dtype=np.float64), 6).tolist()


def draw(root, path: Path, **options):
    """Render the graph to ``path`` if Graphviz's dot is installed; else say why not."""
    if shutil.which("dot") is None:
        print("-> no picture: Graphviz's dot program is not installed (apt-get install graphviz, "
              "or brew install graphviz)")
    else:
        print("->", render(root, path, **options))


def stop_neuron(out: Path):
    """o = tanh(w·x + b): the derivative of tanh is 1 - o², so ∂o/∂w = (1 - o²)·x."""
    x = mg.tensor([2.0, 0.0], name="x")
    w = mg.tensor([-3.0, 1.0], requires_grad=True, name="w")
    b = mg.tensor(6.8813735870195432, requires_grad=True, name="b")
    o = ((x * w).sum() + b).tanh()
    o.name = "o"
    with mg.trace() as steps:
        o.backward(retain_graph=True)
    print(steps)
    print(f"∂o/∂w = {rounded(w.grad.data)}  (formula (1 - o²)·x = {rounded((1 - o.item() ** 2) * x.data)})")
    draw(o, out / "tour_neuron.svg", show_data=True, show_grad=True, trace=steps)


def stop_vector(out: Path):
    """A layer of neurons: y = tanh(W x + b) for a vector x; the loss sums y²."""
    rng = np.random.default_rng(0)
    x = mg.tensor(rng.standard_normal(3), name="x")
    W = mg.tensor(rng.standard_normal((4, 3)), requires_grad=True, name="W")
    b = mg.tensor(np.zeros(4), requires_grad=True, name="b")
    y = (W @ x + b).tanh()
    loss = (y * y).sum()
    loss.name = "loss"
    with mg.trace() as steps:
        loss.backward(retain_graph=True)
    print(steps)
    expected = np.outer(2 * y.data * (1 - y.data ** 2), x.data)  # ∂loss/∂W = (2y ⊙ (1 - y²)) xᵀ
    print(f"∂loss/∂W matches the formula: {np.allclose(W.grad.data, expected)}")
    draw(loss, out / "tour_layer.svg", show_grad=True, trace=steps)


def stop_matmul(out: Path):
    """A batch through two layers, Y = relu(X W₁) W₂: the VJPs of a matrix product are
    ∂L/∂X = G Wᵀ and ∂L/∂W = Xᵀ G, one matmul each."""
    rng = np.random.default_rng(1)
    X = mg.tensor(rng.standard_normal((5, 3)), name="X")
    W1 = mg.tensor(rng.standard_normal((3, 8)), requires_grad=True, name="W1")
    W2 = mg.tensor(rng.standard_normal((8, 2)), requires_grad=True, name="W2")
    with mg.name_scope("layer1"):
        H = (X @ W1).relu()
    with mg.name_scope("layer2"):
        Y = H @ W2
    loss = (Y * Y).mean()
    loss.name = "loss"
    with mg.trace() as steps:
        loss.backward(retain_graph=True)
    print(steps)
    G = 2 * Y.data / Y.data.size  # ∂loss/∂Y
    print(f"∂loss/∂W2 = Hᵀ G: {np.allclose(W2.grad.data, H.data.T @ G)}")
    draw(loss, out / "tour_matmul.svg", show_grad=True, trace=steps)


def heading(stop) -> str:
    """The first paragraph of a stop's docstring, on one line."""
    return " ".join(stop.__doc__.split("\n\n")[0].split())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out",
                        help="folder for the SVG files (default: demos/out/)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for stop in (stop_neuron, stop_vector, stop_matmul):
        print(f"\n== {heading(stop)}")
        stop(args.out)


if __name__ == "__main__":
    main()

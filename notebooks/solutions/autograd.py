"""Notebook 0 · Autograd from scratch."""

import numpy as np


def sigmoid_rule(g, out):
    """σ'(x) = σ(x)(1 − σ(x)), and out = σ(x):  x̄ = ḡ·out·(1 − out)."""
    return g * out * (1 - out)


def unbroadcast(grad, shape):
    """Sum the axes broadcasting added (leading ones) or stretched (size 1 in ``shape``)."""
    grad = np.asarray(grad)
    extra = grad.ndim - len(shape)
    grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(axis=stretched, keepdims=True)

"""Notebook 4 · Residual connections and layer normalization."""

import numpy as np


def layer_norm_backward(x, g, eps):
    """x̂ = (x − μ)·r with r = 1/√(σ² + ε):  x̄ = r·(ḡ − mean(ḡ) − x̂·mean(ḡ·x̂)), per row."""
    centred = x - x.mean(-1, keepdims=True)
    r = 1 / np.sqrt((centred ** 2).mean(-1, keepdims=True) + eps)
    x_hat = centred * r
    return r * (g - g.mean(-1, keepdims=True) - x_hat * (g * x_hat).mean(-1, keepdims=True))


def pre_norm_block(x, sublayer, norm):
    """The sublayer sees a normalized input; its output is an update added to x itself."""
    return x + sublayer(norm(x))

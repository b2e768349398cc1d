"""Composed versions of the fused primitives, built only from elementary ops.

They compute the same functions as ``ops.softmax``, ``ops.log_softmax`` and
``ops.layer_norm`` but record many small nodes instead of one; the tests check that
values and gradients agree, and the graph renderer shows the difference in size.
"""

from minigrad import ops


def softmax(x, axis=-1):
    """e^(x - max) / Σ e^(x - max). The max is a constant shift (softmax ignores shifts),
    so it is detached rather than differentiated."""
    e = ops.exp(x - ops.max(x, axis, keepdims=True).detach())
    return e / ops.sum(e, axis, keepdims=True)


def log_softmax(x, axis=-1):
    """(x - max) - log Σ e^(x - max)."""
    shifted = x - ops.max(x, axis, keepdims=True).detach()
    return shifted - ops.log(ops.sum(ops.exp(shifted), axis, keepdims=True))


def layer_norm(x, weight=None, bias=None, eps=1e-5):
    """(x - mean) / √(var + eps) · weight + bias over the last axis (biased variance)."""
    centered = x - ops.mean(x, -1, keepdims=True)
    y = centered / ops.sqrt(ops.mean(centered * centered, -1, keepdims=True) + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y

"""Initializers: fill a Parameter in place and return it.

Random ones take an explicit ``rng`` (a numpy Generator), so a model built from the
same seed is bitwise identical.  Samples are drawn in float64 and then cast to the
parameter's dtype, so float32 and float64 models see the same draws.
"""

from __future__ import annotations

import math

import numpy as np

from minigrad.autograd import no_grad


def _fill(param, values):
    """Write ``values`` (an array of the parameter's shape, or one number) into ``param``."""
    with no_grad():  # parameters require grad; in-place writes must not be recorded
        if np.ndim(values) == 0:
            param.fill_(values)
        else:
            param.copy_(values)
    return param


def _fans(param, initializer):
    """(fan_in, fan_out) of a weight: its first two axes.  For a Linear weight stored
    (in_features, out_features) that is (in, out); Xavier uses only their sum."""
    if param.ndim < 2:
        raise ValueError(f"{initializer}: needs a weight with at least 2 axes to compute fan-in "
                         f"and fan-out, got shape {param.shape}")
    receptive = math.prod(param.shape[2:])
    return param.shape[0] * receptive, param.shape[1] * receptive


def uniform_(param, low=0.0, high=1.0, *, rng: np.random.Generator):
    """Samples from U(low, high)."""
    return _fill(param, rng.uniform(low, high, param.shape))


def normal_(param, mean=0.0, std=1.0, *, rng: np.random.Generator):
    """Samples from N(mean, std²)."""
    return _fill(param, rng.normal(mean, std, param.shape))


def xavier_uniform_(param, gain=1.0, *, rng: np.random.Generator):
    """Glorot & Bengio (2010): U(-a, a) with a = gain·√(6 / (fan_in + fan_out)), which
    keeps activation and gradient variance roughly constant through tanh/linear layers."""
    fan_in, fan_out = _fans(param, "xavier_uniform_")
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return _fill(param, rng.uniform(-bound, bound, param.shape))


def xavier_normal_(param, gain=1.0, *, rng: np.random.Generator):
    """Glorot normal: N(0, σ²) with σ = gain·√(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(param, "xavier_normal_")
    return _fill(param, rng.normal(0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), param.shape))


glorot_uniform_ = xavier_uniform_
glorot_normal_ = xavier_normal_


def zeros_(param):
    return _fill(param, 0)


def ones_(param):
    return _fill(param, 1)

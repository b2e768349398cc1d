"""Hypothesis strategies and a one-line helper for property-based gradient tests.

    from hypothesis import given
    from minigrad.testing import arrays, check_grad

    @given(arrays())
    def test_my_function(x):
        check_grad(lambda t: (t * t).tanh().sum(), x)

Values come from a grid (multiples of 1/64 by default): far from subnormals, exactly
representable, and never closer together than finite differences can resolve, so ties
and kinks are either exact (and can be shifted away) or comfortably far.
"""

from __future__ import annotations

import contextlib

import numpy as np
from hypothesis import reject
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minigrad.gradcheck import KinkError, gradcheck, gradgradcheck
from minigrad.tensor import Tensor

GRID = 64  # values are multiples of 1/GRID


def shapes(min_dims=0, max_dims=3, min_side=1, max_side=4):
    """Array shapes, e.g. (), (3,), (2, 1, 4)."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=4):
    """Tuples of shapes that broadcast together, e.g. ((3, 1), (4,))."""
    return hnp.mutually_broadcastable_shapes(
        num_shapes=num_shapes, min_dims=min_dims, max_dims=max_dims, max_side=max_side
    ).map(lambda s: s.input_shapes)


def matmul_shapes(max_batch_dims=2, max_side=4):
    """(a_shape, b_shape) valid for ``a @ b`` under numpy's rules: 1-D vectors, matrices,
    and stacks of matrices whose batch axes broadcast."""
    return hnp.mutually_broadcastable_shapes(
        signature=np.matmul.signature, max_dims=max_batch_dims, max_side=max_side
    ).map(lambda s: s.input_shapes)


def arrays(shape=None, low=-2.0, high=2.0, unique=False, dtype=np.float64):
    """Float arrays with values on the 1/GRID grid in [low, high].

    ``unique=True`` makes every element distinct (no ties for max/min/maximum).
    """
    elements = st.integers(int(np.ceil(low * GRID)), int(np.floor(high * GRID))).map(
        lambda i: i / GRID)
    return hnp.arrays(dtype, shapes() if shape is None else shape, elements=elements, unique=unique)


def positive_arrays(shape=None, low=0.25, high=3.0):
    """Arrays inside (0, ∞) for log, sqrt, fractional powers, division."""
    return arrays(shape, low=low, high=high)


def away_from(points, margin=1 / (2 * GRID)):
    """A function that shifts values within ``margin`` of any of ``points`` (kinks such as
    0 for relu and abs, or clip bounds) to a distance of ``margin``.  Shifting keeps
    every drawn example, where filtering would throw many away."""
    points = np.atleast_1d(np.asarray(points, dtype=np.float64))

    def shift(x):
        x = np.array(x, dtype=np.float64)
        for p in points:
            near = np.abs(x - p) < margin
            x[near] = p + np.where(x[near] >= p, margin, -margin)
        return x

    return shift


def cotangents(shape):
    """Non-uniform cotangents: magnitudes in [0.5, 1.5] with random signs."""
    magnitude = st.floats(0.5, 1.5, allow_subnormal=False)
    return hnp.arrays(np.float64, shape, elements=st.one_of(magnitude, magnitude.map(lambda v: -v)))


def check_grad(fn, *inputs, second_order=False, **gradcheck_options):
    """gradcheck ``fn`` at ``inputs`` (numpy arrays become float64 leaves requiring grad;
    Tensors are used as given).  Also gradgradcheck if ``second_order``.  An example
    that lands on a kink is rejected so hypothesis draws another one."""
    tensors = [Tensor(np.asarray(x, dtype=np.float64), requires_grad=True)
               if isinstance(x, np.ndarray) else x for x in inputs]
    with _rejecting_kinks():
        gradcheck(fn, tensors, **gradcheck_options)
        if second_order:
            gradgradcheck(fn, tensors, **gradcheck_options)


@contextlib.contextmanager
def _rejecting_kinks():
    """Inside a hypothesis test, a point where the function has no derivative is not a
    failure of the rules: reject the example so hypothesis draws another."""
    try:
        yield
    except KinkError:
        reject()


@contextlib.contextmanager
def _parameters_replaced(module, names, tensors):
    """Let ``module`` use ``tensors`` in place of its named parameters for a while."""
    owners = dict(module.named_modules())
    slots = []
    for name, tensor in zip(names, tensors):
        prefix, _, attr = name.rpartition(".")
        owner = owners[prefix]
        slots.append((owner, attr, owner.__dict__[attr]))
        owner.__dict__[attr] = tensor  # a plain attribute read in forward() finds it
    try:
        yield
    finally:
        for owner, attr, original in slots:
            owner.__dict__[attr] = original


def module_gradcheck(module, *inputs, **gradcheck_options):
    """gradcheck an ``nn.Module``: its output with respect to its floating-point inputs
    (numpy arrays become float64 leaves) and to every parameter.

    Build the module in float64 (``dtype=np.float64``) for meaningful differences.
    Integer inputs (token ids) and masks are passed through unchanged.  Like
    ``check_grad``, an example at a kink is rejected (use it inside a hypothesis test).
    """
    named = list(module.named_parameters())
    leaves = [Tensor(np.asarray(x, dtype=np.float64), requires_grad=True)
              if isinstance(x, np.ndarray) and x.dtype.kind == "f" else x for x in inputs]
    leaves += [Tensor(np.array(p.data, dtype=np.float64), requires_grad=True, name=name) for name, p in named]
    n = len(inputs)

    def call(*args):
        with _parameters_replaced(module, [name for name, _ in named], args[n:]):
            return module(*args[:n])

    with _rejecting_kinks():
        gradcheck(call, leaves, **gradcheck_options)

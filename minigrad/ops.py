"""The table of rules: every op's forward and its vector-Jacobian products, side by side.

Each op computes its result with numpy and hands it to ``record`` together with one
VJP rule per input.  A rule ``lambda g, out: ...`` maps the gradient ``g`` of the
output ``out`` to the gradient of that input.  Rules are written with these same ops,
so they are differentiable themselves (``create_graph=True`` gives grad-of-grad).

A rule may return a gradient in the *broadcast* shape; the engine sums it back to the
input's shape in one place (``sum_to``).  To add an op, copy one that looks like it.
In the docstrings ``ḡ`` is the output gradient and ``x̄`` the input gradient.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from minigrad.autograd import is_grad_enabled, record
from minigrad.tensor import Tensor


def _lift(x, like=None) -> Tensor:
    """Make ``x`` a Tensor. Python scalars take the dtype of ``like`` so that
    ``float32_tensor * 2.0`` stays float32; numpy arrays keep their own dtype."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, numbers.Number) and like is not None and like.dtype.kind == "f":
        return Tensor._wrap(np.asarray(x, dtype=like.dtype))
    if isinstance(x, (np.ndarray, np.generic)):
        return Tensor._wrap(np.asarray(x))
    return Tensor(x)


def _pair(a, b):
    if not isinstance(a, Tensor):
        a = _lift(a, b)
    if not isinstance(b, Tensor):
        b = _lift(b, a)
    return a, b


def _broadcast_error(op, a, b):
    return ValueError(f"{op}: shapes {a.shape} and {b.shape} cannot be broadcast together")


def _axes(axis, ndim, op):
    """Normalize ``axis`` (None, int or tuple) to a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"{op}: axis {a} is out of range for a tensor with {ndim} dimension(s)")
    return tuple(sorted(a % ndim for a in axes))


def _check_nonempty(op, x, axes):
    """A max, min, mean, variance or softmax over no elements has no value: say so."""
    for a in axes:
        if x.shape[a] == 0:
            raise ValueError(f"{op}: axis {a} of shape {x.shape} is empty; {op} over no elements is undefined")


def _keepdims(g, shape, axes):
    """Reinsert the reduced ``axes`` into ``g`` as size-1 axes, ready to broadcast."""
    return reshape(g, tuple(1 if i in axes else n for i, n in enumerate(shape)))


def _sum(data, axes, keepdims=False):
    """``np.sum(data, axis=axes, keepdims=keepdims)``, faster for the common cases.

    When the summed axes are the trailing ones (a row sum, as in softmax and layer_norm)
    or the leading ones (a bias gradient) of a contiguous float array, the sum is a
    matrix-vector product with a vector of ones.  BLAS does that 2-4x faster than
    numpy's pairwise reduction over short rows.  (Capped at 65,536 terms per sum,
    beyond which pairwise summation's smaller rounding error is worth its cost.)
    """
    k, nd = len(axes), data.ndim
    if data.dtype.kind == "f" and 0 < k and data.size and data.flags.c_contiguous:
        kept = (1,) * k if keepdims else ()
        if axes == tuple(range(nd - k, nd)):
            terms = math.prod(data.shape[nd - k:])
            if terms <= 65536:
                rows = data.reshape(-1, terms) @ np.ones(terms, dtype=data.dtype)
                return rows.reshape(data.shape[:nd - k] + kept)
        elif axes == tuple(range(k)):
            terms = math.prod(data.shape[:k])
            if terms <= 65536:
                columns = np.ones(terms, dtype=data.dtype) @ data.reshape(terms, -1)
                return columns.reshape(kept + data.shape[k:])
    return np.sum(data, axis=axes, keepdims=keepdims)


def _grad_of_output(g, out):
    return g


def _neg_grad(g, out):
    return -g


# =========================================================================== elementwise


def add(a, b):
    """a + b.   ā = ḡ,  b̄ = ḡ"""
    a, b = _pair(a, b)
    try:
        data = a.data + b.data
    except ValueError:
        raise _broadcast_error("add", a, b) from None
    return record("add", data, (a, b), _grad_of_output, _grad_of_output)


def sub(a, b):
    """a - b.   ā = ḡ,  b̄ = -ḡ"""
    a, b = _pair(a, b)
    try:
        data = a.data - b.data
    except ValueError:
        raise _broadcast_error("sub", a, b) from None
    return record("sub", data, (a, b), _grad_of_output, _neg_grad)


def mul(a, b):
    """a * b.   ā = ḡ·b,  b̄ = ḡ·a"""
    a, b = _pair(a, b)
    try:
        data = a.data * b.data
    except ValueError:
        raise _broadcast_error("mul", a, b) from None
    return record("mul", data, (a, b), lambda g, out: g * b, lambda g, out: g * a)


def div(a, b):
    """a / b.   ā = ḡ / b,  b̄ = -ḡ·a/b² = -ḡ·out / b"""
    a, b = _pair(a, b)
    try:
        data = a.data / b.data
    except ValueError:
        raise _broadcast_error("div", a, b) from None
    return record("div", data, (a, b), lambda g, out: g / b, lambda g, out: -g * out / b)


def pow(a, b):
    """a ** b (b a tensor or a scalar).   ā = ḡ·b·a^(b-1),  b̄ = ḡ·out·ln a"""
    a, b = _pair(a, b)
    try:
        data = a.data ** b.data
    except ValueError:
        raise _broadcast_error("pow", a, b) from None
    return record("pow", data, (a, b),
                  lambda g, out: g * b * a ** (b - 1),
                  lambda g, out: g * out * log(a))


def neg(x):
    """-x.   x̄ = -ḡ"""
    x = _lift(x)
    return record("neg", -x.data, (x,), _neg_grad)


def exp(x):
    """eˣ.   x̄ = ḡ·out"""
    x = _lift(x)
    return record("exp", np.exp(x.data), (x,), lambda g, out: g * out)


def log(x):
    """ln x.   x̄ = ḡ / x"""
    x = _lift(x)
    return record("log", np.log(x.data), (x,), lambda g, out: g / x)


def sqrt(x):
    """√x.   x̄ = ḡ / (2·out)"""
    x = _lift(x)
    return record("sqrt", np.sqrt(x.data), (x,), lambda g, out: g / (out * 2))


def tanh(x):
    """tanh x.   x̄ = ḡ·(1 - out²)"""
    x = _lift(x)
    return record("tanh", np.tanh(x.data), (x,), lambda g, out: g * (1 - out * out))


def sigmoid(x):
    """σ(x) = 1 / (1 + e⁻ˣ).   x̄ = ḡ·out·(1 - out)"""
    x = _lift(x)
    # σ(x) = (1 + tanh(x/2)) / 2 never overflows, unlike 1 / (1 + exp(-x)).
    data = np.tanh(x.data * 0.5)
    data += 1
    data *= 0.5
    return record("sigmoid", data, (x,), lambda g, out: g * out * (1 - out))


def relu(x):
    """max(x, 0).   x̄ = ḡ·[x > 0]  (0 at x = 0, as PyTorch)"""
    x = _lift(x)
    return record("relu", np.maximum(x.data, 0), (x,), lambda g, out: g * (x.data > 0))


_erf = np.vectorize(math.erf, otypes=[np.float64])


def erf(x):
    """erf x = 2/√π ∫₀ˣ e^(-t²) dt.   x̄ = ḡ·2/√π·e^(-x²)"""
    x = _lift(x)
    data = _erf(x.data).astype(x.dtype, copy=False)
    return record("erf", data, (x,), lambda g, out: g * (2 / math.sqrt(math.pi)) * exp(-x * x))


_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)


def gelu(x, approximate="none"):
    """x·Φ(x), Φ the standard normal CDF; ``approximate="tanh"`` uses
    Φ(x) ≈ ½(1 + tanh(√(2/π)(x + 0.044715x³))).   x̄ = ḡ·(Φ(x) + x·Φ'(x))"""
    x = _lift(x)
    if approximate == "none":
        def cdf(v):
            return (erf(v * (1 / math.sqrt(2))) + 1) * 0.5

        def pdf(v):
            return exp(v * v * -0.5) * (1 / math.sqrt(2 * math.pi))
    elif approximate == "tanh":
        def inner(v):
            return (v + v * v * v * 0.044715) * _SQRT_2_OVER_PI

        def cdf(v):
            return (tanh(inner(v)) + 1) * 0.5

        def pdf(v):
            t = tanh(inner(v))
            return (1 - t * t) * (v * v * (3 * 0.044715) + 1) * (0.5 * _SQRT_2_OVER_PI)
    else:
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    data = (x.detach() * cdf(x.detach())).data
    return record("gelu", data, (x,), lambda g, out: g * (cdf(x) + x * pdf(x)))


def abs(x):
    """|x|.   x̄ = ḡ·sign(x)  (0 at x = 0, as PyTorch)"""
    x = _lift(x)
    return record("abs", np.abs(x.data), (x,), lambda g, out: g * np.sign(x.data))


def clip(x, min=None, max=None):
    """x limited to [min, max] (either may be None).   x̄ = ḡ where min ≤ x ≤ max, else 0
    (the bounds themselves pass the gradient, as PyTorch)"""
    x = _lift(x)
    if min is None and max is None:
        raise ValueError("clip: give at least one of min and max")
    lo = -np.inf if min is None else min
    hi = np.inf if max is None else max
    data = np.clip(x.data, lo, hi).astype(x.dtype, copy=False)
    return record("clip", data, (x,), lambda g, out: g * ((x.data >= lo) & (x.data <= hi)))


def _winner(a, b):
    """1 where a beats b, ½ on ties (the gradient is shared), 0 where b wins."""
    return (a > b) + 0.5 * (a == b)


def maximum(a, b):
    """max(a, b) elementwise.   ā = ḡ·[a > b],  b̄ = ḡ·[b > a]  (ties split ½, ½, as torch.maximum)"""
    a, b = _pair(a, b)
    try:
        data = np.maximum(a.data, b.data)
    except ValueError:
        raise _broadcast_error("maximum", a, b) from None
    return record("maximum", data, (a, b),
                  lambda g, out: g * _winner(a.data, b.data).astype(g.dtype),
                  lambda g, out: g * _winner(b.data, a.data).astype(g.dtype))


def minimum(a, b):
    """min(a, b) elementwise.   ā = ḡ·[a < b],  b̄ = ḡ·[b < a]  (ties split ½, ½, as torch.minimum)"""
    a, b = _pair(a, b)
    try:
        data = np.minimum(a.data, b.data)
    except ValueError:
        raise _broadcast_error("minimum", a, b) from None
    return record("minimum", data, (a, b),
                  lambda g, out: g * _winner(b.data, a.data).astype(g.dtype),
                  lambda g, out: g * _winner(a.data, b.data).astype(g.dtype))


def astype(x, dtype):
    """x converted to ``dtype``.   x̄ = ḡ converted back"""
    x = _lift(x)
    return record("astype", x.data.astype(dtype), (x,), lambda g, out: astype(g, x.dtype))


# =========================================================================== reductions


def sum(x, axis=None, keepdims=False):
    """Σ over ``axis``.   x̄ = ḡ broadcast back over the summed axes"""
    x = _lift(x)
    axes = _axes(axis, x.ndim, "sum")
    data = _sum(x.data, axes, keepdims)
    return record("sum", np.asarray(data), (x,), lambda g, out: broadcast_to(
        g if keepdims else _keepdims(g, x.shape, axes), x.shape))


def mean(x, axis=None, keepdims=False):
    """Mean over ``axis``.   x̄ = ḡ / n broadcast back (n = number of averaged elements)"""
    x = _lift(x)
    axes = _axes(axis, x.ndim, "mean")
    _check_nonempty("mean", x, axes)
    n = math.prod(x.shape[a] for a in axes)
    data = _sum(x.data, axes, keepdims) * (1 / n)
    return record("mean", np.asarray(data), (x,), lambda g, out: broadcast_to(
        (g if keepdims else _keepdims(g, x.shape, axes)) * (1 / n), x.shape))


def _extremum(op, x, axis, keepdims):
    x = _lift(x)
    axes = _axes(axis, x.ndim, op)
    _check_nonempty(op, x, axes)
    reduce = np.max if op == "max" else np.min
    kept = reduce(x.data, axis=axes, keepdims=True)

    def vjp(g, out):
        # The gradient goes to the arg-extremum; ties share it equally.
        hits = x.data == kept
        share = hits / hits.sum(axis=axes, keepdims=True)
        return (g if keepdims else _keepdims(g, x.shape, axes)) * share.astype(x.dtype)

    data = kept if keepdims else kept.reshape([n for i, n in enumerate(x.shape) if i not in axes])
    return record(op, data, (x,), vjp)


def max(x, axis=None, keepdims=False):
    """Largest element over ``axis``.   x̄ = ḡ at the maximum; k tied maxima of one reduced
    slice get ḡ/k each, whatever the axes (as torch.amax; torch.max(x, dim) picks one)"""
    return _extremum("max", x, axis, keepdims)


def min(x, axis=None, keepdims=False):
    """Smallest element over ``axis``.   x̄ = ḡ at the minimum; k tied minima of one reduced
    slice get ḡ/k each, whatever the axes (as torch.amin; torch.min(x, dim) picks one)"""
    return _extremum("min", x, axis, keepdims)


def var(x, axis=None, keepdims=False, ddof=0):
    """Variance Σ(x - x̄)² / (n - ddof) over ``axis``.   x̄ = ḡ·2(x - mean)/(n - ddof)"""
    x = _lift(x)
    axes = _axes(axis, x.ndim, "var")
    n = math.prod(x.shape[a] for a in axes)
    if n - ddof <= 0:
        raise ValueError(f"var: {n} element(s) over axes {axes} of shape {x.shape} with ddof={ddof}; "
                         "the variance needs more elements than ddof")
    data = np.var(x.data, axis=axes, keepdims=keepdims, ddof=ddof)
    return record("var", np.asarray(data), (x,), lambda g, out: (
        (g if keepdims else _keepdims(g, x.shape, axes))
        * (x - mean(x, axes, keepdims=True)) * (2 / (n - ddof))))


# =========================================================================== shape


def reshape(x, shape):
    """Same elements, new shape.   x̄ = ḡ reshaped back"""
    x = _lift(x)
    try:
        data = x.data.reshape(shape)
    except (ValueError, TypeError):
        raise ValueError(f"reshape: cannot reshape shape {x.shape} ({x.size} elements) into "
                         f"{shape}") from None
    return record("reshape", data, (x,), lambda g, out: reshape(g, x.shape))


def transpose(x, axes=None):
    """Permute axes (reverse them if ``axes`` is None).   x̄ = ḡ with the inverse permutation"""
    x = _lift(x)
    if axes is None:
        axes = tuple(range(x.ndim))[::-1]
    elif sorted(a % x.ndim for a in axes) != list(range(x.ndim)) or len(axes) != x.ndim:
        raise ValueError(f"transpose: axes {tuple(axes)} are not a permutation of the "
                         f"{x.ndim} axes of shape {x.shape}")
    inverse = tuple(np.argsort([a % x.ndim for a in axes]))
    return record("transpose", x.data.transpose(axes), (x,),
                  lambda g, out: transpose(g, inverse))


def swapaxes(x, axis1, axis2):
    """Exchange two axes.   x̄ = ḡ with the same two axes exchanged"""
    x = _lift(x)
    _axes((axis1, axis2), x.ndim, "swapaxes")
    return record("swapaxes", x.data.swapaxes(axis1, axis2), (x,),
                  lambda g, out: swapaxes(g, axis1, axis2))


def broadcast_to(x, shape):
    """x repeated along new or size-1 axes to ``shape``.   x̄ = ḡ summed back (sum_to)"""
    x = _lift(x)
    shape = tuple(shape)
    if x.shape == shape:
        return x
    try:
        data = np.broadcast_to(x.data, shape)
    except ValueError:
        raise ValueError(f"broadcast_to: cannot broadcast shape {x.shape} to {shape}") from None
    return record("broadcast_to", data, (x,), lambda g, out: sum_to(g, x.shape))


def sum_to(x, shape):
    """Sum a broadcast result back to ``shape`` (undoes broadcasting).   x̄ = ḡ broadcast"""
    x = _lift(x)
    shape = tuple(shape)
    if x.shape == shape:
        return x
    lead = x.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and x.shape[lead + i] != 1)
    data = _sum(x.data, axes, keepdims=True).reshape(shape) if axes else x.data.reshape(shape)
    return record("sum_to", data, (x,), lambda g, out: broadcast_to(g, x.shape))


def squeeze(x, axis=None):
    """Drop size-1 axes (all of them, or ``axis``).   x̄ = ḡ reshaped back"""
    x = _lift(x)
    axes = tuple(i for i, n in enumerate(x.shape) if n == 1) if axis is None \
        else _axes(axis, x.ndim, "squeeze")
    for a in axes:
        if x.shape[a] != 1:
            raise ValueError(f"squeeze: axis {a} of shape {x.shape} has size {x.shape[a]}, not 1")
    data = x.data.reshape([n for i, n in enumerate(x.shape) if i not in axes])
    return record("squeeze", data, (x,), lambda g, out: reshape(g, x.shape))


def unsqueeze(x, axis):
    """Insert a size-1 axis at ``axis``.   x̄ = ḡ reshaped back"""
    x = _lift(x)
    if not -x.ndim - 1 <= axis <= x.ndim:
        raise ValueError(f"unsqueeze: axis {axis} is out of range for shape {x.shape}")
    return record("unsqueeze", np.expand_dims(x.data, axis), (x,),
                  lambda g, out: reshape(g, x.shape))


def _plain_index(index):
    """numpy index from one that may hold Tensors."""
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    return index.data if isinstance(index, Tensor) else index


def _has_integer_array(index):
    parts = index if isinstance(index, tuple) else (index,)
    for p in parts:
        if isinstance(p, (list, np.ndarray)) and np.asarray(p).dtype.kind in "iu":
            return True
    return False


def getitem(x, index):
    """x[index]: basic slicing and integer-array indexing.   x̄ = ḡ scattered back (index_add)"""
    x = _lift(x)
    index = _plain_index(index)
    try:
        data = x.data[index]
    except IndexError as e:
        raise IndexError(f"getitem: index {index!r} is invalid for shape {x.shape}: {e}") from None
    return record("getitem", np.asarray(data), (x,),
                  lambda g, out: index_add(g, x.shape, index))


def index_add(g, shape, index):
    """zeros(shape) with ``g`` added at ``index``; repeated indices add up.
    The VJP of getitem.   ḡ' = x̄'[index]"""
    g = _lift(g)
    data = np.zeros(shape, dtype=g.dtype)
    if _has_integer_array(index):
        np.add.at(data, index, g.data)  # accumulates repeated indices, unlike data[index] += g
    else:
        data[index] = g.data
    return record("index_add", data, (g,), lambda gg, out: getitem(gg, index))


def concatenate(tensors, axis=0):
    """Join tensors along an existing axis.   x̄ᵢ = ḡ sliced at xᵢ's position"""
    tensors = [_lift(t) for t in tensors]
    if not tensors:
        raise ValueError("concatenate: need at least one tensor")
    try:
        data = np.concatenate([t.data for t in tensors], axis=axis)
    except (ValueError, np.exceptions.AxisError):
        raise ValueError(f"concatenate: shapes {[t.shape for t in tensors]} do not match "
                         f"except along axis {axis}") from None
    axis = axis % data.ndim
    bounds = np.cumsum([0] + [t.shape[axis] for t in tensors])

    def slicer(i):
        index = (slice(None),) * axis + (slice(int(bounds[i]), int(bounds[i + 1])),)
        return lambda g, out: getitem(g, index)

    return record("concatenate", data, tuple(tensors), *[slicer(i) for i in range(len(tensors))])


def stack(tensors, axis=0):
    """Join same-shape tensors along a new axis.   x̄ᵢ = ḡ[..., i, ...]"""
    tensors = [_lift(t) for t in tensors]
    if not tensors:
        raise ValueError("stack: need at least one tensor")
    if len({t.shape for t in tensors}) != 1:
        raise ValueError(f"stack: all tensors need the same shape, got {[t.shape for t in tensors]}")
    data = np.stack([t.data for t in tensors], axis=axis)
    axis = axis % data.ndim

    def picker(i):
        index = (slice(None),) * axis + (i,)
        return lambda g, out: getitem(g, index)

    return record("stack", data, tuple(tensors), *[picker(i) for i in range(len(tensors))])


def split(x, indices_or_sections, axis=0):
    """Split into pieces like ``np.split``; each piece is a getitem, so x̄ is their scatter."""
    x = _lift(x)
    axis = _axes(axis, x.ndim, "split")[0]
    n = x.shape[axis]
    if isinstance(indices_or_sections, numbers.Integral):
        if indices_or_sections <= 0 or n % indices_or_sections:
            raise ValueError(f"split: axis {axis} of shape {x.shape} (size {n}) does not split "
                             f"into {indices_or_sections} equal parts")
        step = n // indices_or_sections
        cuts = list(range(0, n + 1, step))
    else:
        cuts = [0] + [int(i) for i in indices_or_sections] + [n]
    prefix = (slice(None),) * axis
    return [getitem(x, prefix + (slice(lo, hi),)) for lo, hi in zip(cuts[:-1], cuts[1:])]


def pad(x, pad_width, value=0.0):
    """Constant padding, ``pad_width`` as in ``np.pad``.   x̄ = ḡ with the padding cut off"""
    x = _lift(x)
    widths = np.broadcast_to(np.asarray(pad_width, dtype=int), (x.ndim, 2))
    data = np.pad(x.data, widths, constant_values=value)
    index = tuple(slice(int(lo), int(lo) + n) for (lo, _), n in zip(widths, x.shape))
    return record("pad", data, (x,), lambda g, out: getitem(g, index))


# =========================================================================== matmul


def matmul(a, b):
    """a @ b with numpy semantics (1-D vectors, batched N-D with broadcast batch axes).

    For matrices:  ā = ḡ @ bᵀ,  b̄ = aᵀ @ ḡ.  Batch axes that were broadcast are summed
    back by the engine.  A 1-D operand is treated as a row (a) or column (b) vector.
    """
    a, b = _pair(a, b)
    if a.ndim > 2 and b.ndim == 2:  # the shape of every Linear layer: one GEMM, see linear
        return linear(a, b, None, op="matmul")
    try:
        data = np.matmul(a.data, b.data)
    except ValueError:
        raise _matmul_error(a, b) from None

    def grad_a(g, out):
        if b.ndim == 1:  # g has no column axis: ā is the outer product with b
            return g * b if a.ndim == 1 else unsqueeze(g, -1) * b
        if a.ndim == 1:
            return squeeze(matmul(unsqueeze(g, -2), swapaxes(b, -1, -2)), -2)
        return matmul(g, swapaxes(b, -1, -2))

    def grad_b(g, out):
        if a.ndim == 1:  # g has no row axis: b̄ is the outer product with a
            return g * a if b.ndim == 1 else unsqueeze(a, -1) * unsqueeze(g, -2)
        if b.ndim == 1:
            return squeeze(matmul(swapaxes(a, -1, -2), unsqueeze(g, -1)), -1)
        return matmul(swapaxes(a, -1, -2), g)

    return record("matmul", data, (a, b), grad_a, grad_b)


def linear(x, weight, bias=None, *, op="linear"):
    """x @ weight + bias, with weight (in, out): a Linear layer as one op.

    x (..., in) -> (..., out).  The batch axes fold into rows, so the forward pass and
    the weight gradient are one large GEMM each instead of one small GEMM per batch entry.
      x̄ = ḡ Wᵀ,   W̄ = xᵀ ḡ (x and ḡ flattened to matrices of rows),   b̄ = ḡ summed over the rows
    """
    x, weight = _pair(x, weight)
    k, m = weight.shape
    if x.ndim == 0 or x.shape[-1] != k:
        raise _matmul_error(x, weight)
    data = np.matmul(x.data.reshape(-1, k), weight.data)
    if bias is not None:
        data += bias.data
    data = data.reshape(x.shape[:-1] + (m,))
    rules = [lambda g, out: matmul(g, swapaxes(weight, 0, 1)),
             lambda g, out: matmul(swapaxes(reshape(x, (-1, k)), 0, 1), reshape(g, (-1, m)))]
    if bias is None:
        return record(op, data, (x, weight), *rules)
    return record(op, data, (x, weight, bias), *rules, lambda g, out: sum_to(g, (m,)))


def _matmul_error(a, b):
    return ValueError(f"matmul: shapes {a.shape} and {b.shape} are not aligned (a's last axis must match b's "
                      f"{'only' if b.ndim == 1 else 'second-to-last'} axis, and batch axes must broadcast)")


# =========================================================================== selection


def where(condition, a, b):
    """``a`` where ``condition`` else ``b`` (condition is a constant boolean array).
    ā = ḡ where condition,  b̄ = ḡ elsewhere"""
    cond = np.asarray(condition.data if isinstance(condition, Tensor) else condition, dtype=bool)
    a, b = _pair(a, b)
    try:
        data = np.where(cond, a.data, b.data)
    except ValueError:
        raise ValueError(f"where: condition {cond.shape}, a {a.shape} and b {b.shape} cannot be "
                         "broadcast together") from None
    return record("where", data, (a, b),
                  lambda g, out: where(cond, g, 0.0), lambda g, out: where(cond, 0.0, g))


def masked_fill(x, mask, value):
    """x with ``value`` wherever ``mask`` is True.   x̄ = ḡ where not masked, 0 where masked"""
    x = _lift(x)
    mask = np.asarray(mask.data if isinstance(mask, Tensor) else mask, dtype=bool)
    try:
        data = np.where(mask, np.asarray(value, dtype=x.dtype), x.data)
    except ValueError:
        raise ValueError(f"masked_fill: mask of shape {mask.shape} does not broadcast to the "
                         f"tensor's shape {x.shape}") from None
    if data.shape != x.shape:
        raise ValueError(f"masked_fill: mask of shape {mask.shape} would grow the tensor's shape "
                         f"{x.shape} to {data.shape}")
    return record("masked_fill", data, (x,), lambda g, out: where(mask, 0.0, g))


# =========================================================================== fused primitives
# Forward and backward derived by hand instead of composed from the ops above: fewer
# temporaries, numerically stable, and one graph node instead of many.  reference.py
# keeps composed versions; the tests check that both agree.
#
# Their VJPs have two forms of one formula: numpy arrays for an ordinary backward (the
# fast path, checked by gradcheck), and minigrad ops when backward records a graph
# (create_graph=True, checked by gradgradcheck).


def _max_along(x, axis):
    """``np.max(x, axis=axis, keepdims=True)``.  numpy reduces a short last axis one row at
    a time; for rows of at most 32 elements (attention scores) it is 5-10x faster to turn
    the rows into columns and take the maximum in one vectorized pass per element."""
    n = x.shape[axis]
    if axis % x.ndim == x.ndim - 1 and 1 < n <= 32 and x.size >= 4096:
        columns = np.ascontiguousarray(x.reshape(-1, n).T)
        return columns.max(axis=0).reshape(x.shape[:-1] + (1,))
    return np.max(x, axis=axis, keepdims=True)


def _stable_shift(x, axis, out=None):
    """x - max(x) along ``axis`` (into ``out`` if given); a row that is all -inf is shifted
    by 0 (not by -inf, which would give -inf + inf = NaN), so it becomes exp(-inf) = 0."""
    m = _max_along(x, axis)
    m[~np.isfinite(m)] = 0
    return np.subtract(x, m, out=out)


def _softmax_array(x, axis, overwrite=False):
    """Stable softmax in numpy; a row that is all -inf gives zeros instead of NaN.
    ``overwrite=True`` computes it in x's own buffer."""
    e = _stable_shift(x, axis, out=x if overwrite else None)
    np.exp(e, out=e)
    s = _sum(e, (axis % x.ndim,), keepdims=True)
    s[s == 0] = 1
    e *= 1 / s
    return e


def softmax(x, axis=-1):
    """yᵢ = e^(xᵢ - max x) / Σⱼ e^(xⱼ - max x) along ``axis``.
    x̄ = y·(ḡ - Σ ḡ·y), the Jacobian diag(y) - yyᵀ applied to ḡ"""
    x = _lift(x)
    _check_nonempty("softmax", x, _axes(axis, x.ndim, "softmax"))
    return record("softmax", _softmax_array(x.data, axis), (x,),
                  lambda g, out: out * (g - sum(g * out, axis, keepdims=True)))


def log_softmax(x, axis=-1):
    """yᵢ = xᵢ - log Σⱼ e^xⱼ along ``axis`` (max-subtracted).   x̄ = ḡ - e^y·Σ ḡ"""
    x = _lift(x)
    _check_nonempty("log_softmax", x, _axes(axis, x.ndim, "log_softmax"))
    shifted = _stable_shift(x.data, axis)
    s = _sum(np.exp(shifted), (axis % x.ndim,), keepdims=True)
    s[s == 0] = 1  # a row of -inf stays -inf instead of becoming NaN
    shifted -= np.log(s)
    return record("log_softmax", shifted, (x,),
                  lambda g, out: g - exp(out) * sum(g, axis, keepdims=True))


def attention(q, k, v, mask=None, dropout_p=0.0, rng=None):
    """softmax(q kᵀ / √d_k) v in one op: the Transformer's attention with a hand-derived VJP.

    q (..., Tq, d_k), k (..., Tk, d_k), v (..., Tk, d_v); ``mask`` (boolean, True where a
    query may attend to a key) broadcasts to (..., Tq, Tk); masked scores are -inf, so
    their weight is exactly 0 (and a row with nothing to attend to gives zeros).
    ``dropout_p`` drops weights with ``rng`` (scaling the rest by 1/(1 - p)).
    Returns (output (..., Tq, d_v) Tensor, weights (..., Tq, Tk) numpy array to look at).

    With P = softmax(S), S = q kᵀ/√d_k, D the dropout mask (all ones without dropout) and
    W = P·D the weights applied to v:
      v̄ = Wᵀ ḡ,   Ṗ = (ḡ vᵀ)·D,   S̄ = P·(Ṗ - Σₖ Ṗ·P),   q̄ = S̄ k / √d_k,   k̄ = S̄ᵀ q / √d_k

    ``transformer/attention.py`` composes the same function from elementary ops.
    """
    q, k, v = _lift(q), _lift(k), _lift(v)
    if dropout_p and rng is None:
        raise ValueError("attention: dropout_p > 0 needs rng, a numpy Generator for the dropout masks")
    if q.ndim >= 2 and k.ndim >= 2 and 0 in (q.shape[-1], k.shape[-2]):
        raise ValueError(f"attention: q {q.shape} and k {k.shape} have no keys or d_k = 0; "
                         "softmax over no keys is undefined")
    scale = 1.0 / math.sqrt(q.shape[-1])
    try:
        scores = np.matmul(q.data, np.swapaxes(k.data, -1, -2))
        scores *= scale
        if mask is not None:
            np.copyto(scores, -np.inf, where=~np.asarray(mask, dtype=bool))
        weights = _softmax_array(scores, -1, overwrite=True)  # P, in the scores' buffer
        keep = None
        if dropout_p:
            keep = (rng.random(weights.shape, dtype=np.float32) >= dropout_p) * np.asarray(
                1 / (1 - dropout_p) if dropout_p < 1 else 0, dtype=weights.dtype)
        applied = weights * keep if keep is not None else weights  # W
        data = np.matmul(applied, v.data)
    except ValueError:
        raise ValueError(f"attention: q {q.shape}, k {k.shape}, v {v.shape} and mask "
                         f"{None if mask is None else np.shape(mask)} do not fit (..., Tq, d_k), "
                         "(..., Tk, d_k), (..., Tk, d_v) and (..., Tq, Tk)") from None

    def score_gradient(g):
        """S̄ as an array (ordinary backward)."""
        dp = np.matmul(g.data, np.swapaxes(v.data, -1, -2))
        if keep is not None:
            dp *= keep
        dp -= _sum(dp * weights, (dp.ndim - 1,), keepdims=True)
        dp *= weights
        dp *= scale
        return dp

    def differentiable_weights():
        """P as a function of q and k, for a backward that records a graph."""
        s = matmul(q * scale, swapaxes(k, -1, -2))
        return softmax(s if mask is None else masked_fill(s, ~np.asarray(mask, dtype=bool), -np.inf), -1)

    def differentiable_score_gradient(g):
        p = differentiable_weights()
        dp = matmul(g, swapaxes(v, -1, -2))
        if keep is not None:
            dp = dp * keep
        return p * (dp - sum(dp * p, -1, keepdims=True)) * scale

    cache = {}  # S̄ is shared by the q and k rules: compute it once per backward

    def ds(g):
        # Keyed on the mode too: a create_graph backward after an ordinary one (retain_graph,
        # the same cotangent) must not reuse the ordinary backward's constant S̄.
        if cache.get("g") is not g or cache.get("recording") != is_grad_enabled():
            cache["g"], cache["recording"] = g, is_grad_enabled()
            cache["ds"] = differentiable_score_gradient(g) if is_grad_enabled() else Tensor._wrap(score_gradient(g))
        return cache["ds"]

    def applied_weights():
        if not is_grad_enabled():
            return Tensor._wrap(applied)
        p = differentiable_weights()
        return p * keep if keep is not None else p

    out = record("attention", data, (q, k, v),
                 lambda g, out: matmul(ds(g), k),
                 lambda g, out: matmul(swapaxes(ds(g), -1, -2), q),
                 lambda g, out: matmul(swapaxes(applied_weights(), -1, -2), g))
    return out, applied


def layer_norm(x, weight=None, bias=None, eps=1e-5):
    """Normalize over the last axis: x̂ = (x - μ)/√(σ² + ε), y = x̂·weight + bias.

    σ² is the biased variance (as torch.nn.LayerNorm).  With ĝ = ḡ·weight:
      x̄ = (ĝ - mean(ĝ) - x̂·mean(ĝ·x̂)) / √(σ² + ε),   weight̄ = Σ ḡ·x̂,   bias̄ = Σ ḡ
    """
    x = _lift(x)
    if x.ndim == 0:
        raise ValueError("layer_norm: the input is a scalar; it needs an axis to normalize over")
    _check_nonempty("layer_norm", x, (x.ndim - 1,))
    d = x.shape[-1]
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and p.shape != (d,):
            raise ValueError(f"layer_norm: {name} has shape {p.shape}, expected ({d},) to match "
                             f"the last axis of the input {x.shape}")
    last = (x.ndim - 1,)
    xhat = x.data - _sum(x.data, last, keepdims=True) * (1 / d)  # centered, normalized below
    rstd = 1 / np.sqrt(_sum(xhat * xhat, last, keepdims=True) * (1 / d) + eps)
    xhat *= rstd
    data = xhat * weight.data if weight is not None else xhat.copy()
    if bias is not None:
        data += bias.data

    def statistics():  # x̂ and 1/√(σ² + ε) as functions of x, for create_graph
        c = x - mean(x, -1, keepdims=True)
        r = (mean(c * c, -1, keepdims=True) + eps) ** -0.5
        return c * r, r

    def grad_x(g, out):
        if is_grad_enabled():
            xh, r = statistics()
            gh = g * weight if weight is not None else g
            return (gh - mean(gh, -1, keepdims=True) - xh * mean(gh * xh, -1, keepdims=True)) * r
        gh = g.data * weight.data if weight is not None else g.data.copy()
        ghx = _sum(gh * xhat, last, keepdims=True) * (1 / d)
        gh -= _sum(gh, last, keepdims=True) * (1 / d)
        gh -= xhat * ghx
        gh *= rstd
        return Tensor._wrap(gh)

    inputs, rules = [x], [grad_x]
    if weight is not None:
        inputs.append(weight)
        rules.append(lambda g, out: g * (statistics()[0] if is_grad_enabled() else xhat))
    if bias is not None:
        inputs.append(bias)
        rules.append(_grad_of_output)
    return record("layer_norm", data, tuple(inputs), *rules)


def cross_entropy(logits, target, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    """Cross-entropy from unnormalized logits and integer class targets, as
    ``torch.nn.functional.cross_entropy``.

    Shapes: logits (C,) with target (), (N, C) with (N,), or (N, C, d₁, ...) with
    (N, d₁, ...): the class axis is 1.  With p = softmax(logits), ε = label_smoothing,
    q = (1 - ε)·onehot(target) + ε/C:  loss = -Σ_c q_c log p_c per target; targets equal
    to ``ignore_index`` give 0 and are left out of the mean.
    x̄ = (p - q)·ḡ per target (divided by the number of counted targets for "mean").
    """
    x = _lift(logits)
    t = np.asarray(target.data if isinstance(target, Tensor) else target)
    if t.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: target must hold integer class indices, got dtype {t.dtype}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    expected = x.shape[:1] + x.shape[2:] if x.ndim >= 2 else ()
    if x.ndim == 0 or t.shape != expected:
        raise ValueError(f"cross_entropy: logits of shape {x.shape} need targets of shape "
                         f"{expected} (class axis 1), got {t.shape}")
    n_classes = x.shape[1] if x.ndim >= 2 else x.shape[0]
    _check_nonempty("cross_entropy", x, (1 if x.ndim >= 2 else 0,))
    valid = t != ignore_index
    bad = valid & ((t < 0) | (t >= n_classes))
    if bad.any():
        raise IndexError(f"cross_entropy: target value {int(t[bad].flat[0])} is out of range "
                         f"for {n_classes} classes (ignore_index={ignore_index})")

    # Work on rows (M, C), the class axis last.  log p = shifted - log Σ e^shifted, but
    # only the target's entry and the row mean of log p are needed, so the full log p is
    # never formed; the buffer of shifted logits becomes p, kept for the backward pass.
    to_rows = (0,) + tuple(range(2, x.ndim)) + (1,) if x.ndim >= 2 else (0,)
    rows = x.data.transpose(to_rows).reshape(-1, n_classes)
    flat_t, flat_valid = np.where(valid, t, 0).reshape(-1), valid.reshape(-1)
    row_index = np.arange(len(rows))
    p = _stable_shift(rows, 1)
    picked = p[row_index, flat_t]
    row_mean = _sum(p, (1,)) * (1 / n_classes) if label_smoothing else 0.0
    np.exp(p, out=p)
    sums = _sum(p, (1,), keepdims=True)
    log_sums = np.log(sums[:, 0])
    p *= 1 / sums
    per_target = -(1 - label_smoothing) * (picked - log_sums) - label_smoothing * (row_mean - log_sums)
    per_target = np.where(flat_valid, per_target, 0).astype(x.dtype, copy=False)
    count = int(flat_valid.sum())
    if reduction == "none":
        data = per_target.reshape(t.shape)
    elif reduction == "sum":
        data = np.asarray(per_target.sum(), dtype=x.dtype)
    else:
        with np.errstate(invalid="ignore", divide="ignore"):  # all ignored: NaN, as torch
            data = np.asarray(per_target.sum() / count, dtype=x.dtype)

    weights = flat_valid.astype(x.dtype)[:, None]  # (M, 1): 0 for ignored targets
    if reduction == "mean":
        weights = weights / count if count else weights * 0
    from_rows = tuple(np.argsort(to_rows))
    moved_shape = tuple(x.shape[a] for a in to_rows)

    def grad_logits(g, out):
        if is_grad_enabled():
            q = np.full_like(rows, label_smoothing / n_classes)
            q[row_index, flat_t] += 1 - label_smoothing
            probabilities = softmax(reshape(transpose(x, to_rows), (-1, n_classes)), -1)
            per_row = weights * (reshape(g, (-1, 1)) if reduction == "none" else g)
            dx = (probabilities - q) * per_row
        else:
            per_row = weights * (g.data.reshape(-1, 1) if reduction == "none" else g.data)  # (M, 1)
            dx = p * per_row  # (p - q)·w without forming q
            dx[row_index, flat_t] -= (1 - label_smoothing) * per_row[:, 0]
            if label_smoothing:
                dx -= (label_smoothing / n_classes) * per_row
            dx = Tensor._wrap(dx)
        return transpose(reshape(dx, moved_shape), from_rows)

    return record("cross_entropy", data, (x,), grad_logits)


def embedding(weight, indices, padding_idx=None):
    """Rows of ``weight`` (V, D) picked by integer ``indices`` (...) -> (..., D).
    weight̄ = ḡ rows added into the rows they came from (repeats add up); the
    ``padding_idx`` row gets no gradient."""
    idx = np.asarray(indices.data if isinstance(indices, Tensor) else indices)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"embedding: indices must be integers, got dtype {idx.dtype}")
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be 2-D (rows, dim), got shape {weight.shape}")
    rows = weight.shape[0]
    if idx.size and (idx.min() < 0 or idx.max() >= rows):
        bad = idx[(idx < 0) | (idx >= rows)].flat[0]
        raise IndexError(f"embedding: index {int(bad)} is out of range for a table of {rows} rows")
    return record("embedding", weight.data[idx], (weight,),
                  lambda g, out: embedding_backward(g, idx, rows, padding_idx))


def embedding_backward(g, indices, rows, padding_idx=None):
    """The VJP of embedding: a (rows, D) table with each ḡ[..., :] added into row indices[...].
    Its own VJP gathers again: ḡ' = embedding(x̄', indices), 0 at padding positions."""
    d = g.shape[-1]
    data = np.zeros((rows, d), dtype=g.dtype)
    np.add.at(data, indices.reshape(-1), g.data.reshape(-1, d))
    keep = None
    if padding_idx is not None:
        data[padding_idx] = 0
        keep = (indices != padding_idx)[..., None]

    def vjp(gg, out):
        picked = embedding(gg, indices)
        return picked * keep if keep is not None else picked

    return record("embedding_backward", data, (g,), vjp)


def dropout(x, p, rng: np.random.Generator, training=True):
    """Zero each element with probability p and scale the rest by 1/(1-p), with ``rng``.
    x̄ = ḡ·mask/(1-p) with the same mask"""
    x = _lift(x)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    keep = rng.random(x.shape, dtype=np.float32) >= p
    scale = np.zeros((), x.dtype) if p == 1.0 else np.asarray(1 / (1 - p), dtype=x.dtype)
    mask = keep * scale
    return record("dropout", x.data * mask, (x,), lambda g, out: g * mask)

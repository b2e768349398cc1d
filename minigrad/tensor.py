"""``Tensor``: a numpy array that remembers how it was computed.

Methods and operators are thin doors into ``ops.py``, where each op's forward and VJP
rules sit side by side.
"""

from __future__ import annotations

import numbers

import numpy as np

from minigrad import autograd

DEFAULT_DTYPE = np.float32


def _as_array(data, dtype=None):
    """numpy array for ``data``: Python floats become float32, numpy dtypes are kept."""
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        return np.asarray(data, dtype=dtype)
    if isinstance(data, np.ndarray):
        return data
    if isinstance(data, np.generic):
        return np.asarray(data)
    array = np.asarray(data)
    if array.dtype == np.float64:  # came from Python floats
        array = array.astype(DEFAULT_DTYPE)
    return array


class Tensor:
    """An n-dimensional array with reverse-mode autograd.

    ``data``: the numpy array.  ``grad``: a Tensor accumulated by ``backward()`` (leaves
    only) until zeroed.  ``requires_grad``: whether ops on it are recorded.  ``name``:
    optional label used when rendering graphs.

    ``Tensor(array)`` wraps a numpy array without copying it (like ``torch.from_numpy``);
    ``minigrad.tensor(data)`` always copies (like ``torch.tensor``).

    Changing values after an op has used them: the tensor's own in-place methods
    (``t[i] = v``, ``add_``, ``sub_``, ``mul_``, ``copy_``, ``fill_``, ``zero_``, and
    assigning ``t.data = array``) bump a version counter, and ``backward`` raises if an
    op's saved input changed.  Writes through the numpy array itself (``t.data[i] = v``,
    ``np.add(..., out=t.data)``, or into the array you passed to ``Tensor(array)``) are
    invisible to the counter, as writes through ``.data`` are in PyTorch: the gradient
    silently uses the new values.  ``minigrad.detect_anomaly()`` catches those too, at
    the cost of a checksum of every array.
    """

    __slots__ = ("_data", "grad", "requires_grad", "name", "_node", "_version", "__weakref__")
    __array_ufunc__ = None  # numpy defers `array * tensor` to Tensor.__rmul__

    def __array__(self, dtype=None, copy=None):
        return self._data if dtype is None else self._data.astype(dtype)

    def __init__(self, data, requires_grad=False, dtype=None, name=None):
        self._data = _as_array(data, dtype)
        self.grad = None
        self.requires_grad = False
        self.name = name
        self._node = None
        self._version = 0
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _wrap(cls, array):
        """Fast constructor for ops: no conversion, no checks."""
        t = cls.__new__(cls)
        t._data = array
        t.grad = None
        t.requires_grad = False
        t.name = None
        t._node = None
        t._version = 0
        return t

    # ----------------------------------------------------------------- data and flags

    @property
    def data(self) -> np.ndarray:
        """The numpy array itself, not a copy: writing into it is not tracked (see the
        class docstring); use the in-place methods, or ``t.data = new_array``."""
        return self._data

    @data.setter
    def data(self, value):
        value = _as_array(value)
        if value.shape != self._data.shape:
            raise ValueError(f"Tensor.data: new array has shape {value.shape}, tensor has {self.shape}")
        self._data = value
        self._version += 1

    def requires_grad_(self, flag=True):
        if flag and not np.issubdtype(self.dtype, np.floating):
            raise TypeError(
                f"only floating-point tensors can require grad; this one is {self.dtype} "
                f"(shape {self.shape}). Convert it with .astype(np.float32) first."
            )
        if self._node is not None and not flag:
            raise RuntimeError("requires_grad_(False) on a non-leaf tensor; use .detach()")
        self.requires_grad = flag
        return self

    @property
    def is_leaf(self) -> bool:
        return self._node is None

    @property
    def grad_fn(self):
        """The Node that made this tensor (None for leaves)."""
        return self._node

    @property
    def shape(self) -> tuple:
        return self._data.shape

    @property
    def ndim(self) -> int:
        return self._data.ndim

    @property
    def dtype(self):
        return self._data.dtype

    @property
    def size(self) -> int:
        return self._data.size

    def __len__(self):
        return len(self._data)

    def numpy(self) -> np.ndarray:
        return self._data

    def item(self):
        if self.size != 1:
            raise ValueError(f"item(): tensor has {self.size} elements (shape {self.shape}), not 1")
        return self._data.item()

    def tolist(self):
        return self._data.tolist()

    def detach(self) -> Tensor:
        """Same data, no history: gradients stop here."""
        return Tensor._wrap(self._data)

    def astype(self, dtype) -> Tensor:
        return ops.astype(self, dtype)

    def __repr__(self):
        body = np.array2string(self._data, precision=4, separator=", ", threshold=20,
                               prefix="tensor(")
        extra = [f"shape={self.shape}", f"dtype={self.dtype}"]
        if self._node is not None:
            extra.append(f"op={self._node.op}")
        elif self.requires_grad:
            extra.append("requires_grad=True")
        if self.name:
            extra.append(f"name={self.name!r}")
        return f"tensor({body}, {', '.join(extra)})"

    def __bool__(self):
        if self.size != 1:
            raise ValueError(f"the truth value of a tensor of shape {self.shape} is ambiguous")
        return bool(self._data)

    __hash__ = object.__hash__  # tensors are graph nodes: identity, not value

    # ----------------------------------------------------------------- autograd

    def backward(self, grad=None, retain_graph=False, create_graph=False):
        """Accumulate the gradient of this tensor into every leaf's ``.grad``.

        ``grad`` is the cotangent (defaults to 1 for a scalar).  The graph's saved buffers
        are freed afterwards unless ``retain_graph``.  ``create_graph`` records the
        backward pass itself, so the gradients can be differentiated again.
        """
        autograd.backward(self, grad, retain_graph, create_graph)

    def zero_grad(self):
        self.grad = None

    # ----------------------------------------------------------------- in place (no graph)

    def _inplace(self, name, value, fn):
        if autograd.STATE.grad_enabled and self.requires_grad:
            raise RuntimeError(
                f"{name}: in-place change of a tensor that requires grad (shape {self.shape}) "
                "while recording; wrap it in `with minigrad.no_grad():`."
            )
        value = value.data if isinstance(value, Tensor) else value
        fn(value)
        self._version += 1
        return self

    def __setitem__(self, index, value):
        self._inplace("__setitem__", value, lambda v: self._data.__setitem__(index, v))

    def add_(self, other, alpha=1.0):
        """``self += alpha * other`` in place (optimizers); bumps the version counter."""
        if alpha == 1.0:
            return self._inplace("add_", other, lambda v: np.add(self._data, v, out=self._data))
        return self._inplace("add_", other,
                             lambda v: np.add(self._data, np.multiply(v, alpha), out=self._data))

    def sub_(self, other):
        return self._inplace("sub_", other, lambda v: np.subtract(self._data, v, out=self._data))

    def mul_(self, other):
        return self._inplace("mul_", other, lambda v: np.multiply(self._data, v, out=self._data))

    def copy_(self, other):
        """Overwrite the values with ``other``'s (same shape) in place."""
        if np.shape(_raw(other)) != self.shape:
            raise ValueError(f"copy_: source has shape {np.shape(_raw(other))}, tensor has {self.shape}")
        return self._inplace("copy_", other, lambda v: np.copyto(self._data, v))

    def fill_(self, value):
        return self._inplace("fill_", value, lambda v: self._data.fill(v))

    def zero_(self):
        return self.fill_(0)

    # ----------------------------------------------------------------- operators

    def __add__(self, other): return ops.add(self, other)
    def __radd__(self, other): return ops.add(other, self)
    def __sub__(self, other): return ops.sub(self, other)
    def __rsub__(self, other): return ops.sub(other, self)
    def __mul__(self, other): return ops.mul(self, other)
    def __rmul__(self, other): return ops.mul(other, self)
    def __truediv__(self, other): return ops.div(self, other)
    def __rtruediv__(self, other): return ops.div(other, self)
    def __pow__(self, other): return ops.pow(self, other)
    def __rpow__(self, other): return ops.pow(other, self)
    def __matmul__(self, other): return ops.matmul(self, other)
    def __rmatmul__(self, other): return ops.matmul(other, self)
    def __neg__(self): return ops.neg(self)
    def __pos__(self): return self
    def __abs__(self): return ops.abs(self)
    def __getitem__(self, index): return ops.getitem(self, index)

    # Comparisons give boolean tensors with no history (they are not differentiable).
    def __lt__(self, other): return Tensor._wrap(self._data < _raw(other))
    def __le__(self, other): return Tensor._wrap(self._data <= _raw(other))
    def __gt__(self, other): return Tensor._wrap(self._data > _raw(other))
    def __ge__(self, other): return Tensor._wrap(self._data >= _raw(other))
    def eq(self, other): return Tensor._wrap(self._data == _raw(other))
    def ne(self, other): return Tensor._wrap(self._data != _raw(other))

    # ----------------------------------------------------------------- methods

    def exp(self): return ops.exp(self)
    def log(self): return ops.log(self)
    def sqrt(self): return ops.sqrt(self)
    def tanh(self): return ops.tanh(self)
    def sigmoid(self): return ops.sigmoid(self)
    def relu(self): return ops.relu(self)
    def gelu(self, approximate="none"): return ops.gelu(self, approximate)
    def abs(self): return ops.abs(self)
    def clip(self, min=None, max=None): return ops.clip(self, min, max)
    def sum(self, axis=None, keepdims=False): return ops.sum(self, axis, keepdims)
    def mean(self, axis=None, keepdims=False): return ops.mean(self, axis, keepdims)
    def max(self, axis=None, keepdims=False): return ops.max(self, axis, keepdims)
    def min(self, axis=None, keepdims=False): return ops.min(self, axis, keepdims)
    def var(self, axis=None, keepdims=False, ddof=0): return ops.var(self, axis, keepdims, ddof)
    def reshape(self, *shape): return ops.reshape(self, _shape_args(shape))
    def transpose(self, *axes): return ops.transpose(self, _shape_args(axes) or None)
    def permute(self, *axes): return ops.transpose(self, _shape_args(axes))
    def swapaxes(self, axis1, axis2): return ops.swapaxes(self, axis1, axis2)
    def broadcast_to(self, shape): return ops.broadcast_to(self, shape)
    def squeeze(self, axis=None): return ops.squeeze(self, axis)
    def unsqueeze(self, axis): return ops.unsqueeze(self, axis)
    def flatten(self): return ops.reshape(self, (-1,))
    def matmul(self, other): return ops.matmul(self, other)
    def masked_fill(self, mask, value): return ops.masked_fill(self, mask, value)
    def softmax(self, axis=-1): return ops.softmax(self, axis)
    def log_softmax(self, axis=-1): return ops.log_softmax(self, axis)

    @property
    def T(self):
        return ops.transpose(self, None)


def _raw(x):
    return x.data if isinstance(x, Tensor) else x


def _shape_args(args):
    """Accept both ``t.reshape(2, 3)`` and ``t.reshape((2, 3))``."""
    if len(args) == 1 and not isinstance(args[0], numbers.Integral):
        return tuple(args[0]) if args[0] is not None else None
    return tuple(args)


# --------------------------------------------------------------------------- factories


def tensor(data, requires_grad=False, dtype=None, name=None) -> Tensor:
    """A new leaf tensor; Python floats become float32, numpy dtypes are kept."""
    return Tensor(np.array(_raw(data), dtype=dtype, copy=True) if dtype is not None
                  else np.array(_as_array(data), copy=True),
                  requires_grad=requires_grad, name=name)


def zeros(*shape, dtype=DEFAULT_DTYPE, requires_grad=False) -> Tensor:
    return Tensor(np.zeros(_shape_args(shape), dtype=dtype), requires_grad=requires_grad)


def ones(*shape, dtype=DEFAULT_DTYPE, requires_grad=False) -> Tensor:
    return Tensor(np.ones(_shape_args(shape), dtype=dtype), requires_grad=requires_grad)


def full(shape, value, dtype=DEFAULT_DTYPE, requires_grad=False) -> Tensor:
    return Tensor(np.full(shape, value, dtype=dtype), requires_grad=requires_grad)


def zeros_like(t, requires_grad=False) -> Tensor:
    return Tensor(np.zeros_like(_raw(t)), requires_grad=requires_grad)


def ones_like(t, requires_grad=False) -> Tensor:
    return Tensor(np.ones_like(_raw(t)), requires_grad=requires_grad)


def arange(*args, dtype=None) -> Tensor:
    return Tensor(np.arange(*args, dtype=dtype))


def randn(*shape, rng: np.random.Generator, dtype=DEFAULT_DTYPE, requires_grad=False) -> Tensor:
    """Standard normal samples drawn from the given numpy Generator (reproducible)."""
    return Tensor(rng.standard_normal(_shape_args(shape)).astype(dtype), requires_grad=requires_grad)


def rand(*shape, rng: np.random.Generator, dtype=DEFAULT_DTYPE, requires_grad=False) -> Tensor:
    """Uniform [0, 1) samples drawn from the given numpy Generator."""
    return Tensor(rng.random(_shape_args(shape)).astype(dtype), requires_grad=requires_grad)


from minigrad import ops  # noqa: E402  (ops needs Tensor defined first)

"""Layers: Linear, Embedding, LayerNorm, Dropout, and the containers ModuleList and
Sequential.

Every layer with random initial values takes ``rng``, a numpy Generator; ``None``
means ``np.random.default_rng(0)``, so a model is reproducible even when you forget
it (but then every such layer starts from the same stream: pass one shared Generator
to get different layers).  Parameters are float32 unless ``dtype=`` says otherwise
(float64 for gradient checks).
"""

from __future__ import annotations

import numpy as np

from minigrad import ops
from minigrad.autograd import no_grad
from minigrad.nn import init
from minigrad.nn.module import Module, Parameter

DEFAULT_DTYPE = np.float32


def _generator(rng):
    return np.random.default_rng(0) if rng is None else rng


class Linear(Module):
    """y = x W + b.   x (..., in_features) -> y (..., out_features).

    Layout: ``weight`` has shape (in_features, out_features), so the forward pass is
    ``x @ weight`` with no transpose and reads like the math.  This is the TRANSPOSE of
    PyTorch's nn.Linear, whose weight is (out_features, in_features); transpose when
    moving weights between the two.  Init: Xavier-uniform weight, zero bias.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, rng=None,
                 dtype=DEFAULT_DTYPE):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = init.xavier_uniform_(
            Parameter(np.empty((in_features, out_features), dtype=dtype)), rng=_generator(rng))
        self.bias = Parameter(np.zeros(out_features, dtype=dtype)) if bias else None

    def forward(self, x):
        if x.shape[-1:] != (self.in_features,):
            raise ValueError(f"{self._qualified_name} (Linear {self.in_features}->{self.out_features}): "
                             f"input has shape {x.shape}, expected (..., {self.in_features})")
        return ops.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Embedding(Module):
    """Rows of a (num_embeddings, embedding_dim) table picked by integer indices:
    indices (...) -> (..., embedding_dim).  Init: N(0, 1).

    The ``padding_idx`` row starts at zero and never receives gradient, so it stays zero
    under any optimizer without weight decay.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx=None, *, rng=None,
                 dtype=DEFAULT_DTYPE):
        super().__init__()
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"Embedding: padding_idx {padding_idx} is out of range for "
                                 f"{num_embeddings} embeddings")
            padding_idx %= num_embeddings
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx = padding_idx
        weight = np.empty((num_embeddings, embedding_dim), dtype=dtype)
        self.weight = init.normal_(Parameter(weight), rng=_generator(rng))
        if padding_idx is not None:
            with no_grad():
                self.weight[padding_idx] = 0

    def forward(self, indices):
        return ops.embedding(self.weight, indices, self.padding_idx)

    def extra_repr(self):
        pad = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"


class LayerNorm(Module):
    """Normalize over the last axis: (x - mean) / √(var + eps) · weight + bias, with the
    biased variance.   x (..., normalized_shape) -> same shape.  weight = 1, bias = 0."""

    def __init__(self, normalized_shape: int, eps: float = 1e-5, elementwise_affine: bool = True, *,
                 dtype=DEFAULT_DTYPE):
        super().__init__()
        self.normalized_shape, self.eps = normalized_shape, eps
        self.elementwise_affine = elementwise_affine
        self.weight = Parameter(np.ones(normalized_shape, dtype=dtype)) if elementwise_affine else None
        self.bias = Parameter(np.zeros(normalized_shape, dtype=dtype)) if elementwise_affine else None

    def forward(self, x):
        if x.shape[-1:] != (self.normalized_shape,):
            raise ValueError(f"{self._qualified_name} (LayerNorm {self.normalized_shape}): input "
                             f"has shape {x.shape}, expected (..., {self.normalized_shape})")
        return ops.layer_norm(x, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class Dropout(Module):
    """In training, zero each element with probability p and scale the rest by 1/(1-p);
    in eval mode, the identity.

    Masks are drawn from ``rng``; ``None`` means ``np.random.default_rng(0)``.  Pass one
    shared Generator to all dropouts of a model (and save its state in checkpoints) to
    make training reproducible.
    """

    def __init__(self, p: float = 0.5, rng: np.random.Generator | None = None):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p = p
        self.rng = _generator(rng)

    def forward(self, x):
        return ops.dropout(x, self.p, self.rng, self.training)

    def extra_repr(self):
        return f"p={self.p}"


class ModuleList(Module):
    """A list of submodules, registered under the names "0", "1", ...  It has no
    forward: iterate over it in your own."""

    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module: Module):
        if not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}.append: expected a Module, got {type(module).__name__}")
        setattr(self, str(len(self._modules)), module)
        return self

    def extend(self, modules):
        for m in modules:
            self.append(m)
        return self

    def __getitem__(self, index):
        if isinstance(index, slice):
            return type(self)(list(self._modules.values())[index])
        n = len(self._modules)
        if not -n <= index < n:
            raise IndexError(f"{type(self).__name__} index {index} is out of range for {n} modules")
        return self._modules[str(index % n)]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class Sequential(ModuleList):
    """Modules applied one after another: ``Sequential(a, b)(x) == b(a(x))``."""

    def __init__(self, *modules):
        super().__init__(modules)

    def forward(self, x):
        for module in self._modules.values():
            x = module(x)
        return x

"""Check analytic gradients against central finite differences.

The analytic side is the engine's VJP: for a cotangent v it gives vᵀJ.  The numeric side
perturbs each input element by ±eps and differences the outputs:
J[:, j] ≈ (f(x + eps·eⱼ) - f(x - eps·eⱼ)) / 2eps.  Small inputs compare the whole
Jacobian, entry by entry; large ones compare random projections vᵀJu.
"""

from __future__ import annotations

import warnings

import numpy as np

from minigrad import autograd
from minigrad.tensor import Tensor


class GradcheckError(AssertionError):
    """An analytic gradient disagrees with the numeric one (or a sanity check failed)."""


class KinkError(GradcheckError):
    """The function is not differentiable at the checked point (one-sided differences
    disagree), so no gradient can be right there.  Move the point away from the kink."""


def _as_tuple(outputs):
    return (outputs,) if isinstance(outputs, Tensor) else tuple(outputs)


def _flat_outputs(fn, arrays, checked):
    """Evaluate ``fn`` on fresh float64 leaves made from ``arrays``; its outputs flattened.

    Recording stays on: for gradgradcheck, ``fn`` itself runs a backward pass."""
    leaves = [Tensor(a.copy(), requires_grad=True) if i in checked else a
              for i, a in enumerate(arrays)]
    outs = _as_tuple(fn(*leaves))
    return np.concatenate([np.asarray(o.data, dtype=np.float64).reshape(-1) for o in outs])


class _Problem:
    """A function, its inputs as float64 arrays, and which of them are differentiated."""

    def __init__(self, fn, inputs):
        self.fn = fn
        self.arrays, self.checked, self.names = [], [], []
        for i, x in enumerate(inputs):
            if isinstance(x, Tensor) and x.requires_grad:
                data = x.data
                if data.dtype != np.float64:
                    warnings.warn(
                        f"gradcheck: input {i} is {data.dtype}; checking in float64 instead "
                        "(finite differences are too coarse in low precision)", stacklevel=3)
                self.arrays.append(np.array(data, dtype=np.float64))
                self.checked.append(i)
                self.names.append(f"input {i}" + (f" ({x.name!r})" if x.name else ""))
            else:
                self.arrays.append(x)
        if not self.checked:
            raise ValueError("gradcheck: no input has requires_grad=True, so there is nothing to check")

    def leaves(self):
        """Fresh leaves for one analytic run: a list to call fn with, and the checked ones."""
        args = list(self.arrays)
        for i in self.checked:
            args[i] = Tensor(self.arrays[i].copy(), requires_grad=True)
        return args, [args[i] for i in self.checked]

    def _outputs_at(self, k, j, steps):
        """Flattened outputs with element j of checked input k moved by each step."""
        x = self.arrays[self.checked[k]]
        original = x.flat[j]
        values = []
        for step in steps:
            x.flat[j] = original + step
            values.append(_flat_outputs(self.fn, self.arrays, self.checked))
        x.flat[j] = original
        return values

    def numeric_column(self, k, j, eps):
        """d outputs / d (element j of checked input k) by central differences."""
        plus, minus = self._outputs_at(k, j, (eps, -eps))
        return (plus - minus) / (2 * eps)

    def one_sided_columns(self, k, j, eps):
        """Right and left differences; they disagree where the function has a kink."""
        plus, centre, minus = self._outputs_at(k, j, (eps, 0.0, -eps))
        return (plus - centre) / eps, (centre - minus) / eps

    def vjp(self, cotangents):
        """Analytic vᵀJ for each checked input (zeros where unused)."""
        args, leaves = self.leaves()
        outs = _as_tuple(self.fn(*args))
        if len(outs) != len(cotangents):
            raise GradcheckError(f"gradcheck: fn returned {len(outs)} outputs, expected {len(cotangents)}")
        live = [(o, v) for o, v in zip(outs, cotangents) if o.requires_grad]
        if not live:
            return [np.zeros_like(self.arrays[i]) for i in self.checked]
        grads = autograd.grad([o for o, _ in live], leaves,
                              [Tensor(v.astype(o.dtype)) for o, v in live], allow_unused=True)
        result = []
        for leaf, g in zip(leaves, grads):
            if g is None:
                result.append(np.zeros(leaf.shape))
            elif g.shape != leaf.shape or g.dtype != leaf.dtype:
                raise GradcheckError(
                    f"gradcheck: gradient has shape {g.shape} and dtype {g.dtype}, but its input "
                    f"has shape {leaf.shape} and dtype {leaf.dtype}")
            else:
                result.append(np.asarray(g.data, dtype=np.float64))
        return result


def _describe(name, index, shape):
    element = tuple(int(i) for i in np.unravel_index(index, shape))  # plain ints print as (0, 1)
    return f"{name}, element {element}"


def gradcheck(fn, inputs, *, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0,
              full_jacobian_max=512, projections=3, raise_exception=True) -> bool:
    """Check the gradients of ``fn(*inputs)`` with respect to the inputs that require grad.

    Inputs are Tensors (those with ``requires_grad=True`` are checked, in float64) or
    other arguments passed through unchanged.  ``fn`` returns a Tensor or a tuple of them.

    Checks, in order: vᵀJ for a random non-uniform cotangent v agrees with finite
    differences — over the whole Jacobian when the inputs have at most
    ``full_jacobian_max`` elements, else along ``projections`` random directions u
    (vᵀJu); a zero cotangent gives zero gradients; a second backward gives the same
    gradients; ``fn`` did not modify its inputs.  Agreement means
    |analytic - numeric| ≤ atol + rtol·|numeric|.

    Raises GradcheckError naming the input, element, both values, the errors, eps and
    the seed (KinkError where the function has a kink at the point), or returns False
    when ``raise_exception=False``.
    """
    try:
        _check(fn, inputs, eps, atol, rtol, seed, full_jacobian_max, projections)
    except GradcheckError:
        if raise_exception:
            raise
        return False
    return True


def _check(fn, inputs, eps, atol, rtol, seed, full_jacobian_max, projections):
    problem = _Problem(fn, inputs)
    before = [a.copy() for a in problem.arrays if isinstance(a, np.ndarray)]
    rng = np.random.default_rng(seed)
    args, _ = problem.leaves()
    outs = _as_tuple(fn(*args))
    cotangents = [rng.uniform(0.5, 1.5, o.shape) * rng.choice([-1.0, 1.0], o.shape) for o in outs]
    v = np.concatenate([c.reshape(-1) for c in cotangents]) if cotangents else np.zeros(0)
    analytic = problem.vjp(cotangents)
    where = f"(eps={eps}, atol={atol}, rtol={rtol}, seed={seed})"

    def close(a, n):
        return abs(a - n) <= atol + rtol * abs(n)

    def fail(name, index, shape, a, n, k=None, j=None):
        message = (f"gradcheck: gradient mismatch for {_describe(name, index, shape)}: "
                   f"analytic={a:.10g}, numeric={n:.10g}, abs err={abs(a - n):.3g}, "
                   f"rel err={abs(a - n) / max(abs(n), 1e-300):.3g} {where}")
        if k is not None:
            right, left = problem.one_sided_columns(k, j, eps)
            r, lft = float(v @ right), float(v @ left)
            if not close(r, lft):
                raise KinkError(
                    f"gradcheck: {_describe(name, index, shape)} sits at a kink: the one-sided "
                    f"differences disagree (right {r:.6g}, left {lft:.6g}), so the function has "
                    f"no derivative there; check at a point away from it. {where}")
        raise GradcheckError(message)

    total = sum(problem.arrays[i].size for i in problem.checked)
    if total <= full_jacobian_max:
        # Whole Jacobian: numeric columns vs. analytic rows (one backward per output element).
        n_out = v.size
        for k, i in enumerate(problem.checked):
            x = problem.arrays[i]
            numeric = np.zeros((n_out, x.size))
            for j in range(x.size):
                numeric[:, j] = problem.numeric_column(k, j, eps)
            vjp_numeric = v @ numeric
            for j in range(x.size):
                if not close(analytic[k].flat[j], vjp_numeric[j]):
                    fail(problem.names[k], j, x.shape, analytic[k].flat[j], vjp_numeric[j], k, j)
            if n_out <= full_jacobian_max:
                _compare_rows(problem, k, numeric, outs, close, fail)
    else:
        for _ in range(projections):
            directions = [rng.standard_normal(problem.arrays[i].shape) for i in problem.checked]
            saved = [problem.arrays[i].copy() for i in problem.checked]
            values = []
            for step in (eps, -eps):
                for i, d, s in zip(problem.checked, directions, saved):
                    problem.arrays[i][...] = s + step * d
                values.append(_flat_outputs(problem.fn, problem.arrays, problem.checked))
            for i, s in zip(problem.checked, saved):
                problem.arrays[i][...] = s
            n = float(v @ (values[0] - values[1]) / (2 * eps))
            a = float(sum(np.sum(g * d) for g, d in zip(analytic, directions)))
            if not close(a, n):
                raise GradcheckError(
                    f"gradcheck: random projection vᵀJu disagrees: analytic={a:.10g}, "
                    f"numeric={n:.10g}, abs err={abs(a - n):.3g} over inputs {problem.names} "
                    f"(too large for the full Jacobian: {total} > full_jacobian_max elements) {where}")

    zero = problem.vjp([np.zeros_like(c) for c in cotangents])
    for name, g in zip(problem.names, zero):
        if np.any(g != 0):
            j = int(np.flatnonzero(g)[0])
            raise GradcheckError(f"gradcheck: a zero cotangent gave a non-zero gradient for "
                                 f"{_describe(name, j, g.shape)}: {g.flat[j]:.6g}")
    again = problem.vjp(cotangents)
    for name, g1, g2 in zip(problem.names, analytic, again):
        if not np.allclose(g1, g2, rtol=1e-12, atol=1e-12, equal_nan=True):
            j = int(np.flatnonzero(~np.isclose(g1, g2, rtol=1e-12, atol=1e-12))[0])
            raise GradcheckError(f"gradcheck: two backward runs disagree for "
                                 f"{_describe(name, j, g1.shape)}: {g1.flat[j]:.10g} then "
                                 f"{g2.flat[j]:.10g} (is the function random?)")
    after = [a for a in problem.arrays if isinstance(a, np.ndarray)]
    for a, b in zip(before, after):
        if not np.array_equal(a, b, equal_nan=True):
            raise GradcheckError("gradcheck: fn modified one of its input arrays in place")


def _compare_rows(problem, k, numeric, outs, close, fail):
    """Analytic Jacobian rows eᵢᵀJ (unit cotangents) against the numeric Jacobian."""
    shapes = [o.shape for o in outs]
    sizes = [int(np.prod(s)) for s in shapes]
    x = problem.arrays[problem.checked[k]]
    row = 0
    for out_index, size in enumerate(sizes):
        for e in range(size):
            cotangents = [np.zeros(s) for s in shapes]
            cotangents[out_index].flat[e] = 1.0
            analytic = problem.vjp(cotangents)[k]
            for j in range(x.size):
                if not close(analytic.flat[j], numeric[row, j]):
                    fail(f"{problem.names[k]} (d output {out_index}[{e}])", j, x.shape,
                         analytic.flat[j], numeric[row, j], k, j)
            row += 1


def gradgradcheck(fn, inputs, *, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0,
                  full_jacobian_max=512, projections=3, raise_exception=True) -> bool:
    """Check second derivatives: gradcheck of the map (inputs, v) -> vᵀJ(inputs).

    The first derivative is built with ``create_graph=True``; its gradient with respect
    to both the inputs (the Hessian part) and the cotangent v is checked.
    """
    inputs = list(inputs)
    rng = np.random.default_rng(seed + 1)
    with autograd.no_grad():
        outs = _as_tuple(fn(*inputs))
    cotangents = [Tensor(rng.uniform(0.5, 1.5, o.shape) * rng.choice([-1.0, 1.0], o.shape),
                         requires_grad=True) for o in outs]
    n = len(inputs)
    checked = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]

    def first_derivative(*args):
        xs, vs = args[:n], args[n:]
        outputs = _as_tuple(fn(*xs))
        live = [(o, v) for o, v in zip(outputs, vs) if o.requires_grad]
        grads = autograd.grad([o for o, _ in live], [xs[i] for i in checked],
                              [v for _, v in live], create_graph=True, allow_unused=True)
        # Where the first derivative does not depend on an input, it is a constant zero.
        return tuple(g if g is not None else Tensor(np.zeros(xs[i].shape))
                     for g, i in zip(grads, checked))

    return gradcheck(first_derivative, inputs + cotangents, eps=eps, atol=atol, rtol=rtol,
                     seed=seed, full_jacobian_max=full_jacobian_max, projections=projections,
                     raise_exception=raise_exception)

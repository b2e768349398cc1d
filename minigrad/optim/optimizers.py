"""SGD, Adam and AdamW with PyTorch's update rules, and ``clip_grad_norm_``.

Updates run in numpy, in place: state arrays are allocated once at construction and
temporaries go into a scratch buffer reused by every parameter, so a step allocates
nothing and float32 parameters are never upcast.  Parameters whose ``.grad`` is None
are skipped (their step count does not advance).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from minigrad.autograd import no_grad
from minigrad.tensor import Tensor

# What a hyperparameter may be, when given and when loaded (each of betas in [0, 1)).
HYPERPARAM_BOUNDS = {"lr": dict(at_least=0), "momentum": dict(at_least=0), "weight_decay": dict(at_least=0),
                     "eps": dict(above=0), "betas": dict(at_least=0, below=1)}


class Optimizer:
    """What all optimizers share: the parameter list, ``lr``, ``zero_grad`` and the
    state dict.  Subclasses list their per-parameter arrays in ``array_names`` and
    their hyperparameters in ``hyperparam_names``, and write ``step``."""

    array_names: tuple[str, ...] = ()
    hyperparam_names: tuple[str, ...] = ("lr",)

    def __init__(self, params, lr: float, scratch_per_param: int = 1):
        self.params = _parameter_list(params, type(self).__name__)
        self.lr = check_number(type(self).__name__, "lr", lr, **HYPERPARAM_BOUNDS["lr"])
        self.state = [{"step": 0, **{name: np.zeros_like(p.data) for name in self.array_names}}
                      for p in self.params]
        self._scratch = _scratch_views(self.params, scratch_per_param)

    def zero_grad(self):
        """Forget accumulated gradients (``.grad = None``) of every parameter."""
        for p in self.params:
            p.grad = None

    def state_dict(self) -> dict:
        """{"kind", "hyperparams": {name: number}, "state": [{"step": int, array name:
        copy of the array} per parameter]}: plain numbers and numpy arrays only."""
        return {
            "kind": type(self).__name__,
            "hyperparams": {name: _plain(getattr(self, name)) for name in self.hyperparam_names},
            "state": [{k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in s.items()}
                      for s in self.state],
        }

    def load_state_dict(self, state: dict):
        """Restore hyperparameters (including lr) and per-parameter state.  Everything
        is validated first; on a problem, ValueError and nothing changes."""
        self._check_state_dict(state)
        for name in self.hyperparam_names:
            value = state["hyperparams"][name]
            setattr(self, name, tuple(value) if isinstance(value, list) else value)
        for mine, theirs in zip(self.state, state["state"]):
            mine["step"] = int(theirs["step"])
            for name in self.array_names:
                np.copyto(mine[name], np.asarray(theirs[name]).astype(mine[name].dtype, copy=False))

    def _check_state_dict(self, state: dict):
        """Raise ValueError listing every way ``state`` does not fit this optimizer."""
        who = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state, dict) or not {"kind", "hyperparams", "state"} <= state.keys():
            raise ValueError(f"{who}: expected a dict with keys 'kind', 'hyperparams' and 'state' "
                             f"(from state_dict()), got {type(state).__name__}")
        if state["kind"] != type(self).__name__:
            raise ValueError(f"{who}: the state comes from a {state['kind']} optimizer")
        problems = [f"hyperparameter '{name}' is missing" for name in self.hyperparam_names
                    if name not in state["hyperparams"]]
        for name, bounds in HYPERPARAM_BOUNDS.items():
            values = state["hyperparams"].get(name) if isinstance(state["hyperparams"], dict) else None
            if name not in self.hyperparam_names or values is None:
                continue
            if name == "betas" and not (isinstance(values, (list, tuple)) and len(values) == 2):
                problems.append(f"betas must be a pair [beta1, beta2], got {values!r}")
                continue
            for value in values if name == "betas" else [values]:
                try:
                    check_number(who, name, value, **bounds)
                except ValueError as e:
                    problems.append(str(e).removeprefix(f"{who}: "))
        if not isinstance(state["state"], list):
            problems.append(f"'state' should be a list (one entry per parameter), got "
                            f"{type(state['state']).__name__}")
        elif len(state["state"]) != len(self.params):
            problems.append(f"the state has {len(state['state'])} parameters, this optimizer has "
                            f"{len(self.params)}")
        else:
            for i, (p, s) in enumerate(zip(self.params, state["state"])):
                problems += [f"parameter {i}: {problem}" for problem in self._entry_problems(p, s)]
        if problems:
            raise ValueError(f"{who}: {len(problems)} problem(s), nothing was loaded:\n  "
                             + "\n  ".join(problems))

    def _entry_problems(self, p, entry):
        """What is wrong with one parameter's saved state."""
        if not isinstance(entry, dict):
            return [f"expected a dict, got {type(entry).__name__}"]
        problems = [] if isinstance(entry.get("step"), (int, np.integer)) else \
            ["'step' is missing or not an integer"]
        for name in entry.keys() - {"step", *self.array_names}:
            problems.append(f"unexpected '{name}' (this {type(self).__name__} keeps "
                            f"{list(self.array_names) or 'no arrays'})")
        for name in self.array_names:
            array = np.asarray(entry.get(name))
            if name not in entry:
                problems.append(f"'{name}' is missing")
            elif array.shape != p.shape:
                problems.append(f"'{name}' has shape {array.shape}, the parameter has {p.shape}")
            elif array.dtype.kind not in "fiu":
                problems.append(f"'{name}' has dtype {array.dtype}, expected numbers")
        return problems

    def _live(self):
        """(parameter, its gradient array, its state, its scratch arrays) for every
        parameter that has a gradient."""
        for p, s, scratch in zip(self.params, self.state, self._scratch):
            if p.grad is not None:
                yield p, p.grad.data, s, scratch


class SGD(Optimizer):
    """Stochastic gradient descent, as torch.optim.SGD (no dampening):

        g = ∇ + weight_decay·p
        b = momentum·b + g                           (b starts at 0)
        g = g + momentum·b   if nesterov   else   b  (when momentum > 0)
        p = p - lr·g
    """

    hyperparam_names = ("lr", "momentum", "nesterov", "weight_decay")

    def __init__(self, params, lr: float, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0):
        check_number("SGD", "momentum", momentum, **HYPERPARAM_BOUNDS["momentum"])
        check_number("SGD", "weight_decay", weight_decay, **HYPERPARAM_BOUNDS["weight_decay"])
        if nesterov and momentum <= 0:
            raise ValueError("SGD: nesterov=True needs momentum > 0")
        self.array_names = ("momentum_buffer",) if momentum else ()
        super().__init__(params, lr, scratch_per_param=2)
        self.momentum, self.nesterov, self.weight_decay = momentum, nesterov, weight_decay

    def step(self):
        lr, momentum, nesterov, wd = self.lr, self.momentum, self.nesterov, self.weight_decay
        with no_grad():
            for p, g, s, (work, work2) in self._live():
                s["step"] += 1
                if wd:
                    np.multiply(p.data, wd, out=work)
                    work += g
                    g = work
                if momentum:
                    buf = s["momentum_buffer"]
                    buf *= momentum
                    buf += g
                    if nesterov:
                        np.multiply(buf, momentum, out=work2)
                        work2 += g
                        g = work2
                    else:
                        g = buf
                np.multiply(g, lr, out=work)
                p.sub_(work)


class Adam(Optimizer):
    """Adam (Kingma & Ba), as torch.optim.Adam; weight decay is an L2 term in the gradient:

        g = ∇ + weight_decay·p
        m = β₁·m + (1-β₁)·g,   v = β₂·v + (1-β₂)·g²
        p = p - lr/(1-β₁ᵗ) · m / (√v/√(1-β₂ᵗ) + eps)      (t = this parameter's step)
    """

    array_names = ("exp_avg", "exp_avg_sq")
    hyperparam_names = ("lr", "betas", "eps", "weight_decay")
    decoupled_weight_decay = False

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        who = type(self).__name__
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
            raise ValueError(f"{who}: betas must be a pair (beta1, beta2), got {betas!r}")
        for name, beta in zip(("betas[0]", "betas[1]"), betas):
            check_number(who, name, beta, **HYPERPARAM_BOUNDS["betas"])
        check_number(who, "eps", eps, **HYPERPARAM_BOUNDS["eps"])
        check_number(who, "weight_decay", weight_decay, **HYPERPARAM_BOUNDS["weight_decay"])
        super().__init__(params, lr, scratch_per_param=2)
        self.betas, self.eps, self.weight_decay = tuple(betas), eps, weight_decay

    def step(self):
        lr, (beta1, beta2), eps, wd = self.lr, self.betas, self.eps, self.weight_decay
        with no_grad():
            for p, g, s, (work, denom) in self._live():
                s["step"] += 1
                t = s["step"]
                if wd and self.decoupled_weight_decay:
                    p.mul_(1 - lr * wd)
                elif wd:
                    np.multiply(p.data, wd, out=denom)
                    denom += g
                    g = denom
                m, v = s["exp_avg"], s["exp_avg_sq"]
                m *= beta1
                np.multiply(g, 1 - beta1, out=work)
                m += work
                v *= beta2
                np.multiply(g, g, out=work)
                work *= 1 - beta2
                v += work
                np.sqrt(v, out=denom)
                denom /= math.sqrt(1 - beta2 ** t)
                denom += eps
                np.divide(m, denom, out=work)
                work *= lr / (1 - beta1 ** t)
                p.sub_(work)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), as torch.optim.AdamW:
    first p = p - lr·weight_decay·p, then the Adam step with the plain gradient."""

    decoupled_weight_decay = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01):
        super().__init__(params, lr, betas, eps, weight_decay)


def clip_grad_norm_(parameters, max_norm: float) -> float:
    """Scale all gradients in place so that their joint L2 norm is at most ``max_norm``
    (factor max_norm / (norm + 1e-6), as PyTorch).  Returns the norm before clipping;
    a non-finite norm is returned and the gradients are left as they are.  ``max_norm``
    must be finite and > 0 (a NaN would silently turn clipping off, a negative one flip
    every gradient)."""
    check_number("clip_grad_norm_", "max_norm", max_norm, above=0)
    grads = [p.grad for p in parameters if p.grad is not None]
    total = math.sqrt(sum(float(np.vdot(g.data, g.data)) for g in grads))
    coef = max_norm / (total + 1e-6)
    if coef < 1.0:
        for g in grads:
            g.mul_(coef)
    return total


# --------------------------------------------------------------------------- helpers


def check_number(who, name, value, *, at_least=None, above=None, below=None, integer=False):
    """``value`` if it is a finite real number (an int when ``integer``) within the bounds,
    else ValueError "who: name must be ..., got value".  NaN fails every comparison, so
    it is refused by name rather than let through by a ``<`` test."""
    kind = (numbers.Integral,) if integer else (numbers.Real,)
    ok = (isinstance(value, kind) and not isinstance(value, bool) and math.isfinite(value)
          and (at_least is None or value >= at_least) and (above is None or value > above)
          and (below is None or value < below))
    if not ok:
        bounds = [f"≥ {at_least}" * (at_least is not None), f"> {above}" * (above is not None),
                  f"< {below}" * (below is not None)]
        expected = " and ".join(b for b in bounds if b)
        raise ValueError(f"{who}: {name} must be {'an integer' if integer else 'a finite number'}"
                         f"{' ' + expected if expected else ''}, got {value!r}")
    return value


def _parameter_list(params, who):
    params = list(params)
    if not params:
        raise ValueError(f"{who}: got an empty parameter list")
    seen = set()
    for i, p in enumerate(params):
        if not isinstance(p, Tensor) or not p.requires_grad:
            raise TypeError(f"{who}: parameter {i} is not a Tensor that requires grad "
                            f"(got {type(p).__name__})")
        if id(p) in seen:
            raise ValueError(f"{who}: parameter {i} (shape {p.shape}) appears twice in the list")
        seen.add(id(p))
    return params


def _scratch_views(params, count):
    """For each parameter, ``count`` arrays of its shape and dtype, all views into a few
    flat buffers sized for the largest parameter: allocated once, reused every step."""
    largest = {}
    for p in params:
        largest[p.dtype] = max(largest.get(p.dtype, 0), p.size)
    flat = {dtype: [np.empty(size, dtype) for _ in range(count)] for dtype, size in largest.items()}
    return [tuple(b[:p.size].reshape(p.shape) for b in flat[p.dtype]) for p in params]


def _plain(value):
    """Hyperparameter as a JSON-friendly Python value."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value

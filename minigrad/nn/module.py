"""``Parameter`` and ``Module``: the bookkeeping that turns tensors into a model.

A Module registers what you assign to it: ``self.fc = Linear(...)`` makes ``fc`` a
submodule, ``self.scale = Parameter(...)`` a parameter.  From that tree it derives
dotted names (``encoder.layers.0.weight``), ``state_dict`` and the scope names that
graph rendering groups ops by.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict

import numpy as np

from minigrad.autograd import STATE, no_grad
from minigrad.tensor import Tensor


class Parameter(Tensor):
    """A Tensor that a Module trains: always ``requires_grad=True`` (so float only)."""

    __slots__ = ()

    def __init__(self, data, dtype=None, name=None):
        super().__init__(data, requires_grad=True, dtype=dtype, name=name)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


# How many Module calls are running.  0 means the next call is a top-level one, which
# (re)names the whole tree below it before running.
_active_calls = 0
# Naming a tree walks all of it, so a top-level call skips it when the same root is
# called again and no parameter or submodule was (un)registered anywhere since.
_structure_version = 0
_last_naming = (None, -1)  # (id of the root, _structure_version) of the last naming pass


class Module:
    """Base class of layers and models: subclass it, assign parts in ``__init__``
    (after ``super().__init__()``) and write ``forward``.

    Parameters and submodules live both in registries (``_parameters``, ``_modules``,
    ``_buffers``) and as ordinary instance attributes, so ``self.weight`` in
    ``forward`` is a plain attribute read.
    """

    def __init__(self):
        # object.__setattr__ because our __setattr__ needs these registries to exist.
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_qualified_name", type(self).__name__)
        object.__setattr__(self, "_parent", None)  # weak reference to the first module that registered this one

    # ----------------------------------------------------------------- registration

    def __setattr__(self, name, value):
        try:
            params, modules, buffers = self._parameters, self._modules, self._buffers
        except AttributeError:
            raise RuntimeError(
                f"{type(self).__name__}: cannot assign '{name}' before Module.__init__ ran; "
                "call super().__init__() first in your __init__."
            ) from None
        global _structure_version
        if isinstance(value, (Parameter, Module)) or name in params or name in modules:
            _structure_version += 1
        if isinstance(value, Parameter):
            modules.pop(name, None)
            buffers.pop(name, None)
            params[name] = value
        elif isinstance(value, Module):
            params.pop(name, None)
            buffers.pop(name, None)
            modules[name] = value
            if value._root() is value and value is not self:  # the first owner names it
                object.__setattr__(value, "_parent", weakref.ref(self))
        elif name in buffers:
            if value is None:
                del buffers[name]
            else:
                value = buffers[name] = np.asarray(value)
        elif name in params or name in modules:
            if value is not None:
                kind = "parameter" if name in params else "submodule"
                raise TypeError(
                    f"{type(self).__name__}.{name} is a {kind}; cannot assign a "
                    f"{type(value).__name__} to it (wrap tensors in nn.Parameter, or assign "
                    "None to remove it)."
                )
            params.pop(name, None)
            modules.pop(name, None)
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        global _structure_version
        _structure_version += 1
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        self._buffers.pop(name, None)
        self._non_persistent.discard(name)
        object.__delattr__(self, name)

    def register_buffer(self, name: str, array, persistent: bool = True):
        """Attach a non-trainable array (e.g. a positional-encoding table) as
        ``self.<name>``.  Persistent buffers are saved in ``state_dict``."""
        if name in self._parameters or name in self._modules:
            raise KeyError(f"{type(self).__name__}.register_buffer: '{name}' is already a "
                           "parameter or submodule")
        array = np.asarray(array)
        self._buffers[name] = array
        if persistent:
            self._non_persistent.discard(name)
        else:
            self._non_persistent.add(name)
        object.__setattr__(self, name, array)

    # ----------------------------------------------------------------- traversal

    def named_modules(self, prefix: str = ""):
        """(dotted name, module) for this module and every descendant, depth first;
        a module reachable by two paths is listed once, under its first name."""
        seen, stack = set(), [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [(f"{name}.{child}" if name else child, m)
                        for child, m in module._modules.items()]
            stack.extend(reversed(children))  # reversed: pop them in registration order

    def modules(self):
        return (m for _, m in self.named_modules())

    def named_children(self):
        """(name, module) for the direct submodules, in registration order."""
        return iter(self._modules.items())

    def children(self):
        return iter(self._modules.values())

    def named_parameters(self):
        """(dotted name, Parameter) for every parameter; a shared (tied) parameter is
        listed once, under the first name it is reached by."""
        seen = set()
        for module_name, module in self.named_modules():
            for name, p in module._parameters.items():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{module_name}.{name}" if module_name else name), p

    def parameters(self):
        return (p for _, p in self.named_parameters())

    def named_buffers(self, persistent_only: bool = False):
        """(dotted name, array) for every buffer."""
        for module_name, module in self.named_modules():
            for name, array in module._buffers.items():
                if not (persistent_only and name in module._non_persistent):
                    yield (f"{module_name}.{name}" if module_name else name), array

    def num_parameters(self) -> int:
        """Number of trainable scalars (shared parameters counted once)."""
        return sum(p.size for p in self.parameters())

    # ----------------------------------------------------------------- modes and grads

    def train(self, mode: bool = True):
        """Set ``training`` on this module and all descendants (dropout reads it)."""
        for m in self.modules():
            m.training = mode
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self):
        """Forget accumulated gradients (``.grad = None``)."""
        for p in self.parameters():
            p.grad = None

    # ----------------------------------------------------------------- calling

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward() method")

    def __call__(self, *args, **kwargs):
        """Run ``forward`` inside a name scope carrying this module's qualified name."""
        global _active_calls
        if _active_calls == 0:
            # A top-level call (e.g. model.encoder(...) from a method of the model) names
            # the tree from its real root, so scopes read "encoder.layers.0" either way.
            root = self._root()
            if _last_naming != (id(root), _structure_version):
                root._name_tree()
        saved = STATE.scope
        STATE.scope = saved + (self._qualified_name,)
        _active_calls += 1
        try:
            return self.forward(*args, **kwargs)
        finally:
            _active_calls -= 1
            STATE.scope = saved

    def _root(self):
        """The outermost module above this one (following first owners)."""
        module = self
        while module._parent is not None and module._parent() is not None:
            module = module._parent()
        return module

    def _name_tree(self):
        """Qualified names for a top-level call: the root is its class name, descendants
        their dotted path from the root; unnamed parameters get their dotted names."""
        global _last_naming
        for name, module in self.named_modules():
            module._qualified_name = name or type(module).__name__
        for name, p in self.named_parameters():
            if p.name is None:
                p.name = name
        _last_naming = (id(self), _structure_version)

    # ----------------------------------------------------------------- state

    def state_dict(self) -> OrderedDict:
        """name -> copy of the array, for every parameter and persistent buffer.
        Tied parameters appear once (see ``named_parameters``)."""
        state = OrderedDict((name, np.array(p.data, copy=True)) for name, p in self.named_parameters())
        for name, array in self.named_buffers(persistent_only=True):
            state[name] = np.array(array, copy=True)
        return state

    def load_state_dict(self, state, strict: bool = True):
        """Copy ``state`` (name -> array) into the parameters and buffers, cast to their
        dtypes.  Every problem (missing key, unexpected key, shape mismatch) is collected
        into one ValueError, raised before anything changes.  With ``strict=False``
        missing and unexpected keys are allowed.  Returns (missing, unexpected) keys."""
        plan, missing, unexpected = self._check_state_dict(state, strict)
        with no_grad():
            for destination, array in plan:
                if isinstance(destination, Tensor):
                    destination.copy_(array)
                else:
                    np.copyto(destination, array)
        return missing, unexpected

    def _check_state_dict(self, state, strict: bool = True):
        """Validate ``state`` without changing anything: (destination, cast array) pairs
        to copy, missing keys, unexpected keys; or ValueError listing all problems."""
        destinations = dict(self.named_parameters())
        destinations.update(self.named_buffers(persistent_only=True))
        missing = [k for k in destinations if k not in state]
        unexpected = [k for k in state if k not in destinations]
        problems = []
        if strict:
            problems += [f"missing key '{k}' (shape {destinations[k].shape})" for k in missing]
            problems += [f"unexpected key '{k}'" for k in unexpected]
        plan = []
        for name, destination in destinations.items():
            if name not in state:
                continue
            value = state[name]
            value = value.data if isinstance(value, Tensor) else value
            try:
                array = np.asarray(value).astype(destination.dtype, copy=False)
            except (TypeError, ValueError) as e:
                problems.append(f"'{name}': cannot convert to {destination.dtype}: {e}")
                continue
            if array.shape != destination.shape:
                problems.append(f"shape mismatch for '{name}': the state has {array.shape}, "
                                f"the model has {destination.shape}")
                continue
            plan.append((destination, array))
        if problems:
            raise ValueError(f"{type(self).__name__}.load_state_dict: {len(problems)} problem(s), "
                             "nothing was loaded:\n  " + "\n  ".join(problems))
        return plan, missing, unexpected

    # ----------------------------------------------------------------- printing

    def extra_repr(self) -> str:
        """The constructor arguments worth showing in ``repr`` (override in layers)."""
        return ""

    def __repr__(self):
        own = [f"{name} {_shape(p)}" for name, p in self._parameters.items()]
        if not self._modules:  # a leaf layer: one line
            params = f"  [{', '.join(own)}]" if own else ""
            return f"{type(self).__name__}({self.extra_repr()}){params}"
        lines = [f"({name}): Parameter {_shape(p)}" for name, p in self._parameters.items()]
        for name, m in self._modules.items():
            lines.append(f"({name}): " + repr(m).replace("\n", "\n  "))
        body = "\n  ".join(lines)
        return f"{type(self).__name__}({self.extra_repr()}\n  {body}\n)"


def _shape(p):
    """(2, 8), with the dtype added when it is not the float32 default."""
    return str(p.shape) + ("" if p.dtype == np.float32 else f" {p.dtype}")

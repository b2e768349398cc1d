"""The reverse-mode engine: recording ops, and running their VJP rules backwards.

Every op (see ``ops.py``) computes its result with numpy and then calls :func:`record`,
which wraps the result in a Tensor and, when gradients are wanted, attaches a
:class:`Node` holding the op's inputs and one VJP rule per input.  ``backward`` walks the
recorded graph from the output back to the leaves, newest op first, calling each rule
with the incoming gradient (a loop over a heap, not recursion: a 100,000-op chain is fine).

The VJP rules are written with minigrad's own ops.  Normally backward runs with
recording switched off, so those ops are plain numpy calls; with
``create_graph=True`` recording stays on and the gradient gets a graph of its own,
which is what makes grad-of-grad (Hessian-vector products) work.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import operator
import zlib

import numpy as np


class _State:
    """Process-wide switches read by every op."""

    grad_enabled = True
    anomaly = False
    scope: tuple[str, ...] = ()  # innermost name_scope / module last
    tracer = None  # a minigrad.tracing.Trace while one is active


STATE = _State()


# --------------------------------------------------------------------------- modes


class _GradMode(contextlib.ContextDecorator):
    """Context manager and decorator that sets whether ops are recorded."""

    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __enter__(self):
        self._previous = STATE.grad_enabled
        STATE.grad_enabled = self.enabled
        return self

    def __exit__(self, *exc):
        STATE.grad_enabled = self._previous
        return False


def no_grad():
    """Stop recording ops (inference, optimizer updates). Usable as ``with`` or ``@``.
    On exit the mode that was on before comes back, so ``no_grad`` and ``enable_grad`` nest."""
    return _GradMode(False)


def enable_grad():
    """Record ops again inside a ``no_grad`` region. Usable as ``with`` or ``@``; on exit the
    mode that was on before comes back."""
    return _GradMode(True)


def is_grad_enabled() -> bool:
    return STATE.grad_enabled


@contextlib.contextmanager
def name_scope(name: str):
    """Tag every op recorded inside with ``name``; scopes nest.

    The graph renderer draws each scope as a cluster, and ``nn.Module`` calls push
    their qualified names (``encoder.layers.0.self_attn``) the same way.
    """
    previous = STATE.scope
    STATE.scope = previous + (str(name),)
    try:
        yield
    finally:
        STATE.scope = previous


@contextlib.contextmanager
def detect_anomaly():
    """Raise at the first op whose forward gives NaN, or whose VJP gives NaN or Inf.

    Forward Inf is allowed because masking with ``-inf`` is routine (attention masks);
    the NaN it may lead to is caught at the op that makes it.

    It also checksums each op's input and output arrays when the op is recorded and
    checks them before its VJP runs, so a write that the version counters cannot see
    (``t.data[...] = v``, or into the numpy array wrapped by ``Tensor(array)``) raises
    instead of giving a wrong gradient.  Not covered: plain numpy arguments an op keeps
    by reference (masks, indices).  The checksums cost a pass over every array, which is
    why this is a debugging mode.
    """
    previous = STATE.anomaly
    STATE.anomaly = True
    try:
        yield
    finally:
        STATE.anomaly = previous


# --------------------------------------------------------------------------- recording


_node_count = itertools.count()  # Node.seq: the order in which ops were recorded


class Node:
    """How a non-leaf tensor was made: the op, its inputs, and one VJP per input.

    ``vjps[i](g, out)`` maps the gradient ``g`` of the output ``out`` to the gradient of
    ``inputs[i]`` (before broadcasting is undone).  ``versions`` are the inputs' version
    counters at record time, checked in backward to catch in-place changes.
    ``fingerprints`` (under ``detect_anomaly`` only) are checksums of the inputs' and the
    output's arrays, checked in backward to catch writes that bypass the counters.
    """

    __slots__ = ("op", "inputs", "vjps", "versions", "scope", "seq", "fingerprints")

    def __init__(self, op, inputs, vjps, versions, scope):
        self.seq = next(_node_count)
        self.op = op
        self.inputs = inputs
        self.vjps = vjps
        self.versions = versions
        self.scope = scope
        self.fingerprints = None

    def __repr__(self):
        return f"<Node {self.op}>"


def record(op: str, data: np.ndarray, inputs: tuple, *vjps):
    """Wrap ``data`` (the result of ``op`` on ``inputs``) in a Tensor and record how to
    differentiate it: ``vjps[i]`` is the rule for ``inputs[i]``.

    Backward calls each rule as ``vjps[i](g, out)`` and it must return a Tensor:
    ``g`` is the gradient of the output (a Tensor shaped like ``data``) and ``out`` is
    the output Tensor itself, for rules that reuse the forward result (exp: x̄ = ḡ·out)
    without the closure holding the output, which would keep it alive in a cycle.
    The returned gradient is the input's shape, or the broadcast shape, which backward
    sums back to the input's.
    """
    out = Tensor._wrap(data)
    if STATE.anomaly:
        _check_finite(op, "forward", data, allow_inf=True)
    if STATE.grad_enabled:
        for t in inputs:
            if t.requires_grad:
                out.requires_grad = True
                out._node = Node(op, inputs, vjps, tuple(map(_version, inputs)), STATE.scope)
                if STATE.anomaly:
                    out._node.fingerprints = _fingerprints(inputs, out)
                break
    return out


_version = operator.attrgetter("_version")


def _check_finite(op, where, data, allow_inf=False, scope=None):
    if not np.issubdtype(data.dtype, np.floating):
        return
    bad = np.isnan(data) if allow_inf else ~np.isfinite(data)
    if bad.any():
        place = f" in scope {'/'.join(scope or STATE.scope)!r}" if (scope or STATE.scope) else ""
        raise FloatingPointError(
            f"detect_anomaly: {op}{place} produced {int(bad.sum())} NaN/Inf value(s) in its "
            f"{where} (shape {data.shape}); first at index {tuple(int(i) for i in np.argwhere(bad)[0])}"
        )


# --------------------------------------------------------------------------- backward


def run_backward(roots, root_grads, *, retain_graph, create_graph, inputs=None):
    """Propagate ``root_grads`` from ``roots`` to the leaves.

    Without ``inputs``: accumulate into every leaf's ``.grad`` and return None.
    With ``inputs``: return their gradients (None where unreachable), touch no ``.grad``.

    Order: an op's output is always recorded after its inputs, so running the waiting
    tensors newest first (largest ``Node.seq``, kept in a heap) reaches each tensor only
    after every tensor computed from it has sent its gradient: a topological order with
    no separate sort, the way PyTorch's engine does it.
    """
    grads = {}  # id(tensor) -> [tensor, its gradient so far]; the leaves' entries stay to the end
    waiting = []  # heap of (-seq, tensor): non-leaves that hold a gradient, newest first

    def send(t, g):
        entry = grads.get(id(t))
        if entry is not None:  # t is used more than once: its gradients add up
            entry[1] = entry[1] + g
            return
        grads[id(t)] = [t, g]
        if t._node is not None:
            heapq.heappush(waiting, (-t._node.seq, t))

    for r, g in zip(roots, root_grads):
        send(r, g)
    wanted = None if inputs is None else {id(t): [t, None] for t in inputs}
    tracer, anomaly = STATE.tracer, STATE.anomaly
    recording = STATE.grad_enabled
    STATE.grad_enabled = create_graph  # the rules' own ops are recorded only for create_graph
    try:
        while waiting:
            _, t = heapq.heappop(waiting)
            g = grads.pop(id(t))[1]  # popped, so the gradient is freed once the rules have run
            if wanted is not None and id(t) in wanted:
                wanted[id(t)][1] = g
            node = t._node
            if node.vjps is None:
                raise RuntimeError(
                    f"backward through the graph a second time: the buffers of '{node.op}' were "
                    "freed by the first backward. Pass retain_graph=True to the first "
                    "backward() (or minigrad.grad) if you need to run it again."
                )
            if t._version or tuple(map(_version, node.inputs)) != node.versions:
                _report_in_place_change(t, node)
            if node.fingerprints is not None:
                _check_fingerprints(t, node)
            step_grads = [] if tracer is not None else None
            for i, (inp, vjp) in enumerate(zip(node.inputs, node.vjps)):
                if not inp.requires_grad:
                    continue
                gi = vjp(g, t)
                if not isinstance(gi, Tensor):
                    raise TypeError(f"the VJP rule of '{node.op}' for input {i} returned "
                                    f"{type(gi).__name__}; a rule must return a Tensor (build it "
                                    "with minigrad ops on g, or wrap an array in minigrad.Tensor)")
                if gi._data.shape != inp._data.shape:
                    gi = _undo_broadcast(gi, inp, node.op, i)
                if gi._data.dtype != inp._data.dtype:  # each input's gradient has its dtype, as in PyTorch
                    gi = astype(gi, inp._data.dtype)
                if anomaly:
                    _check_finite(node.op, f"backward (gradient of input {i})", gi.data, scope=node.scope)
                if step_grads is not None:
                    step_grads.append((i, gi))
                send(inp, gi)
            if tracer is not None:
                tracer._record_step(t, node, g, step_grads)
            if not retain_graph:
                # Free what the rules saved, and the links that keep activations alive.
                node.vjps = None
                node.inputs = ()
                node.fingerprints = None
    finally:
        STATE.grad_enabled = recording

    if wanted is not None:
        for key, (_, g) in grads.items():
            if key in wanted:
                wanted[key][1] = g
        return [wanted[id(t)][1] for t in inputs]
    _store_leaf_gradients(grads.values(), root_grads, create_graph)
    return None


def _store_leaf_gradients(leaves, root_grads, create_graph):
    """Add each leaf's gradient into its ``.grad``.

    Every leaf must own its gradient array: rules may hand one array to several inputs
    (``a + b`` passes ḡ to both), or pass on the caller's cotangent, or return a
    read-only broadcast view; optimizers then change ``.grad`` in place.
    """
    handed_out = {id(g._data) for g in root_grads}
    for leaf, g in leaves:
        if leaf.grad is None:
            data = g._data
            if not create_graph and (id(data) in handed_out or data.base is not None or not data.flags.writeable):
                g = Tensor._wrap(data.copy())
            handed_out.add(id(g._data))
            leaf.grad = g
        elif create_graph:
            leaf.grad = leaf.grad + g
        else:
            leaf.grad._data += g._data
            leaf.grad._version += 1


def _undo_broadcast(gi, inp, op, index):
    """Sum a broadcast gradient back to its input's shape, or name the broken rule."""
    try:
        fits = np.broadcast_shapes(inp.shape, gi.shape) == gi.shape
    except ValueError:
        fits = False
    if not fits:
        raise RuntimeError(
            f"VJP rule of '{op}' returned a gradient of shape {gi.shape} for input {index}, "
            f"which has shape {inp.shape}; a gradient must have its input's shape "
            "(or a shape that broadcasting the input produces)."
        )
    gi = sum_to(gi, inp.shape)
    assert gi.shape == inp.shape, f"sum_to gave {gi.shape} for {inp.shape} in '{op}'"
    return gi


def _report_in_place_change(t, node):
    if t._version != 0:
        raise RuntimeError(
            f"the output of '{node.op}' (shape {t.shape}) was modified in place after it was "
            "computed, but its VJP needs the original value. Use an out-of-place op instead."
        )
    for i, (inp, v) in enumerate(zip(node.inputs, node.versions)):
        if inp._version != v:
            raise RuntimeError(
                f"input {i} of '{node.op}' (shape {inp.shape}) was modified in place after the "
                f"op used it (version {v} -> {inp._version}), so its gradient would be wrong. "
                "Modify a copy, or modify it before the forward pass."
            )


def _fingerprints(inputs, out):
    """Checksums of the arrays an op may read again in backward: its inputs and output."""
    return tuple(zlib.crc32(np.ascontiguousarray(t._data)) for t in (*inputs, out))


def _check_fingerprints(t, node):
    for i, (x, before) in enumerate(zip((*node.inputs, t), node.fingerprints)):
        if zlib.crc32(np.ascontiguousarray(x._data)) != before:
            which = f"input {i}" if i < len(node.inputs) else "the output"
            raise RuntimeError(
                f"detect_anomaly: {which} of '{node.op}' (shape {x.shape}) was changed through its numpy "
                "array (`t.data[...] = v`, or a write into the array given to Tensor(array)) after the op "
                "saved it for backward, so its gradient would be wrong. Change a copy, or use the "
                "tensor's own in-place methods (t[...] = v, add_, copy_), which are tracked."
            )


def _root_gradient(caller, i, out, g):
    """The cotangent that starts backward at output ``i``: ``g``, or 1 for a scalar."""
    if not out.requires_grad:
        raise RuntimeError(
            f"{caller}: output {i} (shape {out.shape}) does not require grad: no op that "
            "made it had an input with requires_grad=True (or it was made under no_grad)."
        )
    if g is None:
        if out.size != 1:
            raise RuntimeError(
                f"{caller}: output {i} has shape {out.shape}, not a scalar; pass a gradient "
                "of the same shape (e.g. backward(grad=ones_like(out)))."
            )
        return Tensor._wrap(np.ones(out.shape, dtype=out.dtype))
    if not isinstance(g, Tensor):
        g = Tensor(g, dtype=out.dtype)
    if g._data.shape != out._data.shape:
        raise ValueError(
            f"{caller}: gradient for output {i} has shape {g.shape}, but the output has "
            f"shape {out.shape}."
        )
    return g


def backward(tensor, grad=None, retain_graph=False, create_graph=False):
    """Accumulate d(tensor)/d(leaf) into each leaf's ``.grad``. See ``Tensor.backward``."""
    g = _root_gradient("backward", 0, tensor, grad)
    run_backward([tensor], [g], retain_graph=retain_graph or create_graph,
                 create_graph=create_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=False):
    """Gradients of ``outputs`` with respect to ``inputs``, returned, not stored in ``.grad``.

    ``outputs``/``inputs`` are a Tensor or a sequence of Tensors.  ``grad_outputs`` gives
    the cotangent for each output (required for non-scalar ones).  With
    ``create_graph=True`` the returned gradients are themselves differentiable.
    """
    single = isinstance(inputs, Tensor)
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    inputs = [inputs] if single else list(inputs)
    if grad_outputs is None or isinstance(grad_outputs, (Tensor, np.ndarray)):
        grad_outputs = [grad_outputs] * len(outputs) if grad_outputs is None else [grad_outputs]
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"grad: {len(outputs)} outputs but {len(grad_outputs)} grad_outputs")
    for i, t in enumerate(inputs):
        if not t.requires_grad:
            raise RuntimeError(f"grad: input {i} (shape {t.shape}) does not require grad")
    root_grads = [_root_gradient("grad", i, out, g) for i, (out, g) in enumerate(zip(outputs, grad_outputs))]
    if retain_graph is None:
        retain_graph = create_graph
    result = run_backward(outputs, root_grads, retain_graph=retain_graph,
                          create_graph=create_graph, inputs=inputs)
    for i, (t, g) in enumerate(zip(inputs, result)):
        if g is None:
            if not allow_unused:
                raise RuntimeError(
                    f"grad: input {i} (shape {t.shape}) was not used to compute the outputs; "
                    "pass allow_unused=True to get None for it."
                )
        elif not create_graph:
            result[i] = g.detach()
    return result[0] if single else tuple(result)


# Imported last: ops.py and tensor.py import this module first (minigrad/__init__ always loads the
# engine before them), and both are needed only when ops run.
from minigrad.ops import astype, sum_to  # noqa: E402
from minigrad.tensor import Tensor  # noqa: E402

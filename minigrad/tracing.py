"""Watch the backward pass: which VJP ran when, on what shapes, with what gradients.

    >>> import minigrad as mg
    >>> from minigrad.tracing import trace
    >>> x = mg.tensor([1.0, -2.0], requires_grad=True)
    >>> with trace() as t:
    ...     (x * x).sum().backward()
    >>> [step.op for step in t.steps]
    ['sum', 'mul']

``print(t)`` shows the steps as a table.  While a trace is active the engine calls
``Trace._record_step`` once per VJP node it executes, in execution order; each call is
turned into a small :class:`Step` (shapes, float norms and summaries of the gradient
arriving, of the values the rule used and of the gradients sent, never whole arrays
beyond ``SMALL`` elements), so tracing a big model costs little memory.  ``minigrad.viz.to_dot(..., trace=t)``
writes the step numbers onto the graph, and ``minigrad.html.to_html(..., trace=t)`` makes
a page that replays the steps one by one.

Where a tensor is used more than once its gradients add up.  The trace keeps its own
running sum of each tensor's gradients while the backward pass runs (a sum is dropped as
soon as the step that consumes it has run; the leaves' sums are kept until the ``with``
block ends, one extra copy of the leaf gradients), so each step can tell how many
gradients an input has received so far and the norm of their sum.  Like ``.grad``, a
leaf's running sum goes on adding up over several backward passes inside one trace.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from minigrad import autograd


class Summary(NamedTuple):
    """Statistics of an array, in float64: mean, std, min, max, and the values themselves
    (flattened) when there are at most ``SMALL`` of them, else None; for a larger array
    ``histogram``, how many values fall in each of ``BINS`` equal bins from min to max
    (the last bin includes max), else None."""

    mean: float
    std: float
    min: float
    max: float
    values: tuple | None
    histogram: tuple | None = None


SMALL = 16  # arrays up to this size are kept in full by summarize()
BINS = 12  # histogram bins of a larger array


def summarize(array) -> Summary | None:
    """A :class:`Summary` of ``array`` (None for an empty one)."""
    values = np.asarray(array, dtype=np.float64).ravel()
    if values.size == 0:
        return None
    kept = tuple(float(v) for v in values) if values.size <= SMALL else None
    low, high = float(values.min()), float(values.max())
    histogram = None
    if kept is None and np.isfinite(low) and np.isfinite(high):
        histogram = tuple(int(c) for c in np.histogram(values, bins=BINS, range=(low, high))[0])
    return Summary(float(values.mean()), float(values.std()), low, high, kept, histogram)


@dataclass(frozen=True)
class Step:
    """One executed VJP node.

    ``number`` counts from 1 in execution order.  ``grad_norm`` is the L2 norm of the
    gradient arriving at the node's output; ``input_grad_norms`` pairs each input index
    with the norm of the gradient sent to that input (after broadcasting is undone).
    ``node`` is the engine's Node itself, so a picture can find the step by identity,
    and ``input_nodes`` the Nodes that made the inputs (None for leaves), kept because
    backward without ``retain_graph`` empties ``node.inputs`` right after this step.

    ``grad_count`` is how many gradients were added up into the one arriving at the
    output (1 for a tensor used once, or for the root's seed), ``grad_summary`` that
    gradient's :class:`Summary`.  ``input_grad_sums`` pairs each input index that got a
    gradient with ``(count, sum_norm)``: after this step the input has received ``count``
    gradients in all and their running sum has norm ``sum_norm``.

    What the rule used and made, as :class:`Summary` (values in full for small arrays):
    ``output_summary`` the node's output, ``input_summaries`` each input (one per input,
    in order), ``input_grad_summaries`` pairs each input index that got a gradient with
    the gradient sent (after broadcasting is undone).
    """

    number: int
    op: str
    scope: tuple
    input_shapes: tuple
    output_shape: tuple
    grad_norm: float
    input_grad_norms: tuple
    node: object
    input_nodes: tuple
    grad_count: int = 1
    grad_summary: Summary | None = None
    input_grad_sums: tuple = ()
    output_summary: Summary | None = None
    input_summaries: tuple = ()
    input_grad_summaries: tuple = ()


def norm(array) -> float:
    """L2 norm in float64, so that a float32 gradient of 1e30 does not overflow to inf."""
    return float(np.linalg.norm(np.asarray(array, dtype=np.float64).ravel()))


def scope_path(scope) -> str:
    """A scope tuple as one short path.  Module scopes repeat their parent's name
    (``encoder``, ``encoder.layers.0``), so only the innermost of such a run is kept:
    ("Transformer", "encoder", "encoder.layers.0") -> "Transformer/encoder.layers.0"."""
    parts = []
    for name in scope:
        if parts and name.startswith(parts[-1] + "."):
            parts[-1] = name
        else:
            parts.append(name)
    return "/".join(parts)


class Trace:
    """The steps of every backward pass run while this trace was active."""

    def __init__(self):
        self.steps: list[Step] = []
        self._sums = {}  # id(tensor) -> [tensor, running sum of its gradients, how many]

    def _add_gradient(self, inp, gi) -> tuple:
        """Add ``gi`` into the running sum of ``inp``'s gradients; return (count, norm)."""
        entry = self._sums.get(id(inp))
        if entry is None:
            # A leaf's first gradient may become its .grad, which later passes change in
            # place: keep a copy.  A non-leaf's sum is dropped before anything changes it.
            data = gi.data.copy() if inp._node is None else gi.data
            self._sums[id(inp)] = [inp, data, 1]
            return 1, norm(data)
        entry[1] = entry[1] + gi.data
        entry[2] += 1
        return entry[2], norm(entry[1])

    def _record_step(self, t, node, g, step_grads):
        """Called by the engine after the VJPs of ``node`` (whose output is ``t``) ran."""
        arrived = self._sums.pop(id(t), None)  # None for a root: its gradient is the seed
        sums = tuple((i, self._add_gradient(node.inputs[i], gi)) for i, gi in step_grads)
        self.steps.append(Step(
            number=len(self.steps) + 1,
            op=node.op,
            scope=node.scope,
            input_shapes=tuple(inp.shape for inp in node.inputs),
            output_shape=t.shape,
            grad_norm=norm(g.data),
            input_grad_norms=tuple((i, norm(gi.data)) for i, gi in step_grads),
            node=node,
            input_nodes=tuple(inp._node for inp in node.inputs),
            grad_count=arrived[2] if arrived is not None else 1,
            grad_summary=summarize(g.data),
            input_grad_sums=sums,
            output_summary=summarize(t.data),
            input_summaries=tuple(summarize(inp.data) for inp in node.inputs),
            input_grad_summaries=tuple((i, summarize(gi.data)) for i, gi in step_grads),
        ))

    def _finish(self):
        """Drop the running sums (the steps keep their norms)."""
        self._sums.clear()

    def steps_of(self, node) -> list[Step]:
        """The steps that ran ``node`` (several if backward ran more than once)."""
        return [s for s in self.steps if s.node is node]

    def __len__(self):
        return len(self.steps)

    def __iter__(self):
        return iter(self.steps)

    def __str__(self):
        return format_table(self.steps)

    def __repr__(self):
        return f"<Trace of {len(self.steps)} backward steps>"


def _shape(shape) -> str:
    """(2,5,8), (8,), () -- compact, since a table row holds several."""
    return str(tuple(shape)).replace(" ", "")


def format_table(steps) -> str:
    """One line per step: number, op, scope, input shapes -> output shape, the norm of
    the gradient coming in, and the norms going out to each input (``i:norm``)."""
    header = ("step", "op", "scope", "shapes (inputs -> output)", "|grad in|", "|grad out| per input")
    rows = [header]
    for s in steps:
        shapes = " ".join(_shape(x) for x in s.input_shapes) + " -> " + _shape(s.output_shape)
        outgoing = "  ".join(f"{i}:{n:.3g}" for i, n in s.input_grad_norms) or "-"
        rows.append((str(s.number), s.op, scope_path(s.scope) or "-", shapes, f"{s.grad_norm:.3g}",
                     outgoing))
    widths = [max(len(row[c]) for row in rows) for c in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if not steps:
        lines.append("(no backward steps were recorded)")
    return "\n".join(lines)


@contextlib.contextmanager
def trace():
    """Record every backward step run inside the ``with`` block into a :class:`Trace`."""
    recorder = Trace()
    previous = autograd.STATE.tracer
    autograd.STATE.tracer = recorder
    try:
        yield recorder
    finally:
        autograd.STATE.tracer = previous
        recorder._finish()

"""A web page of a computation graph that replays the backward pass step by step.

    import minigrad as mg
    from minigrad.html import show, to_html

    with mg.trace() as t:
        loss.backward(retain_graph=True)   # keep the graph to draw it afterwards
    to_html(loss, trace=t, depth=2).save("loss.html")
    show(loss, trace=t)                    # inline in Jupyter

The page is one file that needs no network: Graphviz's SVG is embedded, the script is
inline.  On it:

* the stepper (buttons, a play speed, slider, ← →, space): step k highlights the VJP that
  runs and the arrows its gradients travel; a step inside a closed box opens the box
  (and closes it when backward leaves it), and the view pans and zooms onto the step
  with its label legible; a minimap shows where it is in the whole graph;
* an arrow's label shows the gradient it carries (norm, or a scalar's signed value, and
  running sums) from the step that sends it on;
* the panel gives the step's rule (docstring markup removed, the docstring a click
  away, a legend of the notation), the gradient arriving, the values the rule uses and
  the gradient each input receives: values in full for small tensors, else statistics
  and a histogram; elementwise rules are written out with the numbers (``FORMULAS``);
* a forward view that steps through the ops in recording order with their values;
* a find box (a scope or tensor name jumps to its first step), drag to pan, the wheel
  to zoom, hover or click a node for its details; with ``depth=k`` a collapsed module
  box opens when clicked and its cluster closes it again.

Every number comes from the trace (values and gradients of the steps) or, for the
forward view, from the tensors themselves.

How it is made: ``viz.build_graph`` gives the vertices and edges of each view, and each
view is drawn once collapsed and once per box with that box opened (a "state"; one box is
open at a time).  Each state's SVG goes into the page with the table that says which box
stands for each hidden vertex and what each arrow carries.  The tensors and the trace's
steps are JSON inside a ``<script type="application/json">`` element.
"""

from __future__ import annotations

import dataclasses
import html
import inspect
import json
import math
import re
from pathlib import Path

from minigrad import ops, viz
from minigrad.files import write_atomically
from minigrad.tracing import scope_path, summarize

PAGE = Path(__file__).with_name("graph_page.html")
SCRIPT = Path(__file__).with_name("graph_page.js")

COMMENT = re.compile(r"<!--.*?-->\n?", re.S)
# A barred symbol (x̄, ā, ḡ, weight̄) followed by "=": where a docstring starts its rule.
RULE_START = re.compile(r"[^\s(,:]*[\u0304\u0101\u1e21][^\s=]*\s*=")


# The rules the page writes out with numbers, keyed by op name: per input, an expression
# in Python's (and JavaScript's) syntax for one element of the gradient that input
# receives, or None.  g is the gradient arriving (ḡ), out the output, a and b (or x) the
# inputs, n the number of elements averaged.  The page substitutes the traced values when
# every operand is small and has one element per element of the gradient or just one;
# the other ops (matmul, linear, softmax, layer_norm, attention, ...) show their rule as
# the docstring writes it, with the values and statistics beside it.
FORMULAS = {
    "add": ("g", "g"), "sub": ("g", "-g"), "mul": ("g*b", "g*a"), "div": ("g/b", "-g*out/b"),
    "pow": ("g*b*a**(b - 1)", None), "neg": ("-g",), "exp": ("g*out",), "log": ("g/x",),
    "sqrt": ("g/(2*out)",), "tanh": ("g*(1 - out**2)",), "sigmoid": ("g*out*(1 - out)",),
    "relu": ("g*(x > 0)",), "sum": ("g",), "mean": ("g/n",), "reshape": ("g",),
    "squeeze": ("g",), "unsqueeze": ("g",), "astype": ("g",),
}

# What the symbols of the rules mean, shown as the page's legend.
NOTATION = [("ḡ", "the gradient arriving at the op's output (∂loss/∂out)"),
            ("x̄, ā, weight̄", "the gradient the rule sends to that input (∂loss/∂x)"),
            ("out", "the op's output, saved by the forward pass"),
            ("ᵀ", "transpose (the last two axes swapped)"), ("@", "matrix product"),
            ("·", "elementwise product"), ("Σ", "a sum (over the axes named, or all)"),
            ("|g|", "the L2 norm of a gradient: √(Σ gᵢ²)")]


def plain(text: str) -> str:
    """Docstring text without its reST markup: ``name`` -> name."""
    return re.sub(r"``(.*?)``", r"\1", text, flags=re.S)


def op_rule(op: str) -> tuple[str, str]:
    """(rule, docstring) of the op named ``op``, without reST markup: the rule is the
    docstring's text from the first ``x̄ = ...`` to the end of that paragraph, whitespace
    made single; ("", "") for an op without a function of that name in minigrad.ops."""
    function = getattr(ops, op, None)
    doc = inspect.getdoc(function) if callable(function) else None
    if not doc:
        return "", ""
    doc = plain(doc)
    match = RULE_START.search(doc)
    if match is None:
        return "", doc
    paragraph = doc[match.start():].split("\n\n")[0]
    return " ".join(paragraph.split()), doc


def _number(x):
    """JSON has no inf or NaN: send them as the strings the page prints."""
    return x if math.isfinite(x) else str(x)


def _summary(summary) -> dict | None:
    """A tracing.Summary as JSON."""
    if summary is None:
        return None
    out = {k: _number(getattr(summary, k)) for k in ("mean", "std", "min", "max")}
    if summary.values is not None:
        out["values"] = [_number(v) for v in summary.values]
    if summary.histogram is not None:
        out["histogram"] = list(summary.histogram)
    return out


def _tensor_facts(t, role) -> dict:
    node = t._node
    facts = {"name": t.name or "", "shape": list(t.shape), "dtype": str(t.dtype), "role": role,
             "op": node.op if node else None, "scope": scope_path(node.scope) if node else "",
             "value": _summary(summarize(t.data)), "grad": None}
    if node is None and t.grad is not None:
        facts["grad"] = _summary(summarize(t.grad.data))
    return facts


def _step_facts(step, index, made_by) -> dict:
    """One step as JSON: the tensor whose VJP ran, the gradient arriving there, the
    values the rule used (``out``, and ``args`` per input), and per input the gradient
    sent (its norm and ``grad``) and the running sum it joined."""
    sums = dict(step.input_grad_sums)
    sent = dict(step.input_grad_summaries)
    inputs = []
    for i, grad_norm in step.input_grad_norms:
        count, sum_norm = sums.get(i, (1, grad_norm))
        inputs.append({"index": i, "tensor": index[id(step.node.inputs[i])], "norm": _number(grad_norm),
                       "count": count, "sum": _number(sum_norm), "grad": _summary(sent.get(i))})
    return {"number": step.number, "op": step.op, "tensor": made_by[id(step.node)], "scope": scope_path(step.scope),
            "grad_norm": _number(step.grad_norm), "grad_count": step.grad_count,
            "grad": _summary(step.grad_summary), "out": _summary(step.output_summary),
            "args": [_summary(x) for x in step.input_summaries],
            "operands": [index[id(x)] for x in step.node.inputs],
            "shapes": [list(x) for x in step.input_shapes], "shape": list(step.output_shape), "inputs": inputs}


def _send_text(input_facts) -> str:
    """The label of the arrow a gradient travels: its norm (a one-element gradient: its
    signed value) and, once a tensor has several, the norm of their running sum."""
    values = (input_facts["grad"] or {}).get("values")
    text = f"g = {values[0]:.3g}" if values is not None and len(values) == 1 else f"|g| {input_facts['norm']:.3g}"
    if input_facts["count"] > 1:
        text += f" (Σ of {input_facts['count']}: {input_facts['sum']:.3g})"
    return text


def _svg(dot) -> str:
    """Graphviz's SVG without the XML prolog and doctype, ready to sit inside HTML."""
    text = dot.pipe(format="svg").decode("utf-8")
    return COMMENT.sub("", text[text.index("<svg"):])  # Graphviz's comments repeat each node's name


def _box_scope(box) -> tuple:
    """The scope a closed box stands for (its vertex keeps only the scope it sits in)."""
    return box.members[0].scope[:len(box.scope) + 1]


def _view(roots, backward, depth, index, scopes, draw, sends) -> dict:
    """Everything the page needs to show one view: which tensor each vertex id stands
    for, and one state per opened box (the first with every box closed).

    In the backward view each arrow's label gets a line for the gradients it carries:
    Graphviz lays it out (so it never overlaps another label) with its final text, and
    the page shows the part sent by the steps that have run.  ``sends`` maps (id(node),
    input index) to [[step position, text], ...]."""
    full = viz.backward_graph(roots) if backward else viz.forward_graph(roots)
    vertices = {v.id: [index[id(v.tensor)], v.kind] for v in full.vertices.values()}

    def scope_id(scope):
        return scopes.setdefault(scope, len(scopes))

    def state(expand):
        graph = viz.build_graph(roots, depth=depth, backward=backward, max_nodes=draw["max_nodes"],
                                expand=(expand,) if expand else ())
        boxes, hidden = {}, {}
        for v in graph.vertices.values():
            if v.kind == "box":
                boxes[v.id] = {"scope": scope_id(_box_scope(v)), "ops": sum(v.op_counts.values())}
                hidden.update((m.id, v.id) for m in v.members)
        edges = [[e.src, e.dst, index[id(e.carries)], -1 if e.index is None else e.index] for e in graph.edges]
        # The gradients each drawn arrow carries: a closed box's arrow stands for every
        # arrow of the full graph between the vertices it hides that carries its tensor.
        merged = {}
        for e in full.edges if backward else ():
            ends = (hidden.get(e.src, e.src), hidden.get(e.dst, e.dst))
            if e.node is not None and ends[0] != ends[1]:
                merged.setdefault((*ends, id(e.carries)), []).extend(sends.get((id(e.node), e.index), ()))
        reveal = []
        for e in graph.edges:
            if not backward:
                reveal.append([])
            elif e.node is not None:
                reveal.append(sorted(sends.get((id(e.node), e.index), ())))
            else:
                reveal.append(sorted(merged.get((e.src, e.dst, id(e.carries)), ())))
        # Clicking the opened box's cluster (or one inside it) closes it again.
        names = viz.cluster_names(graph)
        closers = [name for scope, name in names.items() if expand and scope[:len(expand)] == expand]
        options, graph_attr = viz.dot_options(backward, draw["show_data"], draw["show_grad"], draw["trace"],
                                              draw["rankdir"], draw["title"])
        plain_options = dataclasses.replace(options, steps={})  # shapes on arrows, no gradients
        labels = []
        for e, parts in zip(graph.edges, reveal):
            label = viz.edge_label(e, plain_options, graph)
            if parts:
                label = (label + "\\n" if label else "") + ", ".join(text for _, text in parts)
            labels.append(label)
        dot = viz.emit(graph, options, graph_attr, edge_labels=labels)
        dot.edge_attr["fontsize"] = "9"
        svg = _svg(dot)
        return {"expand": scope_id(expand) if expand else None, "svg": svg, "boxes": boxes,
                "hidden": hidden, "edges": edges, "reveal": reveal, "closers": closers,
                "opened": names.get(expand)}, graph

    first, graph = state(None)
    states = [first]
    if depth is not None:
        for v in graph.vertices.values():
            if v.kind == "box":
                states.append(state(_box_scope(v))[0])
    return {"vertices": vertices, "states": states}


class GraphPage:
    """The page as a string (``.html``); ``save(path)`` writes it, and in Jupyter it shows
    inline (in an iframe, so that several pages in one notebook keep apart)."""

    def __init__(self, text: str):
        self.html = text

    def save(self, path) -> Path:
        """Write the page to ``path`` atomically (a temporary file, then a rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_atomically(path, self.html)

    def _repr_html_(self) -> str:
        return (f'<iframe srcdoc="{html.escape(self.html, quote=True)}" '
                'style="width:100%;height:640px;border:1px solid #ccc"></iframe>')

    def __len__(self):
        return len(self.html.encode("utf-8"))

    def __repr__(self):
        return f"<GraphPage of {len(self) / 1e6:.2f} MB>"


def page_data(roots, *, trace=None, depth=None, backward=True, show_data=False, show_grad=False,
              max_nodes=5000, rankdir="TB", title=None) -> dict:
    """The JSON the page is made of: tensors, steps, views (see to_html)."""
    roots = viz._as_roots(roots)
    viz.check_options(trace, depth, caller="to_html")
    tensors = viz.reachable_tensors(roots)
    index = {id(t): k for k, t in enumerate(tensors)}
    made_by = {id(t._node): k for k, t in enumerate(tensors) if t._node is not None}
    roles = {id(v.tensor): v.role for v in viz.forward_graph(roots).vertices.values() if v.kind == "tensor"}
    facts = [_tensor_facts(t, roles[id(t)]) for t in tensors]
    # Steps of other graphs run inside the same trace are left out; numbers stay the trace's.
    traced = [s for s in (trace.steps if trace is not None else ()) if id(s.node) in made_by]
    steps = [_step_facts(s, index, made_by) for s in traced]
    sends = {}
    for k, (step, facts_k) in enumerate(zip(traced, steps)):
        for input_facts in facts_k["inputs"]:
            sends.setdefault((id(step.node), input_facts["index"]), []).append([k, _send_text(input_facts)])
    rules = {}
    for f in facts:
        if f["op"] and f["op"] not in rules:
            rule, doc = op_rule(f["op"])
            rules[f["op"]] = {"rule": rule, "doc": doc, "formulas": FORMULAS.get(f["op"])}
    # The forward pass in the order it was recorded: the tensors the ops made.
    forward = sorted((k for k, t in enumerate(tensors) if t._node is not None), key=lambda k: tensors[k]._node.seq)
    scopes = {}
    draw = {"max_nodes": max_nodes, "show_data": show_data, "show_grad": show_grad, "trace": trace,
            "rankdir": rankdir, "title": title}
    views = {name: _view(roots, name == "backward", depth, index, scopes, draw, sends)
             for name in ("forward", "backward")}
    return {"title": title or "", "depth": depth, "start": "backward" if backward else "forward",
            "tensors": facts, "steps": steps, "forward": forward, "rules": rules, "notation": NOTATION,
            "scopes": [scope_path(s) for s in scopes], "views": views}


def to_html(roots, *, trace=None, depth=None, backward=True, show_data=False, show_grad=False,
            max_nodes=5000, rankdir="TB", title=None, fold_repeats=False) -> GraphPage:
    """The interactive page of the graph that computed ``roots`` (see the module's
    docstring).  ``trace`` (from ``minigrad.trace()``) gives the stepper its steps;
    ``backward`` picks the view the page opens with; ``depth``, ``show_data``,
    ``show_grad``, ``max_nodes``, ``rankdir`` and ``title`` are as in ``viz.to_dot``."""
    if fold_repeats:
        raise ValueError("to_html: fold_repeats is not supported, since each layer has gradients of its own "
                         "to step through; use depth= alone")
    data = page_data(roots, trace=trace, depth=depth, backward=backward, show_data=show_data,
                     show_grad=show_grad, max_nodes=max_nodes, rankdir=rankdir, title=title)
    # Inside <script>, "</" could end the element early and "<!--" or "<script" change how
    # the browser finds its end; "<\/" and "\u003c" mean the same in JSON.
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")
    payload = re.sub(r"<(?=!|script)", r"\\u003c", payload, flags=re.IGNORECASE)
    parts = {"title": html.escape(title or "computation graph"), "data": payload,
             "script": SCRIPT.read_text(encoding="utf-8")}
    return GraphPage(re.sub(r"\{\{(\w+)\}\}", lambda m: parts[m[1]], PAGE.read_text(encoding="utf-8")))


def show(roots, **options):
    """Display ``to_html(roots, **options)`` inline in Jupyter (and return the page)."""
    try:
        from IPython.display import display
    except ImportError as e:
        raise RuntimeError("show() displays the page in Jupyter and needs IPython; "
                           "outside Jupyter use to_html(...).save('graph.html')") from e
    page = to_html(roots, **options)
    display(page)
    return page


__all__ = ["to_html", "show", "GraphPage", "op_rule", "page_data"]

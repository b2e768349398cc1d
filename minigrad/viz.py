"""Pictures of computation graphs, drawn with Graphviz.

    from minigrad.viz import to_dot, render
    to_dot(loss)                          # a graphviz.Digraph; shows inline in Jupyter
    render(loss, "loss.svg", depth=1)     # writes the file with Graphviz's `dot`

The page that steps through backward is ``minigrad.html.to_html`` (it builds on this
module; this module does not know it).

What the picture shows (forward view, the default):

* boxes are **tensors** (name, shape, dtype); ellipses are **ops**.  Arrows follow the
  data from inputs to outputs; an op that uses a tensor twice (``x * x``) gets two
  arrows, and when an op has several inputs the arrows are numbered by argument.
* **parameters** (leaves that require grad) are blue, the **outputs** orange.
* every ``name_scope`` / module is a dashed **cluster**, nested as the scopes were.
  ``depth=k`` keeps k levels of clusters and draws each deeper one as a single 3-D box
  with its name, its op count and the shapes crossing its boundary;
  ``fold_repeats=True`` then draws identical siblings (``layers.0`` .. ``layers.5``) once,
  marked "× 6".

``backward=True`` draws the backward pass instead: one node per VJP, arrows from the
output towards the leaves, each arrow labelled with the shape of the gradient it
carries.  ``trace=`` (from ``minigrad.trace()``) adds the execution step numbers
and the gradient norms; ``show_grad=True`` colours nodes by gradient norm on a log scale
so that vanishing (blue) and exploding (red) gradients stand out.

A gradient made with ``create_graph=True`` has a graph of its own: draw it with
``to_dot(x.grad)`` like any other tensor.
"""

from __future__ import annotations

import html
import math
import re
import shutil
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import graphviz
import numpy as np

from minigrad.files import is_stream, write_atomically
from minigrad.tensor import Tensor
from minigrad.tracing import Trace, norm

FREED_MESSAGE = ("the graph of this tensor was freed by backward(); call backward(retain_graph=True) "
                 "to render it afterwards")

NO_DOT_MESSAGE = (
    "render() needs Graphviz's `dot` program, and it is not on your PATH. Install Graphviz: "
    "`apt-get install graphviz` (Debian/Ubuntu), `brew install graphviz` (macOS), "
    "`conda install graphviz`, or see https://graphviz.org/download/. "
    "to_dot() works without it: to_dot(...).source is the DOT text."
)

FORMATS = ("svg", "png", "pdf")

# Fill colours by role.  Gradient colours (show_grad) replace the fill but keep the
# border, so parameters and outputs remain recognisable.
STYLE = {
    "tensor": {},
    "constant": {"fillcolor": "#ffffff", "style": "rounded,filled,dashed", "fontsize": "9"},
    "parameter": {"fillcolor": "#cfe2ff", "color": "#1f4e99", "penwidth": "2"},
    "output": {"fillcolor": "#ffd8a8", "color": "#b35900", "penwidth": "2.5"},
    "op": {"shape": "ellipse", "style": "filled", "fillcolor": "#ffffff"},
    "vjp": {"shape": "ellipse", "style": "filled", "fillcolor": "#fff0f0"},
    "box": {"shape": "box3d", "style": "filled", "fillcolor": "#e8e0f5"},
    "note": {"shape": "note", "style": "filled", "fillcolor": "#ffffcc"},
}


# =========================================================================== the graph


@dataclass(eq=False)
class Vertex:
    """One thing to draw.  ``kind`` is "tensor", "op", "box" (a collapsed scope) or
    "note"; ``scope`` names the clusters around it, outermost first.  Ids are parseable:
    t<k> for tensors, op<k> for ops, box<k> for boxes."""

    id: str
    kind: str
    scope: tuple
    tensor: Tensor | None = None  # the tensor, or for an op the tensor it makes
    role: str = "tensor"  # tensor vertices: "tensor", "constant", "parameter" or "output"
    name: str = ""  # boxes: the scope they stand for
    op_counts: Counter = field(default_factory=Counter)  # boxes: ops inside
    repeats: int = 1  # boxes: how many identical blocks this one stands for
    members: list = field(default_factory=list)  # boxes: the vertices drawn inside


@dataclass(eq=False)
class Edge:
    """An arrow.  ``carries`` is the tensor whose value (forward view) or gradient
    (backward view) flows along it; ``index`` is its argument position in ``node``."""

    src: str
    dst: str
    carries: Tensor
    node: object = None
    index: int | None = None


@dataclass
class Graph:
    vertices: dict = field(default_factory=dict)  # id -> Vertex, in drawing-priority order
    edges: list = field(default_factory=list)

    def add(self, vertex):
        self.vertices[vertex.id] = vertex
        return vertex


def is_parameter(t) -> bool:
    """A ``minigrad.nn.Parameter`` (found by class name, so nn need not be imported), or
    any leaf that requires grad."""
    if any(cls.__name__ == "Parameter" for cls in type(t).__mro__):
        return True
    return t._node is None and t.requires_grad


def _as_roots(roots) -> list:
    roots = [roots] if isinstance(roots, Tensor) else list(roots)
    for i, r in enumerate(roots):
        if not isinstance(r, Tensor):
            raise TypeError(f"to_dot: root {i} is a {type(r).__name__}, expected a minigrad Tensor")
    if not roots:
        raise ValueError("to_dot: no tensors given")
    return roots


def _follows_gradient(node, i, inp) -> bool:
    """Whether the backward pass sends a gradient from ``node`` to its input ``i``."""
    return inp.requires_grad and node.vjps[i] is not None


def reachable_tensors(roots, backward=False) -> list:
    """Every tensor that ``roots`` were computed from, breadth-first from the roots.

    An explicit queue, no recursion.  With ``backward`` only the paths gradients take.
    """
    order, seen = [], set()
    queue = list(roots)
    head = 0
    while head < len(queue):
        t = queue[head]
        head += 1
        if id(t) in seen:
            continue
        seen.add(id(t))
        order.append(t)
        node = t._node
        if node is None:
            continue
        if not node.inputs:
            raise RuntimeError(FREED_MESSAGE)
        for i, inp in enumerate(node.inputs):
            if id(inp) not in seen and (not backward or _follows_gradient(node, i, inp)):
                queue.append(inp)
    return order


def _common_prefix(scopes) -> tuple:
    scopes = list(scopes)
    if not scopes:
        return ()
    prefix = scopes[0]
    for s in scopes[1:]:
        n = 0
        while n < min(len(prefix), len(s)) and prefix[n] == s[n]:
            n += 1
        prefix = prefix[:n]
    return prefix


def _tensor_role(t, is_root) -> str:
    if is_root:
        return "output"
    if t._node is not None:
        return "tensor"
    if is_parameter(t):
        return "parameter"
    return "constant" if t.size <= 1 and not t.name else "tensor"


def _place_tensors(graph, consumer_scopes):
    """Put each tensor vertex in a cluster: a computed tensor beside the op that made it;
    a parameter or a constant in the innermost scope shared by the ops that use it (its
    module); outputs and data inputs outside every cluster."""
    for v in graph.vertices.values():
        if v.kind != "tensor":
            continue
        if v.role == "tensor" and v.tensor._node is not None:
            v.scope = v.tensor._node.scope
        elif v.role in ("parameter", "constant"):
            v.scope = _common_prefix(consumer_scopes[id(v.tensor)])


def forward_graph(roots) -> Graph:
    """Tensors and ops, arrows from inputs to the op and from the op to its output."""
    root_ids = {id(r) for r in roots}
    tensors = reachable_tensors(roots)
    tensor_id = {id(t): f"t{k}" for k, t in enumerate(tensors)}
    graph, consumer_scopes = Graph(), defaultdict(list)
    for k, t in enumerate(tensors):
        graph.add(Vertex(f"t{k}", "tensor", (), t, _tensor_role(t, id(t) in root_ids)))
        node = t._node
        if node is None:
            continue
        op = graph.add(Vertex(f"op{k}", "op", node.scope, t))
        graph.edges.append(Edge(op.id, f"t{k}", t))
        for i, inp in enumerate(node.inputs):
            graph.edges.append(Edge(tensor_id[id(inp)], op.id, inp, node, i))
            consumer_scopes[id(inp)].append(node.scope)
    _place_tensors(graph, consumer_scopes)
    return graph


def backward_graph(roots) -> Graph:
    """The backward pass: each output feeds the VJP of the op that made it; each VJP
    sends a gradient to the VJPs of its inputs' ops, or to a leaf that accumulates it."""
    root_ids = {id(r) for r in roots}
    tensors = reachable_tensors(roots, backward=True)
    vertex_id = {id(t): (f"op{k}" if t._node is not None else f"t{k}") for k, t in enumerate(tensors)}
    graph, consumer_scopes = Graph(), defaultdict(list)
    for k, t in enumerate(tensors):
        node = t._node
        if id(t) in root_ids or node is None:
            graph.add(Vertex(f"t{k}", "tensor", (), t, _tensor_role(t, id(t) in root_ids)))
        if node is None:
            continue
        if id(t) in root_ids:
            graph.edges.append(Edge(f"t{k}", f"op{k}", t))
        graph.add(Vertex(f"op{k}", "op", node.scope, t))
        for i, inp in enumerate(node.inputs):
            if _follows_gradient(node, i, inp):
                graph.edges.append(Edge(f"op{k}", vertex_id[id(inp)], inp, node, i))
                consumer_scopes[id(inp)].append(node.scope)
    _place_tensors(graph, consumer_scopes)
    return graph


# =========================================================================== collapsing


def relative_name(scope) -> str:
    """The innermost scope name, without its parent's dotted prefix:
    ("encoder", "encoder.layers.0") -> "layers.0"."""
    name = scope[-1]
    parent = scope[-2] if len(scope) > 1 else ""
    if parent and name.startswith(parent + "."):
        return name[len(parent) + 1:]
    return name


def box_scope(scope, depth, expand=()):
    """The scope of the box that ``scope`` is drawn in at ``depth``, or None if it is
    drawn open: scopes inside one of ``expand`` (and on the way to one) stay open."""
    for n in range(depth + 1, len(scope) + 1):
        prefix = scope[:n]
        if not any(prefix[:len(e)] == e or e[:n] == prefix for e in expand):
            return prefix
    return None


def collapse(graph, depth, expand=()) -> dict:
    """Replace everything deeper than ``depth`` cluster levels by one box per scope,
    except inside the scopes listed in ``expand``.  Returns {vertex id: id of the vertex
    that stands for it}; boxes join the graph in the position of their first member."""
    vertices, stands_for, boxes = {}, {}, {}
    for v in graph.vertices.values():
        key = box_scope(v.scope, depth, expand)
        if key is None:
            vertices[v.id] = v
            stands_for[v.id] = v.id
            continue
        box = boxes.get(key)
        if box is None:
            box = boxes[key] = Vertex(f"box{len(boxes)}", "box", key[:-1], name=relative_name(key))
            vertices[box.id] = box
        if v.kind == "op":
            box.op_counts[v.tensor._node.op] += 1
        box.members.append(v)
        stands_for[v.id] = box.id
    graph.vertices = vertices
    return stands_for


def fold_repeated_boxes(graph) -> dict:
    """Merge sibling boxes named ``<prefix><number>`` with the same ops inside (the
    layers of a stack) into the first one, marked with how many there are.
    Returns {box id: id of the box that stands for it}."""
    groups = defaultdict(list)
    for v in graph.vertices.values():
        match = re.fullmatch(r"(.*?)(\d+)", v.name) if v.kind == "box" else None
        if match:
            signature = tuple(sorted(v.op_counts.items()))
            groups[(v.scope, match[1], signature)].append((int(match[2]), v))
    stands_for = {}
    for (_, prefix, _), members in groups.items():
        if len(members) < 2:
            continue
        numbers = sorted(n for n, _ in members)
        first = members[0][1]
        first.name, first.repeats = f"{prefix}{numbers[0]}–{numbers[-1]}", len(members)
        for _, v in members[1:]:
            first.members.extend(v.members)
            stands_for[v.id] = first.id
            del graph.vertices[v.id]
    return stands_for


def redirect_edges(graph, stands_for):
    """Point edges at the vertices that stand for their ends.  Arrows inside one box
    disappear, and a box gets one arrow per tensor crossing its boundary (not one per
    op inside that uses it); arrows between plain vertices are all kept (``x + x``)."""
    edges, seen = [], set()
    for e in graph.edges:
        src, dst = stands_for.get(e.src, e.src), stands_for.get(e.dst, e.dst)
        if src != e.src or dst != e.dst:
            if src == dst:
                continue
            key = (src, dst, id(e.carries))
            if key in seen:
                continue
            seen.add(key)
            e = Edge(src, dst, e.carries)
        edges.append(e)
    graph.edges = edges


def cap(graph, max_nodes) -> int:
    """Keep the first ``max_nodes`` vertices (those nearest the outputs); return how many
    were dropped."""
    if max_nodes is None or len(graph.vertices) <= max_nodes:
        return 0
    kept = dict(list(graph.vertices.items())[:max_nodes])
    dropped = len(graph.vertices) - len(kept)
    graph.vertices = kept
    graph.edges = [e for e in graph.edges if e.src in kept and e.dst in kept]
    return dropped


# =========================================================================== labels


def _fmt_shape(shape) -> str:
    return "scalar" if shape == () else str(tuple(shape))


def _data_summary(data) -> str:
    if data.size == 0:
        return "empty"
    if data.size == 1:
        return f"value {float(data.ravel()[0]):.4g}"
    values = data.astype(np.float64, copy=False)
    return (f"mean {values.mean():.3g}  std {values.std():.3g}\\n"
            f"min {values.min():.3g}  max {values.max():.3g}")


@dataclass
class Options:
    backward: bool
    show_data: bool
    show_grad: bool
    steps: dict  # id(Node) -> [Step, ...] from the trace


def _last_step(node, options):
    steps = options.steps.get(id(node))
    return steps[-1] if steps else None


def gradient_norm(v, options):
    """The norm of the gradient at a vertex, or None if unknown: a leaf's ``.grad``, or
    for an op (and the tensor it made) the gradient its VJP received in the trace.
    For a box, the largest norm inside it."""
    if v.kind == "box":
        norms = [g for g in (gradient_norm(m, options) for m in v.members) if g is not None]
        return max(norms) if norms else None
    t = v.tensor
    if v.kind not in ("tensor", "op") or t is None:
        return None
    if t._node is None:
        return norm(t.grad.data) if t.grad is not None else None
    step = _last_step(t._node, options)
    return step.grad_norm if step is not None else None


def short_name(name, scope) -> str:
    """A parameter's dotted name without the qualified name of the cluster it is drawn
    in: "encoder.layers.0.norm.weight" inside "encoder.layers.0" -> "norm.weight"."""
    if scope and name.startswith(scope[-1] + "."):
        return name[len(scope[-1]) + 1:]
    return name


def tensor_label(v, options) -> str:
    t = v.tensor
    name = graphviz.escape(short_name(t.name, v.scope)) if t.name else ""
    if options.backward and t._node is None and t.requires_grad:
        name += ".grad"
    lines = [name] if name else []
    lines.append(f"{_fmt_shape(t.shape)} {t.dtype}")
    if options.show_data:
        lines.append(_data_summary(t.data))
    g = gradient_norm(v, options) if options.show_grad else None
    if g is not None:
        lines.append(f"|grad| {g:.3g}")
    return "\\n".join(lines)


def op_label(v, options) -> str:
    node = v.tensor._node
    lines = [f"{node.op} VJP" if options.backward else node.op]
    steps = options.steps.get(id(node))
    if steps:
        numbers = ", ".join(str(s.number) for s in steps)
        lines.append(f"step {numbers}" if len(steps) == 1 else f"steps {numbers}")
    g = gradient_norm(v, options) if options.show_grad else None
    if g is not None:
        lines.append(f"|grad in| {g:.3g}")
    return "\\n".join(lines)


def _shape_list(tensors) -> str:
    counts = Counter(_fmt_shape(t.shape) for t in tensors)
    parts = [s if n == 1 else f"{s} ×{n}" for s, n in counts.most_common(3)]
    if len(counts) > 3:
        parts.append("…")
    return ", ".join(parts) or "-"


def box_label(v, inputs, outputs, options) -> str:
    """Name, op count, the shapes of the tensors (backward view: gradients) crossing the
    box's boundary, and with show_grad the largest gradient norm inside."""
    ops = sum(v.op_counts.values())
    name = graphviz.escape(v.name)
    count = f"{ops} op" + ("" if ops == 1 else "s")
    if v.repeats > 1:
        name += f"  × {v.repeats}"
        count += " each"
    crossing = "grad " if options.backward else ""
    lines = [name, count, f"{crossing}in: {_shape_list(inputs)}", f"{crossing}out: {_shape_list(outputs)}"]
    g = gradient_norm(v, options) if options.show_grad else None
    if g is not None:
        lines.append(f"max |grad| {g:.3g}")
    return "\\n".join(lines)


def edge_label(e, options, graph) -> str:
    """Forward view: the argument number when an op has several inputs.  Backward view:
    the gradient's shape (and norm, with a trace).  Arrows to or from boxes: the shape."""
    touches_box = graph.vertices[e.src].kind == "box" or graph.vertices[e.dst].kind == "box"
    if e.node is None or touches_box:
        return _fmt_shape(e.carries.shape) if (options.backward or touches_box) else ""
    if not options.backward:
        return str(e.index) if len(e.node.inputs) > 1 else ""
    label = _fmt_shape(e.carries.shape)
    step = _last_step(e.node, options)
    if step is not None:
        for i, g in step.input_grad_norms:
            if i == e.index:
                label += f"\\n|g| {g:.3g}"
    return label


# =========================================================================== colours


def gradient_color(g) -> str:
    """One Brewer "rdbu11" colour per decade of the gradient norm: ≤1e-5 dark blue,
    ≈1 white, ≥1e+5 dark red (and red for inf/NaN, grey for exactly zero)."""
    if g == 0:
        return "#bbbbbb"
    if not math.isfinite(g):
        return "/rdbu11/1"
    decade = min(5, max(-5, round(math.log10(g))))
    return f"/rdbu11/{6 - decade}"


DARK_GRADIENT_COLORS = {"/rdbu11/1", "/rdbu11/2", "/rdbu11/10", "/rdbu11/11"}


def gradient_legend(title) -> str:
    """An HTML-like graph label: the title, then the colour scale, one cell per decade."""
    cells = "".join(
        f'<TD BGCOLOR="/rdbu11/{6 - d}"><FONT POINT-SIZE="9" COLOR="{"white" if abs(d) >= 4 else "black"}">'
        f'{"1" if d == 0 else f"1e{d:+d}"}</FONT></TD>' for d in range(-5, 6))
    rows = [f'<TR><TD COLSPAN="11">{html.escape(title)}</TD></TR>'] if title else []
    rows.append('<TR><TD COLSPAN="11">gradient norm, log scale (grey: zero)</TD></TR>')
    rows.append(f"<TR>{cells}</TR>")
    return f'<<TABLE BORDER="0" CELLSPACING="0" CELLPADDING="2">{"".join(rows)}</TABLE>>'


# =========================================================================== DOT output


def vertex_attributes(v, graph, options, inputs, outputs) -> dict:
    if v.kind == "tensor":
        attrs = {"label": tensor_label(v, options), **STYLE[v.role]}
    elif v.kind == "op":
        attrs = {"label": op_label(v, options), **STYLE["vjp" if options.backward else "op"]}
    elif v.kind == "box":
        attrs = {"label": box_label(v, inputs[v.id].values(), outputs[v.id].values(), options), **STYLE["box"]}
    else:
        attrs = {"label": v.name, **STYLE["note"]}
    g = gradient_norm(v, options) if options.show_grad else None
    if g is not None:
        attrs["fillcolor"] = gradient_color(g)
        if gradient_color(g) in DARK_GRADIENT_COLORS:
            attrs["fontcolor"] = "white"
    return attrs


def _crossing_tensors(graph):
    """For each vertex, the distinct tensors on the arrows entering and leaving it
    (what crosses a box's boundary)."""
    entering, leaving = defaultdict(dict), defaultdict(dict)
    for e in graph.edges:
        entering[e.dst][id(e.carries)] = e.carries
        leaving[e.src][id(e.carries)] = e.carries
    return entering, leaving


def cluster_names(graph) -> dict:
    """{scope prefix: "cluster_<k>"} for every scope a vertex sits in, numbered in the
    order the vertices are drawn (the names Graphviz writes into the SVG's titles)."""
    names = {}
    for v in graph.vertices.values():
        for n in range(1, len(v.scope) + 1):
            names.setdefault(v.scope[:n], f"cluster_{len(names)}")
    return names


def emit(graph, options, graph_attr, edge_labels=None) -> graphviz.Digraph:
    """Write the vertices into nested ``cluster_<k>`` subgraphs, one per scope prefix,
    then the edges.  Clusters are filled deepest first, so each is complete before it is
    copied into its parent (no recursion).  ``edge_labels`` (one per edge, in order)
    replaces the labels ``edge_label`` writes."""
    dot = graphviz.Digraph("minigrad", graph_attr=graph_attr, node_attr={
        "shape": "box", "style": "rounded,filled", "fillcolor": "#f4f4f4",
        "fontname": "Helvetica", "fontsize": "10"}, edge_attr={"fontname": "Helvetica", "fontsize": "8"})
    entering, leaving = _crossing_tensors(graph)
    clusters = {prefix: graphviz.Digraph(name, graph_attr={
        "label": graphviz.escape(relative_name(prefix)), "style": "rounded,dashed",
        "color": "#888888", "fontname": "Helvetica", "fontsize": "10"})
        for prefix, name in cluster_names(graph).items()}
    for v in graph.vertices.values():
        target = clusters[v.scope] if v.scope else dot
        target.node(v.id, **vertex_attributes(v, graph, options, entering, leaving))
    for prefix in sorted(clusters, key=len, reverse=True):
        parent = clusters[prefix[:-1]] if len(prefix) > 1 else dot
        parent.subgraph(clusters[prefix])
    for k, e in enumerate(graph.edges):
        label = edge_labels[k] if edge_labels is not None else edge_label(e, options, graph)
        dot.edge(e.src, e.dst, label=label or None)
    return dot


# =========================================================================== public API


def to_dot(roots, *, depth=None, fold_repeats=False, show_data=False, show_grad=False,
           backward=False, trace=None, max_nodes=5000, rankdir="TB", title=None) -> graphviz.Digraph:
    """The graph that computed ``roots`` (a Tensor or a list of Tensors) as a
    ``graphviz.Digraph``; ``.source`` is the DOT text.

    depth:        draw this many levels of scope clusters; deeper scopes become boxes.
    fold_repeats: with ``depth``, draw identical sibling boxes (layers.0..5) once, "× 6".
    show_data:    add mean/std/min/max (or the value) to each tensor.
    show_grad:    colour by gradient norm: leaves by ``.grad``, ops also with ``trace``.
    backward:     draw the VJP nodes of the backward pass, arrows towards the leaves.
    trace:        a ``minigrad.tracing.Trace``: step numbers on ops, gradient norms.
    max_nodes:    stop drawing after this many nodes (None: no limit) and say so.
    """
    roots = _as_roots(roots)
    check_options(trace, depth)
    graph = build_graph(roots, depth=depth, fold_repeats=fold_repeats, backward=backward, max_nodes=max_nodes)
    return emit(graph, *dot_options(backward, show_data, show_grad, trace, rankdir, title))


def check_options(trace, depth, caller="to_dot"):
    if trace is not None and not isinstance(trace, Trace):
        raise TypeError(f"{caller}: trace= must be a minigrad.tracing.Trace, got {type(trace).__name__}")
    if depth is not None and depth < 0:
        raise ValueError(f"{caller}: depth must be >= 0 (levels of clusters to keep), got {depth}")


def build_graph(roots, *, depth=None, fold_repeats=False, backward=False, max_nodes=5000, expand=()) -> Graph:
    """The vertices and edges to_dot draws: forward or backward, collapsed to ``depth``
    (but for the scopes in ``expand``), folded, capped at ``max_nodes``."""
    graph = backward_graph(roots) if backward else forward_graph(roots)
    has_scopes = any(v.scope for v in graph.vertices.values())
    if depth is not None:
        stands_for = collapse(graph, depth, expand)
        if fold_repeats:
            folded = fold_repeated_boxes(graph)
            stands_for = {k: folded.get(v, v) for k, v in stands_for.items()}
        redirect_edges(graph, stands_for)
    dropped = cap(graph, max_nodes)
    if dropped:
        hint = "use depth=1 or 2 to collapse scopes" if has_scopes else "raise max_nodes"
        graph.add(Vertex("note", "note", (), name=f"… {dropped:,} more nodes not drawn "
                                                   f"(max_nodes={max_nodes}); {hint}"))
    return graph


def dot_options(backward, show_data, show_grad, trace, rankdir="TB", title=None) -> tuple:
    """The drawing options and the graph attributes that ``emit`` takes."""
    steps = defaultdict(list)
    for step in trace.steps if trace is not None else ():
        steps[id(step.node)].append(step)
    options = Options(backward, show_data, show_grad, steps)
    graph_attr = {"rankdir": rankdir, "nodesep": "0.25", "ranksep": "0.3", "fontname": "Helvetica"}
    if show_grad:
        graph_attr["label"] = gradient_legend(title)
    elif title:
        graph_attr["label"] = graphviz.escape(title)
    return options, graph_attr


def render(roots, path, format=None, **options) -> Path:
    """Draw ``to_dot(roots, **options)`` into ``path`` as SVG, PNG or PDF (from
    ``format``, else the file's suffix, else SVG) with Graphviz's ``dot``; returns the
    path written: ``path``, with the format's suffix added if it has another, unless it
    is a character device or a FIFO (``/dev/stdout``).  Written atomically
    (``minigrad.files.write_atomically``).  The interactive page is ``minigrad.html.to_html(roots, ...).save(path)``."""
    if shutil.which("dot") is None:
        raise RuntimeError(NO_DOT_MESSAGE)
    path = Path(path)
    format = (format or path.suffix.lstrip(".") or "svg").lower()
    if format == "html":
        raise ValueError("render: for the interactive page use minigrad.html.to_html(roots, ...).save(path)")
    if format not in FORMATS:
        raise ValueError(f"render: format must be one of {', '.join(FORMATS)}, got {format!r}")
    if path.suffix.lstrip(".").lower() != format and not is_stream(path):  # /dev/stdout stays itself
        path = path.with_name(path.name + "." + format)
    picture = to_dot(roots, **options).pipe(format=format)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomically(path, picture)


__all__ = ["to_dot", "render", "FREED_MESSAGE", "NO_DOT_MESSAGE"]

"""minigrad.viz: known graphs give known pictures.

Node ids in the DOT text are t<k> (tensors), op<k> (ops), box<k> (collapsed scopes), so
the pictures can be counted from ``.source``.
"""

import os
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import minigrad as mg
from minigrad import viz
from minigrad.tracing import trace
from minigrad.viz import FREED_MESSAGE, render, to_dot

NODE = re.compile(r"^\s*(t|op|box|note)(\d*) \[(.*)\]$")
EDGE = re.compile(r"^\s*(\w+) -> (\w+)(?: \[(.*)\])?$")


def parse(dot):
    """{"t": [...], "op": [...], "box": [...], "note": [...]} of (id, attributes) and the
    edge list [(src, dst, attributes)] of a DOT text."""
    nodes = {"t": [], "op": [], "box": [], "note": []}
    edges = []
    for line in (dot.source if hasattr(dot, "source") else dot).splitlines():
        if m := EDGE.match(line):
            edges.append((m[1], m[2], m[3] or ""))
        elif m := NODE.match(line):
            nodes[m[1]].append((m[1] + m[2], m[3]))
    return nodes, edges


def counts(dot):
    nodes, edges = parse(dot)
    return len(nodes["op"]), len(nodes["t"]), len(edges)


def labels(dot, kind):
    return [re.search(r'label=("[^"]*"|\S+)', attrs)[1].strip('"') for _, attrs in parse(dot)[0][kind]]


def cluster_tree(dot):
    """Nesting of the clusters, by label: {"outer": {"inner": {}}}, and for each node id
    the labels of the clusters around it."""
    tree, stack, where = {}, [], {}
    path = []
    for line in dot.source.splitlines():
        if line.strip().startswith("subgraph cluster"):
            stack.append(None)
        elif line.strip() == "}" and stack:
            stack.pop()
            path.pop()
        elif stack and stack[-1] is None and (m := re.search(r"\blabel=(\"[^\"]*\"|[^ \]]+)", line)):
            stack[-1] = m[1].strip('"')
            path.append(stack[-1])
            level = tree
            for name in path:
                level = level.setdefault(name, {})
        elif m := NODE.match(line):
            where[m[1] + m[2]] = tuple(path)
    return tree, where


# --------------------------------------------------------------------------- known graphs


def neuron():
    """micrograd's neuron, with tensors: o = tanh(w·x + b)."""
    x = mg.tensor([2.0, 0.0], name="x")
    w = mg.tensor([-3.0, 1.0], requires_grad=True, name="w")
    b = mg.tensor(6.8813735870195432, requires_grad=True, name="b")
    o = ((x * w).sum() + b).tanh()
    o.name = "o"
    return o


def mlp(scoped=False):
    """loss = sum(relu(x @ W1 + b1) @ W2 + b2), optionally in module-style scopes."""
    rng = np.random.default_rng(0)

    def param(name, *shape):
        return mg.Tensor(rng.standard_normal(shape).astype(np.float32), requires_grad=True, name=name)

    x = mg.Tensor(rng.standard_normal((4, 3)).astype(np.float32), name="x")
    W1, b1, W2, b2 = param("fc1.weight", 3, 5), param("fc1.bias", 5), param("fc2.weight", 5, 2), \
        param("fc2.bias", 2)
    outer = mg.name_scope("MLP") if scoped else _nothing()
    with outer:
        with mg.name_scope("fc1") if scoped else _nothing():
            a = x @ W1 + b1
        h = a.relu()
        with mg.name_scope("fc2") if scoped else _nothing():
            o = h @ W2 + b2
    loss = o.sum()
    loss.name = "loss"
    return loss


class _nothing:
    def __enter__(self): return self
    def __exit__(self, *exc): return False


def test_neuron_has_4_ops_7_tensors_10_edges():
    dot = to_dot(neuron())
    assert counts(dot) == (4, 7, 10)
    assert sorted(labels(dot, "op")) == ["add", "mul", "sum", "tanh"]
    tensor_labels = labels(dot, "t")
    for name in ("x", "w", "b", "o"):
        assert sum(label.startswith(name + "\\n") for label in tensor_labels) == 1


def test_mlp_has_6_ops_11_tensors_16_edges_and_marks_parameters_and_output():
    dot = to_dot(mlp())
    assert counts(dot) == (6, 11, 16)
    tensors = parse(dot)[0]["t"]
    parameters = [attrs for _, attrs in tensors if viz.STYLE["parameter"]["fillcolor"] in attrs]
    outputs = [attrs for _, attrs in tensors if viz.STYLE["output"]["fillcolor"] in attrs]
    assert len(parameters) == 4
    assert len(outputs) == 1 and "loss" in outputs[0]


def test_edges_go_from_inputs_to_outputs_and_number_the_arguments():
    dot = to_dot(neuron())
    nodes, edges = parse(dot)
    ids = {label.split("\\n")[0]: node for (node, _), label in zip(nodes["t"], labels(dot, "t"))}
    mul = next(node for (node, _), label in zip(nodes["op"], labels(dot, "op")) if label == "mul")
    assert (ids["x"], mul, "label=0") in edges
    assert (ids["w"], mul, "label=1") in edges
    assert any(src == mul for src, _, _ in edges)


@pytest.mark.parametrize("make", [lambda x: x + x, lambda x: x * x])
def test_a_tensor_used_twice_by_one_op_gets_two_edges(make):
    x = mg.tensor([1.0, 2.0], requires_grad=True, name="x")
    dot = to_dot(make(x))
    nodes, edges = parse(dot)
    (x_id,) = [node for (node, _), label in zip(nodes["t"], labels(dot, "t")) if label.startswith("x\\n")]
    edges = [(s, d) for s, d, _ in edges if s == x_id]
    assert len(edges) == 2 and edges[0] == edges[1]
    assert counts(dot) == (1, 2, 3)


def test_several_roots_are_all_drawn_and_shared_parts_once():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    h = x.tanh()
    dot = to_dot([h.sum(), (h * 2).sum()])
    # ops: tanh, sum, mul, sum; tensors: x, h, 2, h*2, two sums; edges: 2 + 2 + 3 + 2
    assert counts(dot) == (4, 6, 9)
    assert sum(viz.STYLE["output"]["fillcolor"] in attrs for _, attrs in parse(dot)[0]["t"]) == 2


def test_a_leaf_is_drawn_alone():
    assert counts(to_dot(mg.tensor([1.0]))) == (0, 1, 0)


# --------------------------------------------------------------------------- clusters and depth


def test_clusters_nest_exactly_as_name_scopes_did():
    x = mg.tensor([1.0, 2.0], requires_grad=True, name="x")
    with mg.name_scope("outer"):
        a = x.exp()
        with mg.name_scope("inner"):
            b = a.tanh()
    with mg.name_scope("other"):
        c = b * 3.0
    dot = to_dot(c.sum())
    tree, where = cluster_tree(dot)
    assert tree == {"outer": {"inner": {}}, "other": {}}
    op_ids = {label: node for (node, _), label in zip(parse(dot)[0]["op"], labels(dot, "op"))}
    assert where[op_ids["exp"]] == ("outer",)
    assert where[op_ids["tanh"]] == ("outer", "inner")
    assert where[op_ids["mul"]] == ("other",)
    assert where[op_ids["sum"]] == ()


def test_module_scopes_are_labelled_relative_to_their_parent():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    with mg.name_scope("Transformer"), mg.name_scope("encoder"), mg.name_scope("encoder.layers.0"):
        y = x.tanh()
    tree, _ = cluster_tree(to_dot(y))
    assert tree == {"Transformer": {"encoder": {"layers.0": {}}}}


def test_parameters_sit_in_their_module_and_data_outside():
    dot = to_dot(mlp(scoped=True))
    _, where = cluster_tree(dot)
    nodes = parse(dot)[0]["t"]
    by_label = {label.split("\\n")[0]: node for (node, _), label in zip(nodes, labels(dot, "t"))}
    assert where[by_label["weight"]] in {("MLP", "fc1"), ("MLP", "fc2")}  # fc1.weight, drawn short
    assert where[by_label["x"]] == ()
    assert where[by_label["loss"]] == ()


def test_depth_collapses_scopes_into_boxes():
    loss = mlp(scoped=True)
    assert counts(to_dot(loss)) == (6, 11, 16)
    # depth=0: x -> [MLP] -> sum -> loss
    dot0 = to_dot(loss, depth=0)
    nodes, edges = parse(dot0)
    assert (len(nodes["op"]), len(nodes["t"]), len(nodes["box"]), len(edges)) == (1, 2, 1, 3)
    box = labels(dot0, "box")[0]
    assert box.split("\\n") == ["MLP", "5 ops", "in: (4, 3)", "out: (4, 2)"]
    # depth=1: x -> [fc1] -> relu -> h -> [fc2] -> sum -> loss
    dot1 = to_dot(loss, depth=1)
    nodes, edges = parse(dot1)
    assert (len(nodes["op"]), len(nodes["t"]), len(nodes["box"]), len(edges)) == (2, 3, 2, 6)
    assert sorted(label.split("\\n")[0] for label in labels(dot1, "box")) == ["fc1", "fc2"]
    assert "2 ops" in labels(dot1, "box")[0]
    assert cluster_tree(dot1)[0] == {"MLP": {}}
    # depth=2 keeps everything
    assert counts(to_dot(loss, depth=2)) == (6, 11, 16)


def stack_of_blocks(n, odd_one_out=False):
    x = mg.tensor(np.ones((2, 4)), name="x")
    h = x
    with mg.name_scope("net"):
        for i in range(n):
            with mg.name_scope(f"net.layers.{i}"):
                w = mg.tensor(np.eye(4) * 0.5, requires_grad=True, name=f"net.layers.{i}.weight")
                h = (h @ w).tanh()
                if odd_one_out and i == n - 1:
                    h = h * 2.0
    return h.sum()


def test_fold_repeats_draws_identical_blocks_once_with_a_count():
    loss = stack_of_blocks(3)
    unfolded = to_dot(loss, depth=1)
    folded = to_dot(loss, depth=1, fold_repeats=True)
    assert len(parse(unfolded)[0]["box"]) == 3
    assert labels(folded, "box") == ["layers.0–2  × 3\\n2 ops each\\nin: (2, 4)\\nout: (2, 4)"]
    nodes, edges = parse(folded)
    assert (len(nodes["op"]), len(nodes["t"]), len(edges)) == (1, 2, 3)  # x -> box -> sum -> out


def test_fold_repeats_keeps_a_different_block_apart():
    folded = to_dot(stack_of_blocks(3, odd_one_out=True), depth=1, fold_repeats=True)
    names = sorted(label.split("\\n")[0] for label in labels(folded, "box"))
    assert names == ["layers.0–1  × 2", "layers.2"]


# --------------------------------------------------------------------------- backward view, trace, colours


def test_backward_view_of_a_neuron():
    dot = to_dot(neuron(), backward=True)
    nodes, edges = parse(dot)
    assert sorted(labels(dot, "op")) == ["add VJP", "mul VJP", "sum VJP", "tanh VJP"]
    # tensors: the output (where the gradient starts) and the leaves that get one: w, b
    assert sorted(label.split("\\n")[0] for label in labels(dot, "t")) == ["b.grad", "o", "w.grad"]
    assert len(edges) == 6
    op_of = {label: node for (node, _), label in zip(nodes["op"], labels(dot, "op"))}
    t_of = {label.split("\\n")[0]: node for (node, _), label in zip(nodes["t"], labels(dot, "t"))}
    assert (t_of["o"], op_of["tanh VJP"], "label=scalar") in edges
    assert (op_of["mul VJP"], t_of["w.grad"], 'label="(2,)"') in edges


def test_backward_view_draws_both_gradients_of_x_times_x():
    x = mg.tensor([1.0, 2.0], requires_grad=True, name="x")
    dot = to_dot(x * x, backward=True)
    assert counts(dot) == (1, 2, 3)  # out -> mul VJP, and mul VJP -> x twice


def test_trace_puts_step_numbers_on_ops_and_norms_on_gradient_edges():
    o = neuron()
    with trace() as t:
        o.backward(retain_graph=True)
    forward = to_dot(o, trace=t)
    steps = {label.split("\\n")[0]: label.split("\\n")[1] for label in labels(forward, "op")}
    assert steps == {"tanh": "step 1", "add": "step 2", "sum": "step 3", "mul": "step 4"}
    backward = to_dot(o, trace=t, backward=True)
    norms = [attrs for _, _, attrs in parse(backward)[1] if "|g|" in attrs]
    assert len(norms) == 5  # every gradient edge except the seed o -> tanh VJP
    assert any("|g| 0.5" in attrs for attrs in norms)


def test_show_grad_colours_by_decade_of_the_gradient_norm():
    small = mg.tensor([1.0, 1.0], requires_grad=True, name="small")
    big = mg.tensor([1.0, 1.0], requires_grad=True, name="big")
    loss = (small * 1e-5).sum() + (big * 1e5).sum()
    with trace() as t:
        loss.backward(retain_graph=True)
    dot = to_dot(loss, show_grad=True, trace=t)
    attrs = {label.split("\\n")[0]: a for (_, a), label in zip(parse(dot)[0]["t"], labels(dot, "t"))}
    assert 'fillcolor="/rdbu11/11"' in attrs["small"]  # ~1.4e-5: darkest blue
    assert 'fillcolor="/rdbu11/1"' in attrs["big"]  # ~1.4e+5: darkest red
    assert "gradient norm, log scale" in dot.source
    assert "|grad| 1.41e-05" in dot.source


def test_show_grad_without_trace_colours_only_leaves():
    loss = mlp()
    loss.backward(retain_graph=True)
    dot = to_dot(loss, show_grad=True)
    assert all("rdbu11" not in attrs for _, attrs in parse(dot)[0]["op"])
    assert sum("rdbu11" in attrs for _, attrs in parse(dot)[0]["t"]) == 4


def test_a_collapsed_box_shows_the_largest_gradient_inside():
    loss = mlp(scoped=True)
    with trace() as t:
        loss.backward(retain_graph=True)
    fc1_steps = [s for s in t.steps if s.scope == ("MLP", "fc1")]
    expected = max([s.grad_norm for s in fc1_steps] + [g for s in fc1_steps for _, g in s.input_grad_norms])
    dot = to_dot(loss, depth=1, show_grad=True, trace=t)
    (fc1,) = [label for label in labels(dot, "box") if label.startswith("fc1")]
    assert fc1.endswith(f"max |grad| {expected:.3g}")
    assert all("rdbu11" in attrs for _, attrs in parse(dot)[0]["box"])


def test_show_data_summarises_values():
    dot = to_dot(neuron(), show_data=True)
    assert "value 0.7071" in dot.source
    assert "mean -1  std 2\\nmin -3  max 1" in dot.source


def test_freed_graph_is_reported():
    loss = mlp()
    loss.backward()
    with pytest.raises(RuntimeError, match=re.escape(FREED_MESSAGE)):
        to_dot(loss)


def test_retained_graph_can_be_drawn_after_backward():
    loss = mlp()
    loss.backward(retain_graph=True)
    assert counts(to_dot(loss)) == (6, 11, 16)


def test_graph_of_a_gradient_made_with_create_graph():
    x = mg.tensor([1.0, 2.0], requires_grad=True, name="x")
    (g,) = (mg.grad((x ** 3).sum(), [x], create_graph=True))
    dot = to_dot(g)
    # g = (ḡ·3) * x ** 2: ḡ·3 is a constant (ḡ needs no grad), x ** 2 is recorded
    assert sorted(labels(dot, "op")) == ["mul", "pow"]
    assert counts(dot) == (2, 5, 6)
    assert any(label.startswith("x\\n") for label in labels(dot, "t"))


def test_bad_arguments_are_explained():
    with pytest.raises(TypeError, match="expected a minigrad Tensor"):
        to_dot([np.ones(3)])
    with pytest.raises(ValueError, match="depth must be >= 0"):
        to_dot(neuron(), depth=-1)
    with pytest.raises(TypeError, match="trace= must be"):
        to_dot(neuron(), trace=[])


# --------------------------------------------------------------------------- big graphs


def long_chain(ops):
    x = mg.tensor(np.ones(3), requires_grad=True, name="x")
    y = x
    for _ in range(ops):
        y = y.tanh()
    return y


def test_a_20000_node_graph_without_recursion():
    y = long_chain(10_000)  # 10,000 ops + 10,001 tensors
    assert counts(to_dot(y, max_nodes=None)) == (10_000, 10_001, 20_000)
    assert counts(to_dot(y, backward=True, max_nodes=None)) == (10_000, 2, 10_001)


def test_max_nodes_stops_with_a_note():
    y = long_chain(10_000)
    nodes, _ = parse(to_dot(y))
    assert len(nodes["op"]) + len(nodes["t"]) == 5000
    (note,) = nodes["note"]
    assert "15,001 more nodes not drawn" in note[1] and "raise max_nodes" in note[1]
    with mg.name_scope("deep"):
        z = long_chain(100)
    (note,) = parse(to_dot(z, max_nodes=10))[0]["note"]
    assert "use depth=1 or 2" in note[1]


# --------------------------------------------------------------------------- rendering with dot


@pytest.mark.requires("dot")
def test_render_svg_parses_as_xml(tmp_path):
    path = render(mlp(scoped=True), tmp_path / "mlp.svg", depth=1)
    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg")
    assert "fc1" in path.read_text()


@pytest.mark.requires("dot")
def test_render_png_and_pdf_have_their_signatures(tmp_path):
    png = render(neuron(), tmp_path / "neuron", format="png")
    assert png.suffix == ".png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pdf = render(neuron(), tmp_path / "neuron.pdf", backward=True)
    assert pdf.read_bytes()[:5] == b"%PDF-"


@pytest.mark.requires("dot")
def test_render_into_a_fifo_writes_there_without_adding_a_suffix(tmp_path):
    # A FIFO in tmp_path rather than /dev/null: a broken render would leave /dev/null.svg behind.
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with open(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK), "rb") as reader:
        assert render(neuron(), fifo, format="png") == fifo
        assert reader.read(8) == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]


@pytest.mark.requires("dot")
def test_render_rejects_unknown_formats(tmp_path):
    with pytest.raises(ValueError, match="svg, png, pdf"):
        render(neuron(), tmp_path / "x.gif")


def test_missing_dot_gives_install_instructions_but_to_dot_works(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` anywhere
    with pytest.raises(RuntimeError, match="apt-get install graphviz") as error:
        render(neuron(), tmp_path / "neuron.svg")
    assert "brew install graphviz" in str(error.value)
    assert not (tmp_path / "neuron.svg").exists()
    assert counts(to_dot(neuron())) == (4, 7, 10)


@pytest.mark.requires("dot")
@pytest.mark.parametrize("options", [
    {"depth": 0, "backward": True}, {"depth": 1, "show_grad": True, "show_data": True},
    {"depth": 1, "fold_repeats": True, "backward": True, "show_grad": True},
    {"backward": True, "show_grad": True, "show_data": True, "title": "a <title> & \\ more"},
])
def test_every_combination_of_options_gives_valid_dot(tmp_path, options):
    loss = mlp(scoped=True)
    with trace() as t:
        loss.backward(retain_graph=True)
    path = render(loss, tmp_path / "g.svg", trace=t, **options)
    ET.parse(path)  # dot accepted the DOT text and wrote well-formed SVG

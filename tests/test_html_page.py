"""minigrad.html: the interactive graph page.

The first tests read the JSON the page is made of and hold it against the trace; the
browser tests (marked ``requires("chromium", "dot")``) open the page in headless Chromium
from a file:// URL, step through backward, open a box and read the console.
"""

import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import minigrad as mg
from minigrad import viz
from minigrad.html import GraphPage, op_rule, show, to_html
from minigrad.tracing import trace
from minigrad.viz import FREED_MESSAGE, render

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "demos"))
from render_graphs import headless_chromium, neuron, tiny_transformer_loss  # noqa: E402
from test_cli import checkpoint, run_main  # noqa: E402, F401  (a micro model trained 2 steps)


def traced(loss):
    with trace() as t:
        loss.backward(retain_graph=True)
    return t


def used_three_times():
    """y = Σ(h·h + eʰ) with h = 3x inside scopes block/inner: h gets three gradients
    (from exp, then from both inputs of one mul), x one."""
    x = mg.tensor([1.0, -2.0], requires_grad=True, name="x")
    with mg.name_scope("block"):
        with mg.name_scope("inner"):
            h = x * 3
        h.name = "h"
        y = (h * h + h.exp()).sum()
    y.name = "y"
    return y, h, x


def data_of(page):
    text = re.search(r'<script type="application/json" id="graph-data">(.*?)</script>', page.html, re.S)[1]
    return json.loads(text)


def op_vertex(roots, node, backward):
    """The vertex id that viz gives the op of ``node`` in a view."""
    graph = viz.backward_graph(roots) if backward else viz.forward_graph(roots)
    return next(v.id for v in graph.vertices.values() if v.kind == "op" and v.tensor._node is node)


def gradient_arrows(roots, step, backward=True):
    """Titles of the arrows that carry the gradients of ``step``: in the backward view
    from its VJP to the VJP of the op that made each input (or to a leaf), in the forward
    view from each input to the op."""
    graph = viz.backward_graph(roots) if backward else viz.forward_graph(roots)
    vertex = {(v.kind, id(v.tensor)): v.id for v in graph.vertices.values()}
    op = op_vertex(roots, step.node, backward)
    inputs = [step.node.inputs[i] for i, _ in step.input_grad_norms]
    if not backward:
        return sorted(f"{vertex['tensor', id(inp)]}->{op}" for inp in inputs)
    return sorted(f"{op}->{vertex.get(('op', id(inp))) or vertex['tensor', id(inp)]}" for inp in inputs)


# ---------------------------------------------------------------------------- the data


def test_rules_come_from_the_ops_docstrings():
    assert op_rule("mul")[0] == "ā = ḡ·b, b̄ = ḡ·a"
    assert op_rule("tanh")[0] == "x̄ = ḡ·(1 - out²)"
    assert op_rule("sum")[0] == "x̄ = ḡ broadcast back over the summed axes"
    assert op_rule("layer_norm")[0].startswith("x̄ = (ĝ - mean(ĝ)")
    assert op_rule("matmul")[0].startswith("ā = ḡ @ bᵀ, b̄ = aᵀ @ ḡ.")
    assert op_rule("no_such_op") == ("", "")


@pytest.mark.requires("dot")
def test_every_op_of_the_transformer_has_a_rule():
    rules = data_of(to_html(tiny_transformer_loss(), depth=1))["rules"]
    assert len(rules) >= 10
    for op, rule in rules.items():
        assert "=" in rule["rule"] and re.search("[\u0304\u0101\u1e21]", rule["rule"]), op  # x̄, ā, ḡ


@pytest.mark.requires("dot")
def test_the_embedded_steps_are_the_trace():
    y, h, x = used_three_times()
    t = traced(y)
    data = data_of(to_html(y, trace=t))
    tensors = viz.reachable_tensors([y])
    assert len(data["steps"]) == len(t.steps) == 5
    for shown, step in zip(data["steps"], t.steps):
        assert shown["number"] == step.number and shown["op"] == step.op
        assert tensors[shown["tensor"]]._node is step.node
        assert shown["grad_norm"] == step.grad_norm and shown["grad_count"] == step.grad_count
        sums = dict(step.input_grad_sums)
        assert [(i["index"], i["norm"], i["count"], i["sum"]) for i in shown["inputs"]] == [
            (i, n, *sums[i]) for i, n in step.input_grad_norms]
        for i in shown["inputs"]:
            assert tensors[i["tensor"]] is step.node.inputs[i["index"]]
    # The mul h·h (step 4) sends h its 2nd and 3rd gradients; their sum arrives at step 5.
    mul = data["steps"][3]
    assert [i["count"] for i in mul["inputs"]] == [2, 3]
    assert tensors[mul["inputs"][1]["tensor"]] is h
    assert data["steps"][4]["grad_count"] == 3
    assert mul["inputs"][1]["sum"] == pytest.approx(data["steps"][4]["grad_norm"], rel=1e-6)
    names = {f["name"]: f for f in data["tensors"]}
    assert names["x"]["grad"]["values"] == pytest.approx(x.grad.data.tolist())
    assert names["h"]["value"]["values"] == pytest.approx(h.data.tolist())
    assert names["h"]["scope"] == "block/inner" and names["h"]["op"] == "mul"


@pytest.mark.requires("dot")
def test_the_page_is_self_contained():
    page = to_html(neuron(), title="<script>alert(1)</script>")
    text = page.html
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text)
    assert not re.search(r"<script[^>]*\ssrc=|<link[^>]*stylesheet|@import", text)
    assert set(re.findall(r"https?://[^\s\\\"'<>)]*", text)) <= {
        "http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}  # namespaces, never fetched
    assert "<script>alert" not in text  # the title is escaped
    assert text.count("</script>") == 2  # the JSON and the script, nothing closes them early


@pytest.mark.requires("dot")
def test_a_name_that_looks_like_html_cannot_break_the_page():
    x = mg.tensor([1.0], requires_grad=True, name="<!--<script></script><b>x")
    y = x * 2
    page = to_html(y, trace=traced(y))
    assert page.html.count("</script>") == 2
    assert data_of(page)["tensors"][1]["name"] == "<!--<script></script><b>x"


@pytest.mark.requires("dot")
def test_each_state_s_svg_has_the_arrows_of_its_edge_table():
    """The page pairs SVG arrows with the edge table by their titles "src->dst"
    (Graphviz does not keep the DOT order)."""
    y, _, _ = used_three_times()
    data = data_of(to_html(y, trace=traced(y), depth=0))
    svg_ns = "{http://www.w3.org/2000/svg}"
    for view in data["views"].values():
        assert len(view["states"]) == 2  # closed, and the box "block" open
        for state in view["states"]:
            svg = ET.fromstring(state["svg"])
            titles = [g.find(svg_ns + "title").text for g in svg.iter(svg_ns + "g") if g.get("class") == "edge"]
            assert sorted(titles) == sorted(f"{src}->{dst}" for src, dst, _, _ in state["edges"])


@pytest.mark.requires("dot")
def test_opening_a_box_draws_what_it_hid():
    y, _, _ = used_three_times()
    data = data_of(to_html(y, trace=traced(y), depth=0))
    closed, opened = data["views"]["backward"]["states"]
    assert opened["expand"] == next(iter(closed["boxes"].values()))["scope"]
    assert not opened["boxes"] and not opened["hidden"]
    for vertex in closed["hidden"]:
        assert f"<title>{vertex}</title>" in opened["svg"] and f"<title>{vertex}</title>" not in closed["svg"]


@pytest.mark.requires("dot")
def test_render_writes_the_page_and_bad_options_get_one_line(tmp_path):
    o = neuron()
    t = traced(o)
    path = to_html(o, trace=t).save(tmp_path / "neuron.html")
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    with pytest.raises(ValueError, match=r"render: for the interactive page use minigrad\.html\.to_html"):
        render(o, tmp_path / "neuron.html", trace=t)  # viz draws pictures; the page is html's
    with pytest.raises(ValueError, match="fold_repeats is not supported"):
        to_html(o, depth=1, fold_repeats=True)
    with pytest.raises(TypeError, match="to_html: trace= must be a minigrad.tracing.Trace"):
        to_html(o, trace=[1])
    z = neuron()
    z.backward()
    with pytest.raises(RuntimeError, match=re.escape(FREED_MESSAGE)):
        to_html(z)


@pytest.mark.requires("dot")
def test_show_displays_the_page(monkeypatch):
    shown = []
    fake = type(sys)("IPython.display")  # IPython need not be installed
    fake.display = shown.append
    monkeypatch.setitem(sys.modules, "IPython", type(sys)("IPython"))
    monkeypatch.setitem(sys.modules, "IPython.display", fake)
    o = neuron()
    page = show(o, trace=traced(o))
    assert shown == [page] and data_of(page)["steps"][0]["op"] == "tanh"


def test_the_page_shows_inline_in_jupyter_in_an_iframe(tmp_path):
    page = GraphPage("<!DOCTYPE html><p>\"hi\" & bye</p>")
    assert page._repr_html_().startswith('<iframe srcdoc="&lt;!DOCTYPE html&gt;&lt;p&gt;&quot;hi&quot; &amp; bye')
    assert page.save(tmp_path / "a" / "p.html").read_text() == page.html
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["p.html"]  # no temporary file left


@pytest.mark.requires("dot")
def test_the_tiny_transformer_page_at_depth_2_is_under_2_mb():
    loss = tiny_transformer_loss()
    page = to_html(loss, trace=traced(loss), depth=2)
    assert len(page) < 2_000_000
    data = data_of(page)
    assert len(data["steps"]) > 100
    assert len(data["views"]["backward"]["states"]) == 1 + len(data["views"]["backward"]["states"][0]["boxes"])


@pytest.mark.requires("dot")
def test_the_graph_command_writes_the_page(checkpoint, tmp_path, capsys):  # noqa: F811
    path = tmp_path / "model.html"
    status, out, err = run_main(["graph", "--checkpoint", checkpoint, "--depth", "1", "--html", "--out", str(path)],
                                capsys)
    assert status == 0, err
    data = data_of(GraphPage(path.read_text(encoding="utf-8")))
    assert f"{len(data['steps'])} backward steps" in out and len(data["steps"]) > 50
    opened = {data["scopes"][state["expand"]] for state in data["views"]["backward"]["states"][1:]}
    assert data["depth"] == 1 and {"Transformer/encoder", "Transformer/decoder"} <= opened


# ---------------------------------------------------------------------------- in Chromium


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    driver = headless_chromium(tmp_path_factory.mktemp("chromium-profile"))
    yield driver
    driver.quit()


def open_page(browser, page, path):
    page.save(path)
    browser.get_log("browser")  # empty the console log, so that each test sees only its page's
    browser.get(path.resolve().as_uri())
    assert browser.execute_script("return document.body.dataset.ready") == "true"


def current(browser):
    """(highlighted vertex id, displayed op, displayed |ḡ|, displayed |g| per input and
    running sums, edge badges, titles of the highlighted arrows)."""
    return browser.execute_script("""
        const node = document.querySelector("#canvas g.node.current title");
        const sends = [...document.querySelectorAll("#step-sends span.num")].map((e) => Number(e.dataset.value));
        return [node && node.textContent, document.getElementById("step-op").textContent,
                Number(document.getElementById("step-grad").dataset.value), sends,
                [...document.querySelectorAll("text.badge.edge")].map((e) => e.textContent),
                [...document.querySelectorAll("g.edge.carrying title")].map((e) => e.textContent).sort()];""")


def no_console_errors(browser):
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert not errors, errors


@pytest.mark.requires("chromium", "dot")
def test_stepping_highlights_the_traced_step(browser, tmp_path):
    o = neuron()
    t = traced(o)
    open_page(browser, to_html(o, trace=t), tmp_path / "neuron.html")
    assert browser.find_element("id", "step-label").text == f"step 0 / {len(t.steps)}"
    for step in t.steps:
        browser.find_element("id", "next").click()
        vertex, op, grad, sends, badges, arrows = current(browser)
        assert vertex == op_vertex([o], step.node, backward=True)
        assert arrows == gradient_arrows([o], step)
        assert op == step.op and grad == step.grad_norm
        sums = dict(step.input_grad_sums)
        assert sends == [x for i, n in step.input_grad_norms for x in ((n, sums[i][1]) if sums[i][0] > 1 else (n,))]
        assert len(badges) == len(step.input_grad_norms)
    # The slider goes straight to a step; prev goes back one.
    browser.execute_script("const s = document.getElementById('slider'); s.value = 2;"
                           "s.dispatchEvent(new Event('input'));")
    assert current(browser)[:3] == [op_vertex([o], t.steps[1].node, True), t.steps[1].op, t.steps[1].grad_norm]
    browser.find_element("id", "prev").click()
    assert current(browser)[0] == op_vertex([o], t.steps[0].node, True)
    no_console_errors(browser)


@pytest.mark.requires("chromium", "dot")
def test_where_gradients_add_up_the_running_sum_is_shown(browser, tmp_path):
    y, h, _ = used_three_times()
    t = traced(y)
    open_page(browser, to_html(y, trace=t), tmp_path / "twice.html")
    for _ in range(4):
        browser.find_element("id", "next").click()
    mul = t.steps[3]
    (_, (count, total)) = mul.input_grad_sums[1]
    badge = browser.execute_script("return [...document.querySelectorAll('text.badge.sum')].map(e => e.textContent)")
    assert badge == [f"Σ of {count}: |g| {float(f'{total:.4g}'):g}"]
    assert count == 3 and total == pytest.approx(t.steps[4].grad_norm)  # the sum arrives at the next step
    assert current(browser)[5] == gradient_arrows([y], mul)
    # The node h's panel lists every gradient it received with the running sum.
    browser.execute_script("clickNode(arguments[0])", op_vertex([y], h._node, backward=True))
    panel = browser.find_element("id", "panel").text
    assert "gradients received" in panel and "step 3 (exp)" in panel and "step 4 (mul)" in panel
    assert "the sum of 3" in panel
    no_console_errors(browser)


@pytest.mark.requires("chromium", "dot")
def test_forward_view_highlights_the_op_and_its_input_arrows(browser, tmp_path):
    o = neuron()
    t = traced(o)
    open_page(browser, to_html(o, trace=t), tmp_path / "neuron.html")
    browser.find_element("id", "view-forward").click()
    browser.find_element("id", "next").click()
    vertex, op, grad, _, badges, _ = current(browser)
    assert vertex == op_vertex([o], t.steps[0].node, backward=False) and op == "tanh"
    assert badges == [f"|g| {float(f'{t.steps[0].input_grad_norms[0][1]:.4g}'):g}"]
    no_console_errors(browser)


@pytest.mark.requires("chromium", "dot")
def test_a_box_opens_on_click_and_closes_again(browser, tmp_path):
    y, _, _ = used_three_times()
    t = traced(y)
    page = to_html(y, trace=t, depth=0)
    open_page(browser, page, tmp_path / "box.html")
    closed, opened = data_of(page)["views"]["backward"]["states"]

    def drawn():
        return set(browser.execute_script("return Object.keys(nodes)"))

    (box,) = closed["boxes"]
    assert box in drawn() and not drawn() & set(closed["hidden"])
    browser.execute_script("nodes[arguments[0]].dispatchEvent(new MouseEvent('click', {bubbles: true}))", box)
    assert set(closed["hidden"]) <= drawn() and box not in drawn()
    # Stepping now highlights the ops inside and their arrows, rather than the box.
    for step in t.steps:
        browser.find_element("id", "next").click()
        vertex, *_, arrows = current(browser)
        assert vertex == op_vertex([y], step.node, backward=True) and arrows == gradient_arrows([y], step)
    browser.find_element("id", "view-forward").click()  # the open box stays open
    for step in t.steps:
        browser.execute_script("setStep(arguments[0])", step.number)
        vertex, *_, arrows = current(browser)
        assert vertex == op_vertex([y], step.node, backward=False)
        assert arrows == gradient_arrows([y], step, backward=False)
    browser.find_element("id", "view-backward").click()
    browser.execute_script("setStep(1)")
    browser.execute_script("document.querySelector('g.cluster.closer').dispatchEvent(new MouseEvent('click'))")
    assert box in drawn() and current(browser)[0] == box
    no_console_errors(browser)


@pytest.mark.requires("chromium", "dot")
def test_the_tiny_transformer_page_steps_to_its_end(browser, tmp_path):
    loss = tiny_transformer_loss()
    t = traced(loss)
    open_page(browser, to_html(loss, trace=t, depth=2), tmp_path / "model.html")
    browser.execute_script("setStep(DATA.steps.length)")
    _, op, grad, sends, _, _ = current(browser)
    assert op == t.steps[-1].op and grad == t.steps[-1].grad_norm
    assert sends[0] == t.steps[-1].input_grad_norms[0][1]
    no_console_errors(browser)


@pytest.mark.requires("chromium")
@pytest.mark.parametrize("name", ["neuron.html", "model_depth2.html"])
def test_the_committed_example_pages_step_through_backward(browser, name):
    path = Path(__file__).resolve().parents[1] / "docs" / name
    browser.get_log("browser")
    browser.get(path.as_uri())
    steps = browser.execute_script("return DATA.steps")
    assert len(steps) == {"neuron.html": 4, "model_depth2.html": 136}[name]
    for step in steps[:3] + steps[-3:]:
        browser.execute_script("setStep(arguments[0])", step["number"])
        _, op, grad, *_ = current(browser)
        assert op == step["op"] and grad == step["grad_norm"]
    assert browser.execute_script("return document.querySelectorAll('#canvas g.node.current').length") == 1
    no_console_errors(browser)

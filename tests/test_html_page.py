"""minigrad.html: the interactive graph page.

The first tests read the JSON the page is made of and hold it against the trace; the
browser tests (marked ``requires("chromium", "dot")``) open the page in headless Chromium
from a file:// URL, step through backward, open a box and read the console.
"""

import json
import os
import re
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

import minigrad as mg
from minigrad import viz
from minigrad.html import FORMULAS, GraphPage, op_rule, show, to_html
from minigrad.tracing import scope_path, trace
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
    driver = headless_chromium(tmp_path_factory.mktemp("chromium-profile"), size=(1280, 800))
    yield driver
    driver.quit()


def open_page(browser, page, path):
    page.save(path)
    browser.get_log("browser")  # empty the console log, so that each test sees only its page's
    browser.get(path.resolve().as_uri())
    assert browser.execute_script("return document.body.dataset.ready") == "true"


def current(browser):
    """(highlighted vertex id, displayed op, displayed |ḡ|, displayed |g| per input and
    running sums, visible gradient labels of the highlighted arrows, their titles)."""
    return browser.execute_script("""
        const node = document.querySelector("#canvas .shown g.node.current title");
        const sends = [...document.querySelectorAll("#step-panel h4[data-sent] span.num")]
          .map((e) => Number(e.dataset.value));
        const carrying = [...document.querySelectorAll("#canvas .shown g.edge.carrying")];
        return [node && node.textContent, document.getElementById("step-op").textContent,
                Number(document.getElementById("step-grad")?.dataset.value), sends,
                carrying.map((g) => g.querySelector("text.sent")).filter((t) => t && t.style.visibility !== "hidden")
                  .map((t) => t.textContent),
                carrying.map((g) => g.querySelector("title").textContent).sort()];""")


def labelled_arrows(browser):
    """Titles of the arrows whose gradient label is showing."""
    return sorted(browser.execute_script("""
        return [...document.querySelectorAll("#canvas .shown g.edge text.sent")]
          .filter((t) => t.style.visibility !== "hidden")
          .map((t) => t.parentNode.querySelector("title").textContent);"""))


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
        vertex, op, grad, sends, labels, arrows = current(browser)
        assert vertex == op_vertex([o], step.node, backward=True)
        assert arrows == gradient_arrows([o], step)
        assert op == step.op and grad == step.grad_norm
        sums = dict(step.input_grad_sums)
        assert sends == [x for i, n in step.input_grad_norms for x in ((n, sums[i][1]) if sums[i][0] > 1 else (n,))]
        assert len(labels) == len(step.input_grad_norms)
    # The slider goes straight to a step; prev goes back one.
    browser.execute_script("const s = document.getElementById('slider'); s.value = 2;"
                           "s.dispatchEvent(new Event('input'));")
    assert current(browser)[:3] == [op_vertex([o], t.steps[1].node, True), t.steps[1].op, t.steps[1].grad_norm]
    browser.find_element("id", "prev").click()
    assert current(browser)[0] == op_vertex([o], t.steps[0].node, True)
    no_console_errors(browser)


@pytest.mark.requires("chromium", "dot")
def test_an_arrow_is_labelled_once_the_step_that_sends_its_gradient_has_run(browser, tmp_path):
    y, h, _ = used_three_times()
    t = traced(y)
    open_page(browser, to_html(y, trace=t), tmp_path / "twice.html")
    assert labelled_arrows(browser) == []  # nothing has been sent before backward
    for k in [*range(len(t.steps) + 1), 2, 0]:  # forward to the end, then back
        browser.execute_script("setStep(arguments[0])", k)
        assert labelled_arrows(browser) == sorted(a for step in t.steps[:k] for a in gradient_arrows([y], step))
    # Where a tensor has received several gradients, the label gives their running sum.
    browser.execute_script("setStep(4)")
    mul = t.steps[3]
    (_, (count, total)) = mul.input_grad_sums[1]
    assert count == 3 and total == pytest.approx(t.steps[4].grad_norm)  # the sum arrives at the next step
    assert f"(Σ of 3: {total:.3g})" in " ".join(current(browser)[4])
    # The node h's panel lists every gradient it received with the running sum.
    browser.execute_script("clickNode(arguments[0])", op_vertex([y], h._node, backward=True))
    panel = browser.find_element("id", "node-panel").text
    assert "gradients received" in panel and "step 3 (exp)" in panel and "step 4 (mul)" in panel
    assert "the sum of 3" in panel
    no_console_errors(browser)


def shown_numbers(browser):
    """{role: exact values} of the step panel's value blocks, and its substituted rules
    as (input, element, expression, value shown)."""
    return browser.execute_script("""
        const blocks = {};
        for (const b of document.querySelectorAll("#step-panel .values")) {
          blocks[b.dataset.role] = [...b.querySelectorAll("span.num")].map((e) => Number(e.dataset.value));
        }
        const rules = [...document.querySelectorAll("#step-panel .subst")].map((e) =>
          [Number(e.dataset.input), Number(e.dataset.element), e.dataset.expr,
           e.querySelector("span.num").textContent]);
        return [blocks, rules];""")


def expected_numbers(summary):
    """What a value block shows: the values, or mean, std, min, max."""
    if summary.values is not None:
        return list(summary.values)
    return [summary.mean, summary.std, summary.min, summary.max]


def one_attention_head():
    """One causal self-attention head of width 4 over 3 positions: every tensor has at
    most 16 elements, so the page shows all values."""
    from transformer.attention import MultiHeadAttention, causal_mask

    rng = np.random.default_rng(0)
    attention = MultiHeadAttention(d_model=4, n_heads=1, rng=rng)
    x = mg.tensor(rng.standard_normal((1, 3, 4)).astype(np.float32), name="x")
    cotangent = mg.tensor(rng.standard_normal((1, 3, 4)).astype(np.float32), name="c")
    y = (attention(x, x, x, causal_mask(3)) * cotangent).sum()
    y.name = "y"
    return y


@pytest.mark.requires("chromium", "dot")
@pytest.mark.parametrize("make", [neuron, one_attention_head], ids=["neuron", "attention head"])
def test_the_numbers_shown_are_the_trace_s_and_the_rules_add_up(browser, tmp_path, make):
    root = make()
    t = traced(root)
    open_page(browser, to_html(root, trace=t), tmp_path / "numbers.html")
    substituted = set()
    for step in t.steps:
        browser.execute_script("setStep(arguments[0])", step.number)
        blocks, rules = shown_numbers(browser)
        expected = {"g": step.grad_summary, "out": step.output_summary,
                    **{f"arg{i}": s for i, s in enumerate(step.input_summaries)},
                    **{f"sent{i}": s for i, s in step.input_grad_summaries}}
        assert blocks == {role: expected_numbers(s) for role, s in expected.items()}, step.op
        sent = dict(step.input_grad_summaries)
        for i, j, expr, shown in rules:
            engine = sent[i].values[j]
            assert float(shown) == float(f"{engine:.4g}")  # the result is the engine's gradient ...
            value = eval(expr, {"__builtins__": {}})  # ... and the numbers substituted give it
            assert value == pytest.approx(engine, rel=2e-3, abs=1e-4 * (1 + abs(engine))), (step.op, expr)
            substituted.add(step.op)
        if step.op in FORMULAS and all(len(s.values or ()) <= 16 for s in step.input_summaries):
            assert {i for i, *_ in rules} == {i for i, s in step.input_grad_summaries
                                              if FORMULAS[step.op][i] and s.values}, step.op
    assert substituted >= ({"tanh", "add", "sum", "mul"} if make is neuron else {"reshape", "mul", "sum"})
    no_console_errors(browser)


def test_the_tanh_rule_is_written_out_with_its_numbers():
    """The example of the README: tanh: ḡ·(1 − out²) with out = 0.7071 gives 0.5."""
    o = neuron()
    t = traced(o)
    step = t.steps[0]
    assert step.op == "tanh" and FORMULAS["tanh"] == ("g*(1 - out**2)",)
    out, g = step.output_summary.values[0], step.grad_summary.values[0]
    assert f"{out:.4g}" == "0.7071" and g == 1.0
    assert dict(step.input_grad_summaries)[0].values[0] == pytest.approx(g * (1 - out**2)) == pytest.approx(0.5)


@pytest.mark.requires("chromium", "dot")
def test_the_forward_view_steps_through_the_ops_in_recording_order(browser, tmp_path):
    o = neuron()
    t = traced(o)
    open_page(browser, to_html(o, trace=t), tmp_path / "neuron.html")
    browser.find_element("id", "view-forward").click()
    made = sorted((x for x in viz.reachable_tensors([o]) if x._node is not None), key=lambda x: x._node.seq)
    assert [x._node.op for x in made] == ["mul", "sum", "add", "tanh"]
    for k, x in enumerate(made, 1):
        browser.find_element("id", "next").click()
        vertex, op, *_, arrows = current(browser)
        assert vertex == op_vertex([o], x._node, backward=False) and op == x._node.op
        value = browser.execute_script("return [...document.querySelectorAll('#step-panel [data-role=value] span.num')]"
                                       ".map((e) => Number(e.dataset.value))")
        assert value == x.data.astype(float).ravel().tolist()
        assert browser.find_element("id", "step-label").text == f"op {k} / 4"
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
    assert set(closed["hidden"]) - {v for v in closed["hidden"] if v.startswith("op")} <= drawn() | {
        v for v in closed["hidden"] if v not in data_of(page)["views"]["forward"]["vertices"]}
    browser.find_element("id", "view-backward").click()
    browser.execute_script("setStep(0)")
    browser.execute_script(
        "document.querySelector('#canvas .shown g.cluster.closer').dispatchEvent(new MouseEvent('click'))")
    assert box in drawn()
    no_console_errors(browser)


@pytest.mark.requires("chromium", "dot")
def test_stepping_into_a_closed_box_opens_it_and_leaving_closes_it(browser, tmp_path):
    x = mg.tensor([1.0, -2.0], requires_grad=True, name="x")
    u = x * 1.5
    with mg.name_scope("block"):
        v = (u * u).sum()
    z = v * 2  # steps outside the box "block", before and after those inside
    t = traced(z)
    page = to_html(z, trace=t, depth=0)
    open_page(browser, page, tmp_path / "box.html")
    closed = data_of(page)["views"]["backward"]["states"][0]
    (box,) = closed["boxes"]
    assert [bool(s.scope) for s in t.steps] == [False, True, True, False]
    for step in t.steps:
        browser.execute_script("setStep(arguments[0])", step.number)
        vertex, *_, arrows = current(browser)
        arrows_now = gradient_arrows([z], step)
        if not step.scope:  # drawn with the box closed: an arrow into it ends at the box
            arrows_now = sorted("->".join(closed["hidden"].get(v, v) for v in a.split("->")) for a in arrows_now)
        assert vertex == op_vertex([z], step.node, backward=True) and arrows == arrows_now
        nodes = set(browser.execute_script("return Object.keys(nodes)"))
        assert (box not in nodes) == bool(step.scope)  # open while the step runs inside, closed outside
    browser.execute_script("setStep(0)")
    assert box in set(browser.execute_script("return Object.keys(nodes)"))
    no_console_errors(browser)


@pytest.mark.requires("chromium", "dot")
def test_a_drawing_stays_laid_out_while_another_is_shown(browser, tmp_path):
    """Stepping into a box and out again swaps drawings that stay in the page, hidden with
    content-visibility (so the browser keeps their layout), and module outlines are solid
    (dashes cost raster work in every tile an outline crosses)."""
    x = mg.tensor([1.0, -2.0], requires_grad=True, name="x")
    with mg.name_scope("block"):
        v = (x * x).sum()
    z = v * 2  # step 1 runs outside the box, steps 2 and 3 inside
    open_page(browser, to_html(z, trace=traced(z), depth=0), tmp_path / "kept.html")
    shown = "return document.querySelector('#canvas .shown svg')"
    closed = browser.execute_script(shown)
    browser.execute_script("setStep(2)")  # inside the box
    opened = browser.execute_script(shown)
    assert opened != closed
    hidden = browser.execute_script("""
        const svg = arguments[0];
        return [svg.isConnected, getComputedStyle(svg.parentNode).contentVisibility,
                document.querySelectorAll('#canvas .state.shown').length];""", closed)
    assert hidden == [True, "hidden", 1]
    browser.execute_script("setStep(1)")  # outside again: the same drawing as before
    assert browser.execute_script(shown) == closed
    assert browser.execute_script(
        "return getComputedStyle(arguments[0].parentNode).contentVisibility", opened) == "hidden"
    dashes = browser.execute_script("""
        return [...arguments[0].querySelectorAll('g.cluster > path')]
          .map((p) => getComputedStyle(p).strokeDasharray);""", opened)
    assert dashes and set(dashes) == {"none"}
    no_console_errors(browser)


# Run in the page: step through the view's steps from `first` to `last` and report per step the
# running op's label height and what is wrong (node or arrows out of the window, a label
# clipped by the SVG's edge or overlapping another one).
CHECK_EVERY_STEP = """
const [first, last] = arguments;
const box = (r) => ({l: r.left, t: r.top, r: r.right, b: r.bottom});
const inside = (a, b) => a.l >= b.l - 0.5 && a.t >= b.t - 0.5 && a.r <= b.r + 0.5 && a.b <= b.b + 0.5;
const meets = (a, b) => a.l < b.r && b.l < a.r && a.t < b.b && b.t < a.b;
const shrunk = (r) => ({l: r.l + 1, t: r.t + 1, r: r.r - 1, b: r.b - 1}); // touching is not overlapping
const report = [];
for (let k = first; k <= last; k++) {
  setStep(k);
  const view = box(document.getElementById("viewport").getBoundingClientRect());
  const svg = document.querySelector("#canvas .shown svg");
  const frame = box(svg.getBoundingClientRect());
  const node = document.querySelector("#canvas .shown g.node.current");
  const problems = [];
  let height = 0;
  if (!node) problems.push("no current node");
  else {
    if (!inside(box(node.getBoundingClientRect()), view)) problems.push("node outside the window");
    height = Math.min(...[...node.querySelectorAll("text")].map((t) => t.getBoundingClientRect().height));
    if (height < 11) problems.push(`label ${height.toFixed(1)} px high`);
  }
  const arrows = [...document.querySelectorAll("#canvas .shown g.edge.carrying")];
  if ((page.view === "forward" || DATA.steps[k - 1].inputs.length) && !arrows.length) problems.push("no arrows");
  for (const a of arrows) {
    if (!meets(box(a.querySelector("path").getBoundingClientRect()), view)) problems.push("an arrow out of the window");
  }
  const texts = [];
  for (const t of svg.querySelectorAll("text")) {
    if (getComputedStyle(t).visibility === "hidden" || !t.textContent.trim()) continue;
    const r = box(t.getBoundingClientRect());
    if (!meets(r, view)) continue;
    if (!inside(r, frame)) problems.push(`clipped: ${t.textContent}`);
    texts.push([shrunk(r), t.parentNode, t.textContent]);
  }
  for (let i = 0; i < texts.length; i++) {
    for (let j = i + 1; j < texts.length; j++) {
      if (texts[i][1] !== texts[j][1] && meets(texts[i][0], texts[j][0])) {
        problems.push(`overlap: ${texts[i][2]} / ${texts[j][2]}`);
      }
    }
  }
  report.push([k, height, problems]);
}
return report;"""


@pytest.mark.requires("chromium", "dot")
def test_every_step_of_the_depth_2_model_is_in_view_and_legible(browser, tmp_path):
    """At 1280×800 (the browser fixture's window), for every backward step of the tiny
    Transformer's depth-2 page: the running op is inside the window with its label at
    least 11 px high, its arrows are in view, and no label in view is clipped or overlaps
    another.  (The page before the stepper followed the step failed this at all 136
    steps: 5.5 px labels, no arrow lit at 105, overlapping labels at 6, clipped at 9.)"""
    loss = tiny_transformer_loss()
    t = traced(loss)
    open_page(browser, to_html(loss, trace=t, depth=2), tmp_path / "model.html")
    report = browser.execute_script(CHECK_EVERY_STEP, 1, len(t.steps))
    assert len(report) == len(t.steps) == 136
    assert [(k, problems) for k, _, problems in report if problems] == []
    # Every step is the trace's, to the last one.
    _, op, grad, sends, _, _ = current(browser)
    assert op == t.steps[-1].op and grad == t.steps[-1].grad_norm
    assert sends[0] == t.steps[-1].input_grad_norms[0][1]
    # Stepping back to the start hides every gradient label again.
    browser.execute_script("setStep(0)")
    assert labelled_arrows(browser) == []
    # The forward view's steps, the ops in recording order, are as legible.
    browser.execute_script("setView('forward')")
    report = browser.execute_script(CHECK_EVERY_STEP, 1, browser.execute_script("return DATA.forward.length"))
    assert len(report) == 136 and [(k, problems) for k, _, problems in report if problems] == []
    browser.execute_script("setView('backward')")
    # The find box jumps to the first step that runs in a scope.
    for name in ("decoder.layers.1.cross_attn", "encoder.layers.0.ffn", "src_embed.tokens.weight"):
        find = browser.find_element("id", "find")
        find.clear()
        find.send_keys(name + "\n")
        first = next(s for s in t.steps if name in scope_path(s.scope) or any(
            s.node.inputs[i].name == name for i, _ in s.input_grad_norms))
        assert browser.execute_script("return page.step") == first.number, name
        assert current(browser)[0] is not None
    no_console_errors(browser)


@pytest.mark.requires("chromium", "dot")
def test_play_runs_at_the_chosen_speed(browser, tmp_path):
    from selenium.webdriver.support.ui import Select, WebDriverWait

    o = neuron()
    open_page(browser, to_html(o, trace=traced(o)), tmp_path / "neuron.html")
    Select(browser.find_element("id", "speed")).select_by_visible_text("slow")  # 1.5 s a step
    browser.find_element("id", "play").click()
    time.sleep(0.5)
    assert browser.execute_script("return page.step") == 1
    browser.find_element("id", "play").click()  # pause
    Select(browser.find_element("id", "speed")).select_by_visible_text("very fast")
    browser.find_element("id", "play").click()
    WebDriverWait(browser, 10).until(lambda b: b.execute_script("return page.step") == 4)
    assert browser.find_element("id", "play").text == "play"  # it stops at the end
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
    assert browser.execute_script("return document.querySelectorAll('#canvas .shown g.node.current').length") == 1
    no_console_errors(browser)


# The README's pictures: each committed page opened at 1280×800 and stepped by the page
# itself (setStep, as → does) to the step the README describes.  With UPDATE_PICTURES=1
# the test saves them into docs/img before it checks them.  They were taken with Debian's
# Chromium 156: another version may draw text a pixel apart, so only that one compares pixels.
DOCS = Path(__file__).resolve().parents[1] / "docs"
PICTURES = {"neuron.html": ("graph_page_neuron.png", None), "model_depth2.html": ("graph_page.png", "decoder.layers.1")}
PICTURES_CHROMIUM = "156"


@pytest.mark.requires("chromium")
@pytest.mark.parametrize("name", sorted(PICTURES))
def test_the_readme_pictures_are_what_the_committed_pages_show(browser, name, tmp_path):
    picture, box = PICTURES[name]
    browser.get((DOCS / name).as_uri())
    # The first step in the box that sends a tensor its second gradient; without a box, step 1.
    number = browser.execute_script("""
        const step = DATA.steps.find((s) => arguments[0] && s.scope.includes(arguments[0]) &&
                                            s.inputs.some((i) => i.count >= 2)) || DATA.steps[0];
        setStep(step.number);
        return step.number;""", box)
    _, op, _, _, labels, _ = current(browser)
    if box is None:  # "The neuron at step 1"
        assert number == 1 and op == "tanh"
    else:  # "The Transformer at step 11: ... |g| = 0.0992 ... add up to |Σ| = 0.186, which arrives at
        # the layer_norm VJP in step 12"
        following = browser.execute_script("return DATA.steps[arguments[0]]", number)
        assert number == 11 and any("0.0992" in text and "Σ of 2: 0.186" in text for text in labels)
        assert following["op"] == "layer_norm" and round(following["grad_norm"], 3) == 0.186
    if os.environ.get("UPDATE_PICTURES"):
        browser.save_screenshot(str(DOCS / "img" / picture))
    if browser.capabilities["browserVersion"].split(".")[0] != PICTURES_CHROMIUM:
        return
    browser.save_screenshot(str(tmp_path / picture))
    shown, committed = matplotlib.image.imread(tmp_path / picture), matplotlib.image.imread(DOCS / "img" / picture)
    differ = np.mean(np.any(shown != committed, axis=-1)) if shown.shape == committed.shape else 1.0
    assert differ <= 0.005, (f"docs/img/{picture} is not what docs/{name} shows ({differ:.1%} of its pixels differ); "
                             "UPDATE_PICTURES=1 python -m pytest tests/test_html_page.py -k readme_pictures saves it")

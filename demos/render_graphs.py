"""Render computation graphs into SVG files, and print how big they are.

    python demos/render_graphs.py                   # everything, into demos/out/
    python demos/render_graphs.py --only neuron --out docs/img   # the README picture
    python demos/render_graphs.py --html --out docs # interactive pages (minigrad.html)
    python demos/render_graphs.py --html --measure  # ... and time them in headless Chromium

Each demo is a function ``(out_dir) -> None`` listed in DEMOS: the neuron, softmax fused
against composed, one attention head, and the whole (tiny, untrained) Transformer with its
loss at depth 1 and 2.  With ``--html`` the HTML_DEMOS run instead: the neuron and the
tiny Transformer at depth 2 as pages that step through backward; ``--measure`` opens each
page in headless Chromium (selenium, Debian's chromium and chromedriver) and prints its
size, its load-to-interactive time and how long each backward step takes, from the →
key press to the screen (the steps that open or close a box among them).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import minigrad as mg  # noqa: E402
from minigrad import ops, reference  # noqa: E402
from minigrad.html import to_html  # noqa: E402
from minigrad.tracing import trace  # noqa: E402
from minigrad.viz import render, to_dot  # noqa: E402


def count_nodes(dot) -> dict:
    """Ops, tensors and edges in a Digraph, from the ids to_dot gives them."""
    lines = [line.strip() for line in dot.source.splitlines()]
    return {
        "ops": sum(line.startswith("op") and " [" in line and "->" not in line for line in lines),
        "tensors": sum(line[:1] == "t" and line[1:2].isdigit() and "->" not in line for line in lines),
        "edges": sum("->" in line for line in lines),
    }


def neuron() -> mg.Tensor:
    """micrograd's neuron, o = tanh(w·x + b), with tensors instead of scalars."""
    x = mg.tensor([2.0, 0.0], name="x")
    w = mg.tensor([-3.0, 1.0], requires_grad=True, name="w")
    b = mg.tensor(6.8813735870195432, requires_grad=True, name="b")
    with mg.name_scope("neuron"):
        o = ((x * w).sum() + b).tanh()
    o.name = "o"
    return o


def demo_neuron(out: Path):
    """The forward graph of one neuron with values, gradients and backward step numbers."""
    o = neuron()
    with trace() as steps:
        o.backward(retain_graph=True)
    print(steps)
    path = render(o, out / "neuron.svg", show_data=True, show_grad=True, trace=steps,
                  title="o = tanh(w·x + b)")
    print(f"neuron: {count_nodes(to_dot(o))} -> {path}")


def demo_neuron_backward(out: Path):
    """The same neuron, drawn as its backward pass: one VJP node per op."""
    o = neuron()
    with trace() as steps:
        o.backward(retain_graph=True)
    path = render(o, out / "neuron_backward.svg", backward=True, show_grad=True, trace=steps)
    print(f"neuron, backward view: {count_nodes(to_dot(o, backward=True))} -> {path}")


def demo_softmax(out: Path):
    """Backward graphs of softmax: one fused op (ops.softmax) against the composed
    version built from exp, max, sum and div (minigrad.reference.softmax)."""
    rng = np.random.default_rng(0)
    cotangent = mg.tensor(rng.standard_normal((2, 5)).astype(np.float32), name="cotangent")
    for label, softmax in (("fused", ops.softmax), ("composed", reference.softmax)):
        x = mg.tensor(rng.standard_normal((2, 5)).astype(np.float32), requires_grad=True, name="x")
        with mg.name_scope(f"{label} softmax"):
            y = softmax(x, -1)
        loss = (y * cotangent).sum()
        loss.name = "loss"
        with trace() as steps:
            loss.backward(retain_graph=True)
        path = render(loss, out / f"softmax_{label}_backward.svg", backward=True, trace=steps,
                      title=f"backward of softmax, {label}")
        print(f"softmax {label}: {count_nodes(to_dot(y))['ops']} op(s) alone; with the loss's mul and sum, "
              f"forward {count_nodes(to_dot(loss))}, backward "
              f"{count_nodes(to_dot(loss, backward=True))}, {len(steps)} VJP steps -> {path}")


def demo_attention_head(out: Path):
    """One head of self-attention over 4 positions of width 8: the projections, the
    scaled scores, the masked softmax and the weighted sum of the values."""
    from transformer.attention import MultiHeadAttention, causal_mask

    rng = np.random.default_rng(0)
    attention = MultiHeadAttention(d_model=8, n_heads=1, rng=rng)
    x = mg.tensor(rng.standard_normal((1, 4, 8)).astype(np.float32), name="x")
    y = attention(x, x, x, causal_mask(4))
    y.name = "y"
    path = render(y, out / "attention_head.svg", title="one attention head (causal mask)")
    print(f"attention head: {count_nodes(to_dot(y))} -> {path}")


def tiny_transformer_loss() -> mg.Tensor:
    """The tiny (untrained) Transformer's label-smoothed loss on a batch of 2 dates."""
    from transformer.inspection import model_loss
    from transformer.model import Transformer, TransformerConfig
    from transformer.tasks import tokenizer_for

    tokenizer = tokenizer_for("dates")
    model = Transformer(TransformerConfig.tiny(tokenizer.vocab_size, tokenizer.vocab_size))
    return model_loss(model, tokenizer, "dates")


def demo_model(out: Path):
    """The tiny Transformer's forward pass and loss on a batch of 2 dates, collapsed to
    depth 1 (encoder, decoder, embeddings as boxes) and depth 2 (layers as boxes, folded)."""
    loss = tiny_transformer_loss()
    print(f"model: {count_nodes(to_dot(loss))} in full")
    for depth in (1, 2):
        path = render(loss, out / f"model_depth{depth}.svg", depth=depth, fold_repeats=True,
                      title=f"Transformer forward + loss, depth {depth}")
        print(f"model at depth {depth}: {count_nodes(to_dot(loss, depth=depth, fold_repeats=True))} -> {path}")


DEMOS = {
    "neuron": demo_neuron,
    "neuron_backward": demo_neuron_backward,
    "softmax": demo_softmax,
    "attention_head": demo_attention_head,
    "model": demo_model,
}


def traced(loss):
    """Run backward on ``loss`` inside a trace, keeping the graph to draw it."""
    with trace() as steps:
        loss.backward(retain_graph=True)
    return steps


def html_neuron(out: Path) -> Path:
    """The neuron's page: four backward steps, values and gradients in full."""
    o = neuron()
    path = to_html(o, trace=traced(o), title="o = tanh(w·x + b)").save(out / "neuron.html")
    print(f"neuron page: {path.stat().st_size / 1e3:.0f} kB -> {path}")
    return path


def html_model(out: Path) -> Path:
    """The tiny Transformer's forward pass and loss at depth 2 (layers as boxes that open)."""
    loss = tiny_transformer_loss()
    path = to_html(loss, trace=traced(loss), depth=2,
                   title="tiny Transformer forward + loss, depth 2").save(out / "model_depth2.html")
    print(f"model page at depth 2: {path.stat().st_size / 1e6:.2f} MB -> {path}")
    return path


HTML_DEMOS = {"neuron": html_neuron, "model": html_model}

CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")


def headless_chromium(profile_dir, chromium="/usr/bin/chromium", chromedriver="/usr/bin/chromedriver",
                      size=(1400, 900)):
    """A selenium driver for Debian's headless Chromium, keeping the browser console's
    log.  The driver's path is given, so selenium never downloads one."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS + (f"--user-data-dir={profile_dir}", f"--window-size={size[0]},{size[1]}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(chromedriver), options=options)


def measure_page(driver, path: Path) -> dict:
    """Open the page from file:// and time it as a learner meets it, with the Performance
    API: load to interactive (the page's "graph-interactive" mark), then every backward
    step from the first to the last, each a real → key press, timed from the key press
    to the next frame on screen (the Event Timing API's duration: the script, style,
    layout, paint, raster and compositing, in 8 ms steps; a step under 16 ms reports
    none, and counts as 16).  Once straight after loading ("cold": the other states
    are still being parsed while idle), once after every state is parsed ("warm")."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    def step_through():
        driver.execute_script("""
            if (!window.timing) {
              // Before the page's own handler: when the key went down, and the box open then.
              window.addEventListener("keydown", (e) => timing.presses.push([e.timeStamp, page.state]), true);
              new PerformanceObserver((list) => timing.events.push(...list.getEntries()
                .filter((e) => e.name === "keydown").map((e) => [e.startTime, e.duration])))
                .observe({ type: "event", durationThreshold: 16 });
            }
            window.timing = { presses: [], events: [] };
            setStep(0);""")
        for _ in range(driver.execute_script("return DATA.steps.length")):
            ActionChains(driver).send_keys(Keys.ARROW_RIGHT).perform()
            # Wait until the step is on screen: the frame after the next has been drawn.
            driver.execute_async_script("""const done = arguments[0];
                requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(done)));""")
        # The observer hears of the last frames a little later.
        presses, events, step, state = driver.execute_async_script("""const done = arguments[0];
            setTimeout(() => done([timing.presses, timing.events, page.step, page.state]), 500);""")
        assert step == len(presses), f"{len(presses)} key presses reached step {step}"
        took = dict(events)
        times = [took.get(t, 16) for t, _ in presses]
        after = [before for _, before in presses[1:]] + [state]  # the box open once each step ran
        boxes = [t for t, (_, before), now in zip(times, presses, after) if before != now]
        return {"median": sorted(times)[len(times) // 2], "max": max(times), "over_50": sum(t > 50 for t in times),
                "steps": len(times), "box_steps": len(boxes), "box_max": max(boxes, default=None)}

    driver.get(path.resolve().as_uri())
    interactive = driver.execute_script('return performance.getEntriesByName("graph-interactive")[0].startTime')
    cold = step_through()
    parsed = driver.execute_async_script("""const done = arguments[0];
        const wait = () => { const mark = performance.getEntriesByName("graph-parsed")[0];
                             mark ? done(mark.startTime) : setTimeout(wait, 50); };
        wait();""")
    return {"interactive_ms": interactive, "parsed_ms": parsed, "cold": cold, "warm": step_through()}


def measure(paths, runs=1):
    import tempfile

    with tempfile.TemporaryDirectory() as profile:
        driver = headless_chromium(profile, size=(1280, 800))
        driver.set_script_timeout(120)
        try:
            for path in paths:
                for _ in range(runs):
                    f = measure_page(driver, path)
                    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
                    steps = "; ".join(
                        f"{name}: a step from its key press to the screen median {f[name]['median']:.0f} ms, "
                        f"at most {f[name]['max']:.0f} ms, over 50 ms: {f[name]['over_50']} of {f[name]['steps']}"
                        + (f" (the {f[name]['box_steps']} steps that open or close a box: at most "
                           f"{f[name]['box_max']:.0f} ms)" if f[name]["box_steps"] else "")
                        for name in ("cold", "warm"))
                    print(f"{path.name}: {path.stat().st_size / 1e6:.2f} MB; interactive {f['interactive_ms']:.0f} ms, "
                          f"every state parsed {f['parsed_ms']:.0f} ms after navigation; "
                          f"{steps}; console errors: {len(errors)}")
        finally:
            driver.quit()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out",
                        help="folder for the SVG files (default: demos/out/)")
    parser.add_argument("--only", choices=sorted(DEMOS), action="append",
                        help="run only this demo (repeatable)")
    parser.add_argument("--html", action="store_true",
                        help="write the interactive pages (neuron, model at depth 2) instead of the SVGs")
    parser.add_argument("--measure", action="store_true",
                        help="with --html: time the pages in headless Chromium (needs selenium, chromium)")
    parser.add_argument("--runs", type=int, default=1, help="with --measure: load and step each page this many times")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    demos = HTML_DEMOS if args.html else DEMOS
    paths = [demos[name](args.out) for name in args.only or demos if name in demos]
    if args.measure:
        measure([p for p in paths if p is not None], args.runs)


if __name__ == "__main__":
    main()

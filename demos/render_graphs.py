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
size, its load-to-interactive time and how long one backward step and opening a box take.
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
    """Open the page from file:// and time it with the Performance API: load to
    interactive (the page's "graph-interactive" mark) and to every box's SVG parsed (the
    "graph-parsed" mark, done while idle), then every backward step from the first to the
    last, one per animation frame (each highlights, opens or closes a box when the step
    enters or leaves one, and pans and zooms): the script's time per step, and the
    frames that took longer than 50 ms with style, layout and paint (Chromium's
    long-animation-frame entries), with the most work one of them held.  Once straight
    after loading ("cold": a box's SVG is parsed when first needed), once after the idle
    parse ("warm")."""
    driver.get(path.resolve().as_uri())
    return driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const interactive = performance.getEntriesByName("graph-interactive")[0].startTime;
        const run = (finish) => {
          const times = [], opening = [], long = [];
          // A long frame's work: its scripts, then style, layout and paint (from renderStart);
          // the rest of its duration the renderer waited (for a CPU, on a busy machine).
          // (Scripts that ran from renderStart on, the animation-frame callbacks, are in the latter.)
          const work = (e) => {
            const render = e.renderStart || e.startTime + e.duration;
            return e.scripts.filter((s) => s.startTime < render).reduce((sum, s) => sum + s.duration, 0) +
                   (e.startTime + e.duration - render);
          };
          const observer = new PerformanceObserver((list) => long.push(...list.getEntries().map((e) => [e.duration,
                                                                                                      work(e)])));
          observer.observe({ type: "long-animation-frame" });
          let k = 1;
          const tick = () => {
            if (k > DATA.steps.length) {
              return setTimeout(() => {
                observer.disconnect();
                setStep(0);
                times.sort((a, b) => a - b);
                finish({ median: times[times.length >> 1], max: times[times.length - 1],
                         box: opening.length ? Math.max(...opening) : null, boxes: opening.length,
                         long: long.length, longest: long.length ? Math.max(...long.map(([d]) => d)) : null,
                         work: long.length ? Math.max(...long.map(([, w]) => w)) : null });
              }, 300);
            }
            const state = page.state, t = performance.now();
            setStep(k++);
            const ms = performance.now() - t;
            times.push(ms);
            if (page.state !== state) opening.push(ms);
            requestAnimationFrame(tick);
          };
          requestAnimationFrame(tick);
        };
        run((cold) => {
          const parsed = () => performance.getEntriesByName("graph-parsed")[0];
          const wait = () => parsed() ? run((warm) => done({ interactive_ms: interactive,
                                                               parsed_ms: parsed().startTime, cold, warm }))
                                      : setTimeout(wait, 100);
          wait();
        });""")


def screenshot(driver, page: Path, png: Path, box="decoder.layers.1"):
    """The page as it shows itself, untouched, at 1280×800: opened and stepped (with
    setStep, as → does) to the first step inside ``box`` that sends a tensor its second
    gradient (for a page without boxes, the first step); the page opens the box and pans
    and zooms by itself.  Returns the step shown."""
    driver.get(page.resolve().as_uri())
    number = driver.execute_script("""
        const inside = DATA.steps.filter((s) => s.scope.includes(arguments[0]));
        const step = inside.find((s) => s.inputs.some((i) => i.count >= 2)) || DATA.steps[0];
        setStep(step.number);
        return step.number;""", box)
    driver.save_screenshot(str(png))
    print(f"screenshot of {page.name} at step {number} -> {png}")
    return number


def measure(paths, png=None, runs=1):
    import tempfile

    with tempfile.TemporaryDirectory() as profile:
        driver = headless_chromium(profile, size=(1280, 800))
        driver.set_script_timeout(120)
        try:
            if png is not None:  # the model's page, and the neuron's beside it
                for path in paths:
                    name = png if path.name.startswith("model") else png.with_name(f"{png.stem}_{path.stem}.png")
                    screenshot(driver, path, name)
            for path in paths:
                for _ in range(runs):
                    f = measure_page(driver, path)
                    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
                    steps = "; ".join(
                        f"{name} steps: script median {f[name]['median']:.1f} ms, max {f[name]['max']:.1f} ms"
                        + (f" (opening or closing a box, {f[name]['boxes']} steps: max {f[name]['box']:.1f} ms)"
                           if f[name]["box"] is not None else "")
                        + f", frames over 50 ms: {f[name]['long']}"
                        + (f" (longest {f[name]['longest']:.0f} ms; the most work in one of them, script, style, "
                           f"layout and paint: {f[name]['work']:.0f} ms)" if f[name]["longest"] else "")
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
    parser.add_argument("--screenshot", type=Path, metavar="PNG",
                        help="with --html --measure: also save pictures of the pages mid-backward "
                             "(the model's as PNG, the neuron's beside it)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    demos = HTML_DEMOS if args.html else DEMOS
    paths = [demos[name](args.out) for name in args.only or demos if name in demos]
    if args.measure:
        measure([p for p in paths if p is not None], args.screenshot, args.runs)


if __name__ == "__main__":
    main()

"""Tables and pass/fail targets from the benchmark results (no measuring here).

Ratios are minigrad / PyTorch: below 1 means minigrad is faster (or smaller).
"""

from __future__ import annotations

# The speed targets: minigrad's step time at most this many times PyTorch's, and the add overhead in µs.
STEP_RATIO_1_THREAD = {"tiny": 1.2, "small": 1.3, "base": 1.3}
STEP_RATIO_2_THREADS = 1.5
ADD_64X64_US = 8.0


def _ratio(a, b):
    return a / b if a is not None and b else None


def _fmt(x, spec=".2f", missing="—"):
    return missing if x is None else format(x, spec)


def _table(header, rows):
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(h).rjust(w) for h, w in zip(header, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).rjust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)


def machine_header(m, notes):
    blas = ", ".join(f"{b.get('internal_api')} {b.get('version')} ({b.get('architecture')})"
                     for b in m["blas"] if "internal_api" in b) or str(m["blas"])
    lines = [f"CPU: {m['cpu_model']}, {m['logical_cores']} logical cores ({m['usable_cores']} usable)",
             f"Python {m['python']}, numpy {m['numpy']}, torch {m['torch'] or 'not installed'}",
             f"thread pools seen by threadpoolctl: {blas}", f"load average: {m['load_average_at_start']}"]
    lines += [f"note: {n}" for n in notes]
    return "\n".join(lines)


def ops_table(ops):
    if "error" in ops:
        return f"ops benchmark failed: {ops['error']}"
    rows = []
    for r in ops["rows"]:
        t = r.get("torch_us", {}).get("median")
        m = r["minigrad_us"]
        rows.append([r["op"], r["size"], _fmt(r["numpy_us"]["median"], ".1f"),
                     f"{m['median']:.1f} ±{m['iqr']:.1f}", _fmt(t, ".1f"),
                     _fmt(_ratio(m["median"], r["numpy_us"]["median"]), ".1f"), _fmt(_ratio(m["median"], t))])
    return ("forward+backward, µs per call (median ±IQR)\n"
            + _table(["op", "size", "numpy", "minigrad", "torch", "mg/numpy", "mg/torch"], rows))


def kernels_table(kernels):
    out = []
    for threads, res in kernels.items():
        if "error" in res:
            out.append(f"kernels ({threads} thread(s)) failed: {res['error']}")
            continue
        rows = []
        for r in res["rows"]:
            m, t = r["minigrad_ms"], r.get("torch_ms", {}).get("median")
            shape = " @ ".join("x".join(map(str, s)) for s in r["shapes"])
            rows.append([r["kernel"], r["config"], shape, f"{m['median']:.3f} ±{m['iqr']:.3f}",
                         _fmt(t, ".3f"), _fmt(_ratio(m["median"], t))])
        out.append(f"forward+backward, ms per call, {threads} thread(s)\n"
                   + _table(["kernel", "config", "shape", "minigrad", "torch", "mg/torch"], rows))
    return "\n\n".join(out)


def train_progress(r):
    if "error" in r:
        return f"{r['framework']:8s} {r['config']:5s} {r['threads']}t  FAILED: {r['error'][-300:]}"
    s = r["step_s"]
    return (f"{r['framework']:8s} {r['config']:5s} {r['threads']}t  {s['median'] * 1e3:8.1f} ms "
            f"(IQR {s['iqr'] * 1e3:.1f}, n={s['n']})  {r['gflops_per_s']:6.1f} GFLOP/s  "
            f"peak RSS {r['peak_rss_mb']:.0f} MB")


def _pairs(train):
    """{(config, threads): {framework: run}} for the successful runs."""
    pairs = {}
    for r in train["runs"]:
        if "error" not in r:
            pairs.setdefault((r["config"], r["threads"]), {})[r["framework"]] = r
    return pairs


def twin_table(checks):
    if not checks:
        return ""
    rows = [[name, _fmt(c.get("loss_minigrad"), ".6f"), _fmt(c.get("loss_torch"), ".6f"),
             _fmt(c.get("loss_abs_diff"), ".1e"), _fmt(c.get("max_rel_grad_diff"), ".1e"),
             c.get("worst_parameter", c.get("error", ""))] for name, c in checks.items()]
    return ("twin check (same weights in both): loss and gradients agree?\n"
            + _table(["config", "loss mg", "loss torch", "|Δloss|", "max rel Δgrad", "worst parameter"], rows))


def train_table(train):
    rows = []
    for (config, threads), runs in _pairs(train).items():
        m, t = runs.get("minigrad"), runs.get("torch")

        def cell(r, key, scale=1.0, spec=".1f"):
            return _fmt(r[key] * scale if r else None, spec)

        def step(r):
            return f"{r['step_s']['median'] * 1e3:.1f} ±{r['step_s']['iqr'] * 1e3:.1f}" if r else "—"

        rows.append([config, threads, step(m), step(t),
                     _fmt(_ratio(m and m["step_s"]["median"], t and t["step_s"]["median"])),
                     cell(m, "tokens_per_s", spec=".0f"), cell(t, "tokens_per_s", spec=".0f"),
                     cell(m, "gflops_per_s"), cell(t, "gflops_per_s"),
                     cell(m, "peak_rss_mb", spec=".0f"), cell(t, "peak_rss_mb", spec=".0f"),
                     _fmt(_ratio(m and m["peak_rss_mb"], t and t["peak_rss_mb"])),
                     _fmt(m and m["peak_rss_mb"] - m["rss_after_imports_mb"], ".0f"),
                     _fmt(t and t["peak_rss_mb"] - t["rss_after_imports_mb"], ".0f"),
                     "/".join(_fmt(r and r.get("load_average_1min", [None])[0], ".1f") for r in (m, t))])
    header = ["config", "thr", "mg ms", "torch ms", "time mg/pt", "mg tok/s", "pt tok/s",
              "mg GF/s", "pt GF/s", "mg RSS MB", "pt RSS MB", "RSS mg/pt", "mg ΔRSS", "pt ΔRSS", "load mg/pt"]
    return ("training step (zero_grad+forward+loss+backward+Adam), median ±IQR; tokens = src+tgt positions;\n"
            "GFLOP/s = analytic matmul FLOPs (benchmarks/configs.py) / median step time;\n"
            "RSS = peak VmHWM of the run's own process; ΔRSS = peak minus RSS right after importing the framework;\n"
            "load = 1-minute load average when the run started (above cores - threads, other processes compete)\n"
            + _table(header, rows))


def _g2p_by_threads(g2p):
    """[(threads, minigrad run or None, torch run or None)] in order of threads."""
    by = {(r["threads"], r["framework"]): r for r in (g2p or {}).get("runs", [])}
    return [(t, by.get((t, "minigrad")), by.get((t, "torch"))) for t in sorted({t for t, _ in by})]


def g2p_table(g2p):
    rows = []
    for threads, m, t in _g2p_by_threads(g2p):
        rows.append([threads, _fmt(m and m["ms_per_step"], ".0f"), _fmt(t and t["ms_per_step"], ".0f"),
                     _fmt(_ratio(m and m["ms_per_step"], t and t["ms_per_step"])),
                     _fmt(m and m["target_tokens_per_s"], ".0f"), _fmt(t and t["target_tokens_per_s"], ".0f"),
                     _fmt(m and m["words_per_s"], ".0f"), _fmt(t and t["words_per_s"], ".0f"),
                     _fmt(_ratio(t and t["words_per_s"], m and m["words_per_s"])),
                     "/".join(_fmt(r and r["load_average_1min"][0], ".1f") for r in (m, t))])
    header = ["thr", "mg ms/step", "pt ms/step", "time mg/pt", "mg tgt tok/s", "pt tgt tok/s",
              "mg words/s", "pt words/s", "decode time mg/pt", "load mg/pt"]
    return ("CMUdict, the 'small' model of train --data cmudict: a full training step (with clipping) on real\n"
            "batches, target tokens (EOS included, PAD not) per second; greedy decoding of test words in\n"
            "batches of 200 (ours with its KV cache, torch.nn's decoder re-run on the prefix)\n"
            + _table(header, rows))


def targets(results, with_torch):
    """[(target, measured, passed or None when it could not be measured)]."""
    out = []
    train = results.get("train")
    if train:
        pairs = _pairs(train)
        for (config, threads), runs in sorted(pairs.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            m, t = runs.get("minigrad"), runs.get("torch")
            limit = STEP_RATIO_1_THREAD.get(config) if threads == 1 else STEP_RATIO_2_THREADS
            if limit is not None:
                ratio = _ratio(m and m["step_s"]["median"], t and t["step_s"]["median"])
                out.append((f"step time mg/torch {config} {threads}t <= {limit}", _fmt(ratio),
                            None if ratio is None else ratio <= limit))
            rss = _ratio(m and m["peak_rss_mb"], t and t["peak_rss_mb"])
            out.append((f"peak RSS mg < torch {config} {threads}t",
                        f"{_fmt(m and m['peak_rss_mb'], '.0f')} vs {_fmt(t and t['peak_rss_mb'], '.0f')} MB",
                        None if rss is None else rss < 1))
        minigrad_runs = [r for r in train["runs"] if r.get("framework") == "minigrad"]
        ok = bool(minigrad_runs) and all(r.get("float32_checked") for r in minigrad_runs)
        out.append(("float32 end to end (loss and all grads)", f"{len(minigrad_runs)} runs checked", ok))
    for threads, m, t in _g2p_by_threads(results.get("g2p")):
        if not (m and t):
            continue
        step = _ratio(m["ms_per_step"], t["ms_per_step"])
        out.append((f"CMUdict training step mg/torch {threads}t <= 1.0", _fmt(step), step <= 1.0))
        decode = _ratio(t["words_per_s"], m["words_per_s"])
        out.append((f"CMUdict greedy decoding time mg/torch {threads}t <= 1.0", _fmt(decode), decode <= 1.0))
    ops = results.get("ops")
    if ops and "rows" in ops:
        add = next(r for r in ops["rows"] if r["op"] == "add" and r["size"] == "64x64")
        us = add["minigrad_us"]["median"]
        out.append((f"64x64 add forward+backward < {ADD_64X64_US:g} µs", f"{us:.1f} µs", us < ADD_64X64_US))
    return out


def targets_table(rows):
    if not rows:
        return ""
    label = {True: "PASS", False: "FAIL", None: "n/a"}
    return "\nspeed targets\n" + _table(["target", "measured", "result"],
                                  [[t, m, label[p]] for t, m, p in rows])

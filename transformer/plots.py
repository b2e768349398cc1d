"""Pictures of a run: learning curves and attention heatmaps (matplotlib, no display).

Figures are made with matplotlib's Figure class rather than pyplot, so they draw straight
into files: this works on a server without a screen, and importing it leaves pyplot's
backend alone (in Jupyter, inline figures keep working).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure


def plot_training(records: list[dict], path, title: str = "") -> Path:
    """Loss (left) and accuracies (right) against the step, from metrics.jsonl records.

    Records have "split" ("train", "valid" or "test"), "step", "loss", "token_accuracy"
    and, for the held-out splits of a task, "exact_match" (a run on real data scores its
    held-out splits by error rates instead: see ``plot_learning_curve``).
    """
    fig = Figure(figsize=(9, 3.4))
    loss_ax, acc_ax = fig.subplots(1, 2)
    style = {"train": dict(color="tab:blue", alpha=0.6), "valid": dict(color="tab:orange", marker="o", ms=3)}
    for split, kw in style.items():
        rows = [r for r in records if r["split"] == split]
        if not rows:
            continue
        steps = [r["step"] for r in rows]
        loss_ax.plot(steps, [r["loss"] for r in rows], label=f"{split} loss", **kw)
        acc_ax.plot(steps, [r["token_accuracy"] for r in rows], label=f"{split} token accuracy",
                    linestyle=":" if split == "valid" else "-", **kw)
        if split == "valid" and all("exact_match" in r for r in rows):
            acc_ax.plot(steps, [r["exact_match"] for r in rows], label="valid exact match (greedy)",
                        color="tab:green", marker="o", ms=3)
    for test in (r for r in records if r["split"] == "test" and "exact_match" in r):
        acc_ax.scatter([test["step"]], [test["exact_match"]], color="black", zorder=3,
                       label=f"test exact match {test['exact_match']:.1%}")
    loss_ax.set(xlabel="step", ylabel="cross-entropy (label-smoothed)", yscale="log", title="loss")
    acc_ax.set(xlabel="step", ylabel="accuracy", ylim=(0, 1.02), title="accuracy")
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, path, title, dpi=90)


def plot_learning_curve(records: list[dict], path, error_name: str = "token error rate", title: str = "") -> Path:
    """Validation word error rate and token error rate (named ``error_name``, e.g.
    "phoneme error rate") against minutes of training, from the "valid" records of
    metrics.jsonl ("minutes", "word_error_rate", "token_error_rate"); the test scores,
    if there are any, as points at the end."""
    fig = Figure(figsize=(6, 3.6))
    ax = fig.subplots()
    valid = [r for r in records if r["split"] == "valid"]
    minutes = [r["minutes"] for r in valid]
    ax.plot(minutes, [100 * r["word_error_rate"] for r in valid], marker="o", ms=3, color="tab:red",
            label="valid word error rate")
    ax.plot(minutes, [100 * r["token_error_rate"] for r in valid], marker="o", ms=3, color="tab:blue",
            label=f"valid {error_name}")
    for test in (r for r in records if r["split"] == "test" and "word_error_rate" in r):
        ax.scatter([test["minutes"]] * 2, [100 * test["word_error_rate"], 100 * test["token_error_rate"]],
                   color="black", zorder=3, label=f"test: {test['word_error_rate']:.1%} word, "
                                                  f"{test['token_error_rate']:.1%} {error_name.split()[0]}")
    ax.set(xlabel="minutes of training", ylabel="error rate (%)", ylim=(0, 100), title="learning curve")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path, title, dpi=90)


@dataclass
class AttentionMap:
    """The weights of one attention block for one example, with the tokens on its axes."""

    name: str               # e.g. "decoder.layers.0.cross_attn"
    weights: np.ndarray     # (H, Tq, Tk), rows sum to 1
    query_tokens: list[str]  # Tq labels (rows)
    key_tokens: list[str]    # Tk labels (columns)


def plot_attention(maps: list[AttentionMap], path, title: str = "") -> Path:
    """One heatmap per block (rows of the figure) and head (columns)."""
    n_heads = max(m.weights.shape[0] for m in maps)
    cell = 0.16  # inches per token
    width = max(max(len(m.key_tokens) for m in maps) * cell + 0.9, 1.8)
    height = max(max(len(m.query_tokens) for m in maps) * cell + 0.9, 1.8)
    fig = Figure(figsize=(width * n_heads, height * len(maps)))
    axes = fig.subplots(len(maps), n_heads, squeeze=False)
    for row, m in enumerate(maps):
        for head in range(n_heads):
            ax = axes[row, head]
            if head >= m.weights.shape[0]:
                ax.axis("off")
                continue
            ax.imshow(m.weights[head], cmap="viridis", vmin=0, vmax=1, aspect="auto")
            ax.set_xticks(range(len(m.key_tokens)), m.key_tokens, fontsize=7, rotation=90)
            ax.set_yticks(range(len(m.query_tokens)), m.query_tokens, fontsize=7)
            ax.set_title(f"{m.name} head {head}", fontsize=8)
    return _save(fig, path, title, dpi=80)


def _save(fig, path, title, dpi) -> Path:
    """Title, lay out and write a figure (a Figure not made by pyplot needs no closing)."""
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    return Path(path)

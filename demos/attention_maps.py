"""Attention maps of a trained model: which source characters each output looks at.

    python demos/attention_maps.py                 # trains `reverse` first if needed
    python demos/attention_maps.py --checkpoint runs/dates/checkpoint.npz --text "26 Nov 2026"

With the reverse task the cross-attention of a trained model is an anti-diagonal: the
first output character reads the last source character, and so on.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from transformer.checkpoints import load_trained  # noqa: E402
from transformer.inspection import attention_maps  # noqa: E402
from transformer.plots import plot_attention  # noqa: E402
from transformer.train import TrainConfig, train  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, help="default: train reverse into demos/out/runs/reverse")
    parser.add_argument("--text", default="0123456789")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    checkpoint = args.checkpoint
    if checkpoint is None:
        checkpoint = OUT / "runs" / "reverse" / "checkpoint.npz"
        if not checkpoint.exists():
            train(TrainConfig.for_task("reverse", out=str(checkpoint.parent)))
    trained = load_trained(checkpoint)
    maps, output = attention_maps(trained.model, trained.tokenizer, args.text)
    for kind in ("self_attn", "cross_attn"):
        chosen = [m for m in maps if m.name.endswith(kind)]
        path = plot_attention(chosen, args.out / f"attention_{kind}.png", title=f"{args.text} → {output}")
        print(f"{kind}: {len(chosen)} blocks -> {path}")


if __name__ == "__main__":
    main()

"""Attention maps of a trained model: which source characters each output looks at.

    python demos/attention_maps.py                 # the reverse model; trained first if there is none
    python demos/attention_maps.py --checkpoint runs/dates/checkpoint.npz --text "26 Nov 2026"

Without --checkpoint it uses runs/reverse/checkpoint.npz (what `python -m transformer
train --task reverse` writes) or demos/out/runs/reverse/checkpoint.npz, and when neither
exists it says so and trains the reverse task into the latter first (about 30 s).

With the reverse task the cross-attention of a trained model is an anti-diagonal: the
first output character reads the last source character, and so on.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from minigrad.checkpoint import CheckpointError  # noqa: E402
from transformer.checkpoints import load_trained  # noqa: E402
from transformer.cli import CommandError, check_known_chars  # noqa: E402
from transformer.inspection import attention_maps  # noqa: E402
from transformer.plots import plot_attention  # noqa: E402
from transformer.train import TrainConfig, train  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"


def find_or_train_reverse() -> Path:
    """A reverse model's checkpoint: the CLI's, this demo's, or a new one trained now."""
    for checkpoint in (Path("runs/reverse/checkpoint.npz"), OUT / "runs" / "reverse" / "checkpoint.npz"):
        if checkpoint.exists():
            return checkpoint
    print(f"no reverse model yet: training one into {checkpoint.parent} first (about 30 s on 2 cores; "
          "--checkpoint PATH uses another model)", flush=True)
    train(TrainConfig.for_task("reverse", out=str(checkpoint.parent)))
    return checkpoint


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, help="default: a reverse model (see above)")
    parser.add_argument("--text", default="0123456789")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    checkpoint = args.checkpoint or find_or_train_reverse()
    try:
        trained = load_trained(checkpoint)
        check_known_chars(trained.tokenizer, [args.text])  # the CLI's check: refuse, don't guess
    except (CheckpointError, CommandError) as e:
        sys.exit(f"attention_maps.py: error: {e}")
    print(f"{checkpoint}: {trained.train_config['task']} model after {trained.step} steps")
    maps, output = attention_maps(trained.model, trained.tokenizer, args.text)
    for kind in ("self_attn", "cross_attn"):
        chosen = [m for m in maps if m.name.endswith(kind)]
        path = plot_attention(chosen, args.out / f"attention_{kind}.png", title=f"{args.text} → {output}")
        print(f"{kind}: {len(chosen)} blocks -> {path}")


if __name__ == "__main__":
    main()

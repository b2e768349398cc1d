"""Train the copy task, then the dates task, and show what each model learned.

    python demos/train_tasks.py                    # both, into demos/out/runs/
    python demos/train_tasks.py --task copy        # one

Uses each task's tuned defaults (transformer.train.TASK_DEFAULTS) with the tiny model.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from transformer.decoding import translate  # noqa: E402
from transformer.train import TrainConfig, train  # noqa: E402

# Inputs a person might type, with the answer each should get.
EXAMPLES = {
    "copy": [("90210", "90210"), ("1234567890", "1234567890"), ("7", "7")],
    "dates": [("26 November 2026", "2026-11-26"), ("Thu, Nov 26 2026", "2026-11-26"),
              ("26/11/26", "2026-11-26"), ("thursday 26th of november 2026", "2026-11-26")],
}


def show_examples(model, tokenizer, examples) -> list[str]:
    """One line per (source, expected) pair: the model's output, marked ✓ or ✗."""
    outputs = translate(model, tokenizer, [source for source, _ in examples])
    return [f"  {source!r} → {output!r} " + ("✓" if output == expected else f"✗ (expected {expected!r})")
            for (source, expected), output in zip(examples, outputs)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=sorted(EXAMPLES), action="append", help="default: copy and dates")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out" / "runs")
    args = parser.parse_args(argv)
    for task in args.task or list(EXAMPLES):
        run = train(TrainConfig.for_task(task, out=str(args.out / task)), overwrite=True)  # a fresh run each time
        print(f"\n{task}: exact match {run.test['exact_match']:.1%} on {run.test['examples']} test examples "
              f"after {run.step} steps ({run.seconds:.0f} s); curves in {args.out / task / 'training.png'}")
        print("\n".join(show_examples(run.model, run.tokenizer, EXAMPLES[task])))


if __name__ == "__main__":
    main()

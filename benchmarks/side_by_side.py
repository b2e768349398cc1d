"""Train PyTorch's twin of a finished run on the same budget, and compare the two.

    python -m transformer train --data cmudict --max-minutes 60       # ours: runs/cmudict
    python -m benchmarks.side_by_side runs/cmudict                     # the torch.nn twin

The twin is ``transformer.torch_model.TorchTransformer`` (torch.nn.TransformerEncoder
and TransformerDecoder layers) built from the run's settings, and everything else is the
run's too:

    weights     the run's initial weights: ``build_model`` with the run's seed, copied in
                with ``interop.to_torch``
    data        the same splits and tokenizers (``run_data.load_run_data``) and the same
                batches in the same order (``train.BatchStream`` with the run's seed)
    schedule    the run's warmup and cosine decay (``train.build_schedule``, whose lr is
                copied into torch's Adam each step); with a time budget, the step count is
                fitted to the budget by the same rule as ``train`` uses
                (``train.steps_for_budget`` after timing the first steps, then again
                every ``eval_every`` steps from the speed since), so the twin's lr also
                reaches 0 at the budget's end, however fast it steps
    step        Adam with the run's betas and eps, label-smoothed cross-entropy with PAD
                ignored, the global gradient norm clipped to the run's clip_norm, dropout
                as configured (torch's own random masks)
    budget      the run's --max-minutes, spent on the twin's steps only (it never
                validates, ours counts its validations); its time and steps are printed
                beside ours
    scoring     greedy decoding of every test source (no KV cache in nn.TransformerDecoder:
                each step re-runs the decoder on the prefix) and ``scoring.score``

It prints both rows and writes RUN/side_by_side.json.  Threads: --threads (default 1,
as ``train``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from minigrad.files import write_atomically


def our_result(run: Path) -> dict:
    """The last test record of ``run``'s metrics.jsonl (written when the run finished)."""
    lines = (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    tests = [record for record in map(json.loads, filter(str.strip, lines)) if record.get("split") == "test"]
    if not tests:
        raise SystemExit(f"{run}/metrics.jsonl has no test record: let the run finish first")
    return tests[-1]


def torch_train_step(module, optimizer, batch, config) -> None:
    """One step of train.py's loop in torch: label-smoothed cross-entropy with PAD ignored,
    backward, the global gradient norm clipped to ``config.clip_norm``, the optimizer's step."""
    import torch
    import torch.nn.functional as F

    from transformer.tokenizer import PAD

    optimizer.zero_grad(set_to_none=True)
    logits = module(torch.from_numpy(batch.src), torch.from_numpy(batch.tgt_in))
    loss = F.cross_entropy(logits.flatten(0, 1), torch.from_numpy(batch.tgt_out).flatten(),
                           ignore_index=PAD, label_smoothing=config.label_smoothing)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(module.parameters(), config.clip_norm)
    optimizer.step()


def train_twin(run: Path, threads: int) -> dict:
    import torch

    from transformer.checkpoints import read_run_config
    from transformer.interop import to_torch
    from transformer.run_data import load_run_data
    from transformer.scoring import score
    from transformer.torch_model import translate
    from transformer.train import (
        BUDGET_TIMED_SHARE,
        BUDGET_TIMED_STEPS,
        BUDGET_VALIDATION_SHARE,
        BatchStream,
        build_model,
        build_schedule,
        steps_for_budget,
    )
    from transformer.train_config import TrainConfig

    torch.set_num_threads(threads)
    stored, _ = read_run_config(run / "checkpoint.npz", for_resume=False)
    config = TrainConfig.from_dict(stored["train"])
    budget = config.max_minutes * 60 if config.max_minutes is not None else None
    if budget is not None:
        config.steps = None  # fitted below to the twin's own speed, as train fits ours
    data = load_run_data(config)
    model = build_model(config, data.tokenizer)
    torch.manual_seed(config.seed)
    module = to_torch(model).train()
    decay = config.weight_decay if config.optimizer == "adamw" else 0.0
    adam = (torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam)(
        module.parameters(), lr=0.0, betas=(0.9, 0.98), eps=1e-9, weight_decay=decay)
    lr = SimpleNamespace(lr=0.0)  # what our schedule sets; copied into torch's optimizer each step
    schedule = build_schedule(config, lr, model.config.d_model)
    batches = BatchStream(data.splits.train, data.tokenizer, config.batch_size,
                          np.random.default_rng([config.seed, 2]))
    step, trained, timed, last_fit = 0, 0.0, [], None

    def fit(seconds_per_step, kept):
        nonlocal schedule, last_fit
        config.steps = steps_for_budget(step, seconds_per_step, budget - trained, kept)
        last_fit = (step, trained)
        schedule = build_schedule(config, lr, model.config.d_model, going_on_from=schedule)

    while not ((config.steps is not None and step >= config.steps) or (budget is not None and trained >= budget)):
        batch = next(batches)
        started = time.perf_counter()
        for group in adam.param_groups:
            group["lr"] = lr.lr
        torch_train_step(module, adam, batch, config)
        schedule.step()
        step += 1
        trained += time.perf_counter() - started
        if config.steps is None:  # fit the step count to the budget as train does
            timed.append(time.perf_counter() - started)
            if len(timed) >= BUDGET_TIMED_STEPS or trained >= BUDGET_TIMED_SHARE * budget:
                fit(float(np.mean(timed[1:] or timed)), BUDGET_VALIDATION_SHARE)
        elif last_fit is not None and step % config.eval_every == 0 and step < config.steps:  # and again
            fit((trained - last_fit[1]) / (step - last_fit[0]), 0.0)

    module.eval()
    references = data.references("test")
    sources = sorted(references, key=len)
    started = time.perf_counter()
    predictions = []
    for i in range(0, len(sources), 200):
        predictions += translate(module, data.tokenizer, sources[i:i + 200], extra_tokens=data.extra_tokens)
    decode_seconds = time.perf_counter() - started
    result = score(predictions, [references[s] for s in sources], split=data.tokenizer.target.split,
                   sources=sources, source_split=data.tokenizer.source.split)
    return {"steps": step, "epochs": step * config.batch_size / len(data.splits.train),
            "minutes": trained / 60, "ms_per_step": 1000 * trained / step,
            "word_error_rate": result["word_error_rate"], "token_error_rate": result["token_error_rate"],
            "examples": result["examples"], "decode_seconds": decode_seconds, "unit": data.unit,
            "threads": threads, "load_average_1min": os.getloadavg()[0]}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.side_by_side",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="the run directory of a finished training, e.g. runs/cmudict")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as train uses)")
    args = parser.parse_args(argv)
    ours = our_result(args.run)
    twin = train_twin(args.run, args.threads)
    print(f"{'':>10} {'steps':>7} {'minutes':>8} {'word error rate':>16} {'token error rate':>17}")
    print(f"{'minigrad':>10} {ours['step']:>7} {ours.get('minutes', float('nan')):>8.1f} "
          f"{ours['word_error_rate']:>16.2%} {ours['token_error_rate']:>17.2%}")
    print(f"{'torch.nn':>10} {twin['steps']:>7} {twin['minutes']:>8.1f} "
          f"{twin['word_error_rate']:>16.2%} {twin['token_error_rate']:>17.2%}")
    path = args.run / "side_by_side.json"
    write_atomically(path, json.dumps({"minigrad": ours, "torch": twin}, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

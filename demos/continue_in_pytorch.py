"""Outgrow one machine: take a dates model trained here to PyTorch, check it translates
the same there, train it further with DistributedDataParallel on 2 CPU processes, and
bring it back to minigrad.

    python demos/continue_in_pytorch.py                          # runs/dates/checkpoint.npz, or trains one
    python demos/continue_in_pytorch.py --checkpoint PATH --ddp-steps 50
    python demos/continue_in_pytorch.py --steps 20 --model micro --ddp-steps 2   # a quick smoke run

Needs torch (pip install -e ".[torch]").  Writes into --out (demos/out/continue_in_pytorch/):
    model.safetensors       the exported model: torch's names and layouts, config and tokenizer in the metadata
    continued.safetensors   the model after the DDP steps, written by process 0
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import numpy as np  # noqa: E402

from transformer.checkpoints import load_trained  # noqa: E402
from transformer.decoding import translate  # noqa: E402
from transformer.interop import export_safetensors, from_torch, import_safetensors  # noqa: E402
from transformer.tasks import batches, make_splits  # noqa: E402
from transformer.tokenizer import PAD, tokenizer_from_dict  # noqa: E402
from transformer.train import TrainConfig, train  # noqa: E402

EXAMPLES = ["26 November 2026", "Thu, Nov 26 2026", "26/11/26", "thursday 26th of november 2026", "3 feb 99"]
WORLD_SIZE = 2


def load_torch_model(path):
    """The exported file with plain torch: safetensors.torch + TorchTransformer.load_state_dict."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from transformer.model import TransformerConfig
    from transformer.torch_model import TorchTransformer

    with safe_open(path, framework="pt") as f:
        metadata = f.metadata()
    module = TorchTransformer(TransformerConfig.from_dict(json.loads(metadata["config"])))
    module.load_state_dict(load_file(path))  # strict: every name and shape must match
    return module, tokenizer_from_dict(json.loads(metadata["tokenizer"]))


def ddp_worker(rank, model_path, out_path, train_pairs, steps, batch_size, lr, rendezvous, seed):
    """One of the WORLD_SIZE processes: the same model, its own share of the data; DDP
    averages the gradients over the processes in backward(), so all copies stay equal."""
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    # The processes find each other through a file, not a TCP port picked in advance,
    # which another program could take before the first process listens on it.
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=WORLD_SIZE)
    try:
        module, tokenizer = load_torch_model(model_path)
        model = DistributedDataParallel(module.train())
        optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.98), eps=1e-9)
        data = batches(train_pairs[rank::WORLD_SIZE], tokenizer, batch_size, np.random.default_rng([seed, 3, rank]))
        for step in range(1, steps + 1):
            batch = next(data)
            logits = model(torch.from_numpy(batch.src), torch.from_numpy(batch.tgt_in))
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), torch.from_numpy(batch.tgt_out).reshape(-1),
                                   ignore_index=PAD, label_smoothing=0.1)
            optimizer.zero_grad()
            loss.backward()  # here DDP all-reduces the gradients between the processes
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            losses = [torch.zeros(1) for _ in range(WORLD_SIZE)]
            dist.all_gather(losses, loss.detach().reshape(1))
            if rank == 0:
                print(f"  DDP step {step}/{steps}: loss per process " + ", ".join(f"{x.item():.4f}" for x in losses),
                      flush=True)
        checksums = [torch.zeros(1, dtype=torch.float64) for _ in range(WORLD_SIZE)]
        dist.all_gather(checksums, sum(p.detach().double().sum() for p in module.parameters()).reshape(1))
        if rank == 0:
            same = len({c.item() for c in checksums}) == 1
            print(f"  the {WORLD_SIZE} processes hold identical weights: {same}")
            export_safetensors(from_torch(module), tokenizer, out_path, names="torch")
        dist.barrier()  # both leave together: a process tearing gloo down while its peer still talks can abort
    finally:
        dist.destroy_process_group()


def exact_match(outputs, pairs):
    return sum(o == target for o, (_, target) in zip(outputs, pairs)) / len(pairs)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="runs/dates/checkpoint.npz",
                        help="a trained dates checkpoint; trained here first if it does not exist")
    parser.add_argument("--steps", type=int, default=2000, help="training steps when there is no checkpoint")
    parser.add_argument("--model", default="tiny", choices=["tiny", "micro"], help="size when training here")
    parser.add_argument("--n-train", type=int, default=50_000, help="training examples when training here")
    parser.add_argument("--ddp-steps", type=int, default=20, help="steps of DDP training in torch")
    parser.add_argument("--lr", type=float, default=1e-4, help="Adam's learning rate in torch (constant)")
    parser.add_argument("--batch-size", type=int, default=32, help="examples per process per step")
    parser.add_argument("--held-out", type=int, default=200, help="test examples scored at each stage")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out" / "continue_in_pytorch")
    args = parser.parse_args(argv)
    import torch.multiprocessing as mp

    from transformer.torch_model import translate as torch_translate

    args.out.mkdir(parents=True, exist_ok=True)
    if Path(args.checkpoint).exists():
        trained = load_trained(args.checkpoint)
        model, tokenizer, config = trained.model, trained.tokenizer, TrainConfig.from_dict(trained.train_config)
        print(f"1. minigrad: loaded {args.checkpoint} (step {trained.step})")
    else:
        config = TrainConfig.for_task("dates", steps=args.steps, model=args.model, n_train=args.n_train,
                                      out=str(args.out / "run"))
        print(f"1. minigrad: no {args.checkpoint}; training a {args.model} dates model for {args.steps} steps")
        run = train(config, progress=False)
        model, tokenizer = run.model, run.tokenizer
    splits = make_splits("dates", config.n_train, config.n_valid, config.n_test, seed=config.seed)
    held_out = splits.test[:args.held_out]
    texts = EXAMPLES + [source for source, _ in held_out[:3]]

    stages = {"minigrad": translate(model, tokenizer, texts)}
    score = {"minigrad": exact_match(translate(model, tokenizer, [s for s, _ in held_out]), held_out)}

    model_path, continued_path = args.out / "model.safetensors", args.out / "continued.safetensors"
    export_safetensors(model, tokenizer, model_path, names="torch", train_config=config.to_dict())
    print(f"2. exported to {model_path} ({model_path.stat().st_size:,} bytes)")

    module, _ = load_torch_model(model_path)
    stages["torch"] = torch_translate(module, tokenizer, texts)
    score["torch"] = exact_match(torch_translate(module, tokenizer, [s for s, _ in held_out]), held_out)
    same = stages["torch"] == stages["minigrad"]
    print(f"3. torch: loaded into torch.nn layers; greedy translations identical to minigrad's: {same}")

    print(f"4. torch: {args.ddp_steps} steps of DistributedDataParallel on {WORLD_SIZE} CPU processes (gloo), "
          f"batch {args.batch_size} per process, Adam lr {args.lr}")
    with tempfile.TemporaryDirectory() as rendezvous:  # a new file each run: gloo refuses a used one
        mp.spawn(ddp_worker, nprocs=WORLD_SIZE, args=(str(model_path), str(continued_path), splits.train,
                                                      args.ddp_steps, args.batch_size, args.lr,
                                                      os.path.join(rendezvous, "ddp"), config.seed))

    back = import_safetensors(continued_path)
    stages["minigrad again"] = translate(back.model, back.tokenizer, texts)
    score["minigrad again"] = exact_match(translate(back.model, back.tokenizer, [s for s, _ in held_out]), held_out)
    print(f"5. minigrad: imported {continued_path}\n")

    def cell(text, width=18):  # an untrained model's output can be long: cut it
        text = repr(text)
        return (text if len(text) <= width - 2 else text[:width - 3] + "…").ljust(width)

    width = max(map(len, texts)) + 4
    print("source".ljust(width) + "".join(stage.ljust(18) for stage in stages))
    for i, text in enumerate(texts):
        print(cell(text, width) + "".join(cell(outputs[i]) for outputs in stages.values()))
    print(f"exact match, {len(held_out)} held out".ljust(width) + "".join(f"{s:<18.1%}" for s in score.values()))
    if not same:
        print("error: torch's greedy translations differ from minigrad's", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

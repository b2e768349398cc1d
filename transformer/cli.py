"""The command line: python -m transformer COMMAND --help tells more about each command.

    python -m transformer train                       # dates, about two minutes
    python -m transformer evaluate                    # exact match per input length
    python -m transformer translate "26 November 2026" "Thu, Nov 26 2026"
    python -m transformer attention --text "26 November 2026" --out attn.png
    python -m transformer graph --depth 2 --out model.svg
    python -m transformer export runs/dates/checkpoint.npz --out dates.safetensors

Expected failures (bad arguments, a missing or corrupt checkpoint, characters the model
does not know) end with one line on stderr and exit status 2 (bad usage) or 1.

BLAS threads: one by default; for these small models two were 7-35 times slower on a
2-core machine with anything else running, and no faster on an idle one (see the README).  --threads N
overrides it, and so does OPENBLAS_NUM_THREADS (or OMP_NUM_THREADS, MKL_NUM_THREADS).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np

from minigrad.checkpoint import CheckpointError

DEFAULT_CHECKPOINT = "runs/dates/checkpoint.npz"  # where the bare ``train`` command saves
MAX_BEAM = 64          # translate --beam: each text decodes as a batch of this many hypotheses
MAX_GRAPH_BATCH = 64   # graph --batch: the picture is the same for any batch; memory grows with it
EXAMPLES_SHOWN = 10
# BLAS threads unless --threads or a BLAS environment variable says otherwise: two threads
# trained the micro and tiny models 7-35x slower on a 2-core machine with anything else
# running, and gave no gain on an idle one (README, "Threads").
DEFAULT_THREADS = 1
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line ("python -m transformer train: error: ...")."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


class CommandError(Exception):
    """An expected failure, reported as one line without a traceback."""


# ---------------------------------------------------------------------------- train

def run_train(args):
    """Train, with the command line's guarantees: a setting out of range is one line naming
    its option; a closed stdout (``... | head -1``) only silences the output; a second
    Ctrl-C ends without a traceback; notes about the run directory are "warning:" lines."""
    from transformer.train import RunDirectoryError, SettingError, TrainingDiverged

    given = {name: value for name, value in vars(args).items()
             if name in TRAIN_FLAGS and value is not None}
    with contextlib.redirect_stdout(OutputThatMayClose(sys.stdout)), warnings.catch_warnings():
        warnings.showwarning = lambda message, *_: print(f"warning: {message}", file=sys.stderr)
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's overflow notes: the non-finite check names the step
        try:
            train_and_show(args, given)
        except SettingError as e:
            flag = "--" + e.name.replace("_", "-")
            if e.name in given or not args.resume:
                args.usage_error(f"argument {flag}: {e.problem}")
            hint = f" (give {flag} to change it)" if e.name in TRAIN_FLAGS else ""
            raise CommandError(f"{args.resume} stores {e.name} that {e.problem}{hint}") from e
        except RunDirectoryError as e:
            raise CommandError(str(e)) from e
        except TrainingDiverged as e:
            raise CommandError(f"{e} (lower --lr-scale, or pass --on-nonfinite skip to go on without "
                               "such steps)") from e
        except KeyboardInterrupt:
            print("python -m transformer train: interrupted; the run directory keeps its last checkpoint",
                  file=sys.stderr)
            raise SystemExit(130) from None
        finally:
            sys.stdout.flush()


class OutputThatMayClose:
    """sys.stdout that outlives its reader: once a write finds the pipe closed (EPIPE) or
    the terminal gone (EIO, after a hang-up), the stream is pointed at /dev/null and the
    command goes on."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text):
        try:
            return self.stream.write(text)
        except OSError as e:
            self._silence(e)
            return len(text)

    def flush(self):
        try:
            self.stream.flush()
        except OSError as e:
            self._silence(e)

    def _silence(self, error):
        if error.errno not in (errno.EPIPE, errno.EIO):
            raise error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self.stream.fileno())  # the pending buffer and later writes go nowhere
        os.close(devnull)

    def __getattr__(self, name):
        return getattr(self.stream, name)


def train_and_show(args, given):
    from transformer.decoding import translate
    from transformer.evaluation import format_by_length, score_typed_inputs
    from transformer.tasks import get_task
    from transformer.train import TrainConfig, train

    if args.resume:
        from transformer.checkpoints import read_run_config

        config, _ = read_run_config(args.resume)
        # A resumed run goes on in its checkpoint's directory, from wherever it is started.
        config = TrainConfig.from_dict({**config["train"], "out": str(Path(args.resume).parent), **given})
    else:
        config = TrainConfig.for_task(**given)
    print(f"training {config.task} for {config.steps} steps into {config.out}/"
          + (f", resuming from {args.resume}" if args.resume else "") + f" ({describe_threads(args)})",
          flush=True)
    run = train(config, resume=args.resume, progress=not args.quiet, overwrite=args.overwrite)
    if run.skipped:
        print(f"{run.skipped} of the steps were skipped: their loss or gradient norm was not finite")
    if run.stopped_by:
        print(f"stopped by {run.stopped_by} at step {run.step}; checkpoint saved to {run.checkpoint}\n"
              f"continue with: python -m transformer train --resume {run.checkpoint}")
        return
    from transformer.tasks import make_splits

    test = make_splits(config.task, config.n_train, config.n_valid, config.n_test, seed=config.seed).test
    shown = test[:EXAMPLES_SHOWN]
    predictions = translate(run.model, run.tokenizer, [source for source, _ in shown])
    print("\nexamples from the test split (source → prediction):")
    for (source, target), prediction in zip(shown, predictions):
        mark = "✓" if prediction == target else f"✗ (expected {target})"
        print(f"  {source!r:>38} → {prediction!r} {mark}")
    print(f"\nexact match on {run.test['examples']} test examples: {run.test['exact_match']:.1%} "
          f"(token accuracy {run.test['token_accuracy']:.1%}) after {run.step} steps, {run.seconds:.0f} s")
    print(f"\nexact match by source length:\n{format_by_length(run.test)}")
    typed = score_typed_inputs(run.model, run.tokenizer, get_task(config.task))
    if typed:
        print(typed)
    print(f"checkpoint: {run.checkpoint}   curves: {Path(config.out) / 'training.png'}")


TRAIN_FLAGS = ("task", "steps", "batch_size", "model", "dropout", "optimizer", "lr_scale", "warmup_steps", "schedule",
               "label_smoothing", "clip_norm", "eval_every", "checkpoint_every", "seed", "out", "n_train",
               "checkpoint_seconds", "on_nonfinite")


def add_train_parser(commands):
    from transformer.train import MODEL_SIZES, TASK_DEFAULTS

    p = commands.add_parser("train", help="train a model on a task", description=(
        "Train a Transformer on a synthetic task; unset options take the task's tuned defaults "
        "(transformer.train.TASK_DEFAULTS). Ctrl-C saves a checkpoint; --resume continues it."))
    p.add_argument("--task", choices=sorted(TASK_DEFAULTS), help="what to learn (default: dates)")
    p.add_argument("--steps", type=int, help="optimizer steps")
    p.add_argument("--batch-size", dest="batch_size", type=int, help="examples per step (default 64)")
    p.add_argument("--model", choices=sorted(MODEL_SIZES), help="model size (default: tiny)")
    p.add_argument("--dropout", type=float)
    p.add_argument("--optimizer", choices=["adam", "adamw"])
    p.add_argument("--lr-scale", dest="lr_scale", type=float,
                   help="sets the peak learning rate, reached at the end of warmup: "
                        "lr_scale / sqrt(d_model * warmup_steps), for either schedule")
    p.add_argument("--warmup-steps", dest="warmup_steps", type=int)
    p.add_argument("--schedule", choices=["noam", "cosine"], help="lr schedule after warmup (default: cosine)")
    p.add_argument("--label-smoothing", dest="label_smoothing", type=float)
    p.add_argument("--clip-norm", dest="clip_norm", type=float)
    p.add_argument("--eval-every", dest="eval_every", type=int)
    p.add_argument("--checkpoint-every", dest="checkpoint_every", type=int)
    p.add_argument("--checkpoint-seconds", dest="checkpoint_seconds", type=float,
                   help="also save after this many seconds of training since the last save (default 60)")
    p.add_argument("--on-nonfinite", dest="on_nonfinite", choices=["stop", "skip"],
                   help="a step whose loss or gradient norm is inf/NaN: stop training (default) or skip the step")
    p.add_argument("--seed", type=int)
    p.add_argument("--n-train", dest="n_train", type=int, help="training examples")
    p.add_argument("--out", help="run directory (default: runs/<task>; with --resume, the checkpoint's directory)")
    p.add_argument("--resume", metavar="PATH", help="continue from this checkpoint (its settings, "
                   "except the options given here)")
    p.add_argument("--overwrite", action="store_true", help="start afresh in a directory that holds a run, "
                   "deleting its checkpoints and metrics")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run_train, usage_error=p.error)


# ---------------------------------------------------------------------------- evaluate

def run_evaluate(args):
    from transformer.evaluation import evaluate, format_by_length, score_typed_inputs
    from transformer.tasks import get_task, make_splits
    from transformer.train import TrainConfig

    trained = load_checkpoint_for(args.checkpoint)
    config = TrainConfig.from_dict(trained.train_config)
    test = make_splits(config.task, config.n_train, config.n_valid, config.n_test, seed=config.seed).test
    result = evaluate(trained.model, test, trained.tokenizer, label_smoothing=config.label_smoothing)
    print(f"{config.task} model of {args.checkpoint} after {trained.step} steps, greedy exact match "
          f"on its test split (seed {config.seed}) by source length:\n{format_by_length(result)}")
    typed = score_typed_inputs(trained.model, trained.tokenizer, get_task(config.task))
    if typed:
        print(typed)


def add_evaluate_parser(commands):
    p = commands.add_parser("evaluate", help="exact match per input length", description=(
        "Rebuild a trained model's held-out test split from its settings and print greedy exact "
        "match for each source length, over all lengths, and the worst length; for the digit tasks "
        "also on inputs a person types that random test strings seldom are ('7', '1111', '0101')."))
    p.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT, help=f"default: {DEFAULT_CHECKPOINT}")
    p.set_defaults(run=run_evaluate)


# ---------------------------------------------------------------------------- translate

def load_checkpoint_for(path):
    """A trained model from a training checkpoint or an exported .safetensors file, or a
    CommandError that says how to make the missing file."""
    from transformer.interop import load_model

    if Path(path).suffix == ".safetensors" and not Path(path).exists():
        raise CommandError(f"no such file: {path}; write one with: python -m transformer export CHECKPOINT "
                           f"--out {path}")
    if not Path(path).exists():
        from transformer.tasks import TASKS

        run_dir, command = Path(path).parent, "python -m transformer train"
        task = run_dir.name if run_dir.name in TASKS else "TASK"
        if task != "dates":
            command += f" --task {task}"
        if run_dir != Path("runs", task):  # train writes runs/<task>/checkpoint.npz by default
            command += f" --out {run_dir}"
        raise CommandError(f"no such checkpoint file: {path}; train a model first: {command}")
    return load_model(path)


def check_known_chars(tokenizer, texts):
    """CommandError naming the first text that is empty or has units (characters, symbols)
    outside the source vocabulary."""
    source = tokenizer.source
    for text in texts:
        if not text:
            raise CommandError("an empty text: give at least one character")
        unknown = source.unknown(text)
        if unknown:
            raise CommandError(f"{text!r} contains {source.unit_name} the model does not know: "
                               f"{source.separator.join(unknown)!r} (it knows {source.separator.join(source.units)!r})")


def run_translate(args):
    from transformer.decoding import translate
    from transformer.tasks import check_source

    trained = load_checkpoint_for(args.checkpoint)

    def show(texts):
        check_known_chars(trained.tokenizer, texts)
        for text in texts:  # a ValueError for a text outside the task (e.g. the year 2126 for dates)
            check_source(trained.train_config["task"], text)
        for text, output in zip(texts, translate(trained.model, trained.tokenizer, texts, beam_size=args.beam)):
            print(f"{text} → {output}" if args.show_source else output, flush=True)

    if args.texts:
        show(args.texts)
    elif sys.stdin.isatty():  # someone typing: say what is expected, answer line by line
        print("type a text and press Enter to translate it, Ctrl-D to end "
              "(or give texts as arguments: python -m transformer translate TEXT ...)", file=sys.stderr)
        for line in sys.stdin:
            if line.strip():
                try:
                    show([line.rstrip("\n")])
                except CommandError as e:  # a typo should not end the session
                    print(f"error: {e}", file=sys.stderr)
    else:
        texts = [line.rstrip("\n") for line in sys.stdin if line.strip()]
        if not texts:
            raise CommandError("nothing to translate: stdin had no text; give texts as arguments "
                               "or one per line on stdin")
        show(texts)


def add_translate_parser(commands):
    p = commands.add_parser("translate", help="run a trained model on texts", description=(
        "Translate each text (or each line of stdin when no text is given) with a trained model."))
    p.add_argument("texts", nargs="*", help="source texts, e.g. '26 November 2026'")
    p.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT,
                   help=f"a checkpoint or an exported .safetensors model (default: {DEFAULT_CHECKPOINT})")
    p.add_argument("--beam", type=int_between(1, MAX_BEAM), default=1,
                   help=f"beam size, 1 to {MAX_BEAM} (1: greedy, the default)")
    p.add_argument("--show-source", action="store_true", help="print 'source → output'")
    p.set_defaults(run=run_translate)


# ---------------------------------------------------------------------------- attention

ATTENTION_KINDS = {"all": ("self_attn", "cross_attn"), "self": ("self_attn",), "cross": ("cross_attn",)}


def run_attention(args):
    from transformer.inspection import attention_maps
    from transformer.plots import plot_attention
    from transformer.tasks import get_task

    trained = load_checkpoint_for(args.checkpoint)
    text = args.text
    if text is None:  # an example of the model's own task
        text, _ = get_task(trained.train_config["task"]).generate(np.random.default_rng(args.seed))
    check_known_chars(trained.tokenizer, [text])
    maps, output = attention_maps(trained.model, trained.tokenizer, text)
    maps = [m for m in maps if m.name.endswith(ATTENTION_KINDS[args.kind])]
    path = plot_attention(maps, args.out, title=f"{text} → {output}")
    print(f"{text} → {output}\nwrote {len(maps)} blocks × {trained.model.config.n_heads} heads to {path}")


def add_attention_parser(commands):
    p = commands.add_parser("attention", help="draw attention heatmaps", description=(
        "Decode TEXT greedily, run the model once more on (text, output) and draw every head's "
        "attention: encoder self-, decoder self- and cross-attention, tokens on the axes."))
    p.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT, help=f"default: {DEFAULT_CHECKPOINT}")
    p.add_argument("--text", help="source text (default: an example of the model's task)")
    p.add_argument("--kind", choices=sorted(ATTENTION_KINDS), default="all",
                   help="which blocks: all (default), self (encoder and decoder) or cross")
    p.add_argument("--seed", type=int, default=0, help="picks the default example")
    p.add_argument("--out", default="attention.png", help="image file (default: attention.png)")
    p.set_defaults(run=run_attention)


# ---------------------------------------------------------------------------- graph

def run_graph(args):
    from minigrad.tracing import trace
    from minigrad.viz import NO_DOT_MESSAGE, render
    from transformer.inspection import model_loss

    trained = load_checkpoint_for(args.checkpoint)
    loss = model_loss(trained.model, trained.tokenizer, trained.train_config["task"], batch_size=args.batch)
    if shutil.which("dot") is None:  # both the picture and the page are laid out by Graphviz
        raise CommandError(NO_DOT_MESSAGE)
    title = f"Transformer forward + loss, depth {args.depth}"
    if args.html:  # the page steps through backward, so run it (keeping the graph to draw)
        with trace() as steps:
            loss.backward(retain_graph=True)
        path = render(loss, args.out or "model.html", format="html", depth=args.depth, trace=steps, title=title)
        print(f"wrote the page of one forward pass, loss and {len(steps)} backward steps to {path}")
        return
    path = render(loss, args.out or "model.svg", depth=args.depth, fold_repeats=True, title=title)
    print(f"wrote the graph of one forward pass and loss to {path}")


def add_graph_parser(commands):
    p = commands.add_parser("graph", help="draw the model's computation graph", description=(
        "Run one forward pass and the loss on a small batch and draw the computation graph, "
        "with modules below --depth collapsed into boxes and repeated layers folded. With --html, "
        "write an interactive page instead that steps through the backward pass."))
    p.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT, help=f"default: {DEFAULT_CHECKPOINT}")
    p.add_argument("--depth", type=positive_int, default=2, help="levels of modules drawn open (default 2)")
    p.add_argument("--batch", type=int_between(1, MAX_GRAPH_BATCH), default=2,
                   help=f"examples in the batch, 1 to {MAX_GRAPH_BATCH} (default 2)")
    p.add_argument("--html", action="store_true",
                   help="write one self-contained HTML page: pan, zoom, open boxes, step through backward")
    p.add_argument("--out", help="output file; .svg, .png or .pdf (default: model.svg; with --html: model.html)")
    p.set_defaults(run=run_graph)


# ---------------------------------------------------------------------------- export

def run_export(args):
    from transformer.interop import export_safetensors

    trained = load_checkpoint_for(args.checkpoint)
    arrays = export_safetensors(trained.model, trained.tokenizer, args.out, names=args.names,
                                train_config=trained.train_config, step=trained.step)
    print(f"wrote {len(arrays)} tensors ({sum(a.size for a in arrays.values()):,} numbers) under {args.names} "
          f"names, with the config and tokenizer, to {args.out}")


def add_export_parser(commands):
    p = commands.add_parser("export", help="write a checkpoint's model as a .safetensors file", description=(
        "Write the model of a training checkpoint as a .safetensors file, with its config and tokenizer "
        "in the metadata: under PyTorch's names and layouts (loads into transformer.torch_model."
        "TorchTransformer, see docs/state_dict.md) or under ours. translate --checkpoint reads it back."))
    p.add_argument("checkpoint", help="a training checkpoint, e.g. runs/dates/checkpoint.npz")
    p.add_argument("--out", default="model.safetensors", help="output file (default: model.safetensors)")
    p.add_argument("--names", choices=["torch", "minigrad"], default="torch",
                   help="torch (default): torch.nn's names and (out, in) layouts; minigrad: our state_dict")
    p.set_defaults(run=run_export)


# ---------------------------------------------------------------------------- main

def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def int_between(low, high):
    """An argparse type: an integer from ``low`` to ``high``."""
    def parse(text):
        value = int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}, got {value}")
        return value
    parse.__name__ = "int"  # argparse names the type in "invalid int value: 'x'"
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m transformer", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in (add_train_parser, add_evaluate_parser, add_translate_parser, add_attention_parser,
                add_graph_parser, add_export_parser):
        add(commands)
    for command in commands.choices.values():  # every command computes with BLAS
        command.add_argument("--threads", type=positive_int, help=(
            f"BLAS threads (default: {DEFAULT_THREADS}, unless {THREAD_VARIABLES[0]} or a similar "
            "variable is set; more threads only slowed these small models on 2 cores)"))
    return parser


def thread_count(args) -> int | None:
    """The BLAS threads to use: --threads, else None when the environment chose, else the default."""
    if args.threads is not None:
        return args.threads
    return None if any(os.environ.get(name) for name in THREAD_VARIABLES) else DEFAULT_THREADS


def describe_threads(args) -> str:
    count = thread_count(args)
    if count is None:
        return "BLAS threads as the environment sets them"
    return f"{count} BLAS thread{'s' if count > 1 else ''}; --threads N to change"


def main(argv=None) -> int:
    from threadpoolctl import threadpool_limits

    args = build_parser().parse_args(argv)
    try:
        with threadpool_limits(limits=thread_count(args), user_api="blas"):
            args.run(args)
    except (CommandError, CheckpointError, ValueError, OSError) as e:
        message = " ".join(str(e).split())  # one line, however the message was written
        print(f"python -m transformer {args.command}: error: {message}", file=sys.stderr)
        return 1
    return 0

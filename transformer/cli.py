"""The command line: python -m transformer COMMAND --help tells more about each command.

    python -m transformer train                       # dates, about two minutes
    python -m transformer evaluate                    # exact match per input length
    python -m transformer translate "26 November 2026" "Thu, Nov 26 2026"
    python -m transformer attention --text "26 November 2026" --out attn.png
    python -m transformer graph --depth 2 --out model.svg
    python -m transformer export runs/dates/checkpoint.npz --out dates.safetensors

Expected failures (bad arguments, a missing or corrupt checkpoint, characters the model
does not know) end with one line on stderr and exit status 2 (bad usage) or 1.  A reader
that goes away (... | head -1) only silences the output (exit status 0), and characters
the terminal's encoding cannot show are printed as escapes such as \\u2192.

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
MAX_TRANSLATE_BATCH = 4096  # translate --batch-size
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
    from transformer.datasets import MissingDataPackage
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
        except (RunDirectoryError, MissingDataPackage) as e:
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
    elif "data" in given:
        config = TrainConfig.for_data(**given)
    else:
        config = TrainConfig.for_task(**given)
    length = f"{config.steps} steps" if config.steps is not None else "as many steps as fit"
    if config.max_minutes is not None:
        length += f" within {config.max_minutes:g} minutes"
    print(f"training {config.name} for {length} into {config.out}/"
          + (f", resuming from {args.resume}" if args.resume else "") + f" ({describe_threads(args)})",
          flush=True)
    run = train(config, resume=args.resume, progress=not args.quiet, overwrite=args.overwrite)
    if run.skipped:
        print(f"{run.skipped} of the steps were skipped: their loss or gradient norm was not finite")
    if run.stopped_by:
        print(f"stopped by {run.stopped_by} at step {run.step}; checkpoint saved to {run.checkpoint}\n"
              f"continue with: python -m transformer train --resume {run.checkpoint}")
        return
    if run.budget_spent:
        print(f"the {config.max_minutes:g}-minute budget was spent at step {run.step} of {config.steps}")
    if run.data is not None:
        references = run.data.references("test")
        print(f"\ntest split, {len(references):,} sources, greedy decoding, after {run.step} steps "
              f"(epoch {run.step * config.batch_size / len(run.data.splits.train):.1f}), {run.seconds / 60:.1f} min:")
        show_scores(run.test, list(references), list(references.values()), run.data.unit, config.data)
        print(f"best validation at step {run.best_step}: {Path(config.out) / 'best.npz'}")
        print(f"checkpoint: {run.checkpoint}   curves: {Path(config.out) / 'training.png'}, "
              f"{Path(config.out) / 'learning_curve.png'}")
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


def show_scores(result, sources, references, unit, data=None, shown=EXAMPLES_SHOWN):
    """Print a ``scoring`` result: the two error rates, the table by source length, for the
    pinyin data the comparison with reading each character alone, and the first ``shown``
    sources decoded wrong."""
    from transformer.scoring import format_scores, format_scores_by_length

    print(format_scores(result, unit))
    print(f"\nby source length:\n{format_scores_by_length(result, unit)}")
    if data == "pinyin":
        from transformer.datasets import compare_with_baseline

        print(f"\n{compare_with_baseline(sources, result['predictions'], references, shown)}")
    wrong = [(source, output, refs) for source, output, refs in zip(sources, result["predictions"], references)
             if output not in refs]
    if wrong:
        print(f"\nthe first {min(shown, len(wrong))} of {len(wrong):,} sources decoded wrong (source → output; "
              "expected):")
        for source, output, refs in wrong[:shown]:
            print(f"  {source} → {output or '(nothing)'}; expected {' | '.join(refs)}")


TRAIN_FLAGS = ("task", "data", "valid", "test", "keep_stress", "skip_bad_lines", "source_tokens", "target_tokens",
               "n_valid", "steps", "max_minutes", "batch_size", "model", "d_model", "heads", "layers", "d_ff",
               "dropout", "optimizer", "lr_scale", "warmup_steps", "schedule", "label_smoothing", "clip_norm",
               "eval_every", "checkpoint_every", "seed", "out", "n_train", "checkpoint_seconds", "on_nonfinite")


def add_train_parser(commands):
    from transformer.train import MODEL_SIZES, TASK_DEFAULTS

    p = commands.add_parser("train", help="train a model on a task or on data", description=(
        "Train a Transformer on a synthetic task (--task) or on real pairs (--data); unset options take the "
        "task's or data's defaults (transformer.train_config: TASK_DEFAULTS, DATA_DEFAULTS). Ctrl-C saves a "
        "checkpoint; --resume continues it."))
    p.add_argument("--task", choices=sorted(TASK_DEFAULTS), help="what to learn (default: dates)")
    p.add_argument("--data", metavar="PAIRS", help="train on real data: a UTF-8 file of source<TAB>target lines, "
                   "or a built-in data set: cmudict (English word -> phonemes) or pinyin (Chinese -> pinyin)")
    p.add_argument("--valid", metavar="PAIRS", help="validate on this file instead of 5%% of the --data sources")
    p.add_argument("--test", metavar="PAIRS", help="test on this file instead of 5%% of the --data sources")
    p.add_argument("--keep-stress", dest="keep_stress", action="store_true", default=None,
                   help="cmudict: keep the vowels' stress digits (AO1)")
    p.add_argument("--skip-bad-lines", dest="skip_bad_lines", action="store_true", default=None,
                   help="skip (and count) bad lines of the pairs files instead of stopping at the first")
    p.add_argument("--source-tokens", dest="source_tokens", choices=["auto", "chars", "symbols"],
                   help="what a source token is: characters, space-separated symbols, or auto (the default)")
    p.add_argument("--target-tokens", dest="target_tokens", choices=["auto", "chars", "symbols"],
                   help="what a target token is (auto: symbols when targets look like 'TH AO T')")
    p.add_argument("--n-valid", dest="n_valid", type=int,
                   help="tasks: valid examples; data: the most valid sources decoded at each evaluation")
    p.add_argument("--steps", type=int, help="optimizer steps")
    p.add_argument("--batch-size", dest="batch_size", type=int, help="examples per step (default 64)")
    p.add_argument("--max-minutes", dest="max_minutes", type=float, metavar="M",
                   help="wall-clock budget: stop between steps once M minutes of training are spent, then "
                        "evaluate and save as at the end; without --steps, the step count is fitted to it")
    p.add_argument("--model", choices=sorted(MODEL_SIZES), help="model size (default: tiny): "
                   + "; ".join(f"{name}: d_model {d['d_model']}, {d['n_heads']} heads, {d['n_encoder_layers']}"
                               f"+{d['n_decoder_layers']} layers, d_ff {d['d_ff']}" for name, d in MODEL_SIZES.items()))
    p.add_argument("--d-model", dest="d_model", type=int, help="model width (default: the --model size's)")
    p.add_argument("--heads", type=int, help="attention heads; must divide d_model")
    p.add_argument("--layers", type=int, help="encoder layers and decoder layers (each)")
    p.add_argument("--d-ff", dest="d_ff", type=int, help="feed-forward width")
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
    from transformer.train import TrainConfig

    path = chosen_checkpoint(args)
    trained = load_checkpoint_for(path)
    if not trained.train_config:  # an export without them: TrainConfig's defaults would stand in
        task_of(trained, path, "evaluate rebuilds the test split from the training settings")
    config = TrainConfig.from_dict(trained.train_config)
    if args.data is not None:
        from transformer.pairs import group_by_source, read_pairs

        read = read_pairs(args.data, skip_bad_lines=args.skip_bad_lines)
        if read.skipped:
            number, problem = read.skipped[0]
            print(f"skipped {len(read.skipped):,} bad lines of {args.data} (the first, line {number}: {problem})")
        score_on(trained, config, path, group_by_source(read.pairs), args, f"{args.data}")
    elif config.data is not None:
        score_on(trained, config, path, test_references(path, config), args, "its test split")
    else:
        evaluate_task(trained, config, path)


def test_references(path, config) -> dict[str, list[str]]:
    """The test split of a real-data run, rebuilt from its settings (and refused if the
    data changed since: the split would not be the one it was tested on)."""
    from transformer.checkpoints import read_run_config
    from transformer.datasets import MissingDataPackage
    from transformer.run_data import check_fingerprints, load_run_data

    try:
        data = load_run_data(config)
    except MissingDataPackage as e:
        raise CommandError(str(e)) from e
    if Path(path).suffix != ".safetensors":
        check_fingerprints(read_run_config(path, for_resume=False)[1].get("data_files", {}), data.fingerprints, path)
    return data.references("test")


def score_on(trained, config, path, references, args, what):
    """Decode every source of ``references`` (source -> its references) and print the scores."""
    from transformer.run_data import target_unit
    from transformer.scoring import decode_and_score

    sources = list(references)
    unknown = sum(bool(trained.tokenizer.source.unknown(source)) for source in sources)
    if unknown:
        print(f"warning: {unknown:,} of {len(sources):,} sources contain {trained.tokenizer.source.unit_name} the "
              "model does not know; they are decoded with those left out (read as <unk>)", file=sys.stderr)
    result = decode_and_score(trained.model, trained.tokenizer, sources, list(references.values()),
                              beam_size=args.beam, extra_tokens=trained.extra_tokens,
                              progress=sys.stderr.isatty())
    decoding = "greedy decoding" if args.beam == 1 else f"beam search (beam {args.beam})"
    print(f"{config.name} model of {path} after {trained.step} steps, on {what}: {len(sources):,} sources, "
          f"{decoding}")
    show_scores(result, sources, list(references.values()), target_unit(config.data, trained.tokenizer.target),
                config.data)


def evaluate_task(trained, config, path):
    from transformer.evaluation import evaluate, format_by_length, score_typed_inputs
    from transformer.tasks import get_task, make_splits

    test = make_splits(config.task, config.n_train, config.n_valid, config.n_test, seed=config.seed).test
    result = evaluate(trained.model, test, trained.tokenizer, label_smoothing=config.label_smoothing)
    print(f"{config.task} model of {path} after {trained.step} steps, greedy exact match "
          f"on its test split (seed {config.seed}) by source length:\n{format_by_length(result)}")
    typed = score_typed_inputs(trained.model, trained.tokenizer, get_task(config.task))
    if typed:
        print(typed)


def add_evaluate_parser(commands):
    p = commands.add_parser("evaluate", help="error rates, or exact match per input length", description=(
        "Score a trained model. A model trained on data: on --data (a file of source<TAB>target pairs; lines "
        "with one source are its alternative references) or else on its own test split, rebuilt from its "
        "settings: word error rate (a source is right if the output equals any reference), the token error "
        "rate (phoneme, syllable, character...: edit distance to the closest reference over its length), both "
        "by source length, and the first sources decoded wrong. A model of a task: greedy exact match for each "
        "source length on its test split; for the digit tasks also on inputs a person types that random test "
        "strings seldom are ('7', '1111', '0101')."))
    p.add_argument("checkpoint_path", nargs="?", metavar="CHECKPOINT", help="the same as --checkpoint")
    p.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT, help=f"default: {DEFAULT_CHECKPOINT}")
    p.add_argument("--best", action="store_true",
                   help="use best.npz beside the checkpoint: the model of the best validation score")
    p.add_argument("--data", metavar="PAIRS", help="score on this file of source<TAB>target lines")
    p.add_argument("--skip-bad-lines", dest="skip_bad_lines", action="store_true",
                   help="skip (and count) bad lines of --data instead of stopping at the first")
    p.add_argument("--beam", type=int_between(1, MAX_BEAM), default=1,
                   help=f"beam size for data, 1 to {MAX_BEAM} (1: greedy, the default)")
    p.set_defaults(run=run_evaluate)


# ---------------------------------------------------------------------------- translate

def load_checkpoint_for(path):
    """A trained model from a training checkpoint or an exported .safetensors file, or a
    CommandError that says how to make the missing file."""
    from minigrad.files import not_a_file
    from transformer.interop import load_model

    problem = not_a_file(path)
    if not Path(path).exists() and problem != "no such file":  # a loop of links, or a link to nothing
        raise CommandError(f"{path}: {problem}")
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


def task_of(trained, path, needed_for: str) -> str:
    """The task a model was trained on, or a CommandError saying that ``needed_for`` needs
    one (a model trained on data has none, nor does one exported without training settings)."""
    task = trained.train_config.get("task")
    if task is None and trained.train_config.get("data"):
        raise CommandError(f"{path} was trained on data, not on a task; {needed_for}")
    if task is None:
        raise CommandError(f"{path} holds no training settings, so no task; {needed_for} (use a training "
                           "checkpoint, or export with the training settings: python -m transformer export)")
    return task


KNOWN_UNITS_SHOWN = 100  # a refusal lists the vocabulary when it is at most this long


def unknown_units(source, text) -> str | None:
    """What ``text`` holds that the ``source`` tokenizer does not know, in words, or None;
    with a short vocabulary, what it does know too (CMUdict's: lowercase letters and ')."""
    unknown = source.unknown(text)
    if not unknown:
        return None
    message = f"{text!r} contains {source.unit_name} the model does not know: {source.separator.join(unknown)!r}"
    if len(source.units) <= KNOWN_UNITS_SHOWN:
        message += f" (it knows {source.separator.join(source.units)!r})"
    return message


def check_known_chars(tokenizer, texts):
    """CommandError naming the first text that is empty or has units (characters, symbols)
    outside the source vocabulary."""
    for text in texts:
        if not text:
            raise CommandError("an empty text: give at least one character")
        problem = unknown_units(tokenizer.source, text)
        if problem:
            raise CommandError(problem)


def text_problem(trained, text) -> str | None:
    """Why the model of ``trained`` cannot take ``text`` (empty, unknown characters, outside
    its task), or None."""
    from transformer.tasks import check_source

    if not text:
        return "an empty text"
    problem = unknown_units(trained.tokenizer.source, text)
    if problem:
        return problem
    if trained.train_config.get("task"):
        try:  # e.g. the year 2126 for dates
            check_source(trained.train_config["task"], text)
        except ValueError as e:
            return str(e)
    return None


def read_lines(data: bytes, name: str) -> list[str]:
    """The lines of ``data`` (UTF-8; "\n" or "\r\n" ends a line); a line that is not
    UTF-8 is a CommandError naming it."""
    lines = data.split(b"\n")
    if lines[-1] == b"":  # the newline that ends the last line starts no new one
        lines.pop()
    texts = []
    for number, line in enumerate(lines, 1):
        try:
            texts.append(line.removesuffix(b"\r").decode("utf-8"))
        except UnicodeDecodeError:
            raise CommandError(f"{name}: line {number} is not UTF-8 text; nothing was translated") from None
    return texts


TRANSLATE_PROBLEMS_SHOWN = 3


def translate_lines(trained, texts, args, name, unit="line"):
    """Print one output line per text, in order, decoding ``args.batch_size`` texts at a
    time and flushing after each batch (so a pipe sees results as they come).  Every text
    is checked first: if any cannot be translated, nothing is, and one line names the
    first TRANSLATE_PROBLEMS_SHOWN of them (``unit`` and its number)."""
    from transformer.decoding import translate

    problems = [f"{unit} {number}: {problem}" for number, text in enumerate(texts, 1)
                if (problem := text_problem(trained, text)) is not None]
    if problems:
        shown = "; ".join(problems[:TRANSLATE_PROBLEMS_SHOWN])
        if len(problems) > TRANSLATE_PROBLEMS_SHOWN:
            shown += f"; and {len(problems) - TRANSLATE_PROBLEMS_SHOWN} more"
        raise CommandError(f"{name}: {len(problems)} of {len(texts)} {unit}s cannot be translated ({shown}); "
                           "nothing was translated")
    for start in range(0, len(texts), args.batch_size):
        batch = texts[start:start + args.batch_size]
        outputs = translate(trained.model, trained.tokenizer, batch, beam_size=args.beam,
                            extra_tokens=trained.extra_tokens)
        print("\n".join(f"{text} → {output}" if args.show_source else output
                        for text, output in zip(batch, outputs)), flush=True)


def run_translate(args):
    if args.texts and args.file:
        args.usage_error("give texts as arguments or --file, not both")
    trained = load_checkpoint_for(chosen_checkpoint(args))
    if args.texts:
        translate_lines(trained, args.texts, args, "the texts given", unit="text")
    elif args.file:
        try:
            data = Path(args.file).read_bytes()
        except OSError as e:
            raise CommandError(f"cannot read --file {args.file}: {e.strerror}") from None
        translate_lines(trained, read_lines(data, args.file), args, args.file)
    elif sys.stdin.isatty():  # someone typing: say what is expected, answer line by line
        print("type a text and press Enter to translate it, Ctrl-D to end "
              "(or give texts as arguments: python -m transformer translate TEXT ...)", file=sys.stderr)
        for line in sys.stdin:
            if line.strip():
                try:
                    translate_lines(trained, [line.rstrip("\n")], args, "the text typed", unit="text")
                except CommandError as e:  # a typo should not end the session
                    print(f"error: {e}", file=sys.stderr)
    else:
        data = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode("utf-8")
        texts = read_lines(data, "stdin")
        if not any(text.strip() for text in texts):
            raise CommandError("nothing to translate: stdin had no text; give texts as arguments, "
                               "--file, or one per line on stdin")
        translate_lines(trained, texts, args, "stdin")


def chosen_checkpoint(args) -> str:
    """--checkpoint, or with --best the best.npz beside it."""
    checkpoint = getattr(args, "checkpoint_path", None) or args.checkpoint
    if getattr(args, "best", False):
        from transformer.train import BEST

        return str(Path(checkpoint).with_name(BEST))
    return checkpoint


def add_translate_parser(commands):
    from transformer.train import BEST

    p = commands.add_parser("translate", help="run a trained model on texts", description=(
        "Translate each text given, each line of --file, or each line of stdin: one output line per "
        "input line, in order, decoded in batches. If any line cannot be translated (empty, characters "
        "the model does not know), nothing is, and one error line names the first few."))
    p.add_argument("texts", nargs="*", help="source texts, e.g. '26 November 2026'")
    p.add_argument("--file", metavar="PATH", help="translate each line of this UTF-8 file")
    p.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT,
                   help=f"a checkpoint or an exported .safetensors model (default: {DEFAULT_CHECKPOINT})")
    p.add_argument("--best", action="store_true",
                   help=f"use {BEST} beside --checkpoint: the model of the best validation score")
    p.add_argument("--beam", type=int_between(1, MAX_BEAM), default=1,
                   help=f"beam size, 1 to {MAX_BEAM} (1: greedy, the default)")
    p.add_argument("--batch-size", dest="batch_size", type=int_between(1, MAX_TRANSLATE_BATCH), default=64,
                   help=f"texts decoded at once, 1 to {MAX_TRANSLATE_BATCH} (default 64)")
    p.add_argument("--show-source", action="store_true", help="print 'source → output'")
    p.set_defaults(run=run_translate, usage_error=p.error)


# ---------------------------------------------------------------------------- attention

ATTENTION_KINDS = {"all": ("self_attn", "cross_attn"), "self": ("self_attn",), "cross": ("cross_attn",)}


def run_attention(args):
    from transformer.inspection import attention_maps
    from transformer.plots import plot_attention
    from transformer.tasks import get_task

    trained = load_checkpoint_for(args.checkpoint)
    text = args.text
    if text is None:  # an example of the model's own task
        task = task_of(trained, args.checkpoint, "give the text to draw with --text")
        text, _ = get_task(task).generate(np.random.default_rng(args.seed))
    check_known_chars(trained.tokenizer, [text])
    maps, output = attention_maps(trained.model, trained.tokenizer, text, trained.extra_tokens)
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
    p.add_argument("--seed", type=int_between(0, 2**63 - 1), default=0, help="picks the default example")
    p.add_argument("--out", type=file_name, default="attention.png",
                   help="image file (default: attention.png; a name without a suffix gets .png)")
    p.set_defaults(run=run_attention)


# ---------------------------------------------------------------------------- graph

def run_graph(args):
    from minigrad.html import to_html
    from minigrad.tracing import trace
    from minigrad.viz import NO_DOT_MESSAGE, render
    from transformer.inspection import model_loss

    trained = load_checkpoint_for(args.checkpoint)
    task = task_of(trained, args.checkpoint,
                   "graph runs the model on a batch of the task's examples, so it needs a model of a task")
    loss = model_loss(trained.model, trained.tokenizer, task, batch_size=args.batch)
    if shutil.which("dot") is None:  # both the picture and the page are laid out by Graphviz
        raise CommandError(NO_DOT_MESSAGE)
    title = f"Transformer forward + loss, depth {args.depth}"
    if args.html:  # the page steps through backward, so run it (keeping the graph to draw)
        with trace() as steps:
            loss.backward(retain_graph=True)
        path = to_html(loss, depth=args.depth, trace=steps, title=title).save(args.out or "model.html")
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
    p.add_argument("--out", type=file_name,
                   help="output file; .svg, .png or .pdf (default: model.svg; with --html: model.html)")
    p.set_defaults(run=run_graph)


# ---------------------------------------------------------------------------- export

def run_export(args):
    from transformer.interop import export_safetensors

    trained = load_checkpoint_for(args.checkpoint)
    arrays = export_safetensors(trained.model, trained.tokenizer, args.out, names=args.names,
                                train_config=trained.train_config, step=trained.step,
                                extra_tokens=trained.extra_tokens)
    print(f"wrote {len(arrays)} tensors ({sum(a.size for a in arrays.values()):,} numbers) under {args.names} "
          f"names, with the config and tokenizer, to {args.out}")


def add_export_parser(commands):
    p = commands.add_parser("export", help="write a checkpoint's model as a .safetensors file", description=(
        "Write the model of a training checkpoint as a .safetensors file, with its config and tokenizer "
        "in the metadata: under PyTorch's names and layouts (loads into transformer.torch_model."
        "TorchTransformer, see docs/state_dict.md) or under ours. translate --checkpoint reads it back."))
    p.add_argument("checkpoint", help="a training checkpoint, e.g. runs/dates/checkpoint.npz")
    p.add_argument("--out", type=file_name, default="model.safetensors",
                   help="output file (default: model.safetensors)")
    p.add_argument("--names", choices=["torch", "minigrad"], default="torch",
                   help="torch (default): torch.nn's names and (out, in) layouts; minigrad: our state_dict")
    p.set_defaults(run=run_export)


# ---------------------------------------------------------------------------- main

def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def file_name(text):
    """An argparse type: a non-empty path."""
    if not text:
        raise argparse.ArgumentTypeError("an empty file name")
    return text


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

    for stream in (sys.stdout, sys.stderr):  # a terminal that cannot show "→" gets "\u2192"
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    try:  # a closed stdout (`... | head -1`) only silences the output
        with threadpool_limits(limits=thread_count(args), user_api="blas"), \
                contextlib.redirect_stdout(OutputThatMayClose(sys.stdout)):
            try:
                args.run(args)
            finally:
                sys.stdout.flush()
    except (CommandError, CheckpointError, ValueError, OSError) as e:
        if isinstance(e, OSError) and e.filename is not None and e.strerror:  # not "[Errno 28] ..."
            e = f"{e.filename}: {e.strerror}"
        message = " ".join(str(e).split())  # one line, however the message was written
        print(f"python -m transformer {args.command}: error: {message}", file=sys.stderr)
        return 1
    return 0

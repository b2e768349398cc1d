"""Train a Transformer on one of the tasks in transformer.tasks, or on real pairs.

    python -m transformer train --task dates        # or, in Python:
    >>> run = train(TrainConfig.for_task("copy", steps=400, out="runs/copy"))  # doctest: +SKIP
    >>> run = train(TrainConfig.for_data("cmudict", max_minutes=60))           # doctest: +SKIP

One config dataclass (transformer.train_config) and one loop that reads top to bottom:

    batch -> forward -> label-smoothed loss -> backward -> clip -> Adam step -> lr schedule

every ``eval_every`` steps the model is scored on held-out data (loss, token accuracy,
and exact match with greedy decoding for a task; word and token error rates for real
data, see transformer.run_data and transformer.scoring), and the best so far is kept in
best.npz; every ``checkpoint_every`` steps, every ``checkpoint_seconds`` of training, at
the end, and on Ctrl-C / SIGTERM / SIGHUP a checkpoint is written.  ``max_minutes``
ends the run between steps once that much training time is spent (see
BUDGET_TIMED_STEPS).  ``train(config, resume=path)`` continues a run and, with the same
config, ends with exactly the weights an uninterrupted run ends with.

A step whose loss or gradient norm is not finite (inf or NaN) is never applied: training
stops with TrainingDiverged naming the step (``on_nonfinite="stop"``, the default) or
goes on without it (``"skip"``), and a model with a non-finite weight is never saved.

The run directory ``config.out`` receives:
    checkpoint.npz       model, optimizer, schedule, configs, tokenizer, RNG states, step
                         (and for real data the fingerprints of the data files)
    checkpoint.prev.npz  the checkpoint before that one
    best.npz             a checkpoint of the evaluation with the lowest validation error
    metrics.jsonl        one JSON object per line: {"split", "step", "epoch", "loss", ...}
    training.png         loss and accuracy curves (written when the run finishes)
    learning_curve.png   real data: validation error rates against minutes of training
    .train.lock          held while a run uses the directory: a second run is refused
A directory that already holds a run is only reused to resume it, or with ``overwrite``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout
from tqdm.auto import tqdm

from minigrad.checkpoint import MAX_STEP, is_int_between, load_checkpoint, parse_json
from minigrad.files import write_atomically
from minigrad.optim import Adam, AdamW, NoamSchedule, WarmupCosineSchedule, clip_grad_norm_
from transformer.checkpoints import read_run_config, save_training_checkpoint
from transformer.evaluation import evaluate, token_accuracy_counts, worst_length
from transformer.loss import sequence_loss
from transformer.model import Transformer, TransformerConfig
from transformer.plots import plot_learning_curve, plot_training
from transformer.run_data import RunData, check_fingerprints, load_run_data
from transformer.scoring import decode_and_score, error_rate_name
from transformer.tasks import Pair, batches, make_splits, tokenizer_for
from transformer.tokenizer import Tokenizer
from transformer.train_config import (  # noqa: F401  (re-exported: users import them from here)
    MODEL_SIZES,
    SETTING_BOUNDS,
    TASK_DEFAULTS,
    SettingError,
    TrainConfig,
)


class TrainingDiverged(FloatingPointError):
    """A step's loss or gradient norm was not finite and ``on_nonfinite`` is "stop"."""


class RunDirectoryError(RuntimeError):
    """The run directory is in use by another run, or holds a run this one would mix with."""


class RunWarning(UserWarning):
    """Something in a run directory was repaired: a torn metrics line, a left-over temp file."""


class DataWarning(UserWarning):
    """Something about the data that may make the scores mean less: held-out sources also trained on."""


def build_model(config: TrainConfig, tokenizer: Tokenizer) -> Transformer:
    """The Transformer of ``config.dimensions()`` over the source and target vocabularies."""
    sizes = {**config.dimensions(), "dropout": config.dropout, "norm_first": config.norm_first}
    model_config = TransformerConfig(tokenizer.source.vocab_size, tokenizer.target.vocab_size, **sizes)
    return Transformer(model_config, seed=config.seed)


def build_optimizer(config: TrainConfig, model: Transformer):
    """Adam with the paper's β₁=0.9, β₂=0.98, ε=1e-9 (or AdamW); the schedule sets its lr."""
    if config.optimizer == "adamw":
        return AdamW(model.parameters(), betas=(0.9, 0.98), eps=1e-9, weight_decay=config.weight_decay)
    return Adam(model.parameters(), betas=(0.9, 0.98), eps=1e-9)


UNFITTED_HORIZON = 10**9  # cosine steps of a budgeted run before its step count is fitted


def build_schedule(config: TrainConfig, optimizer, d_model: int, going_on_from=None):
    """Noam (the paper's), or a cosine decay from the same peak lr_scale / √(d_model · warmup);
    with ``going_on_from`` (a schedule), at the step that schedule has reached."""
    schedule = NoamSchedule(optimizer, d_model, config.warmup_steps, config.lr_scale)
    if config.schedule != "noam":
        peak = schedule.lr_at(config.warmup_steps)
        # A budgeted run times its first steps before it fixes config.steps (see
        # BUDGET_TIMED_STEPS); until then the lr warms up or stays near the peak.
        horizon = config.steps if config.steps is not None else UNFITTED_HORIZON
        schedule = WarmupCosineSchedule(optimizer, peak, config.warmup_steps,
                                        max(horizon, config.warmup_steps + 1))
    if going_on_from is not None:
        schedule.load_state_dict(going_on_from.state_dict())
    return schedule


class BatchStream:
    """Training batches from ``tasks.batches``, epoch after epoch, resumable exactly.

    ``batches`` draws an epoch's whole order from the Generator when it is called, so an
    epoch is fixed by the Generator state at its start.  The stream's state is that state
    plus how many batches of the epoch were used; loading it rebuilds the epoch and skips
    those batches.
    """

    def __init__(self, pairs: list[Pair], tokenizer: Tokenizer, batch_size: int, rng: np.random.Generator):
        self.pairs, self.tokenizer, self.batch_size, self.rng = pairs, tokenizer, batch_size, rng
        self._start_epoch()

    def _start_epoch(self):
        self.epoch_start = self.rng.bit_generator.state
        self.used = 0
        self._epoch = batches(self.pairs, self.tokenizer, self.batch_size, self.rng)

    def __iter__(self):
        return self

    def __next__(self):
        batch = next(self._epoch, None)
        if batch is None:  # the epoch is over: draw the next one
            self._start_epoch()
            batch = next(self._epoch)
        self.used += 1
        return batch

    def state_dict(self) -> dict:
        return {"epoch_start": self.epoch_start, "used": self.used}

    def load_state_dict(self, state: dict):
        in_epoch = -(-len(self.pairs) // self.batch_size)  # batches in one epoch
        if state["used"] > in_epoch:
            raise ValueError(f"the checkpoint has used {state['used']} batches of its epoch, but "
                             f"{len(self.pairs)} training examples in batches of {self.batch_size} make {in_epoch}; "
                             "resume with the n_train and batch_size it was saved with")
        self.rng.bit_generator.state = state["epoch_start"]
        self._start_epoch()
        for _ in range(state["used"]):
            next(self._epoch)
        self.used = state["used"]


class StopOnSignal:
    """While active, Ctrl-C (SIGINT), SIGTERM and SIGHUP (the terminal or ssh session
    closed) set ``received`` instead of killing the program, so the loop can finish its
    step, save a checkpoint and return.  A second Ctrl-C stops at once
    (KeyboardInterrupt), except while ``saving`` is set: a save is never cut short.  A
    signal ignored when the run began stays ignored.  The previous handlers come back on
    exit.  Signal handlers can only be set in the main thread; elsewhere this does nothing.
    """

    signals = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
    saving = False

    def __enter__(self):
        self.received = None
        self._previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self._previous.get(signum) is signal.SIG_IGN:
            return  # ignored when the run began (``nohup`` ignores SIGHUP): it stays ignored
        if self.received is not None and signum == signal.SIGINT and not self.saving:
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name

    def __exit__(self, *exc_info):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False


# The numbers each kind of metrics record must hold (the learning curves plot them).
METRIC_FIELDS = {"train": ("loss", "token_accuracy"), "valid": ("loss", "token_accuracy"), "test": ()}
# A held-out record also holds the scores of one kind: a task's exact match, or the error
# rates of real data (what the plots and best.npz read).
HELD_OUT_SCORES = (("exact_match",), ("word_error_rate", "token_error_rate"))
MAX_METRICS_LINE = 2**20  # bytes; a record is a few hundred


class MetricsLog:
    """Appends one JSON object per line to ``path``.  When a run is resumed at ``step``,
    lines written after that step (by a run that crashed before saving) are dropped; the
    file is rewritten atomically, a line at a time (a long run's log is never held whole).

    Each line must be a JSON object of at most MAX_METRICS_LINE bytes, nested at most
    MAX_META_DEPTH deep (minigrad.checkpoint.parse_json), with "split", an integer
    "step" and, for the splits in METRIC_FIELDS, those numbers.  A last line that is not
    is what an interrupted append leaves (a full disk, a kill): ``records`` drops it with
    a RunWarning.  A bad line anywhere else is damage that should not be papered over:
    ValueError naming the file and the line.
    """

    def __init__(self, path: Path, resume_step: int | None = None):
        self.path = path
        kept = () if resume_step is None else (r for r in self.records() if r["step"] <= resume_step)
        write_atomically(self.path, lambda f: f.writelines((json.dumps(r) + "\n").encode() for r in kept))

    def write(self, record: dict):
        try:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as e:  # a full disk: name the file (the next run drops a cut last line)
            raise OSError(e.errno, f"cannot append to the metrics log: {e.strerror}", str(self.path)) from e

    def read(self) -> list[dict]:
        return list(self.records())

    def records(self) -> Iterator[dict]:
        """The records, one line at a time."""
        if not self.path.exists():
            return
        bad = None  # (line number, problem) of a bad line: damage unless no record follows it
        with self.path.open("rb") as f:
            for number, line in enumerate(_lines(f, MAX_METRICS_LINE), 1):
                if not line.strip():
                    continue
                if bad is not None:
                    raise ValueError(f"{self.path}: line {bad[0]} is not a metrics record ({bad[1]}); "
                                     "repair or delete that line")
                try:
                    record = metrics_record(line)
                except ValueError as e:
                    bad = number, e
                    continue
                yield record
        if bad is not None:
            warnings.warn(f"{self.path}: dropped its last line ({bad[0]}), cut short by an interrupted "
                          f"write ({bad[1]})", RunWarning, stacklevel=2)


def _lines(f, max_bytes: int) -> Iterator[bytes]:
    """The lines of binary file ``f``, each cut to ``max_bytes`` + 1 bytes: the rest of a
    longer line is skipped unread, and what is kept fails to parse as too long."""
    while line := f.readline(max_bytes + 1):
        if len(line) > max_bytes and not line.endswith(b"\n"):
            while (rest := f.readline(max_bytes)) and not rest.endswith(b"\n"):
                pass
        yield line


def metrics_record(line: bytes | str) -> dict:
    """One metrics.jsonl line as a record, checked (see MetricsLog); ValueError saying why not."""
    record = parse_json(line, "the line", max_bytes=MAX_METRICS_LINE)
    if not (isinstance(record, dict) and is_int_between(record.get("step"), 0, MAX_STEP)
            and isinstance(record.get("split"), str)):
        raise ValueError("not a {\"split\": str, \"step\": int, ...} object")
    def is_number(name):
        return isinstance(record.get(name), (int, float)) and not isinstance(record.get(name), bool)

    missing = [name for name in METRIC_FIELDS.get(record["split"], ()) if not is_number(name)]
    if record["split"] in ("valid", "test") and not any(all(map(is_number, kind)) for kind in HELD_OUT_SCORES):
        missing.append("exact_match (or word_error_rate and token_error_rate)")
    if missing:
        raise ValueError(f"a {record['split']} record without the number(s) {', '.join(missing)}")
    return record


# ---------------------------------------------------------------------------- the run directory

CHECKPOINT, PREVIOUS, METRICS, LOCK = "checkpoint.npz", "checkpoint.prev.npz", "metrics.jsonl", ".train.lock"
BEST = "best.npz"
RUN_FILES = (CHECKPOINT, PREVIOUS, BEST, METRICS)  # what a run writes and a resume reads back
PICTURES = ("training.png", "learning_curve.png")


def lock_run_directory(out: Path) -> FileLock:
    """Create ``out`` and lock it for this run (flock on ``out/.train.lock``).  The
    operating system drops the lock when the process ends, however it ends, so a killed
    run leaves nothing that blocks the next one."""
    if out.exists() and not out.is_dir():
        raise SettingError("out", f"{out} is a file; give a directory for the run's checkpoint and metrics")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SettingError("out", f"cannot create the directory {out}: {e.strerror}") from None
    lock = FileLock(out / LOCK, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise RunDirectoryError(f"{out} is in use by another training run (it holds {out / LOCK}); wait for "
                                "it to end, or give this run another --out") from None
    return lock


def prepare_run_directory(out: Path, resume, overwrite: bool):
    """Refuse to mix two runs in ``out``; remove what interrupted saves left behind."""
    resuming_here = resume is not None and Path(resume).parent.resolve() == out.resolve()
    if resuming_here:
        check_resuming_the_newest(out, resume)
    held = [name for name in RUN_FILES
            if (out / name).exists() and (out / name).stat().st_size > 0]
    if overwrite and resuming_here:
        raise RunDirectoryError(f"--overwrite would delete the run being resumed from {resume}; resume "
                                "without it")
    if held and not resuming_here:
        if not overwrite:
            hint = f"continue it with --resume {out / CHECKPOINT}, or " if CHECKPOINT in held else ""
            raise RunDirectoryError(f"{out} already holds a training run ({', '.join(held)}); {hint}start "
                                    "it afresh with --overwrite, or give another --out")
        for name in RUN_FILES + PICTURES:
            (out / name).unlink(missing_ok=True)
    leftovers = [temp for name in RUN_FILES for temp in out.glob(f".{name}.*.tmp")]
    for temp in leftovers:  # we hold the lock: no other run is writing them
        temp.unlink(missing_ok=True)
    if leftovers:
        warnings.warn(f"{out}: removed {len(leftovers)} temp file(s) left by an interrupted save: "
                      f"{', '.join(t.name for t in leftovers)}", RunWarning, stacklevel=3)


def check_resuming_the_newest(out: Path, resume):
    """Refuse to resume in ``out`` from another file than its checkpoint.npz (e.g. its
    checkpoint.prev.npz): the first save would replace the newer checkpoint.npz."""
    newest = out / CHECKPOINT
    if newest.exists() and not os.path.samefile(resume, newest):
        raise RunDirectoryError(f"{resume} is older than {newest}, which resuming in {out} would replace at "
                                f"its first save; resume from {newest}, or go on from {resume} in another "
                                "directory with --out")


def keep_previous(checkpoint: Path):
    """Turn the current ``checkpoint.npz`` into ``checkpoint.prev.npz``, atomically: a hard
    link to it (a copy where links are not supported) under a temp name, renamed over the
    old one.  The save that follows replaces ``checkpoint.npz`` by a new file and leaves
    this one; at every moment both names hold complete checkpoints."""
    previous = checkpoint.with_name(PREVIOUS)
    if not checkpoint.exists() or (previous.exists() and os.path.samefile(checkpoint, previous)):
        return  # already kept (a save failed after this linked them): renaming a link over its twin does nothing
    temp = checkpoint.with_name(f".{PREVIOUS}.{secrets.token_hex(4)}.tmp")
    try:
        try:
            os.link(checkpoint, temp)
        except OSError:
            shutil.copyfile(checkpoint, temp)
        os.replace(temp, previous)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


@dataclass
class TrainRun:
    """What ``train`` returns."""

    model: Transformer
    tokenizer: Tokenizer
    config: TrainConfig
    step: int                  # optimizer steps done
    checkpoint: Path
    stopped_by: str | None     # "SIGINT"/"SIGTERM"/"SIGHUP" if a signal ended the run early
    test: dict | None          # evaluate() on the test split, when the run finished
    seconds: float             # training wall time, over all resumed parts
    skipped: int = 0           # steps not applied because of a non-finite loss or gradient norm
    budget_spent: bool = False  # max_minutes ended the run (it finished: evaluated and saved)
    best_step: int | None = None  # the step of best.npz, the lowest validation error so far
    data: RunData | None = None   # real data: the splits, tokenizers and the unit of the error rate


# A run with a time budget and no step count: its first steps are timed, and then the
# step count is fixed (and saved with the config) so that the cosine schedule decays to
# 0 at the budget's end.  Timing stops after BUDGET_TIMED_STEPS steps or when
# BUDGET_TIMED_SHARE of the budget is spent, whichever comes first; the first step of a
# process is left out (it is slower: caches are cold).  The steps that fit are those
# that fit what is left of the budget at the mean speed of the timed steps, less
# BUDGET_VALIDATION_SHARE of it kept for validation and checkpoints.  Batches hold one
# source length each, so step times vary with the batch, and the first seconds of a
# run may overlap another process starting up: the mean of 50 CMUdict steps ranged
# from 114 to 152 ms between runs on one 2-core machine (each beside another run), and
# a run that timed 146 ms would have ended its schedule 11 minutes before its hour.
# 300 steps are 40 seconds of CMUdict, within its warmup of 500 steps, where the lr
# does not depend on the step count being fitted.
# The speed of a machine changes while a run goes on (another process starts or ends),
# so the count is fitted again at every evaluation from the speed since the previous
# fit, evaluations and checkpoints included, and the cosine is stretched or shortened
# to end at the budget's end: fitted once, from their first steps, two one-hour CMUdict
# runs ended their schedules 10 and 7 minutes early, a third was stopped by the budget
# 931 steps before its end, and a two-hour run ended 17 minutes early.  A resumed run
# keeps the count it was saved with.
BUDGET_TIMED_STEPS = 300
BUDGET_TIMED_SHARE = 0.1
BUDGET_VALIDATION_SHARE = 0.05


def steps_for_budget(done: int, seconds_per_step: float, seconds_left: float,
                     kept: float = BUDGET_VALIDATION_SHARE) -> int:
    """The step count of a budgeted run: ``done`` steps, and as many more as fit in
    ``seconds_left`` less the share ``kept`` for evaluations (at least one more)."""
    return done + max(1, int(seconds_left * (1 - kept) / max(seconds_per_step, 1e-6)))


def validation_error(valid: dict) -> tuple[float, ...]:
    """What best.npz minimizes (tuples compare element by element): on real data the word
    error rate, ties broken by the token error rate; on a task 1 - exact match."""
    if "word_error_rate" in valid:
        return (valid["word_error_rate"], valid["token_error_rate"])
    return (1.0 - valid["exact_match"],)


def abbreviation(unit: str) -> str:
    """"PER" for phonemes (phoneme error rate), "SER", "CER", "TER"."""
    return "".join(word[0] for word in error_rate_name(unit).split()).upper()


def valid_sample(references: dict[str, list[str]], n: int, seed: int) -> list[str]:
    """The valid sources decoded at each evaluation: all, or ``n`` of them drawn once
    (seeded), in the split's order, so that every evaluation scores the same sources."""
    sources = list(references)
    if len(sources) <= n:
        return sources
    chosen = np.random.default_rng([seed, 3]).choice(len(sources), size=n, replace=False)
    return [sources[i] for i in sorted(chosen)]


def train(config: TrainConfig, resume=None, progress: bool = True,
          on_step: Callable[[int], None] | None = None, overwrite: bool = False) -> TrainRun:
    """Train as ``config`` says; continue from the checkpoint ``resume`` if given.

    ``config.out`` is locked for the run.  If it already holds a run (a checkpoint or
    metrics), it is only continued by resuming its own checkpoint, or deleted first when
    ``overwrite`` is true; otherwise RunDirectoryError.  ``on_step(step)`` is called after
    each step (tests use it to send signals).
    """
    out = Path(config.out)
    if resume is not None:
        _, extra = read_run_config(resume)
        if config.steps is not None and config.steps < extra["step"]:
            raise SettingError("steps", f"must be ≥ {extra['step']}, the step of the checkpoint {resume}, "
                                        f"got {config.steps}")
    with lock_run_directory(out):
        prepare_run_directory(out, resume, overwrite)
        return _train_in(out, config, resume, progress, on_step)


def _train_in(out: Path, config: TrainConfig, resume, progress, on_step) -> TrainRun:
    """The training loop, in the locked and checked run directory ``out``."""
    checkpoint_path = out / CHECKPOINT

    # ---- data, model, optimizer, schedule
    data = None
    if config.data is None:
        splits = make_splits(config.task, config.n_train, config.n_valid, config.n_test, seed=config.seed)
        tokenizer = tokenizer_for(config.task)
    else:
        data = load_run_data(config)
        splits, tokenizer = data.splits, data.tokenizer
        for line in data.notes:
            tqdm.write(line)
        for line in data.warnings:
            warnings.warn(line, DataWarning, stacklevel=3)
        valid_references = data.references("valid")
        valid_sources = valid_sample(valid_references, config.n_valid, config.seed)
        valid_pairs = [(source, target) for source in valid_sources for target in valid_references[source]]
    model = build_model(config, tokenizer)
    optimizer = build_optimizer(config, model)
    schedule = build_schedule(config, optimizer, model.config.d_model)
    data_rng = np.random.default_rng([config.seed, 2])  # batch order; model init and dropout use [seed], [seed, 1]
    train_batches = BatchStream(splits.train, tokenizer, config.batch_size, data_rng)
    step, seconds_before, best = 0, 0.0, None
    if resume is not None:
        step, seconds_before, best = restore(resume, model, optimizer, schedule, train_batches, data)
    log = MetricsLog(out / METRICS, resume_step=step if resume is not None else None)
    budget = config.max_minutes * 60 if config.max_minutes is not None else None
    timed = []  # seconds of each timed step, while a budgeted run fits its step count
    refits = config.steps is None  # a budget and no step count: fitted, then fitted again as the run goes
    last_fit = None  # (step, seconds trained) of the last fit

    # The step of the last checkpoint and its file: a resumed run starts from one.
    saved_at, saved_to = (step, Path(resume)) if resume is not None else (None, None)
    saved_time = time.perf_counter()

    def seconds_trained() -> float:
        return seconds_before + time.perf_counter() - started

    def epoch() -> float:
        """Passes over the training data so far."""
        return step * config.batch_size / len(splits.train)

    def save(path=checkpoint_path):
        """Checkpoint the state between steps; a checkpoint.npz it replaces becomes checkpoint.prev.npz."""
        nonlocal saved_at, saved_to, saved_time
        broken = [name for name, p in model.named_parameters() if not np.isfinite(p.data).all()]
        if broken:  # cannot happen after finite steps; refuse rather than replace a good checkpoint
            raise TrainingDiverged(f"step {step}: non-finite weights in {', '.join(broken[:3])}; not saved, "
                                   f"{path} is left as it was")
        extra = {"step": step, "data": train_batches.state_dict(),
                 "dropout_rng": model.dropout_rng.bit_generator.state,
                 "seconds": seconds_trained(), "best": best,
                 **({"data_files": data.fingerprints} if data is not None else {})}
        stop.saving = True  # a second Ctrl-C now waits for the save
        try:
            if path == checkpoint_path:
                keep_previous(checkpoint_path)
            save_training_checkpoint(path, model, tokenizer, optimizer, schedule, config.to_dict(), extra,
                                     extra_tokens=data.extra_tokens if data is not None else None)
        finally:
            stop.saving = False
        if path == checkpoint_path:
            saved_at, saved_to, saved_time = step, checkpoint_path, time.perf_counter()

    def validate():
        """Score the valid split, log it, and keep the model in best.npz if it is the best yet."""
        nonlocal best
        when = f"step {step} (epoch {epoch():.1f}, {seconds_trained() / 60:.1f} min)"
        if data is None:
            valid = evaluate(model, splits.valid, tokenizer, label_smoothing=config.label_smoothing)
            length, worst = worst_length(valid)
            bar.write(f"{when}: valid loss {valid['loss']:.4f}, token accuracy {valid['token_accuracy']:.2%}, "
                      f"exact match {valid['exact_match']:.2%} (worst length {length}: {worst:.2%})")
        else:
            forced = evaluate(model, valid_pairs, tokenizer, label_smoothing=config.label_smoothing, decode=False)
            scored = decode_and_score(model, tokenizer, valid_sources, [valid_references[s] for s in valid_sources],
                                      extra_tokens=data.extra_tokens)
            valid = {"loss": forced["loss"], "token_accuracy": forced["token_accuracy"],
                     **{key: scored[key] for key in ("word_error_rate", "token_error_rate", "by_length")},
                     "examples": len(valid_sources)}
            bar.write(f"{when}: valid WER {valid['word_error_rate']:.1%}, {abbreviation(data.unit)} "
                      f"{valid['token_error_rate']:.1%} (loss {valid['loss']:.3f}, {len(valid_sources):,} sources)")
        log.write({"split": "valid", "step": step, "epoch": epoch(), "minutes": seconds_trained() / 60, **valid})
        error = list(validation_error(valid))
        if best is None or error < best["error"]:
            best = {"step": step, "error": error}
            save(out / BEST)

    def fit_steps_to_budget(seconds_per_step: float, kept: float, since: str = ""):
        """Set config.steps to the steps that fit the rest of the budget at ``seconds_per_step``
        (see BUDGET_TIMED_STEPS) and rebuild the schedule there."""
        nonlocal schedule, last_fit
        before = config.steps
        config.steps = steps_for_budget(step, seconds_per_step, budget - seconds_trained(), kept)
        last_fit = (step, seconds_trained())
        schedule = build_schedule(config, optimizer, model.config.d_model, going_on_from=schedule)
        bar.total = config.steps
        bar.refresh()
        if before is None or abs(config.steps - before) > 0.05 * before:  # a change worth a line
            bar.write(f"step {step}: {seconds_per_step * 1000:.0f} ms per step{since}, so {config.steps} steps "
                      f"fit the {config.max_minutes:g}-minute budget (the end of the lr schedule)")

    def refit_steps_to_budget():
        """Fit config.steps again from the speed since the last fit, evaluations included."""
        fit_step, fit_seconds = last_fit
        if step > fit_step:
            fit_steps_to_budget((seconds_trained() - fit_seconds) / (step - fit_step), kept=0.0,
                                since=f" since step {fit_step}")

    def finished() -> bool:
        return (config.steps is not None and step >= config.steps) or budget_spent()

    def budget_spent() -> bool:
        return budget is not None and seconds_trained() >= budget

    # ---- the loop
    started = time.perf_counter()
    model.train()
    bar = tqdm(total=config.steps, initial=step, desc=config.name, disable=not progress,
               dynamic_ncols=True)
    window = {"loss": 0.0, "correct": 0, "tokens": 0, "steps": 0, "skipped": 0}  # since the last log line
    skipped, diverged = 0, None  # steps skipped in the whole run; why the run stopped, if it diverged
    shown = {}  # the last applied step's loss and accuracy, for the progress bar
    with StopOnSignal() as stop:
        done = finished()
        while not done and stop.received is None:
            step_started = time.perf_counter()
            between_steps = (train_batches.state_dict(), model.dropout_rng.bit_generator.state)
            batch = next(train_batches)
            logits = model(batch.src, batch.tgt_in)  # (B, T, V)
            loss = sequence_loss(logits, batch.tgt_out, config.label_smoothing)  # scalar
            optimizer.zero_grad()
            loss.backward()
            grad_norm = clip_grad_norm_(optimizer.params, config.clip_norm)
            lr = optimizer.lr  # the lr of this step
            nonfinite = nonfinite_part(float(loss.data), grad_norm)
            if nonfinite is not None and config.on_nonfinite == "stop":
                # Put the data and dropout streams back to where this step began, so the
                # checkpoint saved below resumes exactly at this step.
                train_batches.load_state_dict(between_steps[0])
                model.dropout_rng.bit_generator.state = between_steps[1]
                diverged = f"step {step + 1}: the {nonfinite}; the step was not applied"
                break
            if nonfinite is None:
                optimizer.step()
                correct, tokens = token_accuracy_counts(logits.data, batch.tgt_out)
                window["loss"] += float(loss.data)
                window["correct"] += correct
                window["tokens"] += tokens
                window["steps"] += 1
                shown = dict(loss=f"{float(loss.data):.3f}", acc=f"{correct / tokens:.3f}")
            else:  # on_nonfinite == "skip": throw the batch away, keep the step count
                skipped += 1
                window["skipped"] += 1
                bar.write(f"step {step + 1}: the {nonfinite}; step skipped")
            schedule.step()
            step += 1
            bar.set_postfix(epoch=f"{epoch():.2f}", **shown)
            if config.steps is None:  # a budgeted run still timing its steps
                timed.append(time.perf_counter() - step_started)
                if len(timed) >= BUDGET_TIMED_STEPS or seconds_trained() >= BUDGET_TIMED_SHARE * budget:
                    fit_steps_to_budget(float(np.mean(timed[1:] if len(timed) > 1 else timed)),
                                        kept=BUDGET_VALIDATION_SHARE)
            done = finished()

            bar.update(1)
            if (step % config.log_every == 0 or done) and window["steps"]:
                log.write({"split": "train", "step": step, "epoch": epoch(), "loss": window["loss"] / window["steps"],
                           "token_accuracy": window["correct"] / window["tokens"], "lr": lr,
                           "grad_norm": grad_norm, **({"skipped": window["skipped"]} if window["skipped"] else {})})
                window = dict.fromkeys(window, 0)
            if step % config.eval_every == 0 or done:
                validate()
                if refits and last_fit is not None and not done:
                    refit_steps_to_budget()
                    done = finished()
            if (step % config.checkpoint_every == 0 or done
                    or time.perf_counter() - saved_time >= config.checkpoint_seconds):
                save()
            if on_step is not None:
                on_step(step)
        if (stop.received or diverged) and saved_at != step:
            save()  # stopped early: keep what was learned
    bar.close()
    if diverged:
        raise TrainingDiverged(f"{diverged}; training stopped, the last checkpoint (step {saved_at}) is "
                               f"{saved_to}")
    seconds = seconds_trained()

    # ---- the end: test score and pictures
    test = None
    if stop.received is None:
        title = f"{config.name}: {config.model} model, batch {config.batch_size}"
        if data is None:
            test = evaluate(model, splits.test, tokenizer, label_smoothing=config.label_smoothing)
            log.write({"split": "test", "step": step, "epoch": epoch(), **test, "seconds": seconds})
        else:  # every test source, greedy
            references = data.references("test")
            test = decode_and_score(model, tokenizer, list(references), list(references.values()),
                                    extra_tokens=data.extra_tokens, progress=progress)
            log.write({"split": "test", "step": step, "epoch": epoch(), "minutes": seconds / 60, "seconds": seconds,
                       **{key: value for key, value in test.items() if key != "predictions"}})
            plot_learning_curve(log.records(), out / "learning_curve.png", error_rate_name(data.unit), title=title)
        plot_training(log.records(), out / "training.png", title=title)
    return TrainRun(model, tokenizer, config, step, checkpoint_path, stop.received, test, seconds, skipped,
                    budget_spent=stop.received is None and step < config.steps and budget_spent(),
                    best_step=best["step"] if best else None, data=data)


def nonfinite_part(loss: float, grad_norm: float) -> str | None:
    """Which of a step's loss and gradient norm is inf or NaN, as words; None if neither."""
    if not np.isfinite(loss):
        return f"loss is {loss}"
    if not np.isfinite(grad_norm):
        return f"gradient norm is {grad_norm}"
    return None


def restore(path, model, optimizer, schedule, train_batches: BatchStream,
            data: RunData | None = None) -> tuple[int, float, dict | None]:
    """Load a training checkpoint into the run; returns (step, seconds trained so far,
    the best validation so far: {"step", "error"} or None).  A real-data run is only
    resumed on the data it was trained on (run_data.DataChanged otherwise)."""
    _, extra = read_run_config(path)
    if data is not None:
        check_fingerprints(extra["data_files"], data.fingerprints, path)
    load_checkpoint(path, model, optimizer, schedule)
    train_batches.load_state_dict(extra["data"])
    model.dropout_rng.bit_generator.state = extra["dropout_rng"]
    return int(extra["step"]), float(extra.get("seconds", 0.0)), extra.get("best")

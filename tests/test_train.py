"""Training: it learns, it resumes bit for bit, and signals end it with a checkpoint."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import transformer.train as train_module
from minigrad.checkpoint import CheckpointError, load_checkpoint
from transformer import evaluation
from transformer.checkpoints import load_trained, read_run_config
from transformer.evaluation import exact_matches, format_by_length, score_typed_inputs
from transformer.tasks import TASKS, make_splits, tokenizer_for
from transformer.tokenizer import EOS, PAD
from transformer.train import (
    TASK_DEFAULTS,
    BatchStream,
    MetricsLog,
    RunDirectoryError,
    RunWarning,
    SettingError,
    StopOnSignal,
    TrainConfig,
    TrainingDiverged,
    build_model,
    train,
)


@pytest.fixture
def sigint_handled():
    """Python's usual Ctrl-C handler for the test, whatever pytest started with: a
    shell's background job (``pytest &`` in a script, ``nohup``) starts with SIGINT
    ignored, and StopOnSignal leaves an ignored SIGINT ignored."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


@pytest.fixture
def sighup_handled():
    """SIGHUP's default disposition for the test, whatever pytest started with (``nohup``
    ignores it, and StopOnSignal leaves an ignored SIGHUP ignored)."""
    before = signal.signal(signal.SIGHUP, signal.SIG_DFL)
    yield
    signal.signal(signal.SIGHUP, before)


@pytest.fixture
def sigint_ignored():
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    yield
    signal.signal(signal.SIGINT, before)


def small_config(tmp_path, name, **overrides):
    """A micro model on a little copy data: a few steps take well under a second."""
    settings = dict(model="micro", dropout=0.1, steps=6, n_train=200, n_valid=10, n_test=10, eval_every=100,
                    checkpoint_every=100, log_every=2, out=str(tmp_path / name))
    return TrainConfig.for_task("copy", **{**settings, **overrides})


def test_copy_reaches_the_target_at_every_length_within_its_step_budget(tmp_path):
    # The target, with the task's defaults: the tiny model, batch 64, 800 steps, >= 99%
    # greedy exact match on the held-out test split at every source length 1..10 (all 10
    # one-digit and 100 two-digit strings, ~236 of each longer length; about 25 s on 2 cores).
    config = TrainConfig.for_task("copy", out=str(tmp_path))
    assert (config.model, config.batch_size, config.steps) == ("tiny", 64, 800)
    run = train(config, progress=False)
    by_length = run.test["by_length"]
    assert list(by_length) == [str(n) for n in range(1, 11)]
    assert by_length["1"]["examples"] == 10 and by_length["2"]["examples"] == 100
    assert all(bucket["exact_match"] >= 0.99 for bucket in by_length.values()), by_length
    # and what a person types first: "7", "1111", "0000000000", "1211", ...
    assert "300 of 300 right" in score_typed_inputs(run.model, run.tokenizer, TASKS["copy"])
    assert (tmp_path / "training.png").read_bytes().startswith(b"\x89PNG")
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["split"] == "test" and records[-1]["by_length"] == by_length
    assert all("by_length" in r for r in records if r["split"] == "valid")
    assert records[0]["loss"] > 2 * records[-2]["loss"]  # the first train window against the last valid


def test_resume_after_interrupt_equals_uninterrupted_run_bitwise(tmp_path, sigint_handled):
    # 200 examples make epochs of 4 batches: the interrupted run stops mid-epoch at step 3
    # and the resumed one crosses into a new epoch; dropout is on, so its RNG matters too.
    straight = train(small_config(tmp_path, "straight"), progress=False)

    def interrupt_at_step_3(step):
        if step == 3:
            os.kill(os.getpid(), signal.SIGINT)

    interrupted = train(small_config(tmp_path, "resumed"), progress=False, on_step=interrupt_at_step_3)
    assert (interrupted.stopped_by, interrupted.step, interrupted.test) == ("SIGINT", 3, None)
    resumed = train(small_config(tmp_path, "resumed"), resume=interrupted.checkpoint, progress=False)
    assert resumed.step == 6

    final_straight = load_checkpoint(straight.checkpoint)
    assert final_straight["extra"]["step"] == 6
    for name, array in straight.model.state_dict().items():
        assert np.array_equal(array, resumed.model.state_dict()[name]), name
    a, b = np.load(straight.checkpoint), np.load(resumed.checkpoint)
    optimizer_keys = [k for k in a.files if k.startswith("optimizer/")]
    assert optimizer_keys and all(np.array_equal(a[k], b[k]) for k in optimizer_keys)
    assert resumed.test == straight.test


def test_a_different_seed_gives_different_weights(tmp_path):
    # The check the bitwise test relies on: equality is not automatic.
    first = train(small_config(tmp_path, "a", steps=2), progress=False)
    second = train(small_config(tmp_path, "b", steps=2, seed=1), progress=False)
    weights = first.model.state_dict()
    assert any(not np.array_equal(v, second.model.state_dict()[k]) for k, v in weights.items())


def test_sigterm_saves_a_usable_checkpoint_and_restores_the_old_handler(tmp_path):
    before = signal.getsignal(signal.SIGTERM)
    run = train(small_config(tmp_path, "run"), progress=False,
                on_step=lambda step: step == 2 and os.kill(os.getpid(), signal.SIGTERM))
    assert (run.stopped_by, run.step) == ("SIGTERM", 2)
    assert signal.getsignal(signal.SIGTERM) is before
    trained = load_trained(run.checkpoint)
    assert trained.step == 2 and trained.train_config == run.config.to_dict()
    assert trained.tokenizer.chars == tokenizer_for("copy").chars
    config, extra = read_run_config(run.checkpoint)
    assert config["model"]["d_model"] == 32 and extra["data"]["used"] == 2


def test_stop_on_signal_sets_a_flag_instead_of_raising(sigint_handled):
    with StopOnSignal() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.received == "SIGINT"
        with pytest.raises(KeyboardInterrupt):  # a second Ctrl-C stops at once
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_stop_on_signal_leaves_an_ignored_sigint_ignored(sigint_ignored):
    with StopOnSignal() as stop:
        os.kill(os.getpid(), signal.SIGINT)  # ignored: the run goes on
        assert stop.received is None
        os.kill(os.getpid(), signal.SIGTERM)  # still stops it
        assert stop.received == "SIGTERM"
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_signal_tests_pass_when_pytest_starts_with_sigint_and_sighup_ignored():
    # What `nohup pytest &` does to the process: a background job of a script ignores
    # SIGINT, nohup ignores SIGHUP, and both stay ignored in every process pytest starts.
    here = os.path.abspath(__file__)
    cli_tests = os.path.join(os.path.dirname(here), "test_cli.py")
    tests = "(stop_on_signal or resume_after_interrupt or sighup or hang_up) and not pytest_starts"
    script = ("import signal, sys, pytest; signal.signal(signal.SIGINT, signal.SIG_IGN); "
              "signal.signal(signal.SIGHUP, signal.SIG_IGN); "
              f"sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', {here!r}, {cli_tests!r}, '-k', {tests!r}]))")
    # From the repository's root, so that the child imports this checkout, installed or not;
    # in a session of its own, so that a timeout also ends the trainings it started.
    child = subprocess.Popen([sys.executable, "-c", script], cwd=os.path.dirname(os.path.dirname(here)),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = child.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        out, err = child.communicate()
    assert child.returncode == 0, out + err
    assert "7 passed" in out, out


def test_batch_stream_resumes_from_its_state():
    pairs = make_splits("reverse", 50, 0, 0, seed=0).train
    tokenizer = tokenizer_for("reverse")
    stream = BatchStream(pairs, tokenizer, 16, np.random.default_rng(5))  # 4 batches per epoch
    for _ in range(3):
        next(stream)
    state = json.loads(json.dumps(stream.state_dict()))  # it goes through a checkpoint's JSON
    expected = [next(stream).src_texts for _ in range(6)]
    copy = BatchStream(pairs, tokenizer, 16, np.random.default_rng(99))
    copy.load_state_dict(state)
    assert [next(copy).src_texts for _ in range(6)] == expected
    assert sorted(t for texts in expected[1:5] for t in texts) == sorted(s for s, _ in pairs)  # one epoch


def test_metrics_log_drops_lines_after_the_resumed_step(tmp_path):
    log = MetricsLog(tmp_path / "m.jsonl")
    for step in (10, 20, 30):
        log.write({"split": "train", "step": step, "loss": 1.0, "token_accuracy": 0.5})
    assert [r["step"] for r in MetricsLog(tmp_path / "m.jsonl", resume_step=20).read()] == [10, 20]
    assert MetricsLog(tmp_path / "m.jsonl").read() == []  # a new run starts a new file


def test_exact_matches_needs_every_target_token_and_the_eos():
    targets = np.array([[5, 6, EOS, PAD], [7, EOS, PAD, PAD]])
    predicted = np.array([[5, 6, EOS], [7, 8, EOS]])  # second row: no EOS after 7
    assert exact_matches(predicted, targets).tolist() == [True, False]
    assert exact_matches(np.array([[5, 6], [7, EOS]]), targets).tolist() == [False, True]


def test_evaluate_counts_exact_matches_per_source_length(monkeypatch):
    tokenizer = tokenizer_for("copy")
    nine, zero = tokenizer.encode("90")

    def copy_except_leading_nines(model, src):  # a stand-in decoder: right unless the source starts with 9
        out = np.full((len(src), src.shape[1] + 1), PAD)
        for i, row in enumerate(src):
            tokens = [t for t in row if t != PAD]
            out[i, :len(tokens) + 1] = [zero if tokens[0] == nine else tokens[0], *tokens[1:], EOS]
        return out

    monkeypatch.setattr(evaluation, "greedy_decode", copy_except_leading_nines)
    model = build_model(TrainConfig.for_task("copy", model="micro"), tokenizer)
    pairs = [(s, s) for s in ["1", "9", "12", "93", "95", "123", "0"]]
    result = evaluation.evaluate(model, pairs, tokenizer, batch_size=4)  # batches mix lengths
    assert result["by_length"] == {"1": {"examples": 3, "exact_match": 2 / 3},
                                   "2": {"examples": 3, "exact_match": 1 / 3},
                                   "3": {"examples": 1, "exact_match": 1.0}}
    assert result["exact_match"] == 4 / 7 and result["examples"] == 7
    assert evaluation.worst_length(result) == ("2", 1 / 3)


def test_format_by_length_names_every_length_the_mean_and_the_worst():
    result = {"examples": 30, "exact_match": 0.9, "by_length": {
        "1": {"examples": 10, "exact_match": 1.0}, "2": {"examples": 20, "exact_match": 0.85}}}
    lines = format_by_length(result).splitlines()
    assert [line.split() for line in lines[1:3]] == [["1", "10", "100.0%"], ["2", "20", "85.0%"]]
    assert lines[3].split() == ["all", "30", "90.0%", "worst:", "length", "2,", "85.0%"]


def test_typed_inputs_are_scored_against_the_tasks_answer(monkeypatch):
    # A stand-in decoder that drops one digit of every run of four or more: "1111" -> "111".
    def shortens_long_runs(model, tokenizer, sources):
        return [s[:-1] if len(s) >= 4 and len(set(s)) == 1 else s[::-1] for s in sources]

    monkeypatch.setattr(evaluation, "translate", shortens_long_runs)
    line = score_typed_inputs(None, None, TASKS["reverse"], shown=2)
    long_runs = sum(len(s) >= 4 and len(set(s)) == 1 for s in TASKS["reverse"].typed_inputs())
    assert long_runs >= 70  # 7 lengths x 10 digits, and the few-digit strings that happen to be runs
    assert f"'0', '00', '000', ...; reverse's typed_inputs): {300 - long_runs} of 300 right" in line
    assert line.endswith("wrong: '0000' → '000', '00000' → '0000', ...")
    assert score_typed_inputs(None, None, TASKS["dates"]) is None


def test_train_config_rejects_bad_settings():
    with pytest.raises(ValueError, match="unknown task"):
        TrainConfig(task="poetry")
    with pytest.raises(ValueError, match="steps"):
        TrainConfig.for_task("copy", steps=0)
    with pytest.raises(ValueError, match="unknown settings"):
        TrainConfig.from_dict({"task": "copy", "learning_rate": 1})
    config = TrainConfig.for_task("sort", steps=7)
    assert TrainConfig.from_dict(config.to_dict()) == config and config.out == "runs/sort"


# ---------------------------------------------------------------------------- divergence


def finite_checkpoint_step(path):
    """The step of a checkpoint whose arrays are all finite (asserted)."""
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files if k != "__meta__"}
    assert all(np.isfinite(a).all() for a in arrays.values()), path
    return load_checkpoint(path)["extra"]["step"]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy: overflow in the diverging steps
def test_a_diverging_resume_stops_at_the_nonfinite_step_and_keeps_the_good_checkpoint(tmp_path):
    good = train(small_config(tmp_path, "run", steps=4), progress=False)
    good_weights = dict(np.load(good.checkpoint))
    # lr_scale 1e30: step 5 makes the weights huge, step 6's forward pass overflows to NaN.
    with pytest.raises(TrainingDiverged, match=r"step 6: the loss is nan; the step was not applied; training "
                                               r"stopped, the last checkpoint \(step 5\) is .*checkpoint.npz"):
        train(small_config(tmp_path, "run", steps=8, lr_scale=1e30), resume=good.checkpoint, progress=False)
    assert finite_checkpoint_step(tmp_path / "run" / "checkpoint.npz") == 5
    previous = np.load(tmp_path / "run" / "checkpoint.prev.npz")
    assert all(np.array_equal(previous[k], v) for k, v in good_weights.items() if k != "__meta__")
    # The stopped run's checkpoint resumes at the step it names: the data stream was put back.
    _, extra = read_run_config(tmp_path / "run" / "checkpoint.npz")
    assert extra["data"]["used"] == 5 % 4  # 4 batches per epoch: one into the second epoch


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy: overflow in the diverging steps
def test_skipping_nonfinite_steps_finishes_the_run_without_applying_them(tmp_path):
    run = train(small_config(tmp_path, "run", lr_scale=1e30, on_nonfinite="skip"), progress=False)
    assert (run.step, run.skipped) == (6, 5)  # step 1 is finite, the model overflows from step 2 on
    assert finite_checkpoint_step(run.checkpoint) == 6
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert sum(r.get("skipped", 0) for r in records) == 1  # 4 of the 5 fell in windows with no finite step


def test_a_model_with_nonfinite_weights_is_never_saved(tmp_path, monkeypatch):
    first = train(small_config(tmp_path, "run", steps=2), progress=False)
    built = []
    monkeypatch.setattr(train_module, "build_model", lambda *args: built.append(build_model(*args)) or built[-1])

    def poison_a_weight(step):  # after step 3, so step 4 diverges and the run saves step 3 on its way out
        if step == 3:
            next(built[0].parameters()).data[0, 0] = np.nan

    with pytest.raises(TrainingDiverged, match="step 3: non-finite weights in src_embed.tokens.weight; not saved"):
        train(small_config(tmp_path, "run", steps=6), resume=first.checkpoint, progress=False,
              on_step=poison_a_weight)
    assert finite_checkpoint_step(tmp_path / "run" / "checkpoint.npz") == 2


@pytest.mark.parametrize("setting, value, message", [
    ("lr_scale", float("nan"), "lr_scale must be a finite number > 0, got nan"),
    ("lr_scale", float("inf"), "lr_scale must be a finite number > 0, got inf"),
    ("lr_scale", -1.0, "lr_scale must be a finite number > 0, got -1.0"),
    ("clip_norm", float("nan"), "clip_norm must be a finite number > 0"),
    ("clip_norm", -1.0, "clip_norm must be a finite number > 0"),
    ("dropout", 1.0, "dropout must be a finite number ≥ 0 and < 1"),
    ("label_smoothing", -0.1, "label_smoothing must be a finite number ≥ 0 and < 1"),
    ("seed", -1, "seed must be an integer ≥ 0, got -1"),
    ("steps", 2.5, "steps must be an integer ≥ 1, got 2.5"),
    ("weight_decay", -0.01, "weight_decay must be"),
    ("checkpoint_seconds", 0, "checkpoint_seconds must be a finite number > 0"),
    ("on_nonfinite", "ignore", "on_nonfinite must be 'stop' or 'skip', got 'ignore'"),
    ("out", "", "out must be a directory name"),
])
def test_train_config_refuses_settings_out_of_range(setting, value, message):
    with pytest.raises(SettingError, match=f"^TrainConfig: {message}") as caught:
        TrainConfig.for_task("copy", **{setting: value})
    assert caught.value.name == setting


# ---------------------------------------------------------------------------- checkpoints along the way


def test_the_checkpoint_before_the_latest_is_kept(tmp_path):
    run = train(small_config(tmp_path, "run", checkpoint_every=2), progress=False)
    assert load_checkpoint(run.checkpoint)["extra"]["step"] == 6
    assert load_checkpoint(tmp_path / "run" / "checkpoint.prev.npz")["extra"]["step"] == 4
    assert not list((tmp_path / "run").glob(".*.tmp"))


def test_checkpoints_are_also_written_on_a_time_interval(tmp_path):
    seen = {}

    def look(step):
        path = tmp_path / "run" / "checkpoint.npz"
        seen[step] = load_checkpoint(path)["extra"]["step"] if path.exists() else None

    train(small_config(tmp_path, "run", checkpoint_seconds=1e-9), progress=False, on_step=look)
    assert seen == {step: step for step in range(1, 7)}  # every step is past the interval


def test_every_task_saves_before_its_default_run_ends():
    for task in TASK_DEFAULTS:
        config = TrainConfig.for_task(task)
        assert config.checkpoint_every < config.steps, task
        assert config.checkpoint_seconds <= 60


# ---------------------------------------------------------------------------- run directories


def test_a_directory_holding_a_run_is_only_resumed_or_overwritten(tmp_path):
    first = train(small_config(tmp_path, "run", steps=2), progress=False)
    before = {name: (tmp_path / "run" / name).read_bytes() for name in ("checkpoint.npz", "metrics.jsonl")}
    with pytest.raises(RunDirectoryError, match=r"run already holds a training run \(checkpoint.npz, best.npz, "
                                                r"metrics.jsonl\); continue it with --resume .* --overwrite"):
        train(small_config(tmp_path, "run", steps=3), progress=False)
    assert before == {name: (tmp_path / "run" / name).read_bytes() for name in before}  # untouched
    resumed = train(small_config(tmp_path, "run", steps=3), resume=first.checkpoint, progress=False)
    assert resumed.step == 3
    fresh = train(small_config(tmp_path, "run", steps=1), progress=False, overwrite=True)
    assert fresh.step == 1 and not (tmp_path / "run" / "checkpoint.prev.npz").exists()
    assert [r["step"] for r in map(json.loads, (tmp_path / "run" / "metrics.jsonl").read_text().splitlines())
            ] == [1, 1, 1]  # train, valid and test lines of the new run only
    with pytest.raises(RunDirectoryError, match="overwrite would delete the run being resumed"):
        train(small_config(tmp_path, "run", steps=2), resume=fresh.checkpoint, overwrite=True, progress=False)


def test_a_resumed_run_refuses_fewer_steps_than_its_checkpoint(tmp_path):
    first = train(small_config(tmp_path, "run", steps=3), progress=False)
    with pytest.raises(SettingError, match="steps must be ≥ 3, the step of the checkpoint .*, got 2"):
        train(small_config(tmp_path, "run", steps=2), resume=first.checkpoint, progress=False)


def test_a_locked_directory_is_refused(tmp_path):
    from filelock import FileLock

    (tmp_path / "run").mkdir()
    with FileLock(tmp_path / "run" / ".train.lock"):
        with pytest.raises(RunDirectoryError, match="is in use by another training run"):
            train(small_config(tmp_path, "run", steps=1), progress=False)
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
    assert train(small_config(tmp_path, "run", steps=1), progress=False).step == 1  # released: usable


def test_out_must_be_a_directory(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(SettingError, match="out .*file is a file"):
        train(small_config(tmp_path, "file", steps=1), progress=False)
    with pytest.raises(SettingError, match="cannot create the directory .*file/run: Not a directory"):
        train(small_config(tmp_path, "file/run", steps=1), progress=False)


def test_temp_files_of_an_interrupted_save_are_removed_on_the_next_start(tmp_path):
    first = train(small_config(tmp_path, "run", steps=2), progress=False)
    leftovers = [tmp_path / "run" / name for name in (".checkpoint.npz.a1b2c3.tmp", ".metrics.jsonl.d4e5.tmp")]
    for path in leftovers:
        path.write_bytes(b"half a file")
    unrelated = tmp_path / "run" / ".notes.tmp"
    unrelated.write_text("mine")
    with pytest.warns(RunWarning, match="removed 2 temp file"):
        train(small_config(tmp_path, "run", steps=3), resume=first.checkpoint, progress=False)
    assert not any(path.exists() for path in leftovers) and unrelated.exists()


# ---------------------------------------------------------------------------- metrics.jsonl


RECORD = b'{"split": "train", "step": %d, "loss": 1.0, "token_accuracy": 0.5}'  # a metrics line


@pytest.mark.parametrize("torn", [b'{"split": "train", "step": 30, "lo', b'{"split": "train", "step": 30}\xff'])
def test_a_torn_last_metrics_line_is_dropped_with_a_warning(tmp_path, torn):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(RECORD % 10 + b"\n" + RECORD % 20 + b"\n" + torn)
    with pytest.warns(RunWarning, match=r"metrics.jsonl: dropped its last line \(3\), cut short"):
        log = MetricsLog(path, resume_step=20)
    assert [r["step"] for r in log.read()] == [10, 20]
    assert path.read_bytes().endswith(b"}\n")  # the torn line is gone from the file too


@pytest.mark.parametrize("bad", [b'{"split": "tr', b"\xff\xfe", b"[1, 2]", b'{"split": "train", "step": "ten"}'])
def test_a_bad_metrics_line_before_the_last_names_the_file_and_line(tmp_path, bad):
    path = tmp_path / "metrics.jsonl"
    content = RECORD % 10 + b"\n" + bad + b"\n" + RECORD % 30 + b"\n"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"metrics.jsonl: line 2 is not a metrics record \(.*\); repair") as caught:
        MetricsLog(path, resume_step=30)
    assert "\n" not in str(caught.value) and path.read_bytes() == content  # nothing rewritten


def test_a_run_resumes_over_a_torn_metrics_file(tmp_path):
    first = train(small_config(tmp_path, "run", steps=4), progress=False)
    with (tmp_path / "run" / "metrics.jsonl").open("ab") as f:
        f.write(b'{"split": "train", "step": 6, "loss": 1.2')  # a disk filled during an append
    with pytest.warns(RunWarning, match="metrics.jsonl: dropped its last line"):
        resumed = train(small_config(tmp_path, "run", steps=6), resume=first.checkpoint, progress=False)
    assert resumed.test is not None


# ---------------------------------------------------------------------------- signals


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_sighup_saves_like_sigterm(tmp_path, sighup_handled):
    run = train(small_config(tmp_path, "run"), progress=False,
                on_step=lambda step: step == 3 and os.kill(os.getpid(), signal.SIGHUP))
    assert (run.stopped_by, run.step) == ("SIGHUP", 3)
    assert load_checkpoint(run.checkpoint)["extra"]["step"] == 3


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_a_hang_up_ignored_when_the_run_began_stays_ignored(tmp_path):
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under `nohup`
    try:
        run = train(small_config(tmp_path, "run"), progress=False,
                    on_step=lambda step: step == 3 and os.kill(os.getpid(), signal.SIGHUP))
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before)
    assert (run.stopped_by, run.step) == (None, 6)


def test_a_second_ctrl_c_during_a_save_lets_the_save_finish(tmp_path, monkeypatch, sigint_handled):
    real_save = train_module.save_training_checkpoint

    def save_under_two_ctrl_cs(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # the first asks to stop after this step ...
        os.kill(os.getpid(), signal.SIGINT)  # ... the second, while saving, must not cut the save short
        real_save(*args, **kwargs)

    monkeypatch.setattr(train_module, "save_training_checkpoint", save_under_two_ctrl_cs)
    run = train(small_config(tmp_path, "run", checkpoint_every=2), progress=False)
    assert (run.stopped_by, run.step) == ("SIGINT", 2)
    assert load_checkpoint(run.checkpoint)["extra"]["step"] == 2
    assert not list((tmp_path / "run").glob(".*.tmp"))


# ---------------------------------------------------------------------------- guards at their edges

@pytest.fixture
def no_plot(monkeypatch):
    """No training.png: drawing it takes longer than the few steps of these runs."""
    monkeypatch.setattr(train_module, "plot_training", lambda *args, **kwargs: None)



def test_nonfinite_part_names_the_loss_or_the_gradient_norm():
    assert train_module.nonfinite_part(0.5, 1.0) is None
    assert train_module.nonfinite_part(0.5, float("inf")) == "gradient norm is inf"
    assert train_module.nonfinite_part(0.5, float("nan")) == "gradient norm is nan"
    assert train_module.nonfinite_part(float("nan"), 1.0) == "loss is nan"
    assert train_module.nonfinite_part(float("-inf"), float("nan")) == "loss is -inf"


def gradient_norm_inf_at(monkeypatch, bad_step):
    """clip_grad_norm_ as usual, but reporting an infinite norm at step ``bad_step`` (the
    loss stays finite, as when only the backward pass overflows)."""
    from minigrad.optim import clip_grad_norm_ as real

    calls = []

    def clip(params, max_norm):
        calls.append(real(params, max_norm))
        return float("inf") if len(calls) == bad_step else calls[-1]

    monkeypatch.setattr(train_module, "clip_grad_norm_", clip)


def test_a_step_with_a_finite_loss_but_an_infinite_gradient_norm_is_refused(tmp_path, monkeypatch, no_plot):
    two_steps = train(small_config(tmp_path, "two", steps=2), progress=False)
    gradient_norm_inf_at(monkeypatch, 3)
    with pytest.raises(TrainingDiverged, match=r"step 3: the gradient norm is inf; the step was not applied; "
                                               r"training stopped, the last checkpoint \(step 2\)"):
        train(small_config(tmp_path, "run"), progress=False)
    stopped = np.load(tmp_path / "run" / "checkpoint.npz")
    with np.load(two_steps.checkpoint) as expected:
        assert all(np.array_equal(stopped[k], expected[k]) for k in expected.files if k.startswith("model/"))
    gradient_norm_inf_at(monkeypatch, 3)
    skipping = train(small_config(tmp_path, "skip", on_nonfinite="skip"), progress=False)
    assert (skipping.step, skipping.skipped) == (6, 1)


def test_resuming_into_a_directory_that_holds_another_run_is_refused(tmp_path, monkeypatch, no_plot):
    a = train(small_config(tmp_path, "a", steps=2), progress=False)
    train(small_config(tmp_path, "b", steps=2), progress=False)
    files = {p: p.read_bytes() for p in (tmp_path / "a").iterdir()} | {p: p.read_bytes() for p in
                                                                        (tmp_path / "b").iterdir()}
    held = r"b already holds a training run \(checkpoint.npz, best.npz, metrics.jsonl\)"
    with pytest.raises(RunDirectoryError, match=held):
        train(small_config(tmp_path, "b", steps=3), resume=a.checkpoint, progress=False)
    assert files == {p: p.read_bytes() for p in files}  # neither run was touched
    # Into an empty directory a checkpoint of another run starts a branch of it.
    branch = train(small_config(tmp_path, "c", steps=3), resume=a.checkpoint, progress=False)
    assert branch.step == 3 and a.checkpoint.read_bytes() == files[a.checkpoint]
    # With --overwrite the other run is deleted first.
    replaced = train(small_config(tmp_path, "b", steps=3), resume=a.checkpoint, overwrite=True, progress=False)
    assert replaced.step == 3 and not (tmp_path / "b" / "checkpoint.prev.npz").exists()
    assert [json.loads(line)["step"] for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()] \
        == [3, 3, 3]
    # The run's own checkpoint, however its path is written, resumes it.
    monkeypatch.chdir(tmp_path)
    resumed = train(small_config(tmp_path, "b", steps=4), resume="b/../b/checkpoint.npz", progress=False)
    assert resumed.step == 4


@pytest.mark.parametrize("left", ["metrics.jsonl", "checkpoint.prev.npz", "checkpoint.npz", "best.npz"])
def test_any_file_of_a_run_marks_the_directory_as_holding_one(tmp_path, left, no_plot):
    train(small_config(tmp_path, "run", steps=2, checkpoint_every=1, eval_every=1), progress=False)
    for name in {"metrics.jsonl", "checkpoint.prev.npz", "checkpoint.npz", "best.npz", "training.png"} - {left}:
        (tmp_path / "run" / name).unlink(missing_ok=True)
    with pytest.raises(RunDirectoryError, match=rf"already holds a training run \({left}\)"):
        train(small_config(tmp_path, "run", steps=2), progress=False)
    (tmp_path / "run" / left).unlink()
    (tmp_path / "run" / "metrics.jsonl").write_bytes(b"")  # what a run killed before its first line leaves
    assert train(small_config(tmp_path, "run", steps=1), progress=False).step == 1


class FakeClock:
    """Stands in for ``time`` in transformer.train: the clock moves only when told."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        return self.now


def test_time_based_checkpoints_count_from_the_last_save(tmp_path, monkeypatch, no_plot):
    clock = FakeClock()
    monkeypatch.setattr(train_module, "time", clock)
    saved = []

    def five_seconds_a_step(step):
        saved.append(load_checkpoint(tmp_path / "run" / "checkpoint.npz")["extra"]["step"]
                     if (tmp_path / "run" / "checkpoint.npz").exists() else None)
        clock.now += 5.0

    train(small_config(tmp_path, "run", steps=7, checkpoint_seconds=10.0), progress=False, on_step=five_seconds_a_step)
    # Steps end at t = 0, 5, 10, ...: a save at t = 10 (step 3) and 10 s after it (step 5), and at the end.
    assert saved == [None, None, 3, 3, 5, 5, 7]


def test_the_logged_training_loss_is_the_mean_over_its_own_window(tmp_path, monkeypatch, no_plot):
    losses = []
    real = train_module.sequence_loss

    def recorded(*args):
        loss = real(*args)
        losses.append(float(loss.data))
        return loss

    monkeypatch.setattr(train_module, "sequence_loss", recorded)
    train(small_config(tmp_path, "run", steps=7, log_every=3), progress=False)
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    logged = [(r["step"], r["loss"]) for r in logged if r["split"] == "train"]
    assert len(losses) == 7 and len(set(losses)) == 7
    expected = [(3, np.mean(losses[0:3])), (6, np.mean(losses[3:6])), (7, losses[6])]
    assert [step for step, _ in logged] == [step for step, _ in expected]
    assert [loss for _, loss in logged] == pytest.approx([loss for _, loss in expected], rel=1e-12)


def test_a_save_that_fails_midway_leaves_both_checkpoints_loadable(tmp_path, monkeypatch, no_plot):
    import errno

    from minigrad import checkpoint as checkpoint_module

    real_savez, saves = checkpoint_module.np.savez, []

    def savez_filling_the_disk(file, **arrays):
        saves.append(len(saves) + 1)
        if len(saves) < 4:  # checkpoints at 2 and 4, best.npz at 6; then the checkpoint at 6 fails
            return real_savez(file, **arrays)
        file.write(b"PK\x03\x04" + bytes(1000))  # part of the archive, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint_module.np, "savez", savez_filling_the_disk)
    with pytest.raises(CheckpointError, match="No space left on device; the checkpoint that was there is left as"):
        train(small_config(tmp_path, "run", checkpoint_every=2), progress=False)
    monkeypatch.setattr(checkpoint_module.np, "savez", real_savez)
    run = tmp_path / "run"
    assert load_trained(run / "checkpoint.npz").step == 4
    assert load_trained(run / "checkpoint.prev.npz").step == 4  # the rotation made it before the save
    assert not list(run.glob(".*.tmp"))
    assert train(small_config(tmp_path, "run"), resume=run / "checkpoint.npz", progress=False).step == 6


def test_a_second_ctrl_c_raises_only_outside_a_save(sigint_handled):
    with StopOnSignal() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.received == "SIGINT"
        stop.saving = True
        os.kill(os.getpid(), signal.SIGINT)  # while saving: noted, never raised
        os.kill(os.getpid(), signal.SIGTERM)
        stop.saving = False
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)


def test_a_second_ctrl_c_while_the_previous_checkpoint_is_kept_lets_the_save_finish(tmp_path, monkeypatch,
                                                                                    sigint_handled, no_plot):
    real_keep = train_module.keep_previous

    def keep_under_two_ctrl_cs(path):
        if path.exists():  # the second save: the rotation is the first part of it
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        real_keep(path)

    monkeypatch.setattr(train_module, "keep_previous", keep_under_two_ctrl_cs)
    run = train(small_config(tmp_path, "run", checkpoint_every=2), progress=False)
    assert (run.stopped_by, run.step) == ("SIGINT", 4)
    assert load_checkpoint(run.checkpoint)["extra"]["step"] == 4
    assert load_checkpoint(tmp_path / "run" / "checkpoint.prev.npz")["extra"]["step"] == 2


def edge_values(bounds):
    """(accepted, refused) values at the edges of one SETTING_BOUNDS entry."""
    accepted, refused = [], []
    if "at_least" in bounds:
        accepted.append(bounds["at_least"])
        refused.append(bounds["at_least"] - 1 if bounds.get("integer") else np.nextafter(bounds["at_least"], -1))
    if "above" in bounds:
        refused.append(bounds["above"])
        accepted.append(np.nextafter(bounds["above"], 1))
    if "below" in bounds:
        refused.append(bounds["below"])
        accepted.append(bounds["below"] - 1 if bounds.get("integer") else np.nextafter(bounds["below"], -1))
    return [v if bounds.get("integer") else float(v) for v in accepted], \
        [v if bounds.get("integer") else float(v) for v in refused]


@pytest.mark.parametrize("name", sorted(train_module.SETTING_BOUNDS))
def test_every_numeric_setting_is_accepted_at_its_bound_and_refused_past_it(name):
    accepted, refused = edge_values(train_module.SETTING_BOUNDS[name])
    assert accepted and refused

    def settings(value):  # heads must divide d_model: the other one is set to fit
        return {name: value, **{"d_model": {"heads": 1}, "heads": {"d_model": max(value, 1)}}.get(name, {})}

    for value in accepted:
        assert getattr(TrainConfig.for_task("copy", **settings(value)), name) == value
    for value in refused:
        with pytest.raises(SettingError, match=f"^TrainConfig: {name} must be ") as caught:
            TrainConfig.for_task("copy", **settings(value))
        assert caught.value.name == name


def test_the_documented_setting_bounds():
    bounds = train_module.SETTING_BOUNDS
    assert all(bounds[n] == dict(at_least=1, integer=True) for n in ("steps", "batch_size", "log_every",
                                                                       "eval_every", "checkpoint_every", "n_train"))
    assert bounds["seed"] == dict(at_least=0, integer=True)
    assert bounds["dropout"] == bounds["label_smoothing"] == dict(at_least=0, below=1)
    assert bounds["lr_scale"] == bounds["clip_norm"] == bounds["checkpoint_seconds"] == dict(above=0)


# ---------------------------------------------------------------------------- evaluation invariants


@pytest.mark.parametrize("task", ["dates", "copy"])  # sources of many lengths; targets of many lengths
def test_the_evaluation_does_not_depend_on_the_batch_size(task):
    tokenizer = tokenizer_for(task)
    model = build_model(TrainConfig.for_task(task, model="micro"), tokenizer)
    pairs = make_splits(task, 10, 10, 23, seed=0).test
    assert len({len(target) for _, target in pairs}) > 1 or task == "dates"
    results = [evaluation.evaluate(model, pairs, tokenizer, batch_size=size) for size in (1, 7, 250)]
    for result in results[1:]:
        assert result["loss"] == pytest.approx(results[0]["loss"], rel=1e-5)
        assert result["token_accuracy"] == results[0]["token_accuracy"]
        assert result["exact_match"] == results[0]["exact_match"]
        assert result["by_length"] == results[0]["by_length"]


@pytest.mark.parametrize("task", ["addition", "dates", "reverse"])
def test_the_length_buckets_count_the_source_s_length_on_every_task(task):
    tokenizer = tokenizer_for(task)
    model = build_model(TrainConfig.for_task(task, model="micro"), tokenizer)
    pairs = make_splits(task, 10, 10, 40, seed=1).test
    assert any(len(source) != len(target) for source, target in pairs) or task == "reverse"
    result = evaluation.evaluate(model, pairs, tokenizer, batch_size=16)
    lengths = {}
    for source, _ in pairs:
        lengths[str(len(source))] = lengths.get(str(len(source)), 0) + 1
    assert {length: bucket["examples"] for length, bucket in result["by_length"].items()} == lengths

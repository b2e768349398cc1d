"""Training: it learns, it resumes bit for bit, and signals end it with a checkpoint."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from minigrad.checkpoint import load_checkpoint
from transformer.checkpoints import load_trained, read_run_config
from transformer.evaluation import exact_matches
from transformer.tasks import make_splits, tokenizer_for
from transformer.tokenizer import EOS, PAD
from transformer.train import BatchStream, MetricsLog, StopOnSignal, TrainConfig, train


@pytest.fixture
def sigint_handled():
    """Python's usual Ctrl-C handler for the test, whatever pytest started with: a
    shell's background job (``pytest &`` in a script, ``nohup``) starts with SIGINT
    ignored, and StopOnSignal leaves an ignored SIGINT ignored."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


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


def test_copy_reaches_the_target_within_its_step_budget(tmp_path):
    # The target, with the task's defaults: the tiny model, batch 64, 400 steps,
    # >= 99% greedy exact match on the held-out test split (about 12 s on 2 cores).
    config = TrainConfig.for_task("copy", out=str(tmp_path))
    assert (config.model, config.batch_size, config.steps) == ("tiny", 64, 400)
    run = train(config, progress=False)
    assert run.test["exact_match"] >= 0.99, run.test
    assert (tmp_path / "training.png").read_bytes().startswith(b"\x89PNG")
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["split"] == "test" and records[-1]["exact_match"] == run.test["exact_match"]
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


def test_signal_tests_pass_when_pytest_starts_with_sigint_ignored(tmp_path):
    # What `pytest &` in a script or `nohup pytest` does to the process.
    here = os.path.abspath(__file__)
    tests = "stop_on_signal or resume_after_interrupt"
    script = ("import signal, sys, pytest; signal.signal(signal.SIGINT, signal.SIG_IGN); "
              f"sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', {here!r}, '-k', {tests!r}]))")
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout, result.stdout


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
        log.write({"split": "train", "step": step})
    assert [r["step"] for r in MetricsLog(tmp_path / "m.jsonl", resume_step=20).read()] == [10, 20]
    assert MetricsLog(tmp_path / "m.jsonl").read() == []  # a new run starts a new file


def test_exact_matches_needs_every_target_token_and_the_eos():
    targets = np.array([[5, 6, EOS, PAD], [7, EOS, PAD, PAD]])
    predicted = np.array([[5, 6, EOS], [7, 8, EOS]])  # second row: no EOS after 7
    assert exact_matches(predicted, targets).tolist() == [True, False]
    assert exact_matches(np.array([[5, 6], [7, EOS]]), targets).tolist() == [False, True]


def test_train_config_rejects_bad_settings():
    with pytest.raises(ValueError, match="unknown task"):
        TrainConfig(task="poetry")
    with pytest.raises(ValueError, match="steps"):
        TrainConfig.for_task("copy", steps=0)
    with pytest.raises(ValueError, match="unknown settings"):
        TrainConfig.from_dict({"task": "copy", "learning_rate": 1})
    config = TrainConfig.for_task("sort", steps=7)
    assert TrainConfig.from_dict(config.to_dict()) == config and config.out == "runs/sort"

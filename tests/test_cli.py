"""The command line end to end on a tiny checkpoint, and its one-line errors."""

import io
import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_one_line_error, run_main

from minigrad.checkpoint import load_checkpoint
from transformer.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A dates model after 2 steps of a micro model: it decodes nonsense, quickly."""
    out = tmp_path_factory.mktemp("run")
    config = TrainConfig.for_task("dates", model="micro", steps=2, n_train=64, n_valid=8, n_test=8,
                                  out=str(out))
    return str(train(config, progress=False).checkpoint)




def test_train_command_prints_examples_and_the_exact_match(tmp_path, capsys):
    status, out, err = run_main(["train", "--task", "copy", "--model", "micro", "--steps", "3", "--n-train",
                                 "100", "--out", str(tmp_path), "--quiet"], capsys)
    assert status == 0, err
    assert "examples from the test split" in out and "exact match on 2000 test examples" in out
    assert "exact match by source length" in out and "worst: length" in out
    assert "typed inputs ('0', '00', '000', ...; copy's typed_inputs): " in out and " of 300 right" in out
    assert out.count(" → ") >= 10
    assert (tmp_path / "checkpoint.npz").exists() and (tmp_path / "training.png").exists()


def test_translate_texts_and_stdin(checkpoint, capsys, monkeypatch):
    status, out, err = run_main(["translate", "--checkpoint", checkpoint, "26 November 2026", "1/2/03"], capsys)
    assert status == 0, err
    assert len(out.splitlines()) == 2
    status, out, err = run_main(["translate", "--checkpoint", checkpoint, "--beam", "2", "--show-source"],
                                capsys, stdin="26 November 2026\nThu 26 Nov 2026\n", monkeypatch=monkeypatch)
    assert status == 0, err
    lines = out.splitlines()
    assert len(lines) == 2 and lines[1].startswith("Thu 26 Nov 2026 → ")


def test_evaluate_prints_exact_match_by_source_length(checkpoint, capsys):
    status, out, err = run_main(["evaluate", "--checkpoint", checkpoint], capsys)
    assert status == 0, err
    lines = out.splitlines()
    assert "dates model" in lines[0] and "after 2 steps" in lines[0]
    assert lines[1].split() == ["length", "examples", "exact", "match"]
    rows = [line.split() for line in lines[2:-1]]
    assert sum(int(row[1]) for row in rows) == 8  # the fixture's n_test, every example in one length row
    assert lines[-1].split()[:2] == ["all", "8"] and "worst: length" in lines[-1]


def test_a_year_the_dates_model_does_not_cover_is_a_one_line_error(checkpoint, capsys):
    status, _, err = run_main(["translate", "--checkpoint", checkpoint, "26 November 2026", "26 November 2126"],
                              capsys)
    assert_one_line_error(status, err, "2126", "1950-2049")


def test_attention_writes_a_png(checkpoint, tmp_path, capsys):
    path = tmp_path / "attn.png"
    status, out, err = run_main(["attention", "--checkpoint", checkpoint, "--text", "26 Nov 26",
                                 "--out", str(path)], capsys)
    assert status == 0, err
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert "wrote 3 blocks" in out  # micro: 1 encoder self-, 1 decoder self-, 1 cross-attention


@pytest.mark.requires("dot")
def test_graph_writes_an_svg(checkpoint, tmp_path, capsys):
    path = tmp_path / "model.svg"
    status, out, err = run_main(["graph", "--checkpoint", checkpoint, "--depth", "1", "--out", str(path)],
                                capsys)
    assert status == 0, err
    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg") and "encoder" in path.read_text()


def test_missing_and_corrupt_checkpoints_are_one_line_errors(tmp_path, capsys):
    status, _, err = run_main(["translate", "--checkpoint", str(tmp_path / "none.npz"), "1 May 2020"], capsys)
    assert_one_line_error(status, err, "no such checkpoint file")
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 this is not a zip archive")
    status, _, err = run_main(["graph", "--checkpoint", str(corrupt)], capsys)
    assert_one_line_error(status, err, "corrupt.npz")


def test_a_missing_checkpoint_names_the_command_that_makes_it(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, _, err = run_main(["translate", "1 May 2020"], capsys)
    assert_one_line_error(status, err, "runs/dates/checkpoint.npz", "train a model first: python -m transformer train")
    assert err.rstrip().endswith("python -m transformer train")
    status, _, err = run_main(["attention", "--checkpoint", "runs/copy/checkpoint.npz"], capsys)
    assert_one_line_error(status, err, "train a model first: python -m transformer train --task copy")
    assert err.rstrip().endswith("--task copy")
    status, _, err = run_main(["translate", "--checkpoint", "mine/model.npz", "1 May 2020"], capsys)
    assert_one_line_error(status, err, "python -m transformer train --task TASK --out mine")


@pytest.mark.parametrize("argv", [["translate", ""], ["translate", "1 May 2020", ""], ["attention", "--text", ""]])
def test_an_empty_text_is_a_one_line_error(argv, checkpoint, capsys):
    status, _, err = run_main([*argv, "--checkpoint", checkpoint], capsys)
    assert_one_line_error(status, err, "empty text")


def test_translate_with_empty_stdin_is_a_one_line_error(checkpoint, capsys, monkeypatch):
    status, out, err = run_main(["translate", "--checkpoint", checkpoint], capsys, stdin="\n  \n",
                                monkeypatch=monkeypatch)
    assert_one_line_error(status, err, "nothing to translate")
    assert out == ""


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_translate_on_a_terminal_says_what_it_expects_and_answers_each_line(checkpoint, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", Terminal("26 November 2026\n☃\n\n1/2/03\n"))
    status, out, err = run_main(["translate", "--checkpoint", checkpoint, "--show-source"], capsys)
    assert status == 0, err
    assert err.splitlines()[0].startswith("type a text and press Enter")
    assert "'☃' contains characters the model does not know" in err  # reported, and the session goes on
    assert [line.split(" → ")[0] for line in out.splitlines()] == ["26 November 2026", "1/2/03"]


def test_graph_without_dot_is_the_install_hint_in_one_line(checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot here
    status, _, err = run_main(["graph", "--checkpoint", checkpoint, "--out", str(tmp_path / "m.svg")], capsys)
    assert_one_line_error(status, err, "needs Graphviz's `dot` program", "apt-get install graphviz")
    assert not (tmp_path / "m.svg").exists()


def test_help_is_plain_text_and_lr_scale_speaks_of_both_schedules(capsys):
    for argv in (["--help"], ["train", "--help"], ["translate", "--help"]):
        status, out, _ = run_main(argv, capsys)
        assert status == 0 and "``" not in out, out
    _, out, _ = run_main(["train", "--help"], capsys)
    assert "Noam schedule" not in out and "either schedule" in out


def blas_threads():
    from threadpoolctl import threadpool_info

    return {info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"}


@pytest.mark.parametrize("command", ["train", "translate", "attention", "graph"])
def test_threads_option_sets_the_blas_threads_while_the_command_runs(command, capsys, monkeypatch):
    import transformer.cli as cli

    seen = []
    monkeypatch.setattr(cli, f"run_{command}", lambda args: seen.append(blas_threads()))
    before = blas_threads()
    for name in cli.THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert run_main([command, "--threads", "2"], capsys)[0] == 0
    assert run_main([command], capsys)[0] == 0
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")  # the user chose: the default leaves BLAS alone
    assert run_main([command], capsys)[0] == 0
    assert seen == [{2}, {cli.DEFAULT_THREADS}, before]
    assert blas_threads() == before


def test_unknown_characters_are_a_one_line_error(checkpoint, capsys):
    status, _, err = run_main(["translate", "--checkpoint", checkpoint, "26 November 2026 ☃"], capsys)
    assert_one_line_error(status, err, "'☃'", "does not know")


@pytest.mark.parametrize("argv", [["translate", "--beam", "0"], ["train", "--task", "poetry"],
                                  ["train", "--steps", "many"], ["dance"], ["train", "--threads", "0"]])
def test_bad_arguments_are_a_one_line_error(argv, capsys):
    status, _, err = run_main(argv, capsys)
    assert status == 2
    assert_one_line_error(status, err, "error")


def test_each_command_has_help(capsys):
    for command in ("train", "evaluate", "translate", "attention", "graph"):
        status, out, _ = run_main([command, "--help"], capsys)
        assert status == 0 and "--" in out


@pytest.mark.parametrize("argv, message", [
    (["translate", "--checkpoint", "no/such/checkpoint.npz", "x"], "no such checkpoint file"),
    (["attention", "--kind", "diagonal"], "invalid choice"),
    (["translate", "--checkpoint", "no/such/checkpoint.npz", ""], "no such checkpoint file"),
])
def test_the_module_entry_point_fails_in_one_line(argv, message, tmp_path):
    env = {**os.environ, "PATH": str(tmp_path)}  # without dot
    result = subprocess.run([sys.executable, "-m", "transformer", *argv], cwd=ROOT, capture_output=True,
                            text=True, timeout=60, env=env)
    assert_one_line_error(result.returncode, result.stderr, message)


# ---------------------------------------------------------------------------- train: settings and run directories

MICRO_COPY = ["train", "--task", "copy", "--model", "micro", "--n-train", "200", "--quiet"]


@pytest.mark.parametrize("argv, message", [
    (["--seed", "-1"], "argument --seed: must be an integer ≥ 0, got -1"),
    (["--lr-scale", "nan"], "argument --lr-scale: must be a finite number > 0, got nan"),
    (["--lr-scale", "-1"], "argument --lr-scale: must be a finite number > 0, got -1.0"),
    (["--clip-norm", "-1"], "argument --clip-norm: must be a finite number > 0, got -1.0"),
    (["--clip-norm", "nan"], "argument --clip-norm: must be a finite number > 0, got nan"),
    (["--dropout", "1"], "argument --dropout: must be a finite number ≥ 0 and < 1, got 1.0"),
    (["--label-smoothing", "inf"], "argument --label-smoothing: must be a finite number ≥ 0 and < 1"),
    (["--checkpoint-seconds", "0"], "argument --checkpoint-seconds: must be a finite number > 0"),
    (["--on-nonfinite", "ignore"], "argument --on-nonfinite: invalid choice"),
])
def test_train_settings_out_of_range_are_one_line_naming_the_option(argv, message, tmp_path, capsys):
    status, _, err = run_main([*MICRO_COPY, "--out", str(tmp_path / "run"), *argv], capsys)
    assert status == 2
    assert_one_line_error(status, err, message)
    assert not (tmp_path / "run").exists()  # refused before anything was made


@pytest.mark.parametrize("argv, message", [
    (["translate", "--beam", "1000000000", "x"], "argument --beam: must be from 1 to 64, got 1000000000"),
    (["graph", "--batch", "100000"], "argument --batch: must be from 1 to 64, got 100000"),
])
def test_beam_and_graph_batch_are_bounded(argv, message, capsys):
    status, _, err = run_main(argv, capsys)
    assert status == 2
    assert_one_line_error(status, err, message)


def test_out_pointing_at_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    status, _, err = run_main([*MICRO_COPY, "--out", str(tmp_path / "notes.txt")], capsys)
    assert_one_line_error(status, err, "argument --out:", "notes.txt is a file")
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_train_refuses_a_directory_holding_a_run_and_resumes_it_from_anywhere(tmp_path, capsys, monkeypatch):
    run_dir = tmp_path / "run"
    status, _, err = run_main([*MICRO_COPY, "--steps", "2", "--out", str(run_dir)], capsys)
    assert status == 0, err
    metrics = (run_dir / "metrics.jsonl").read_text()

    status, _, err = run_main([*MICRO_COPY, "--steps", "3", "--out", str(run_dir)], capsys)
    assert_one_line_error(status, err, "already holds a training run", "--resume", "--overwrite")
    assert (run_dir / "metrics.jsonl").read_text() == metrics

    status, _, err = run_main(["train", "--resume", str(run_dir / "checkpoint.npz"), "--steps", "1"], capsys)
    assert_one_line_error(status, err, "argument --steps: must be ≥ 2, the step of the checkpoint")

    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    status, out, err = run_main(["train", "--resume", "../run/checkpoint.npz", "--steps", "3", "--quiet"], capsys)
    assert status == 0, err
    assert "into ../run/" in out and list((tmp_path / "elsewhere").iterdir()) == []
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 2, 2, 3, 3, 3]  # train, valid and test lines of each part, in one file

    status, _, err = run_main([*MICRO_COPY, "--steps", "1", "--out", str(run_dir), "--overwrite"], capsys)
    assert status == 0, err
    assert not (run_dir / "checkpoint.prev.npz").exists()


def test_a_diverging_run_is_one_line_naming_the_step(tmp_path, capsys):
    status, _, err = run_main([*MICRO_COPY, "--steps", "4", "--lr-scale", "1e30", "--out", str(tmp_path)], capsys)
    assert_one_line_error(status, err, "step 2: the loss is nan; the step was not applied", "--on-nonfinite skip")
    status, out, err = run_main([*MICRO_COPY, "--steps", "4", "--lr-scale", "1e30", "--on-nonfinite", "skip",
                                 "--out", str(tmp_path / "skip")], capsys)
    assert status == 0, err
    assert "3 of the steps were skipped" in out


def test_an_interrupt_outside_a_save_is_one_quiet_line(tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("transformer.train.train", interrupted)
    status, _, err = run_main([*MICRO_COPY, "--out", str(tmp_path)], capsys)
    assert status == 130
    assert_one_line_error(status, err, "interrupted; the run directory keeps its last checkpoint")


# ---------------------------------------------------------------------------- train: real processes

CHILD_ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}


def start_training(out, *argv, script=None, **popen):
    """A `python -m transformer train` process (micro copy) writing into ``out``; ``script``
    runs first in the child (to plant a fault) and then hands over to the CLI.  The child
    handles SIGINT and SIGHUP as a process started from a terminal does, even when pytest
    runs with them ignored (``nohup pytest &``)."""
    args = [*MICRO_COPY, "--out", str(out), *argv]
    prelude = ("import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"
               "if hasattr(signal, 'SIGHUP'): signal.signal(signal.SIGHUP, signal.SIG_DFL)\n" + (script or ""))
    code = prelude + "\nimport sys\nfrom transformer.cli import main\nsys.exit(main(sys.argv[1:]))"
    return subprocess.Popen([sys.executable, "-c", code, *args], env=CHILD_ENV, text=True,
                            **{"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **popen})


@pytest.fixture
def children():
    """Processes a test starts; any still running at its end (a failed test) are killed."""
    started = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def wait_for(condition, timeout=120):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_two_runs_cannot_share_a_directory_and_sighup_saves(tmp_path, children):
    first = start_training(tmp_path, "--steps", "100000")
    children.append(first)
    metrics = tmp_path / "metrics.jsonl"
    wait_for(lambda: metrics.exists() and metrics.stat().st_size > 0)  # in the loop: 10 steps logged
    second = subprocess.run([sys.executable, "-m", "transformer", *MICRO_COPY, "--out", str(tmp_path),
                             "--overwrite"], env=CHILD_ENV, capture_output=True, text=True, timeout=120)
    lines_before = metrics.read_text()
    first.send_signal(signal.SIGHUP)
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert_one_line_error(second.returncode, second.stderr, "is in use by another training run")
    assert "stopped by SIGHUP at step" in out
    step = int(out.split("stopped by SIGHUP at step ")[1].split(";")[0])
    assert load_checkpoint(tmp_path / "checkpoint.npz")["extra"]["step"] == step >= 10
    assert metrics.read_text().startswith(lines_before)  # the refused run wrote nothing


def test_a_run_killed_during_a_save_leaves_no_lock_and_its_temp_file_is_removed(tmp_path):
    die_after_writing = ("import os, numpy\nreal = numpy.savez\n"
                         "def savez_then_die(*a, **k):\n    real(*a, **k)\n    os.kill(os.getpid(), signal.SIGKILL)\n"
                         "numpy.savez = savez_then_die\n")
    killed = start_training(tmp_path, "--steps", "4", "--checkpoint-every", "2", script=die_after_writing)
    killed.communicate(timeout=120)
    assert killed.returncode == -signal.SIGKILL
    temps = list(tmp_path.glob(".checkpoint.npz.*.tmp"))
    assert len(temps) == 1 and temps[0].stat().st_size > 100_000  # a whole checkpoint, never renamed
    assert not (tmp_path / "checkpoint.npz").exists()

    again = start_training(tmp_path, "--steps", "2")  # the killed run's lock went with it
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert f"warning: {tmp_path}: removed 1 temp file(s) left by an interrupted save: {temps[0].name}" in err
    assert "Traceback" not in err and not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("unbuffered", [False, True])
def test_a_closed_stdout_does_not_stop_training(tmp_path, unbuffered):
    env = {**CHILD_ENV, **({"PYTHONUNBUFFERED": "1"} if unbuffered else {})}
    run = subprocess.Popen([sys.executable, "-m", "transformer", *MICRO_COPY, "--steps", "12", "--eval-every", "2",
                            "--out", str(tmp_path)], env=env, text=True, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
    assert run.stdout.readline().startswith("training copy for 12 steps")  # `| head -1`
    run.stdout.close()
    err = run.stderr.read()
    assert run.wait(timeout=120) == 0, err
    assert "Traceback" not in err and "Broken pipe" not in err and "BrokenPipe" not in err, err
    assert load_checkpoint(tmp_path / "checkpoint.npz")["extra"]["step"] == 12
    assert json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])["split"] == "test"


def test_a_second_ctrl_c_during_a_save_is_quiet_and_the_save_completes(tmp_path):
    two_ctrl_cs_in_the_first_save = (
        "import os, transformer.train as t\nreal = t.save_training_checkpoint\n"
        "def save(*a, **k):\n    os.kill(os.getpid(), signal.SIGINT)\n    os.kill(os.getpid(), signal.SIGINT)\n"
        "    real(*a, **k)\n"
        "t.save_training_checkpoint = save\n")
    run = start_training(tmp_path, "--steps", "6", "--checkpoint-every", "3", script=two_ctrl_cs_in_the_first_save)
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    assert err == "" and "stopped by SIGINT at step 3" in out
    assert load_checkpoint(tmp_path / "checkpoint.npz")["extra"]["step"] == 3


def test_a_hang_up_with_the_terminal_gone_still_saves(tmp_path, children):
    # An ssh session closing: the terminal disappears (writes to it fail with EIO) and SIGHUP arrives.
    terminal, child_side = os.openpty()
    run = start_training(tmp_path, "--steps", "100000", "--eval-every", "1", stdout=child_side, stderr=child_side)
    children.append(run)
    os.close(child_side)
    metrics = tmp_path / "metrics.jsonl"
    wait_for(lambda: metrics.exists() and metrics.stat().st_size > 0)
    os.close(terminal)
    run.send_signal(signal.SIGHUP)
    assert run.wait(timeout=120) == 0
    assert load_checkpoint(tmp_path / "checkpoint.npz")["extra"]["step"] >= 1  # the default saves only at 200


def test_a_bad_setting_stored_in_a_checkpoint_is_one_line_naming_it(tmp_path, capsys):
    status, _, err = run_main([*MICRO_COPY, "--steps", "1", "--out", str(tmp_path)], capsys)
    assert status == 0, err
    with np.load(tmp_path / "checkpoint.npz") as archive:
        arrays = {key: archive[key] for key in archive.files}
    meta = json.loads(arrays["__meta__"].item())
    meta["config"]["train"]["lr_scale"] = float("nan")
    arrays["__meta__"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "edited.npz", **arrays)
    status, _, err = run_main(["train", "--resume", str(tmp_path / "edited.npz"), "--steps", "2"], capsys)
    assert_one_line_error(status, err, "edited.npz", "lr_scale")
    status, _, err = run_main(["train", "--resume", str(tmp_path / "edited.npz"), "--steps", "2", "--quiet",
                               "--lr-scale", "0.2", "--out", str(tmp_path / "fork")], capsys)
    assert_one_line_error(status, err, "edited.npz", "lr_scale")  # a damaged checkpoint is refused as a whole


def test_graph_without_dot_from_the_module_entry_point_is_one_line(checkpoint, tmp_path):
    env = {**os.environ, "PATH": str(tmp_path)}  # the real program, with no dot on PATH
    result = subprocess.run([sys.executable, "-m", "transformer", "graph", "--checkpoint", checkpoint,
                             "--out", str(tmp_path / "m.svg")], cwd=ROOT, capture_output=True, text=True,
                            timeout=60, env=env)
    assert_one_line_error(result.returncode, result.stderr, "needs Graphviz's `dot` program")


@pytest.mark.parametrize("argv, dest, low, high", [
    (["translate", "--beam"], "beam", 1, 64),
    (["graph", "--batch"], "batch", 1, 64),
    (["graph", "--depth"], "depth", 1, None),
    (["evaluate", "--threads"], "threads", 1, None),
], ids=["beam", "batch", "depth", "threads"])
def test_integer_options_are_accepted_at_their_bounds_and_refused_one_past_them(argv, dest, low, high, capsys):
    from transformer.cli import build_parser

    parser = build_parser()
    for value in (low, high) if high else (low,):
        assert getattr(parser.parse_args([*argv, str(value)]), dest) == value
    for value in (low - 1, high + 1) if high else (low - 1, -5):
        with pytest.raises(SystemExit) as caught:
            parser.parse_args([*argv, str(value)])
        err = capsys.readouterr().err
        assert caught.value.code == 2 and err.count("\n") == 1
        expected = f"must be from {low} to {high}, got {value}" if high else f"must be at least 1, got {value}"
        assert f"argument {argv[-1]}: {expected}" in err, err

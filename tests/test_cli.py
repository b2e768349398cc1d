"""The command line end to end on a tiny checkpoint, and its one-line errors."""

import io
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from transformer.cli import main
from transformer.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A dates model after 2 steps of a micro model: it decodes nonsense, quickly."""
    out = tmp_path_factory.mktemp("run")
    config = TrainConfig.for_task("dates", model="micro", steps=2, n_train=64, n_valid=8, n_test=8,
                                  out=str(out))
    return str(train(config, progress=False).checkpoint)


def run_main(argv, capsys, stdin=None, monkeypatch=None):
    """(exit status, stdout, stderr) of main(argv) in this process."""
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    try:
        status = main(argv)
    except SystemExit as e:  # argparse exits on usage errors and --help
        status = e.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_one_line_error(status, err, *words):
    assert status != 0
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err


def test_train_command_prints_examples_and_the_exact_match(tmp_path, capsys):
    status, out, err = run_main(["train", "--task", "copy", "--model", "micro", "--steps", "3", "--n-train",
                                 "100", "--out", str(tmp_path), "--quiet"], capsys)
    assert status == 0, err
    assert "examples from the test split" in out and "exact match on 1000 test examples" in out
    assert out.count(" → ") >= 10
    assert (tmp_path / "checkpoint.npz").exists() and (tmp_path / "training.png").exists()


def test_translate_texts_and_stdin(checkpoint, capsys, monkeypatch):
    status, out, err = run_main(["translate", "--checkpoint", checkpoint, "26 November 2026", "1/2/03"], capsys)
    assert status == 0, err
    assert len(out.splitlines()) == 2
    status, out, err = run_main(["translate", "--checkpoint", checkpoint, "--beam", "2", "--show-source"],
                                capsys, stdin="26 November 2026\n\nThu 26 Nov 2026\n", monkeypatch=monkeypatch)
    assert status == 0, err
    lines = out.splitlines()
    assert len(lines) == 2 and lines[1].startswith("Thu 26 Nov 2026 → ")


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
    for command in ("train", "translate", "attention", "graph"):
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


def test_graph_without_dot_from_the_module_entry_point_is_one_line(checkpoint, tmp_path):
    env = {**os.environ, "PATH": str(tmp_path)}  # the real program, with no dot on PATH
    result = subprocess.run([sys.executable, "-m", "transformer", "graph", "--checkpoint", checkpoint,
                             "--out", str(tmp_path / "m.svg")], cwd=ROOT, capture_output=True, text=True,
                            timeout=60, env=env)
    assert_one_line_error(result.returncode, result.stderr, "needs Graphviz's `dot` program")

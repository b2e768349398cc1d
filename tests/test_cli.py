"""The command line end to end on a tiny checkpoint, and its one-line errors."""

import io
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
    assert "examples from the test split" in out and "exact match on 2000 test examples" in out
    assert "exact match by source length" in out and "worst: length" in out
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


def test_unknown_characters_are_a_one_line_error(checkpoint, capsys):
    status, _, err = run_main(["translate", "--checkpoint", checkpoint, "26 November 2026 ☃"], capsys)
    assert_one_line_error(status, err, "'☃'", "does not know")


@pytest.mark.parametrize("argv", [["translate", "--beam", "0"], ["train", "--task", "poetry"],
                                  ["train", "--steps", "many"], ["dance"]])
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
])
def test_the_module_entry_point_fails_in_one_line(argv, message):
    result = subprocess.run([sys.executable, "-m", "transformer", *argv], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert_one_line_error(result.returncode, result.stderr, message)

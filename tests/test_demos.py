"""The demos: what they print is right, marked and readable, with or without Graphviz."""

import re
import sys
from pathlib import Path

import numpy as np
import pytest

import minigrad as mg
from minigrad import ops, reference
from minigrad.viz import to_dot
from transformer.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "demos"))

import attention_maps  # noqa: E402
import autograd_tour  # noqa: E402
import render_graphs  # noqa: E402
import train_tasks  # noqa: E402


def test_train_tasks_marks_wrong_outputs(monkeypatch):
    monkeypatch.setattr(train_tasks, "translate", lambda model, tokenizer, sources: ["90210", "777"])
    lines = train_tasks.show_examples(None, None, [("90210", "90210"), ("7", "7")])
    assert lines == ["  '90210' → '90210' ✓", "  '7' → '777' ✗ (expected '7')"]


def test_autograd_tour_prints_whole_headings_and_rounded_numbers(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # without dot it still runs, and says why there is no picture
    autograd_tour.main(["--out", str(tmp_path)])
    out = capsys.readouterr().out
    headings = [line for line in out.splitlines() if line.startswith("== ")]
    assert len(headings) == 3 and all(h.endswith(".") for h in headings), headings
    assert not re.search(r"\d\.\d{7,}", out), out  # no float32 noise such as 1.0000003576278687
    assert "∂o/∂w = [1.0, 0.0]" in out
    assert out.count("no picture: Graphviz's dot program is not installed") == 3


@pytest.mark.requires("dot")
def test_autograd_tour_draws_its_graphs(tmp_path, capsys):
    autograd_tour.main(["--out", str(tmp_path)])
    assert sorted(p.name for p in tmp_path.glob("*.svg")) == ["tour_layer.svg", "tour_matmul.svg",
                                                               "tour_neuron.svg"]


def ops_in(root):
    return render_graphs.count_nodes(to_dot(root))["ops"]


def test_fused_softmax_is_one_op_against_four_as_the_readme_says():
    x = mg.tensor(np.random.default_rng(0).standard_normal((2, 5)), requires_grad=True)
    cotangent = mg.tensor(np.ones((2, 5)))
    fused, composed = ops.softmax(x, -1), reference.softmax(x, -1)
    assert (ops_in(fused), ops_in(composed)) == (1, 4)  # the max is detached: not in the graph
    assert (ops_in((fused * cotangent).sum()), ops_in((composed * cotangent).sum())) == (3, 6)  # the demo's
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert "one op against four" in readme and "3 against 6 in the demo's graph" in readme


@pytest.fixture(scope="module")
def reverse_run(tmp_path_factory):
    """A reverse model after 2 steps of the micro size, where the CLI would write it."""
    where = tmp_path_factory.mktemp("cwd")
    config = TrainConfig.for_task("reverse", model="micro", steps=2, n_train=64, n_valid=8, n_test=8,
                                  out=str(where / "runs" / "reverse"))
    train(config, progress=False)
    return where


def test_attention_maps_uses_the_cli_checkpoint_without_retraining(reverse_run, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(reverse_run)
    monkeypatch.setattr(attention_maps, "train", lambda *a, **k: pytest.fail("retrained"))
    attention_maps.main(["--out", str(tmp_path), "--text", "123"])
    out = capsys.readouterr().out
    assert out.startswith("runs/reverse/checkpoint.npz: reverse model after 2 steps")
    assert (tmp_path / "attention_cross_attn.png").exists()


def test_attention_maps_refuses_characters_the_model_does_not_know(reverse_run, tmp_path, monkeypatch):
    monkeypatch.chdir(reverse_run)
    with pytest.raises(SystemExit) as exit:
        attention_maps.main(["--out", str(tmp_path), "--text", "12a"])
    assert "'a'" in str(exit.value) and "does not know" in str(exit.value)
    with pytest.raises(SystemExit, match="no such checkpoint file"):
        attention_maps.main(["--checkpoint", str(tmp_path / "none.npz")])


def test_attention_maps_says_that_it_trains_when_there_is_no_model(tmp_path, monkeypatch, capsys):
    class Trains(Exception):
        pass

    def train(config):
        raise Trains(config.task, config.out)

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(attention_maps, "OUT", tmp_path / "out")
    monkeypatch.setattr(attention_maps, "train", train)
    with pytest.raises(Trains) as trains:
        attention_maps.main(["--out", str(tmp_path)])
    assert trains.value.args == ("reverse", str(tmp_path / "out" / "runs" / "reverse"))
    assert "no reverse model yet: training one" in capsys.readouterr().out  # said before it starts

"""The run pictures draw into files and leave pyplot's backend alone (Jupyter keeps its inline figures)."""

import importlib

import matplotlib

import transformer.plots


def test_importing_the_plots_keeps_the_chosen_backend(tmp_path):
    matplotlib.use("svg")  # stands for any backend the user chose, e.g. Jupyter's inline one
    importlib.reload(transformer.plots)
    assert matplotlib.get_backend() == "svg"
    records = [{"split": "train", "step": s, "loss": 2.0 / s, "token_accuracy": 0.5} for s in (1, 2, 3)]
    records.append({"split": "valid", "step": 3, "loss": 0.9, "token_accuracy": 0.6, "exact_match": 0.2})
    path = transformer.plots.plot_training(records, tmp_path / "curves.png", title="a run")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.get_backend() == "svg"

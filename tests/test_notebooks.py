"""The notebooks in notebooks/ run top to bottom in quick mode (small sizes, every claim
still asserted), and each committed .ipynb holds exactly the cells of its .py source."""

import importlib.util
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
spec = importlib.util.spec_from_file_location("notebook_build", NOTEBOOKS / "build.py")
build = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build)

SOURCES = build.sources()


def test_there_are_notebooks():
    assert SOURCES, f"no NN_name.py notebook sources in {NOTEBOOKS}"


def _marks(path):
    # Graph pictures need Graphviz's dot.
    return [pytest.mark.requires("dot")] if "to_dot(" in path.read_text() else []


@pytest.mark.parametrize("source", [pytest.param(p, marks=_marks(p), id=p.stem) for p in SOURCES])
def test_notebook_runs_in_quick_mode(source):
    """Any cell raising (the closing assertions included) fails the test, naming the cell."""
    build.execute(build.read_source(source), quick=True)


@pytest.mark.parametrize("source", SOURCES, ids=[p.stem for p in SOURCES])
def test_committed_notebook_matches_its_source(source):
    assert build.check([source]) == []

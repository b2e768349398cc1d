"""The notebooks in notebooks/ run top to bottom in quick mode (small sizes, every claim
still asserted), and each committed .ipynb holds exactly the cells of its .py source."""

import importlib
import importlib.util
import re
import sys
from pathlib import Path

import numpy as np
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


# --------------------------------------------------------------------------- exercises

sys.path.append(str(NOTEBOOKS))  # appended: notebooks/ must not shadow installed packages for other tests
exercises = importlib.import_module("exercises")
solutions = {name: importlib.import_module(f"solutions.{name}")
             for name in ("engine", "autograd", "positions", "attention", "heads", "layer_norm", "decoder", "loss")}


def _stub(*args):
    raise NotImplementedError


def _returns_none(*args):
    return None


def _wrong_unbroadcast(grad, shape):
    return np.asarray(grad).sum(axis=tuple(range(np.ndim(grad) - len(shape))))  # forgets size-1 axes


def _wrong_positional_encoding(n, d):
    table = solutions["positions"].positional_encoding(n, d)
    return table[:, ::-1]  # cos/sin swapped order


def _wrong_shift_matrix(k, d):
    return solutions["positions"].shift_matrix(k, d).T  # rotates the wrong way


def _unstable_softmax(scores):
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(scores)
        return e / e.sum(-1, keepdims=True)


def _unscaled_attention(q, k, v, mask=None):
    scores = np.where(mask, q @ k.swapaxes(-1, -2), -np.inf)
    weights = solutions["attention"].softmax(scores)
    return weights @ v, weights


def _reshape_only_split(x, n_heads):
    b, t, d = x.shape
    return x.reshape(b, n_heads, t, d // n_heads)


def _reshape_only_merge(x):
    b, h, t, d_k = x.shape
    return x.reshape(b, t, h * d_k)


def _layer_norm_backward_without_mean(x, g, eps):
    centred = x - x.mean(-1, keepdims=True)
    r = 1 / np.sqrt((centred ** 2).mean(-1, keepdims=True) + eps)
    x_hat = centred * r
    return r * (g - x_hat * (g * x_hat).mean(-1, keepdims=True))  # the −mean(ḡ) term forgotten


def _post_norm_block(x, sublayer, norm):
    return norm(x + sublayer(x))


def _transposed_mask(length):
    return np.triu(np.ones((length, length), dtype=bool))


def _shift_without_bos(ids, bos, eos):
    return list(ids), list(ids) + [eos]


def _smoothing_without_renormalizing(targets, n_classes, eps):
    return np.eye(n_classes)[targets] + eps / n_classes


def _gradient_summed_not_averaged(logits, targets):
    return solutions["loss"].cross_entropy_grad(logits, targets) * len(logits)


def _engine_tensor():
    """The Tensor class that notebook 0a builds, with backward: its code cells run up to
    section 5 (the rest trains and reads sources, which the exercises do not need)."""
    import jupytext

    namespace = {}
    for cell in jupytext.read(NOTEBOOKS / "00_build_an_engine.py").cells:
        if cell.cell_type == "markdown" and cell.source.startswith("## 5"):
            break
        if cell.cell_type == "code":
            exec(compile(cell.source, "00_build_an_engine.py", "exec"), namespace)
    return namespace["Tensor"]


def _engine_check(check):
    tensor_class = _engine_tensor()
    return lambda fn: check(fn, tensor_class)


def _exp_with_rule_of_identity(a):
    out = np.exp(a.data)
    return type(a)(out, (a,), (lambda g: g,), "exp")


def _divide_forgetting_b(a, b):
    return type(a)(a.data / b.data, (a, b), (lambda g: g / b.data, lambda g: 0 * g), "divide")


EXERCISES = [  # (check, solution, a wrong answer, what the check must say about it)
    ("engine_exp", "engine", _exp_with_rule_of_identity, "exp: gradient of input 0: wrong at index"),
    ("engine_divide", "engine", _divide_forgetting_b, "divide: gradient of input 1: wrong at index"),
    ("sigmoid_rule", "autograd", lambda g, out: g * out, "disagrees with finite differences.*element"),
    ("unbroadcast", "autograd", _wrong_unbroadcast, r"gradient \(2, 3, 4\) -> input \(3, 1\): result has shape"),
    ("positional_encoding", "positions", _wrong_positional_encoding, "wrong at position 0, dimension 0"),
    ("shift_matrix", "positions", _wrong_shift_matrix, "wrong at position p = 0, dimension 0"),
    ("softmax", "attention", _unstable_softmax, "row 1 .* NaN/inf: exp overflowed"),
    ("attention", "attention", _unscaled_attention, "not divided by √d_k"),
    ("split_heads", "heads", _reshape_only_split, "a plain reshape mixes positions into heads"),
    ("merge_heads", "heads", _reshape_only_merge, r"merge_heads\(split_heads\(x\)\) != x at batch 0, position 0"),
    ("layer_norm_backward", "layer_norm", _layer_norm_backward_without_mean, "every row of x̄ sums to 0"),
    ("pre_norm_block", "layer_norm", _post_norm_block, "this is post-norm"),
    ("causal_mask", "decoder", _transposed_mask, "transposed"),
    ("shift_target", "decoder", _shift_without_bos, "tgt_in has 7 ids, expected 8"),
    ("smoothed_targets", "loss", _smoothing_without_renormalizing, "row 0 sums to 1.1000, not 1"),
    ("cross_entropy_grad", "loss", _gradient_summed_not_averaged, "4x too large"),
]


@pytest.mark.parametrize("name, module, wrong, message", EXERCISES, ids=[e[0] for e in EXERCISES])
def test_exercise_check(name, module, wrong, message, capsys):
    """Each check passes the solution, reports a stub as not done, and names what a wrong answer got wrong."""
    check = getattr(exercises, f"check_{name}")
    if name.startswith("engine_"):  # these also take the notebook's own Tensor class
        check = _engine_check(check)
    solution = getattr(solutions[module], name.removeprefix("engine_"))
    check(solution)
    exercises.run(check, solution)
    assert capsys.readouterr().out.endswith(": passed\n")
    for stub in (_stub, _returns_none):
        with pytest.raises(exercises.NotDone, match="fill it in"):
            check(stub)
        exercises.run(check, stub)
        assert ": not done yet (" in capsys.readouterr().out
    with pytest.raises(AssertionError, match=message) as caught:
        check(wrong)
    assert not isinstance(caught.value, exercises.NotDone)
    with pytest.raises(AssertionError, match=message):  # run() lets a wrong answer fail the cell
        exercises.run(check, wrong)


def test_every_check_has_a_test_and_a_solution():
    checks = {n[len("check_"):] for n in dir(exercises) if n.startswith("check_")}
    assert checks == {e[0] for e in EXERCISES}


# --------------------------------------------------------------------------- the claims table

NUMBER = re.compile(r"(?<![\w.])(\d+\.\d+)(e[-+]?\d+)?(%?)")


def _numbers(text):
    """(value, half a unit in its last printed digit, is a percentage) for every decimal number."""
    found = []
    for mantissa, exponent, percent in NUMBER.findall(text):
        scale = 10.0 ** int(exponent[1:]) if exponent else 1.0
        decimals = len(mantissa.split(".")[1])
        found.append((float(mantissa) * scale, 0.5 * 10.0 ** -decimals * scale, bool(percent)))
    return found


def _claims_rows():
    text = (NOTEBOOKS / "README.md").read_text(encoding="utf-8").split("## Claims and what was measured")[1]
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and re.fullmatch(r"\d+a?", cells[0]):
            yield cells


def _notebook_of(row_id):
    prefix = "00_build" if row_id == "0a" else f"{int(row_id):02d}_"
    matches = [p for p in SOURCES if p.name.startswith(prefix) and not (row_id == "0" and "build" in p.name)]
    assert len(matches) == 1, f"claims table: notebook {row_id!r} matches {[p.name for p in matches]}"
    return matches[0].with_suffix(".ipynb")


def _outputs_text(ipynb):
    import nbformat

    notebook = nbformat.read(ipynb, as_version=4)
    return "\n".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", []))


def _numbers_missing(rows, outputs_of):
    """The table's numbers that the outputs of their row's notebook do not show."""
    outputs = {}
    missing = []
    for row in rows:
        if row[0] not in outputs:
            outputs[row[0]] = _numbers(outputs_of(row[0]))
        for value, half, percent in _numbers(" | ".join(row[1:])):  # at the table's precision
            if not any(abs(x - value) <= half + 1e-12 * abs(value) and p == percent for x, _, p in outputs[row[0]]):
                missing.append(f"notebook {row[0]}: {value:g}{'%' if percent else ''} in {row[1]!r}")
    return missing


def test_claims_table_numbers_appear_in_the_notebooks_outputs():
    """Every decimal number in a row of notebooks/README.md's claims table is printed, at the
    table's precision, by the committed notebook of that row."""
    rows = list(_claims_rows())
    assert len(rows) > 20
    missing = _numbers_missing(rows, lambda row_id: _outputs_text(_notebook_of(row_id)))
    assert not missing, "numbers in the claims table that the notebook's outputs do not show:\n" + "\n".join(missing)


def test_claims_table_check_catches_a_number_the_outputs_do_not_show():
    outputs = {"4": "final loss 0.1294 (pre-norm), accuracy 97.8%\n"}
    rows = [["4", "residual stacks train better", "final loss 0.1294, accuracy 97.8%", "supported"]]
    assert _numbers_missing(rows, outputs.get) == []
    for wrong in ("final loss 0.129", "final loss 0.1249", "accuracy 97.8", "accuracy 0.978%"):
        missing = _numbers_missing([[*rows[0][:2], wrong, "supported"]], outputs.get)
        if wrong != "final loss 0.129":  # 0.129 is 0.1294 at the table's precision: allowed
            assert missing and missing[0].startswith("notebook 4: "), wrong
        else:
            assert missing == []

"""Every op in the rule table: forward against numpy, gradcheck and gradgradcheck over
hypothesis-generated shapes (broadcasting and batched matmul included) and values."""

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
from minigrad.testing import (
    GRID,
    arrays,
    away_from,
    broadcastable_shapes,
    check_grad,
    matmul_shapes,
    positive_arrays,
    shapes,
)

small = shapes(max_dims=3, max_side=3)
nonscalar = shapes(min_dims=1, max_dims=3, max_side=3)
OFF_GRID = 1 / (2 * GRID)  # added to one operand so it never ties with the other


@dataclass
class Case:
    name: str
    inputs: st.SearchStrategy  # draws (tensor_arrays, options)
    fn: Callable  # fn(*tensors, **options) -> Tensor
    reference: Callable | None  # reference(*arrays, **options) -> np.ndarray


def unary(elements=arrays(small)):
    return st.tuples(elements.map(lambda x: (x,)), st.just({}))


def binary(b_offset=0.0, b_elements=arrays):
    def draw(shape_pair):
        a_shape, b_shape = shape_pair
        return st.tuples(arrays(a_shape), b_elements(b_shape).map(lambda b: b + b_offset))
    return st.tuples(broadcastable_shapes(max_side=3).flatmap(draw), st.just({}))


def with_axis(elements, axis_choices="any"):
    """An array and options {axis, keepdims} valid for it."""
    def draw(x):
        axes = st.none() | st.integers(-x.ndim, x.ndim - 1) if x.ndim else st.none()
        if axis_choices == "any" and x.ndim:
            axes = axes | st.lists(st.integers(0, x.ndim - 1), unique=True, max_size=x.ndim).map(tuple)
        return st.tuples(st.just((x,)), st.fixed_dictionaries({"axis": axes, "keepdims": st.booleans()}))
    return elements.flatmap(draw)


def last_axis(elements):
    def draw(x):
        return st.tuples(st.just((x,)), st.fixed_dictionaries({"axis": st.integers(-x.ndim, x.ndim - 1)}))
    return elements.flatmap(draw)


def _np_softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _np_layer_norm(x, w=None, b=None, eps=1e-5):
    y = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps)
    return y * (1 if w is None else w) + (0 if b is None else b)


def _np_gelu(x, approximate):
    if approximate == "tanh":
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / np.sqrt(2)))


def _np_cross_entropy(logits, target, ignore_index, label_smoothing, reduction):
    """Reference straight from torch.nn.functional.cross_entropy's documented formula."""
    x = np.moveaxis(logits, 1, -1) if logits.ndim >= 2 else logits[None]
    t = target if logits.ndim >= 2 else target[None]
    logp = x - x.max(-1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
    valid = t != ignore_index
    nll = -np.take_along_axis(logp, np.where(valid, t, 0)[..., None], -1)[..., 0]
    loss = (1 - label_smoothing) * nll - label_smoothing * logp.mean(-1)
    loss = np.where(valid, loss, 0.0)
    if reduction == "none":
        return loss if logits.ndim >= 2 else loss[0]
    return loss.sum() if reduction == "sum" else loss.sum() / valid.sum()


@st.composite
def cross_entropy_inputs(draw):
    n, c = draw(st.integers(1, 3)), draw(st.integers(2, 4))
    extra = draw(st.sampled_from([(), (2,)]))
    logits = draw(arrays((n, c) + extra, low=-3, high=3))
    target = draw(hnp.arrays(np.int64, (n,) + extra, elements=st.integers(0, c - 1)))
    ignore = draw(st.booleans())
    if ignore:  # ignore some targets, but keep at least one counted
        drop = draw(hnp.arrays(bool, target.shape))
        drop.flat[0] = False
        target = np.where(drop, -100, target)
    options = {"target": target, "label_smoothing": draw(st.sampled_from([0.0, 0.1, 0.3])),
               "reduction": draw(st.sampled_from(["mean", "sum", "none"]))}
    return (logits,), options


@st.composite
def var_inputs(draw):
    """An array, {axis, keepdims} and a ddof that leaves at least one degree of freedom."""
    (x,), options = draw(with_axis(arrays(shapes(max_dims=3, min_side=2, max_side=3))))
    axes = range(x.ndim) if options["axis"] is None else np.atleast_1d(options["axis"])
    n = math.prod(x.shape[a] for a in axes)
    return (x,), dict(options, ddof=draw(st.sampled_from([0, 1] if n > 1 else [0])))


@st.composite
def embedding_backward_inputs(draw):
    """The VJP of embedding as a function of the output gradient (its own VJP is the
    second-order rule of embedding), with or without a padding row."""
    rows, dim = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    indices = draw(hnp.arrays(np.int64, draw(shapes(min_dims=1, max_dims=2, max_side=4)),
                              elements=st.integers(0, rows - 1)))
    g = draw(arrays(indices.shape + (dim,)))
    return (g,), {"indices": indices, "rows": rows, "padding_idx": draw(st.none() | st.integers(0, rows - 1))}


def _np_embedding_backward(g, indices, rows, padding_idx):
    table = np.zeros((rows, g.shape[-1]))
    for position in np.ndindex(indices.shape):
        table[indices[position]] += g[position]
    if padding_idx is not None:
        table[padding_idx] = 0
    return table


@st.composite
def embedding_inputs(draw):
    rows, dim = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    weight = draw(arrays((rows, dim)))
    # Few rows, several lookups: repeated indices are the common case.
    indices = draw(hnp.arrays(np.int64, draw(shapes(min_dims=1, max_dims=2, max_side=4)),
                              elements=st.integers(0, rows - 1)))
    return (weight,), {"indices": indices}


@st.composite
def getitem_inputs(draw):
    x = draw(arrays(shapes(min_dims=1, max_dims=3, max_side=4)))
    index = draw(hnp.basic_indices(x.shape, allow_ellipsis=True) | hnp.integer_array_indices(
        x.shape, result_shape=shapes(min_dims=1, max_dims=2, max_side=5)))
    return (x,), {"index": index}


@st.composite
def concatenate_inputs(draw):
    base = list(draw(shapes(min_dims=1, max_dims=3, max_side=3)))
    axis = draw(st.integers(0, len(base) - 1))
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        shape = list(base)
        shape[axis] = draw(st.integers(1, 3))
        parts.append(draw(arrays(tuple(shape))))
    return tuple(parts), {"axis": axis}


@st.composite
def stack_inputs(draw):
    shape = draw(shapes(max_dims=2, max_side=3))
    parts = tuple(draw(arrays(shape)) for _ in range(draw(st.integers(1, 3))))
    return parts, {"axis": draw(st.integers(-len(shape) - 1, len(shape)))}


@st.composite
def broadcast_to_inputs(draw):
    s = draw(hnp.mutually_broadcastable_shapes(num_shapes=1, max_dims=3, max_side=3))
    return (draw(arrays(s.input_shapes[0])),), {"shape": s.result_shape}


@st.composite
def matmul_inputs(draw):
    a_shape, b_shape = draw(matmul_shapes(max_side=3))
    return (draw(arrays(a_shape)), draw(arrays(b_shape))), {}


@st.composite
def linear_inputs(draw):
    batch = draw(shapes(max_dims=2, max_side=3))
    k, m = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    x, w, b = draw(arrays(batch + (k,))), draw(arrays((k, m))), draw(arrays((m,)))
    return (x, w, b), {"bias": draw(st.booleans())}


@st.composite
def attention_inputs(draw):
    batch = draw(shapes(max_dims=2, max_side=2))
    tq, tk, dk, dv = (draw(st.integers(1, 3)) for _ in range(4))
    q, k, v = draw(arrays(batch + (tq, dk))), draw(arrays(batch + (tk, dk))), draw(arrays(batch + (tk, dv)))
    mask = draw(st.none() | hnp.arrays(bool, batch + (tq, tk)))
    return (q, k, v), {"mask": mask, "dropout_p": draw(st.sampled_from([0.0, 0.5]))}


def _attention(q, k, v, mask, dropout_p):
    return mg.attention(q, k, v, mask, dropout_p, np.random.default_rng(0))[0]


def _np_attention(q, k, v, mask, dropout_p):
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    top = scores.max(-1, keepdims=True)
    e = np.exp(scores - np.where(np.isfinite(top), top, 0))
    total = e.sum(-1, keepdims=True)
    p = e / np.where(total == 0, 1, total)
    if dropout_p:
        p = p * (np.random.default_rng(0).random(p.shape, dtype=np.float32) >= dropout_p) / (1 - dropout_p)
    return p @ v


@st.composite
def where_inputs(draw):
    cond_shape, a_shape, b_shape = draw(broadcastable_shapes(num_shapes=3, max_side=3))
    return (draw(arrays(a_shape)), draw(arrays(b_shape))), {"condition": draw(hnp.arrays(bool, cond_shape))}


@st.composite
def layer_norm_inputs(draw):
    x = draw(arrays(shapes(min_dims=1, max_dims=3, min_side=2, max_side=4)))
    d = x.shape[-1]
    w = draw(arrays((d,), low=0.5, high=2))
    b = draw(arrays((d,)))
    affine = draw(st.sampled_from(["none", "weight", "both"]))
    return (x, w, b), {"affine": affine}


def _layer_norm(x, w, b, affine):
    return mg.layer_norm(x, w if affine != "none" else None, b if affine == "both" else None)


def _np_layer_norm_case(x, w, b, affine):
    return _np_layer_norm(x, w if affine != "none" else None, b if affine == "both" else None)


@st.composite
def pad_inputs(draw):
    x = draw(arrays(shapes(min_dims=1, max_dims=3, max_side=3)))
    widths = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in x.shape)
    return (x,), {"pad_width": widths, "value": draw(st.sampled_from([0.0, 1.5]))}


@st.composite
def split_inputs(draw):
    x = draw(arrays(shapes(min_dims=1, max_dims=3, max_side=4)))
    axis = draw(st.integers(0, x.ndim - 1))
    n = x.shape[axis]
    sections = draw(st.sampled_from([d for d in range(1, n + 1) if n % d == 0]))
    return (x,), {"sections": sections, "axis": axis}


@st.composite
def transpose_inputs(draw):
    x = draw(arrays(small))
    return (x,), {"axes": tuple(draw(st.permutations(range(x.ndim))))}


@st.composite
def reshape_inputs(draw):
    x = draw(arrays(small))
    target = draw(st.sampled_from([(-1,), (x.size, 1), (1, x.size, 1), x.shape[::-1]]))
    return (x,), {"shape": target}


@st.composite
def clip_inputs(draw):
    lo = draw(st.sampled_from([-1.0, -0.5, None]))
    hi = draw(st.sampled_from([0.5, 1.0, None] if lo is not None else [0.5, 1.0]))  # one bound, or both
    points = [p for p in (lo, hi) if p is not None]
    x = draw(arrays(small).map(away_from(points)))
    return (x,), {"min": lo, "max": hi}


@st.composite
def masked_fill_inputs(draw):
    x = draw(arrays(small))
    # A mask broadcasts *to* x: fewer leading axes, and 1 or the full size on each.
    mask_shape = tuple(draw(st.sampled_from([1, n])) for n in x.shape)[draw(st.integers(0, x.ndim)):]
    return (x,), {"mask": draw(hnp.arrays(bool, mask_shape)), "value": -5.0}


@st.composite
def pow_scalar_inputs(draw):
    x = draw(positive_arrays(small))
    return (x,), {"exponent": draw(st.sampled_from([2, 3, 0.5, -1.5, 1]))}


@st.composite
def dropout_inputs(draw):
    return (draw(arrays(small)),), {"p": draw(st.sampled_from([0.0, 0.25, 0.5])), "seed": draw(st.integers(0, 9))}


def _dropout(x, p, seed):
    return mg.dropout(x, p, np.random.default_rng(seed))


def _np_dropout(x, p, seed):
    if p == 0:
        return x
    keep = np.random.default_rng(seed).random(x.shape, dtype=np.float32) >= p
    return x * keep / (1 - p)


kink_free = arrays(small).map(away_from([0.0]))

CASES = [
    Case("add", binary(), lambda a, b: a + b, np.add),
    Case("sub", binary(), lambda a, b: a - b, np.subtract),
    Case("mul", binary(), lambda a, b: a * b, np.multiply),
    Case("div", binary(b_elements=positive_arrays), lambda a, b: a / b, np.divide),
    Case("rdiv_scalar", unary(positive_arrays(small)), lambda x: 2.0 / x, lambda x: 2.0 / x),
    Case("pow_scalar", pow_scalar_inputs(), lambda x, exponent: x ** exponent, lambda x, exponent: x ** exponent),
    Case("pow_tensor", binary(b_elements=positive_arrays).map(lambda t: ((t[0][1], t[0][0]), {})),
         lambda a, b: a ** b, np.power),
    Case("rpow_scalar", unary(), lambda x: 2.0 ** x, lambda x: 2.0 ** x),
    Case("neg", unary(), lambda x: -x, np.negative),
    Case("exp", unary(), mg.exp, np.exp),
    Case("log", unary(positive_arrays(small)), mg.log, np.log),
    Case("sqrt", unary(positive_arrays(small)), mg.sqrt, np.sqrt),
    Case("tanh", unary(), mg.tanh, np.tanh),
    Case("sigmoid", unary(), mg.sigmoid, lambda x: 1 / (1 + np.exp(-x))),
    Case("relu", unary(kink_free), mg.relu, lambda x: np.maximum(x, 0)),
    Case("gelu", unary(), mg.gelu, lambda x: _np_gelu(x, "none")),
    Case("gelu_tanh", unary(), lambda x: mg.gelu(x, "tanh"), lambda x: _np_gelu(x, "tanh")),
    Case("erf", unary(), mg.erf, np.vectorize(math.erf)),
    Case("abs", unary(kink_free), mg.abs, np.abs),
    Case("clip", clip_inputs(), mg.clip, np.clip),
    Case("maximum", binary(b_offset=OFF_GRID), mg.maximum, np.maximum),
    Case("minimum", binary(b_offset=OFF_GRID), mg.minimum, np.minimum),
    Case("sum", with_axis(arrays(small)), mg.sum, np.sum),
    Case("mean", with_axis(arrays(small)), mg.mean, np.mean),
    Case("var", var_inputs(), mg.var, np.var),
    Case("max", with_axis(arrays(small, unique=True)), mg.max, np.max),
    Case("min", with_axis(arrays(small, unique=True)), mg.min, np.min),
    Case("reshape", reshape_inputs(), mg.reshape, np.reshape),
    Case("transpose", transpose_inputs(), mg.transpose, np.transpose),
    Case("swapaxes", arrays(shapes(min_dims=2, max_dims=3, max_side=3)).map(lambda x: ((x,), {})),
         lambda x: mg.swapaxes(x, 0, -1), lambda x: np.swapaxes(x, 0, -1)),
    Case("broadcast_to", broadcast_to_inputs(), mg.broadcast_to, np.broadcast_to),
    Case("sum_to", broadcast_to_inputs().map(lambda t: ((np.broadcast_to(t[0][0], t[1]["shape"]).copy(),),
                                                       {"shape": t[0][0].shape})),
         mg.sum_to, None),
    Case("squeeze", arrays(shapes(max_dims=4, max_side=2)).map(lambda x: ((x,), {})), mg.squeeze, np.squeeze),
    Case("unsqueeze", arrays(small).map(lambda x: ((x,), {"axis": 0})), mg.unsqueeze, np.expand_dims),
    Case("getitem", getitem_inputs(), mg.getitem, lambda x, index: x[index]),
    Case("concatenate", concatenate_inputs(), lambda *xs, axis: mg.concatenate(xs, axis),
         lambda *xs, axis: np.concatenate(xs, axis)),
    Case("stack", stack_inputs(), lambda *xs, axis: mg.stack(xs, axis), lambda *xs, axis: np.stack(xs, axis)),
    Case("split", split_inputs(), lambda x, sections, axis: mg.stack(mg.split(x, sections, axis)),
         lambda x, sections, axis: np.stack(np.split(x, sections, axis))),
    Case("pad", pad_inputs(), mg.pad, lambda x, pad_width, value: np.pad(x, pad_width, constant_values=value)),
    Case("matmul", matmul_inputs(), lambda a, b: a @ b, np.matmul),
    Case("linear", linear_inputs(), lambda x, w, b, bias: mg.linear(x, w, b if bias else None),
         lambda x, w, b, bias: x @ w + (b if bias else 0)),
    Case("attention", attention_inputs(), _attention, _np_attention),
    Case("where", where_inputs(), lambda a, b, condition: mg.where(condition, a, b),
         lambda a, b, condition: np.where(condition, a, b)),
    Case("masked_fill", masked_fill_inputs(), mg.masked_fill, lambda x, mask, value: np.where(mask, value, x)),
    Case("softmax", last_axis(arrays(nonscalar)), mg.softmax, _np_softmax),
    Case("log_softmax", last_axis(arrays(nonscalar)), mg.log_softmax, lambda x, axis: np.log(_np_softmax(x, axis))),
    Case("layer_norm", layer_norm_inputs(), _layer_norm, _np_layer_norm_case),
    Case("cross_entropy", cross_entropy_inputs(), lambda x, **o: mg.cross_entropy(x, **o),
         lambda x, target, label_smoothing, reduction: _np_cross_entropy(x, target, -100, label_smoothing, reduction)),
    Case("embedding", embedding_inputs(), mg.embedding, lambda w, indices: w[indices]),
    Case("embedding_backward", embedding_backward_inputs(), mg.ops.embedding_backward, _np_embedding_backward),
    Case("dropout", dropout_inputs(), _dropout, _np_dropout),
]
IDS = [c.name for c in CASES]


def _bind(case, options):
    return lambda *tensors: case.fn(*tensors, **options)


@pytest.mark.parametrize("case", [c for c in CASES if c.reference is not None],
                         ids=[c.name for c in CASES if c.reference is not None])
@given(data=st.data())
def test_forward_matches_numpy(case, data):
    arrays_, options = data.draw(case.inputs)
    out = case.fn(*[mg.Tensor(a) for a in arrays_], **options)
    expected = case.reference(*arrays_, **options)
    assert out.shape == np.shape(expected)
    np.testing.assert_allclose(out.data, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=IDS)
@given(data=st.data())
def test_gradcheck(case, data):
    arrays_, options = data.draw(case.inputs)
    check_grad(_bind(case, options), *arrays_)


@pytest.mark.parametrize("case", CASES, ids=IDS)
@given(data=st.data())
def test_gradgradcheck(case, data):
    arrays_, options = data.draw(case.inputs)
    check_grad(_bind(case, options), *arrays_, second_order=True, full_jacobian_max=64)


def test_every_public_op_has_a_case():
    """A new op in the table must come with its property tests."""
    covered = {c.name for c in CASES} | {"pow"}  # pow: cases pow_scalar and pow_tensor
    from minigrad import ops
    public = {name for name, f in vars(ops).items()
              if callable(f) and not name.startswith("_") and getattr(f, "__module__", "") == "minigrad.ops"}
    exempt = {"index_add", "astype"}  # VJP-only ops, covered via their forward op
    assert public - covered - exempt == set()

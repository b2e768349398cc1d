"""Fused primitives agree with their composed references, and obey their laws."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
from minigrad import reference
from minigrad.testing import arrays, cotangents, shapes

rows = shapes(min_dims=1, max_dims=3, min_side=2, max_side=4)


def value_and_grads(fn, arrays_, cotangent):
    leaves = [mg.Tensor(a, requires_grad=True) for a in arrays_]
    out = fn(*leaves)
    return out.data, [g.data for g in mg.grad(out, leaves, grad_outputs=mg.Tensor(cotangent))]


def assert_same(fused, composed, arrays_, cotangent):
    v1, g1 = value_and_grads(fused, arrays_, cotangent)
    v2, g2 = value_and_grads(composed, arrays_, cotangent)
    np.testing.assert_allclose(v1, v2, rtol=1e-10, atol=1e-12)
    for a, b in zip(g1, g2):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11)


@given(arrays(rows, low=-4, high=4), st.data())
def test_softmax_fused_equals_composed(x, data):
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    assert_same(lambda t: mg.softmax(t, axis), lambda t: reference.softmax(t, axis), [x],
                data.draw(cotangents(x.shape)))


@given(arrays(rows, low=-4, high=4), st.data())
def test_log_softmax_fused_equals_composed(x, data):
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    assert_same(lambda t: mg.log_softmax(t, axis), lambda t: reference.log_softmax(t, axis), [x],
                data.draw(cotangents(x.shape)))


@given(arrays(rows), st.data())
def test_layer_norm_fused_equals_composed(x, data):
    d = x.shape[-1]
    w, b = data.draw(arrays((d,), low=0.5, high=2)), data.draw(arrays((d,)))
    assert_same(mg.layer_norm, reference.layer_norm, [x, w, b], data.draw(cotangents(x.shape)))


@given(arrays(rows, low=-4, high=4), st.data())
def test_softmax_input_grads_sum_to_zero_along_the_axis(x, data):
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    _, (g,) = value_and_grads(lambda t: mg.softmax(t, axis), [x], data.draw(cotangents(x.shape)))
    np.testing.assert_allclose(g.sum(axis=axis), 0.0, atol=1e-12)


@given(arrays(rows), st.data())
def test_layer_norm_input_grads_sum_to_zero_along_the_normalized_axis(x, data):
    w = data.draw(arrays((x.shape[-1],), low=0.5, high=2))
    _, (g, _) = value_and_grads(mg.layer_norm, [x, w], data.draw(cotangents(x.shape)))
    np.testing.assert_allclose(g.sum(axis=-1), 0.0, atol=1e-9)


@given(arrays(rows, low=-4, high=4))
def test_softmax_rows_are_distributions(x):
    p = mg.softmax(mg.Tensor(x), -1).data
    assert (p >= 0).all()
    np.testing.assert_allclose(p.sum(-1), 1.0)


def test_fused_graph_is_one_node_composed_is_many():
    x = mg.Tensor(np.ones((2, 3)), requires_grad=True)

    def count(t):
        seen, stack = set(), [t]
        while stack:
            t = stack.pop()
            if t.grad_fn is not None and id(t) not in seen:
                seen.add(id(t))
                stack.extend(t.grad_fn.inputs)
        return len(seen)

    assert count(mg.softmax(x)) == 1
    assert count(reference.softmax(x)) == 4  # sub, exp, sum, div (the max is detached)


# --------------------------------------------------------------------------- create_graph forms
# attention, layer_norm and cross_entropy have two forms of each VJP: numpy arrays for an
# ordinary backward (checked against finite differences by gradcheck) and minigrad ops when
# backward records a graph.  gradgradcheck differentiates the second form, but only the
# first is compared with finite differences, so here the two are compared with each other.
# (softmax, log_softmax, linear, embedding and dropout have one form for both.)


def both_backward_forms(fn, arrays_, data):
    """Gradients of ``fn`` at ``arrays_`` for one drawn cotangent, by an ordinary backward
    and by one with create_graph=True, from two separate forward passes."""
    with mg.no_grad():
        shape = fn(*[mg.Tensor(a) for a in arrays_]).shape
    cotangent = mg.Tensor(data.draw(cotangents(shape), label="cotangent"))
    results = []
    for create_graph in (False, True):
        leaves = [mg.Tensor(a, requires_grad=True) for a in arrays_]
        grads = mg.grad(fn(*leaves), leaves, grad_outputs=cotangent, create_graph=create_graph)
        assert grads[0].requires_grad == create_graph  # the recorded form really ran
        results.append([g.data for g in grads])
    return results


def assert_same_gradients(first, recorded, scale=1.0):
    for a, b in zip(first, recorded):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-11 * scale)


@st.composite
def attention_case(draw):
    batch = draw(shapes(max_dims=2, max_side=2), label="batch")
    tq, tk, dk, dv = (draw(st.integers(1, 3)) for _ in range(4))
    q, k, v = (draw(arrays(batch + s)) for s in ((tq, dk), (tk, dk), (tk, dv)))
    mask = draw(st.none() | hnp.arrays(bool, batch + (tq, tk)), label="mask")
    if mask is not None and draw(st.booleans(), label="a query with nothing to attend to"):
        mask[..., 0, :] = False
    p = draw(st.sampled_from([0.0, 0.3, 0.6]), label="dropout_p")
    return (q, k, v), dict(mask=mask, dropout_p=p, seed=draw(st.integers(0, 9), label="seed"))


@given(attention_case(), st.data())
def test_attention_create_graph_gradients_equal_the_first_order_ones(case, data):
    arrays_, o = case
    # A fresh Generator with a fixed seed per forward pass: both passes draw the same dropout mask.
    fn = lambda q, k, v: mg.attention(q, k, v, o["mask"], o["dropout_p"], np.random.default_rng(o["seed"]))[0]  # noqa: E731
    assert_same_gradients(*both_backward_forms(fn, arrays_, data))


def test_attention_create_graph_after_an_ordinary_backward_of_the_same_graph():
    # The two forms share a per-backward cache of the score gradient; a create_graph pass
    # must not reuse what an ordinary pass with the same cotangent left there.
    rng = np.random.default_rng(0)
    q, k, v = (mg.Tensor(rng.standard_normal((2, 3)), requires_grad=True) for _ in range(3))
    out, _ = mg.attention(q, k, v)
    cotangent = mg.Tensor(rng.standard_normal((2, 3)))
    (plain,) = mg.grad(out, [q], grad_outputs=cotangent, retain_graph=True)
    (recorded,) = mg.grad(out, [q], grad_outputs=cotangent, create_graph=True)
    np.testing.assert_allclose(recorded.data, plain.data, rtol=1e-12)
    fresh = [mg.Tensor(t.data.copy(), requires_grad=True) for t in (q, k, v)]
    (again,) = mg.grad(mg.attention(*fresh)[0], [fresh[0]], grad_outputs=cotangent, create_graph=True)
    np.testing.assert_allclose(mg.grad(recorded.sum(), q).data, mg.grad(again.sum(), fresh[0]).data, rtol=1e-12)


@given(arrays(rows), st.data())
def test_layer_norm_create_graph_gradients_equal_the_first_order_ones(x, data):
    d = x.shape[-1]
    if data.draw(st.booleans(), label="a constant row"):
        x = x.copy()
        x.reshape(-1, d)[0] = x.flat[0]  # zero variance: 1/√(σ² + ε) is as large as it gets
    eps = data.draw(st.sampled_from([1e-5, 1e-2, 0.5]), label="eps")
    affine = data.draw(st.sampled_from(["none", "weight", "bias", "both"]), label="affine")
    w, b = data.draw(arrays((d,), low=0.5, high=2), label="w"), data.draw(arrays((d,)), label="b")
    arrays_ = [x] + [w] * (affine in ("weight", "both")) + [b] * (affine in ("bias", "both"))

    def fn(x, *params):
        weight = params[0] if affine in ("weight", "both") else None
        bias = params[-1] if affine in ("bias", "both") else None
        return mg.layer_norm(x, weight, bias, eps)

    assert_same_gradients(*both_backward_forms(fn, arrays_, data), scale=eps ** -0.5)


@st.composite
def cross_entropy_case(draw):
    c = draw(st.integers(2, 4), label="classes")
    shape = draw(st.sampled_from([(), (3,), (2, 2)]), label="target shape")  # logits (C,), (N, C), (N, C, d)
    logits_shape = (c,) if shape == () else shape[:1] + (c,) + shape[1:]
    logits = draw(arrays(logits_shape, low=-3, high=3), label="logits")
    ignore_index = draw(st.sampled_from([-100, 0, c - 1]), label="ignore_index")  # may be a real class
    target = draw(hnp.arrays(np.int64, shape, elements=st.integers(0, c - 1)), label="target")
    if draw(st.booleans(), label="ignore some"):
        target = np.where(draw(hnp.arrays(bool, shape), label="ignored"), ignore_index, target)
    options = dict(target=target, ignore_index=ignore_index,
                   label_smoothing=draw(st.sampled_from([0.0, 0.1, 0.3, 1.0]), label="smoothing"),
                   reduction=draw(st.sampled_from(["mean", "sum", "none"]), label="reduction"))
    return logits, options


@given(cross_entropy_case(), st.data())
def test_cross_entropy_create_graph_gradients_equal_the_first_order_ones(case, data):
    logits, options = case
    with np.errstate(invalid="ignore", divide="ignore"):  # every target ignored: a NaN mean, as torch
        results = both_backward_forms(lambda x: mg.cross_entropy(x, **options), [logits], data)
    assert_same_gradients(*results)

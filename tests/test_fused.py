"""Fused primitives agree with their composed references, and obey their laws."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

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

"""The engine: backward semantics, higher order, modes, memory, dtypes and clear errors."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
from minigrad.testing import arrays, cotangents, shapes


def leaf(values, dtype=np.float64):
    return mg.Tensor(np.asarray(values, dtype=dtype), requires_grad=True)


# --------------------------------------------------------------------------- backward


def test_tensor_used_twice_gets_both_edges():
    x = leaf([1.0, -2.0, 3.0])
    (x + x).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [2.0, 2.0, 2.0])
    y = leaf([1.0, -2.0, 3.0])
    (y * y).sum().backward()
    np.testing.assert_array_equal(y.grad.data, [2.0, -4.0, 6.0])


def test_gradients_accumulate_until_zeroed():
    x = leaf([1.0, 2.0])
    for _ in range(3):
        (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [9.0, 9.0])
    x.zero_grad()
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [3.0, 3.0])


def test_leaves_own_their_gradient_arrays():
    # add's rule hands the same gradient to both inputs; clipping one must not touch the other.
    a, b = leaf([1.0]), leaf([2.0])
    (a + b).sum().backward()
    a.grad.data *= 10
    assert b.grad.data[0] == 1.0


def test_leaf_gradients_never_alias_the_callers_cotangent():
    a, b = leaf(np.ones(3)), leaf(np.ones(3))
    cotangent = mg.Tensor(np.array([1.0, 2.0, 3.0]))
    (a + b).backward(cotangent)
    a.grad.data *= 10
    np.testing.assert_array_equal(cotangent.data, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(b.grad.data, [1.0, 2.0, 3.0])


def test_long_chain_has_no_recursion_limit():
    x = leaf(1.0)
    y = x
    for _ in range(100_000):
        y = y * 1.0 + 0.0
    y.backward()
    assert x.grad.item() == 1.0


def test_grad_returns_without_touching_dot_grad():
    x = leaf([1.0, 2.0])
    (gx,) = mg.grad((x ** 2).sum(), [x])
    np.testing.assert_array_equal(gx.data, [2.0, 4.0])
    assert x.grad is None
    assert not gx.requires_grad


def test_grad_of_intermediate_tensor():
    x = leaf([1.0, 2.0])
    h = x * 3
    y = (h * h).sum()
    gh = mg.grad(y, h)
    np.testing.assert_array_equal(gh.data, 2 * h.data)


def test_hessian_vector_product():
    # f = Σ x³ has Hessian diag(6x); Hv = 6·x·v.
    x = leaf([1.0, -2.0, 0.5])
    v = np.array([0.3, 1.0, -2.0])
    (g,) = mg.grad((x ** 3).sum(), [x], create_graph=True)
    assert g.requires_grad
    (hv,) = mg.grad((g * v).sum(), [x])
    np.testing.assert_allclose(hv.data, 6 * x.data * v)


def test_third_derivative():
    x = leaf(0.7)
    y = mg.tanh(x)
    g1 = mg.grad(y, x, create_graph=True)
    g2 = mg.grad(g1, x, create_graph=True)
    g3 = mg.grad(g2, x)
    t = np.tanh(0.7)
    # d³/dx³ tanh = -2(1 - t²)(1 - 3t²)
    np.testing.assert_allclose(g3.item(), -2 * (1 - t * t) * (1 - 3 * t * t))


def test_backward_with_create_graph_gives_differentiable_grad():
    x = leaf([2.0])
    (x ** 3).sum().backward(create_graph=True)
    assert x.grad.requires_grad
    (gg,) = mg.grad(x.grad.sum(), [x])
    np.testing.assert_allclose(gg.data, [12.0])


def test_without_create_graph_backward_records_nothing():
    x = leaf([2.0])
    (x ** 3).sum().backward()
    assert x.grad.grad_fn is None and not x.grad.requires_grad


def test_buffers_are_freed_and_second_backward_explains():
    x = leaf([1.0, 2.0])
    y = (x.exp() * 2).sum()
    y.backward()
    assert y.grad_fn.vjps is None
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()


def test_retain_graph_allows_a_second_backward():
    x = leaf([1.0, 2.0])
    y = (x.exp() * 2).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.data, 4 * np.exp(x.data))


@given(arrays(shapes(min_dims=1, max_dims=2)), st.data())
def test_backward_is_linear_in_the_cotangent(x, data):
    a, b = data.draw(st.floats(-2, 2)), data.draw(st.floats(-2, 2))
    f = lambda t: (t.tanh() * t).softmax(-1) * 3  # noqa: E731
    u, v = data.draw(cotangents(x.shape)), data.draw(cotangents(x.shape))

    def vjp(c):
        t = leaf(x)
        return mg.grad(f(t), t, grad_outputs=mg.Tensor(c)).data

    np.testing.assert_allclose(vjp(a * u + b * v), a * vjp(u) + b * vjp(v), atol=1e-12)


@given(arrays(shapes(min_dims=1, max_dims=2)), st.data())
def test_inputs_and_cotangents_are_never_mutated(x, data):
    c = data.draw(cotangents(x.shape))
    x_before, c_before = x.copy(), c.copy()
    t = mg.Tensor(x, requires_grad=True)
    y = mg.layer_norm(mg.softmax(t * t, -1) + t, None, None)
    y.backward(mg.Tensor(c))
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(c, c_before)


# --------------------------------------------------------------------------- modes


def test_no_grad_and_enable_grad():
    x = leaf([1.0])
    with mg.no_grad():
        assert not (x * 2).requires_grad
        with mg.enable_grad():
            assert (x * 2).requires_grad
    assert (x * 2).requires_grad

    @mg.no_grad()
    def predict(t):
        return t * 2

    assert not predict(x).requires_grad
    assert mg.is_grad_enabled()


def test_nested_modes_restore_the_mode_they_entered_from():
    x = leaf([1.0])
    with mg.no_grad():
        with mg.no_grad():
            assert not mg.is_grad_enabled()
        assert not mg.is_grad_enabled() and not (x * 2).requires_grad  # still off after the inner exit
        with mg.enable_grad():
            with mg.no_grad():
                assert not mg.is_grad_enabled()
            assert mg.is_grad_enabled()  # back to enable_grad's mode, not to "off"
        assert not mg.is_grad_enabled()
    assert mg.is_grad_enabled()
    with mg.enable_grad():  # enable_grad where recording is already on changes nothing
        pass
    assert mg.is_grad_enabled()


def test_a_mode_is_restored_when_its_block_raises():
    with pytest.raises(KeyError), mg.no_grad():
        {}["missing"]
    assert mg.is_grad_enabled()
    with mg.no_grad():
        with pytest.raises(KeyError), mg.enable_grad():
            {}["missing"]
        assert not mg.is_grad_enabled()


def test_no_grad_decorated_function_called_under_no_grad_leaves_it_off():
    @mg.no_grad()
    def predict(t):
        return t * 2

    with mg.no_grad():
        predict(leaf([1.0]))
        assert not mg.is_grad_enabled()
    assert mg.is_grad_enabled()


def test_name_scope_is_recorded_on_nodes():
    x = leaf([1.0])
    with mg.name_scope("block"):
        with mg.name_scope("inner"):
            y = x * 2
        z = y + 1
    assert y.grad_fn.scope == ("block", "inner")
    assert z.grad_fn.scope == ("block",)
    assert (z * 1).grad_fn.scope == ()


# --------------------------------------------------------------------------- dtypes and mixing


def test_default_dtype_is_float32_and_float64_is_kept():
    assert mg.tensor([1.0, 2.0]).dtype == np.float32
    assert mg.tensor(np.zeros(2)).dtype == np.float64
    assert mg.tensor([1, 2]).dtype.kind == "i"


def test_scalars_and_arrays_mix_on_either_side_keeping_float32():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    for y in (2 * x, x * 2, 1 - x, x / 2.0, 2.0 / x, x ** 2, 2 ** x, np.float32(2) * x,
              np.ones(2, np.float32) * x, x + np.ones(2, np.float32)):
        assert isinstance(y, mg.Tensor) and y.dtype == np.float32 and y.requires_grad
    z = np.ones(2, np.float32) - x
    np.testing.assert_array_equal(z.data, [0.0, -1.0])


def test_tensor_basics():
    x = mg.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True, name="x")
    assert x.shape == (2, 2) and x.ndim == 2 and x.size == 4 and x.dtype == np.float32
    assert (x.sum()).item() == 10.0
    assert "requires_grad=True" in repr(x) and "'x'" in repr(x)
    assert "op=matmul" in repr(x @ x)
    d = (x * 2).detach()
    assert d.grad_fn is None and not d.requires_grad
    np.testing.assert_array_equal(x.T.data, x.data.T)
    r = mg.randn(2, 3, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(r.data, mg.randn(2, 3, rng=np.random.default_rng(0)).data)


# --------------------------------------------------------------------------- clear errors


def test_matmul_shape_mismatch_names_op_and_shapes():
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(4, 5\)"):
        mg.zeros(2, 3) @ mg.zeros(4, 5)


def test_broadcast_mismatch_names_op_and_shapes():
    with pytest.raises(ValueError, match=r"add: shapes \(2, 3\) and \(4,\)"):
        mg.zeros(2, 3) + mg.zeros(4)


def test_backward_on_non_scalar_needs_grad():
    x = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match=r"shape \(2,\), not a scalar"):
        (x * 2).backward()


def test_backward_on_tensor_without_history():
    with pytest.raises(RuntimeError, match="does not require grad"):
        mg.tensor(1.0).backward()


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(TypeError, match="only floating-point"):
        mg.tensor([1, 2], requires_grad=True)


def test_in_place_change_of_saved_input_is_detected():
    x = leaf([1.0, 2.0])
    w = mg.tensor([3.0, 4.0])
    y = (x * w).sum()
    w.add_(1.0)
    with pytest.raises(RuntimeError, match=r"input 1 of 'mul'.*modified in place"):
        y.backward()


def test_in_place_change_of_a_tensor_requiring_grad_is_refused_while_recording():
    x = leaf([1.0])
    with pytest.raises(RuntimeError, match="no_grad"):
        x.add_(1.0)
    with mg.no_grad():
        x.add_(1.0)
    assert x.data[0] == 2.0


def test_copy_needs_the_same_shape():
    t = mg.zeros(2, 3)
    with pytest.raises(ValueError, match=r"copy_: source has shape \(3,\), tensor has \(2, 3\)"):
        t.copy_(np.ones(3))


def test_detect_anomaly_names_forward_op():
    x = leaf([-1.0, 1.0])
    with mg.detect_anomaly(), pytest.raises(FloatingPointError, match="log"):
        with np.errstate(invalid="ignore"):
            mg.log(x)


def test_detect_anomaly_names_backward_op_and_scope():
    x = leaf([0.0, 1.0])
    with mg.detect_anomaly(), pytest.raises(FloatingPointError, match=r"sqrt in scope 'layer'.*backward"):
        with mg.name_scope("layer"):
            y = mg.sqrt(x).sum()
        with np.errstate(divide="ignore"):
            y.backward()


def test_broken_rule_shape_is_reported_with_op_name():
    from minigrad.autograd import record

    x = leaf(np.ones((2, 3)))
    z = record("bad_shape", x.data.sum(0), (x,), lambda g, out: mg.zeros(4, dtype=np.float64))
    with pytest.raises(RuntimeError, match=r"'bad_shape' returned a gradient of shape \(4,\)"):
        z.sum().backward()


def test_a_rule_returning_a_numpy_array_is_reported_with_op_name():
    from minigrad.autograd import record

    x = leaf(np.ones(3))
    z = record("raw_rule", 2 * x.data, (x,), lambda g, out: 2 * g.data)  # an ndarray, not a Tensor
    with pytest.raises(TypeError, match=r"VJP rule of 'raw_rule' for input 0 returned ndarray; "
                                        r"a rule must return a Tensor"):
        z.sum().backward()


def test_softmax_of_fully_masked_row_is_defined():
    x = leaf(np.array([[0.5, 1.0], [0.0, 0.0]]))
    mask = np.array([[False, True], [True, True]])
    p = x.masked_fill(mask, -np.inf).softmax(-1)
    np.testing.assert_array_equal(p.data, [[1.0, 0.0], [0.0, 0.0]])
    lp = x.masked_fill(mask, -np.inf).log_softmax(-1)
    assert not np.isnan(lp.data).any()
    (p.sum() + mg.where(np.isfinite(lp.data), lp, 0.0).sum()).backward()
    assert np.isfinite(x.grad.data).all()
    np.testing.assert_array_equal(x.grad.data[mask], 0.0)


@given(arrays(shapes(max_dims=2)))
def test_astype_gradient_converts_back(x):
    # float64 -> float32 -> float64 is the identity up to float32 rounding (~1e-7), so a
    # wide finite-difference step measures its derivative (1) accurately.
    from minigrad import gradcheck

    t = mg.Tensor(x, requires_grad=True)
    assert gradcheck(lambda v: (v.astype(np.float32) * 3).astype(np.float64), [t], eps=1e-2, atol=1e-4)
    g = mg.grad(t.astype(np.float32).sum(), t)
    assert g.dtype == np.float64 and np.all(g.data == 1)

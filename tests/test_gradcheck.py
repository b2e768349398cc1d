"""The checker can fail: deliberately wrong VJP rules are caught, with useful messages."""

import contextlib

import numpy as np
import pytest

import minigrad as mg
from minigrad.autograd import record
from minigrad.gradcheck import GradcheckError, KinkError, gradcheck, gradgradcheck


@contextlib.contextmanager
def raises_exactly(error, match=None):
    """pytest.raises for ``error`` itself, not a subclass: a wrong rule must be reported as a
    mismatch (GradcheckError), not as a kink (KinkError, a subclass)."""
    with pytest.raises(error, match=match) as info:
        yield info
    assert type(info.value) is error, f"expected {error.__name__}, got {type(info.value).__name__}: {info.value}"


def leaf(shape, seed=0):
    return mg.Tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


def tanh_with_sign_flip(x):
    return record("bad_tanh", np.tanh(x.data), (x,), lambda g, out: -g * (1 - out * out))


def matmul_with_transposed_grad(a, b):
    # Right: ā = ḡ @ bᵀ.  Wrong: ḡ @ b (same shape for square b, so only values give it away).
    return record("bad_matmul", a.data @ b.data, (a, b),
                  lambda g, out: g @ b, lambda g, out: a.T @ g)


def scale_rows_without_reduction(x, s):
    # y = x · s[:, None]; right: s̄ = Σⱼ ḡ·x along axis 1.  Wrong: the sum is missing.
    return record("bad_scale_rows", x.data * s.data[:, None], (x, s),
                  lambda g, out: g * s.reshape(-1, 1), lambda g, out: g * x)


def exp_with_detached_output(x):
    # First order right; but the rule treats e^x as a constant, so the second order is wrong.
    return record("bad_exp", np.exp(x.data), (x,), lambda g, out: g * out.detach())


def test_sign_flip_is_caught_with_a_labelled_message():
    with raises_exactly(GradcheckError) as info:
        gradcheck(tanh_with_sign_flip, [leaf(3)])
    message = str(info.value)
    for part in ("input 0", "element", "analytic=", "numeric=", "abs err=", "rel err=", "eps=", "seed="):
        assert part in message
    assert "np." not in message  # plain numbers: element (0,), not (np.int64(0),)


def test_transposed_matmul_grad_is_caught():
    with raises_exactly(GradcheckError, match="input 0"):
        gradcheck(matmul_with_transposed_grad, [leaf((3, 3)), leaf((3, 3), 1)])


def test_missing_broadcast_reduction_is_caught_by_the_engine_shape_check():
    with pytest.raises(RuntimeError, match=r"'bad_scale_rows' returned a gradient of shape \(2, 3\) for input 1"):
        gradcheck(scale_rows_without_reduction, [leaf((2, 3)), leaf(2, 1)])


def test_missing_broadcast_reduction_is_caught_numerically_when_shapes_happen_to_fit():
    # For a square x the wrong (3, 3) gradient broadcasts against s's (3,) and is summed
    # over the wrong axis; only the values can reveal it.
    with raises_exactly(GradcheckError, match="input 1"):
        gradcheck(scale_rows_without_reduction, [leaf((3, 3)), leaf(3, 1)])


def test_wrong_rule_is_caught_in_random_projection_mode():
    with raises_exactly(GradcheckError, match="random projection"):
        gradcheck(tanh_with_sign_flip, [leaf(600)], full_jacobian_max=100)


def test_right_rules_pass_in_both_modes():
    assert gradcheck(lambda x: mg.tanh(x), [leaf(600)], full_jacobian_max=100)
    assert gradcheck(lambda x: mg.tanh(x), [leaf(6)])


def test_wrong_second_derivative_is_caught_by_gradgradcheck_only():
    assert gradcheck(exp_with_detached_output, [leaf(3)])
    with raises_exactly(GradcheckError):
        gradgradcheck(exp_with_detached_output, [leaf(3)])


def test_kink_is_reported_as_a_kink():
    # relu at 0: the rule says 0, central differences say ½; the one-sided ones say 0 and 1.
    x = mg.Tensor(np.array([0.0, 1.0]), requires_grad=True)
    with pytest.raises(KinkError, match="kink"):
        gradcheck(mg.relu, [x])


def test_rule_ignoring_the_cotangent_is_caught():
    bad = lambda x: record("bad_const", x.data * 2, (x,), lambda g, out: g * 0 + 2)  # noqa: E731
    with raises_exactly(GradcheckError):
        gradcheck(bad, [leaf(3)])


def test_raise_exception_false_returns_false():
    assert gradcheck(tanh_with_sign_flip, [leaf(3)], raise_exception=False) is False


def test_float32_inputs_are_checked_in_float64_with_a_warning():
    x = mg.Tensor(np.array([0.3, -0.2], dtype=np.float32), requires_grad=True)
    with pytest.warns(UserWarning, match="float64"):
        assert gradcheck(mg.tanh, [x])


def test_nothing_to_check_is_an_error():
    with pytest.raises(ValueError, match="requires_grad"):
        gradcheck(mg.tanh, [mg.Tensor(np.ones(2))])


# --------------------------------------------------------------------------- localization


def tanh_wrong_at(position, shape):
    """tanh whose rule flips the sign of the gradient at one ``position`` only."""
    factor = np.ones(shape)
    factor[position] = -1.0
    return lambda x: record("bad_tanh_at", np.tanh(x.data), (x,), lambda g, out: g * (1 - out * out) * factor)


@pytest.mark.parametrize("position", [(1, 2), (0, 1), (1, 0)])
def test_a_rule_wrong_at_one_element_is_caught_and_that_element_is_named(position):
    x = leaf((2, 3))
    with raises_exactly(GradcheckError, match=rf"input 0, element \({position[0]}, {position[1]}\): analytic=") as info:
        gradcheck(tanh_wrong_at(position, (2, 3)), [x])
    t = 1 - np.tanh(x.data[position]) ** 2
    # The message gives both values; with the sign flipped they are opposite.
    analytic = float(str(info.value).split("analytic=")[1].split(",")[0])
    numeric = float(str(info.value).split("numeric=")[1].split(",")[0])
    assert analytic == pytest.approx(-numeric, rel=1e-6) and abs(numeric) > 0.1 * t


def test_the_last_element_is_checked_when_the_jacobian_rows_are_not():
    # 40 outputs > full_jacobian_max: only vᵀJ is compared, element by element.
    def tiled(x):
        wrong = np.array([1.0, 1.0, 1.0, -1.0])
        return record("bad_tile", np.tile(np.tanh(x.data), 10), (x,),
                      lambda g, out: (g.reshape(10, 4).sum(axis=0) * (1 - mg.tanh(x) ** 2)) * wrong)

    with raises_exactly(GradcheckError, match=r"input 0, element \(3,\): analytic="):
        gradcheck(tiled, [leaf(4)], full_jacobian_max=20)


def test_a_jacobian_row_wrong_at_its_last_element_is_caught():
    # Right for the dense random cotangent (so vᵀJ agrees), wrong for the unit cotangents
    # that pick out single rows of the Jacobian: only the row comparison can see it.
    def sparse_blind(x):
        last = np.zeros(4)
        last[-1] = 1.0
        return record("bad_rows", np.tanh(x.data), (x,),
                      lambda g, out: g * (1 - out * out) + float((g.data == 0).any()) * last)

    with raises_exactly(GradcheckError, match=r"input 0 \(d output 0\[\d\]\), element \(3,\)"):
        gradcheck(sparse_blind, [leaf(4)])


def test_a_nonzero_gradient_for_a_zero_cotangent_is_caught():
    # Right for every nonzero cotangent; random projections (5 > full_jacobian_max) see only those.
    def leaky(x):
        return record("bad_leak", x.data * 2, (x,), lambda g, out: g * 2 + float(not g.data.any()))

    with raises_exactly(GradcheckError, match=r"zero cotangent gave a non-zero gradient for input 0, element \(0,\)"):
        gradcheck(leaky, [leaf(5)], full_jacobian_max=2)

"""The checker can fail: deliberately wrong VJP rules are caught, with useful messages."""

import numpy as np
import pytest

import minigrad as mg
from minigrad.autograd import record
from minigrad.gradcheck import GradcheckError, KinkError, gradcheck, gradgradcheck


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
    with pytest.raises(GradcheckError) as info:
        gradcheck(tanh_with_sign_flip, [leaf(3)])
    message = str(info.value)
    for part in ("input 0", "element", "analytic=", "numeric=", "abs err=", "rel err=", "eps=", "seed="):
        assert part in message
    assert "np." not in message  # plain numbers: element (0,), not (np.int64(0),)


def test_transposed_matmul_grad_is_caught():
    with pytest.raises(GradcheckError, match="input 0"):
        gradcheck(matmul_with_transposed_grad, [leaf((3, 3)), leaf((3, 3), 1)])


def test_missing_broadcast_reduction_is_caught_by_the_engine_shape_check():
    with pytest.raises(RuntimeError, match=r"'bad_scale_rows' returned a gradient of shape \(2, 3\) for input 1"):
        gradcheck(scale_rows_without_reduction, [leaf((2, 3)), leaf(2, 1)])


def test_missing_broadcast_reduction_is_caught_numerically_when_shapes_happen_to_fit():
    # For a square x the wrong (3, 3) gradient broadcasts against s's (3,) and is summed
    # over the wrong axis; only the values can reveal it.
    with pytest.raises(GradcheckError, match="input 1"):
        gradcheck(scale_rows_without_reduction, [leaf((3, 3)), leaf(3, 1)])


def test_wrong_rule_is_caught_in_random_projection_mode():
    with pytest.raises(GradcheckError, match="random projection"):
        gradcheck(tanh_with_sign_flip, [leaf(600)], full_jacobian_max=100)


def test_right_rules_pass_in_both_modes():
    assert gradcheck(lambda x: mg.tanh(x), [leaf(600)], full_jacobian_max=100)
    assert gradcheck(lambda x: mg.tanh(x), [leaf(6)])


def test_wrong_second_derivative_is_caught_by_gradgradcheck_only():
    assert gradcheck(exp_with_detached_output, [leaf(3)])
    with pytest.raises(GradcheckError):
        gradgradcheck(exp_with_detached_output, [leaf(3)])


def test_kink_is_reported_as_a_kink():
    # relu at 0: the rule says 0, central differences say ½; the one-sided ones say 0 and 1.
    x = mg.Tensor(np.array([0.0, 1.0]), requires_grad=True)
    with pytest.raises(KinkError, match="kink"):
        gradcheck(mg.relu, [x])


def test_rule_ignoring_the_cotangent_is_caught():
    bad = lambda x: record("bad_const", x.data * 2, (x,), lambda g, out: g * 0 + 2)  # noqa: E731
    with pytest.raises(GradcheckError):
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

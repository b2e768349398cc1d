"""Where a function has no derivative (a kink, a tie), its rule must still pick a value.
These tests pin each choice, the one PyTorch makes, so it cannot change unnoticed.
The property tests elsewhere draw points away from kinks and ties, so they never see these."""

import numpy as np
import pytest

import minigrad as mg


def grad_of(fn, values):
    x = mg.Tensor(np.asarray(values, dtype=np.float64), requires_grad=True)
    return mg.grad(fn(x).sum(), x).data


def test_relu_gradient_at_exactly_zero_is_zero():
    np.testing.assert_array_equal(grad_of(mg.relu, [-1.0, 0.0, 2.0]), [0.0, 0.0, 1.0])


def test_abs_gradient_at_exactly_zero_is_zero():
    np.testing.assert_array_equal(grad_of(mg.abs, [-1.5, 0.0, 2.0]), [-1.0, 0.0, 1.0])


def test_clip_passes_the_gradient_at_its_bounds_and_stops_it_beyond():
    x = [-2.0, -1.0, 0.0, 1.0, 3.0]
    np.testing.assert_array_equal(grad_of(lambda t: mg.clip(t, -1.0, 1.0), x), [0, 1, 1, 1, 0])
    np.testing.assert_array_equal(grad_of(lambda t: mg.clip(t, min=-1.0), x), [0, 1, 1, 1, 1])
    np.testing.assert_array_equal(grad_of(lambda t: mg.clip(t, max=1.0), x), [1, 1, 1, 1, 0])


def test_clip_with_one_bound_clips_on_that_side_only():
    x = mg.Tensor(np.array([-2.0, 0.5, 3.0]))
    np.testing.assert_array_equal(mg.clip(x, min=-1.0).data, [-1.0, 0.5, 3.0])
    np.testing.assert_array_equal(mg.clip(x, max=1.0).data, [-2.0, 0.5, 1.0])


@pytest.mark.parametrize("op", [mg.maximum, mg.minimum])
def test_elementwise_maximum_and_minimum_split_a_tie_half_and_half(op):
    a = mg.Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    b = mg.Tensor(np.array([1.0, 1.0, 4.0]), requires_grad=True)
    ga, gb = mg.grad(op(a, b).sum(), [a, b])
    wins_a = [0.5, 1.0, 0.0] if op is mg.maximum else [0.5, 0.0, 1.0]
    np.testing.assert_array_equal(ga.data, wins_a)
    np.testing.assert_array_equal(gb.data, 1 - np.array(wins_a))


@pytest.mark.parametrize("op", [mg.max, mg.min])
def test_max_and_min_share_the_gradient_equally_among_tied_elements(op):
    sign = 1.0 if op is mg.max else -1.0  # min of -x ties exactly where max of x does
    x = sign * np.array([[3.0, 3.0, 2.0, 3.0],
                         [2.0, 0.0, 2.0, 1.0]])
    # Over the last axis: row 0 has a three-way tie, row 1 a two-way tie.
    np.testing.assert_array_equal(grad_of(lambda t: op(t, axis=1), x),
                                  [[1 / 3, 1 / 3, 0, 1 / 3], [0.5, 0, 0.5, 0]])
    # Over the first axis: only column 0 is untied, column 2 ties between the rows.
    np.testing.assert_array_equal(grad_of(lambda t: op(t, axis=0, keepdims=True), x[:, :3]),
                                  [[1, 1, 0.5], [0, 0, 0.5]])
    # Over every axis: the three 3's of row 0 share one gradient.
    np.testing.assert_array_equal(grad_of(op, x), [[1 / 3, 1 / 3, 0, 1 / 3], [0, 0, 0, 0]])
    np.testing.assert_array_equal(grad_of(lambda t: op(t, axis=(0, 1)), x), grad_of(op, x))


def test_a_tie_shares_a_non_uniform_cotangent_per_reduced_slice():
    x = mg.Tensor(np.array([[5.0, 5.0], [1.0, 7.0]]), requires_grad=True)
    (g,) = mg.grad(mg.max(x, axis=1), [x], grad_outputs=mg.Tensor(np.array([4.0, -2.0])))
    np.testing.assert_array_equal(g.data, [[2.0, 2.0], [0.0, -2.0]])

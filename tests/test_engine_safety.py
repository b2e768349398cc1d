"""The engine's guards: writes to arrays saved for backward, the dtype of mixed-dtype
gradients, and reductions over empty axes."""

import numpy as np
import pytest

import minigrad as mg
from minigrad import ops

# ----------------------------------------------------------------------------- saved arrays


def test_tracked_in_place_changes_are_caught_by_default():
    w = mg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x = mg.tensor([4.0, 5.0, 6.0])
    y = (w * x).sum()
    x[0] = 100.0  # Tensor.__setitem__ bumps the version counter
    with pytest.raises(RuntimeError, match=r"input 1 of 'mul' \(shape \(3,\)\) was modified in place"):
        y.backward()


def untracked_writes():
    """Three writes the version counter cannot see, each after mul saved the array."""
    def through_data():
        w = mg.tensor([1.0, 2.0, 3.0], requires_grad=True)
        x = mg.tensor([4.0, 5.0, 6.0])
        y = (w * x).sum()
        x.data[0] = 100.0
        return w, y, "input 1 of 'mul'"

    def into_the_wrapped_array():
        array = np.array([4.0, 5.0, 6.0], dtype=np.float32)
        w = mg.tensor([1.0, 2.0, 3.0], requires_grad=True)
        y = (w * mg.Tensor(array)).sum()
        array[0] = 100.0
        return w, y, "input 1 of 'mul'"

    def into_a_saved_output():
        w = mg.tensor([1.0, 2.0, 3.0], requires_grad=True)
        e = w.exp()
        e.data[0] = 100.0  # exp's VJP reads its output
        return w, e, "the output of 'exp'"

    return [through_data, into_the_wrapped_array, into_a_saved_output]


@pytest.mark.parametrize("case", untracked_writes(), ids=lambda f: f.__name__)
def test_untracked_writes_are_documented_as_invisible_without_anomaly_mode(case):
    w, y, _ = case()
    y.backward(np.ones(y.shape, y.dtype))  # no error: the documented limit (as with .data in PyTorch) ...
    assert w.grad.data[0] == 100.0  # the written value leaked into the gradient
    with mg.detect_anomaly():
        w2, y2, where = case()
    with mg.detect_anomaly(), pytest.raises(RuntimeError, match=rf"detect_anomaly: {where} .* was changed "
                                                                r"through its numpy array"):
        y2.backward(np.ones(y2.shape, y2.dtype))  # ... which anomaly mode closes
    assert w2.grad is None


def test_anomaly_mode_accepts_unchanged_arrays_and_gives_the_same_gradients():
    rng = np.random.default_rng(0)
    x = mg.tensor(rng.standard_normal((4, 5)).astype(np.float32), requires_grad=True)
    w = mg.tensor(rng.standard_normal((5, 3)).astype(np.float32), requires_grad=True)

    def loss():
        h = mg.layer_norm((x @ w).tanh()).softmax(-1)
        return (h * h).mean() + x.max() + mg.log_softmax(x, 0).sum()

    loss().backward()
    plain = (x.grad.data.copy(), w.grad.data.copy())
    x.grad = w.grad = None
    with mg.detect_anomaly():
        loss().backward()
    assert np.array_equal(x.grad.data, plain[0]) and np.array_equal(w.grad.data, plain[1])


# ----------------------------------------------------------------------------- gradient dtypes


@pytest.mark.parametrize("op", [
    lambda a, b: a * b, lambda a, b: a + b, lambda a, b: b - a, lambda a, b: a / (b * b + 1),
    lambda a, b: (a @ b.T) if a.ndim == 2 else a * b, lambda a, b: mg.maximum(a, b), lambda a, b: a ** 2 * b,
], ids=["mul", "add", "sub", "div", "matmul", "maximum", "pow"])
@pytest.mark.parametrize("leaf_dtype, other_dtype", [
    (np.float32, np.float64), (np.float32, np.int64), (np.float64, np.float32), (np.float16, np.float64)])
def test_each_input_gets_a_gradient_of_its_own_dtype(op, leaf_dtype, other_dtype):
    rng = np.random.default_rng(1)
    a = mg.tensor(rng.uniform(1, 2, (3, 4)).astype(leaf_dtype), requires_grad=True)
    b = mg.tensor(rng.integers(1, 4, (3, 4)).astype(other_dtype),
                  requires_grad=np.issubdtype(other_dtype, np.floating))
    op(a, b).sum().backward()
    assert a.grad.dtype == leaf_dtype
    if b.requires_grad:
        assert b.grad.dtype == other_dtype
    (ga,) = mg.grad(op(a, b).sum(), [a])
    assert ga.dtype == leaf_dtype and np.allclose(ga.data, a.grad.data, rtol=1e-3)


def test_mixed_dtype_gradients_are_still_differentiable():
    a = mg.tensor([1.0, 2.0], requires_grad=True)  # float32
    b = mg.tensor(np.array([3.0, 4.0]))  # float64
    (ga,) = mg.grad((a * a * b).sum(), [a], create_graph=True)  # 2ab
    assert ga.dtype == np.float32
    (gga,) = mg.grad(ga.sum(), [a])  # 2b
    assert gga.dtype == np.float32 and np.allclose(gga.data, [6.0, 8.0])


# ----------------------------------------------------------------------------- empty axes


@pytest.mark.parametrize("call, message", [
    (lambda x: ops.softmax(x, -1), "softmax: axis 1 of shape (3, 0) is empty"),
    (lambda x: ops.log_softmax(x, 1), "log_softmax: axis 1 of shape (3, 0) is empty"),
    (lambda x: x.max(axis=1), "max: axis 1 of shape (3, 0) is empty"),
    (lambda x: x.min(), "min: axis 1 of shape (3, 0) is empty"),
    (lambda x: x.mean(axis=-1), "mean: axis 1 of shape (3, 0) is empty"),
    (lambda x: x.var(axis=1), "var: 0 element(s) over axes (1,) of shape (3, 0) with ddof=0"),
    (lambda x: ops.layer_norm(x), "layer_norm: axis 1 of shape (3, 0) is empty"),
    (lambda x: ops.cross_entropy(x, np.zeros(3, dtype=int)), "cross_entropy: axis 1 of shape (3, 0) is empty"),
    (lambda x: ops.attention(x[None], x[None], x[None])[0], "attention: q (1, 3, 0) and k (1, 3, 0) have no keys"),
])
def test_reductions_over_an_empty_axis_name_the_op_shape_and_axis(call, message):
    x = mg.tensor(np.zeros((3, 0), np.float32), requires_grad=True)
    with pytest.raises(ValueError) as info:
        call(x)
    assert str(info.value).startswith(message)


def test_reductions_over_non_empty_axes_of_an_empty_tensor_still_work():
    x = mg.tensor(np.zeros((0, 3), np.float32), requires_grad=True)
    for y in (x.max(axis=1), x.softmax(-1), x.mean(axis=1), x.sum(axis=0)):
        y.sum().backward()
        assert x.grad.shape == (0, 3)
        x.grad = None
    assert x.sum(axis=0).data.tolist() == [0.0, 0.0, 0.0]

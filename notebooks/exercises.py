"""Checks for the notebooks' exercises: one ``check_<name>(learner_fn)`` per exercise.

Each check calls the learner's function on fixed inputs and compares it with the
library's own function (or with finite differences).  It returns quietly when the
answer is right and raises ``AssertionError`` with one message naming what is wrong:
the axis, the element, the row.  An exercise still holding its stub (it raises
``NotImplementedError`` or returns ``None``) raises ``NotDone``, an ``AssertionError``
too, which :func:`run` turns into a printed "not done yet", so a notebook runs top to
bottom before its exercises are filled in.  Solutions: ``notebooks/solutions/``.
"""

from __future__ import annotations

import numpy as np

import minigrad as mg
from minigrad.autograd import record


class NotDone(AssertionError):
    """The exercise still holds its stub."""


def run(check, learner_fn) -> None:
    """Run ``check(learner_fn)`` and print "passed" or "not done yet"; a wrong answer
    raises its ``AssertionError``, whose message names what is wrong."""
    name = getattr(learner_fn, "__name__", "the exercise")
    try:
        check(learner_fn)
    except NotDone as error:
        print(f"{name}: not done yet ({error})")
        return
    print(f"{name}: passed")


def _call(fn, *args):
    """fn(*args), with a stub (NotImplementedError, or None returned) reported as NotDone."""
    name = getattr(fn, "__name__", "the function")
    try:
        result = fn(*args)
    except NotImplementedError:
        raise NotDone(f"{name} raises NotImplementedError: fill it in") from None
    if result is None:
        raise NotDone(f"{name} returns None: fill it in")
    return result


def _array(x):
    return np.asarray(x.data if isinstance(x, mg.Tensor) else x)


def _shape(name, got, want, axes):
    """Assert got.shape == want, naming the first axis that differs."""
    got = tuple(np.shape(got))
    if got == tuple(want):
        return
    if len(got) != len(want):
        raise AssertionError(f"{name}: shape {got} has {len(got)} axes, expected {len(want)}: "
                             f"{tuple(want)} = ({', '.join(axes)})")
    axis = next(i for i, (g, w) in enumerate(zip(got, want)) if g != w)
    raise AssertionError(f"{name}: shape {got}, expected {tuple(want)} = ({', '.join(axes)}); "
                         f"axis {axis} ({axes[axis]}) is {got[axis]}, should be {want[axis]}")


def _close(name, got, want, where, atol=1e-6, hint=""):
    """Assert got ≈ want, naming the first element that differs (its index named by ``where``)."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    bad = ~np.isclose(got, want, atol=atol, rtol=1e-5)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise AssertionError(f"{name}: wrong at {where(index)}: got {got[index]:.6g}, expected "
                             f"{want[index]:.6g} ({int(bad.sum())} of {bad.size} elements differ){hint}")


# --------------------------------------------------------------------------- notebook 0a


def _engine_grads(fn, Tensor, arrays):
    """Run the learner's op on the notebook's own Tensor class, backward a weighted sum,
    and return (output data, input gradients); the weights are a fixed random cotangent."""
    inputs = [Tensor(a) for a in arrays]
    out = _call(fn, *inputs)
    if not isinstance(out, Tensor):
        raise AssertionError(f"{fn.__name__} returned {type(out).__name__}, expected a Tensor of the notebook's engine")
    cotangent = np.random.default_rng(1).standard_normal(out.shape)
    (out * Tensor(cotangent)).sum().backward()
    return out.data, [t.grad for t in inputs], cotangent


def _engine_compare(name, fn, Tensor, arrays, reference):
    got, grads, cotangent = _engine_grads(fn, Tensor, arrays)
    leaves = [mg.Tensor(a, requires_grad=True) for a in arrays]
    want = reference(*leaves)
    (want * mg.Tensor(cotangent)).sum().backward()
    where = lambda i: f"index {i}"  # noqa: E731
    _shape(f"{name}: output", got, want.shape, [f"axis {i}" for i in range(want.ndim)])
    _close(f"{name}: output", got, want.data, where)
    for k, (g, leaf) in enumerate(zip(grads, leaves)):
        if g is None:
            raise AssertionError(f"{name}: input {k} got no gradient: give the op a rule for every input")
        g = np.asarray(g)
        _shape(f"{name}: gradient of input {k}", g, leaf.shape, [f"axis {i}" for i in range(leaf.ndim)])
        _close(f"{name}: gradient of input {k}", g, leaf.grad.data, where)


def check_engine_exp(exp, Tensor):
    """``exp(a)`` for the engine built in notebook 0a: e^a and ā = ḡ·e^a."""
    a = np.random.default_rng(0).standard_normal((2, 3))
    _engine_compare("exp", exp, Tensor, [a], mg.exp)


def check_engine_divide(divide, Tensor):
    """``divide(a, b)`` for the engine of notebook 0a, with b broadcast along a's rows."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 4)), rng.uniform(0.5, 2.0, 4) * rng.choice([-1, 1], 4)
    _engine_compare("divide", divide, Tensor, [a, b], lambda p, q: p / q)


# --------------------------------------------------------------------------- notebook 0


def check_sigmoid_rule(rule):
    """``rule(g, out)`` is the VJP of sigmoid: gradcheck it as the rule of a new op."""
    def my_sigmoid(t):
        return record("my_sigmoid", 1 / (1 + np.exp(-t.data)), (t,), rule)

    x = mg.Tensor(np.random.default_rng(0).standard_normal((3, 4)), requires_grad=True)
    probe = my_sigmoid(mg.Tensor(x.data, requires_grad=True))
    _call(rule, mg.Tensor(np.ones(x.shape)), probe)
    try:
        mg.gradcheck(my_sigmoid, [x])
    except TypeError as error:
        raise AssertionError(f"sigmoid rule: {error}") from None
    except mg.GradcheckError as error:
        raise AssertionError("sigmoid rule disagrees with finite differences: "
                             + str(error).splitlines()[0]) from None


def check_unbroadcast(unbroadcast):
    """``unbroadcast(grad, shape)`` sums a gradient of a broadcast result back to ``shape``."""
    rng = np.random.default_rng(0)
    for grad_shape, shape in (((2, 3), (2, 3)), ((4, 3), (3,)), ((2, 3, 4), (3, 1)), ((5, 2), (1, 2)),
                              ((2, 3), ())):
        g = rng.standard_normal(grad_shape)
        got = _array(_call(unbroadcast, g, shape))
        want = mg.sum_to(mg.Tensor(g), shape).data
        case = f"gradient {grad_shape} -> input {shape}"
        if got.shape != want.shape:
            raise AssertionError(f"unbroadcast, {case}: result has shape {got.shape}, expected {shape} "
                                 "(sum the leading axes away, and keep axes of size 1 with keepdims)")
        _close(f"unbroadcast, {case}", got, want, lambda i: f"index {i}",
               hint="; each element must be the sum of every gradient element broadcast from it")


# --------------------------------------------------------------------------- notebook 1


def check_positional_encoding(positional_encoding):
    """``positional_encoding(n, d)`` is the sinusoidal table (n, d)."""
    from transformer.embedding import sinusoidal_table

    n, d = 50, 16
    got = _array(_call(positional_encoding, n, d))
    _shape("positional_encoding(50, 16)", got, (n, d), ("position", "dimension"))
    want = sinusoidal_table(n, d)
    _close("positional_encoding(50, 16)", got, want, lambda i: f"position {i[0]}, dimension {i[1]}",
           hint=" (dimension 2i is sin(p·10000^(−2i/d)), dimension 2i+1 its cos)")


def check_shift_matrix(shift_matrix):
    """``shift_matrix(k, d)`` is M_k with M_k PE(p) = PE(p + k) for every p."""
    from transformer.embedding import sinusoidal_table

    d, k = 16, 3
    table = sinusoidal_table(40, d)
    m = _array(_call(shift_matrix, k, d))
    _shape("shift_matrix(3, 16)", m, (d, d), ("output dimension", "input dimension"))
    _close("shift_matrix(3, 16) applied to every PE(p)", table[:-k] @ m.T, table[k:],
           lambda i: f"position p = {i[0]}, dimension {i[1]} of PE(p + 3)", atol=1e-9)


# --------------------------------------------------------------------------- notebook 2


def check_softmax(softmax):
    """``softmax(scores)`` over the last axis, numpy in and out, stable for large scores."""
    scores = np.random.default_rng(0).standard_normal((3, 5)) * 3
    scores[1] += 1000.0  # overflows exp() unless the row maximum is subtracted first
    with np.errstate(over="ignore", invalid="ignore"):  # an unstable answer overflows: reported below
        got = _array(_call(softmax, scores.copy()))
    _shape("softmax", got, scores.shape, ("row", "column"))
    if not np.isfinite(got).all():
        row = int(np.argwhere(~np.isfinite(got))[0, 0])
        raise AssertionError(f"softmax: row {row} (scores near 1000) gives NaN/inf: exp overflowed; "
                             "subtract each row's maximum before exp")
    _close("softmax", got, mg.softmax(mg.Tensor(scores), axis=-1).data, lambda i: f"row {i[0]}, column {i[1]}",
           hint="; each row must sum to 1 over the last axis")


def check_attention(attention):
    """``attention(q, k, v, mask)`` -> (output, weights), numpy arrays, as the library's."""
    from transformer.attention import scaled_dot_product_attention

    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((2, 4, 8)) for _ in range(3))
    mask = np.tril(np.ones((4, 4), dtype=bool))[None]
    result = _call(attention, q, k, v, mask)
    if not (isinstance(result, tuple) and len(result) == 2):
        raise AssertionError("attention must return a pair (output, weights)")
    out, weights = map(_array, result)
    want_out, want_weights = scaled_dot_product_attention(mg.Tensor(q), mg.Tensor(k), mg.Tensor(v), mask)
    _shape("attention weights", weights, (2, 4, 4), ("batch", "query", "key"))
    _shape("attention output", out, (2, 4, 8), ("batch", "query", "value dimension"))
    if np.any(weights[:, ~mask[0]] != 0):
        raise AssertionError("attention weights: a masked key (mask False) has nonzero weight; give masked "
                             "scores -inf before the softmax")
    unscaled = np.where(mask, q @ k.swapaxes(-1, -2), -np.inf)
    unscaled = np.exp(unscaled - unscaled.max(-1, keepdims=True))
    if np.allclose(weights, unscaled / unscaled.sum(-1, keepdims=True)):
        raise AssertionError("attention weights: the scores are not divided by √d_k = √8")
    where = lambda i: f"batch {i[0]}, query {i[1]}, key {i[2]}"  # noqa: E731
    _close("attention weights", weights, want_weights.data, where)
    _close("attention output", out, want_out.data, lambda i: f"batch {i[0]}, query {i[1]}, dimension {i[2]}")


# --------------------------------------------------------------------------- notebook 3


def _heads_example():
    from transformer.attention import MultiHeadAttention

    block = MultiHeadAttention(12, 3, rng=np.random.default_rng(0))
    x = np.arange(2 * 5 * 12, dtype=np.float64).reshape(2, 5, 12)  # every element distinct
    return block, x


def check_split_heads(split_heads):
    """``split_heads(x, n_heads)``: (B, T, d_model) -> (B, H, T, d_k), as MultiHeadAttention's."""
    block, x = _heads_example()
    got = _array(_call(split_heads, x, 3))
    _shape("split_heads", got, (2, 3, 5, 4), ("batch B", "head H", "position T", "d_k"))
    want = block.split_heads(mg.Tensor(x)).data
    if not np.array_equal(got, want):
        if np.array_equal(got, x.reshape(2, 3, 5, 4)):
            raise AssertionError("split_heads: the shape is right but the elements are not: a plain reshape "
                                 "mixes positions into heads; reshape to (B, T, H, d_k), then move the head "
                                 "axis before the position axis")
        index = tuple(int(i) for i in np.argwhere(got != want)[0])
        raise AssertionError(f"split_heads: head {index[1]}, position {index[2]}, element {index[3]} of "
                             f"batch {index[0]} holds x[...] = {got[index]:g}, expected {want[index]:g} "
                             f"(head h holds dimensions h·d_k .. (h+1)·d_k − 1 of every position)")


def check_merge_heads(merge_heads):
    """``merge_heads(x)``: (B, H, T, d_k) -> (B, T, H·d_k), the inverse of split_heads."""
    block, x = _heads_example()
    heads = block.split_heads(mg.Tensor(x)).data
    got = _array(_call(merge_heads, heads))
    _shape("merge_heads", got, (2, 5, 12), ("batch B", "position T", "d_model = H·d_k"))
    if not np.array_equal(got, x):
        index = tuple(int(i) for i in np.argwhere(got != x)[0])
        raise AssertionError(f"merge_heads: merge_heads(split_heads(x)) != x at batch {index[0]}, position "
                             f"{index[1]}, dimension {index[2]}: got {got[index]:g}, expected {x[index]:g} "
                             "(move the head axis back after the position axis before reshaping)")


# --------------------------------------------------------------------------- notebook 4


def check_layer_norm_backward(layer_norm_backward):
    """``layer_norm_backward(x, g, eps)``: x̄ for y = (x − μ)/√(σ² + ε) over the last axis."""
    rng = np.random.default_rng(0)
    x, g, eps = rng.standard_normal((3, 6)) * 2 + 1, rng.standard_normal((3, 6)), 1e-5
    got = _array(_call(layer_norm_backward, x.copy(), g.copy(), eps))
    _shape("layer_norm_backward", got, x.shape, ("row", "feature"))
    t = mg.Tensor(x, requires_grad=True)
    mg.layer_norm(t, eps=eps).backward(mg.Tensor(g))
    sums = np.abs(got.sum(-1))
    hint = ""
    if sums.max() > 1e-6:
        hint = (f"; row {int(sums.argmax())} of x̄ sums to {got.sum(-1)[sums.argmax()]:.3g}, but shifting x by a "
                "constant does not change y, so every row of x̄ sums to 0")
    _close("layer_norm_backward", got, t.grad.data, lambda i: f"row {i[0]}, feature {i[1]}", hint=hint)


def check_pre_norm_block(pre_norm_block):
    """``pre_norm_block(x, sublayer, norm)`` = x + sublayer(norm(x)), as ``layers.residual``."""
    from minigrad import nn
    from transformer.layers import FeedForward, residual

    rng = np.random.default_rng(0)
    ffn, norm = FeedForward(8, 16, rng=rng), nn.LayerNorm(8)
    x = mg.Tensor((3 * rng.standard_normal((2, 3, 8)) + 1).astype(np.float32))
    got = _array(_call(pre_norm_block, x, ffn, norm))
    _shape("pre_norm_block", got, x.shape, ("batch", "position", "feature"))
    want = residual(x, ffn, norm, lambda t: t, norm_first=True).data
    if np.allclose(got, residual(x, ffn, norm, lambda t: t, norm_first=False).data, atol=1e-5):
        raise AssertionError("pre_norm_block: this is post-norm, norm(x + sublayer(x)); pre-norm normalizes "
                             "the sublayer's input and adds the un-normalized x")
    _close("pre_norm_block", got, want, lambda i: f"batch {i[0]}, position {i[1]}, feature {i[2]}", atol=1e-5)
    zero = _array(pre_norm_block(x, lambda t: t * 0, norm))
    _close("pre_norm_block with a sublayer that returns 0 (must be the identity)", zero, x.data,
           lambda i: f"batch {i[0]}, position {i[1]}, feature {i[2]}")


# --------------------------------------------------------------------------- notebook 5


def check_causal_mask(causal_mask):
    """``causal_mask(T)``: (T, T) booleans, True where query t may attend to key s (s ≤ t)."""
    from transformer.attention import causal_mask as library_mask

    length = 5
    got = _array(_call(causal_mask, length))
    _shape("causal_mask(5)", got, (length, length), ("query position", "key position"))
    got = got.astype(bool)
    want = library_mask(length)[0, 0]
    if np.array_equal(got, want):
        return
    if np.array_equal(got, want.T):
        raise AssertionError("causal_mask: transposed: row t is a query and may see keys 0..t (the lower "
                             "triangle), yours lets it see t..T−1, the future")
    if np.array_equal(got, np.tril(want, -1)):
        raise AssertionError("causal_mask: the diagonal is False: position t must see itself (key t)")
    query, key = (int(i) for i in np.argwhere(got != want)[0])
    raise AssertionError(f"causal_mask: query {query}, key {key} is {bool(got[query, key])}, expected "
                         f"{bool(want[query, key])} (a query may see keys at or before its own position)")


def check_shift_target(shift_target):
    """``shift_target(ids, bos, eos)``: a target's ids -> (tgt_in, tgt_out) for teacher forcing."""
    from transformer.tasks import make_batch, tokenizer_for

    tokenizer = tokenizer_for("copy")
    target = "4082913"
    ids = tokenizer.encode(target)
    result = _call(shift_target, list(ids), tokenizer.bos_id, tokenizer.eos_id)
    if not (isinstance(result, tuple) and len(result) == 2):
        raise AssertionError("shift_target must return a pair (tgt_in, tgt_out)")
    batch = make_batch([(target, target)], tokenizer)
    for name, got, want in zip(("tgt_in", "tgt_out"), result, (batch.tgt_in[0], batch.tgt_out[0])):
        got = list(np.asarray(got).ravel())
        if len(got) != len(want):
            raise AssertionError(f"shift_target: {name} has {len(got)} ids, expected {len(want)} "
                                 "(the target's length + 1)")
        if got != list(want):
            at = next(i for i, (a, b) in enumerate(zip(got, want)) if a != b)
            meaning = "<bos> + target" if name == "tgt_in" else "target + <eos>"
            raise AssertionError(f"shift_target: {name}[{at}] is {got[at]}, expected {want[at]} ({name} = "
                                 f"{list(map(int, want))}: {meaning})")


# --------------------------------------------------------------------------- notebook 6


def check_smoothed_targets(smoothed_targets):
    """``smoothed_targets(targets, n_classes, eps)``: (N, V) rows (1 − ε)·one-hot + ε/V."""
    targets, n_classes, eps = np.array([2, 0, 4]), 5, 0.1
    got = _array(_call(smoothed_targets, targets.copy(), n_classes, eps))
    _shape("smoothed_targets", got, (3, n_classes), ("example", "class"))
    sums = got.sum(-1)
    if not np.allclose(sums, 1):
        row = int(np.argmax(np.abs(sums - 1)))
        raise AssertionError(f"smoothed_targets: row {row} sums to {sums[row]:.4f}, not 1 (a target is a "
                             "distribution: (1 − ε) on the right class plus ε/V on every class)")
    want = (1 - eps) * np.eye(n_classes)[targets] + eps / n_classes
    _close("smoothed_targets", got, want, lambda i: f"example {i[0]}, class {i[1]}")
    # and it is the distribution the library's label-smoothed cross-entropy uses
    logits = np.random.default_rng(0).standard_normal((3, n_classes))
    log_p = logits - logits.max(1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(1, keepdims=True))
    library = mg.cross_entropy(mg.Tensor(logits), targets, label_smoothing=eps).data
    assert abs(-(got * log_p).sum(1).mean() - library) < 1e-9, \
        "smoothed_targets: −Σ y log p differs from mg.cross_entropy"


def check_cross_entropy_grad(cross_entropy_grad):
    """``cross_entropy_grad(logits, targets)``: ∂/∂logits of the mean cross-entropy over rows."""
    rng = np.random.default_rng(0)
    logits, targets = rng.standard_normal((4, 6)) * 2, np.array([1, 5, 0, 3])
    got = _array(_call(cross_entropy_grad, logits.copy(), targets.copy()))
    _shape("cross_entropy_grad", got, logits.shape, ("example", "class"))
    z = mg.Tensor(logits, requires_grad=True)
    mg.cross_entropy(z, targets).backward()
    hint = ""
    if np.allclose(got, z.grad.data * len(logits)):
        hint = "; yours is 4x too large: the loss is the mean over the 4 rows, so divide by N"
    elif np.abs(got.sum(-1)).max() > 1e-9:
        hint = "; each row of p − y sums to 0 (both p and y sum to 1): did you subtract the one-hot target?"
    _close("cross_entropy_grad", got, z.grad.data, lambda i: f"example {i[0]}, class {i[1]}", hint=hint)



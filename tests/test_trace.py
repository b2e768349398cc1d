"""minigrad.trace(): the steps of the backward pass, in execution order."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
from minigrad import autograd
from minigrad.tracing import BINS, SMALL, Trace, format_table, scope_path, summarize, trace


def neuron():
    x = mg.tensor([2.0, 0.0], name="x")
    w = mg.tensor([-3.0, 1.0], requires_grad=True, name="w")
    b = mg.tensor(6.8813735870195432, requires_grad=True, name="b")
    with mg.name_scope("neuron"):
        o = ((x * w).sum() + b).tanh()
    return o, w, b


def test_steps_of_a_neuron_in_execution_order():
    o, w, b = neuron()
    with trace() as t:
        o.backward()
    assert [s.op for s in t.steps] == ["tanh", "add", "sum", "mul"]
    assert [s.number for s in t.steps] == [1, 2, 3, 4]
    assert all(s.scope == ("neuron",) for s in t.steps)
    tanh, add, total, mul = t.steps
    assert tanh.input_shapes == ((),) and tanh.output_shape == ()
    assert mul.input_shapes == ((2,), (2,)) and mul.output_shape == (2,)
    assert tanh.grad_norm == pytest.approx(1.0)
    assert tanh.input_grad_norms[0][1] == pytest.approx(0.5, abs=1e-4)  # 1 - tanh² = 0.5
    # mul sends a gradient only to w (input 1): x does not require grad.
    assert [i for i, _ in mul.input_grad_norms] == [1]
    assert mul.input_grad_norms[0][1] == pytest.approx(np.linalg.norm(w.grad.data))
    assert [i for i, _ in add.input_grad_norms] == [0, 1]
    assert add.input_grad_norms[1][1] == pytest.approx(abs(b.grad.item()))
    assert isinstance(tanh.grad_norm, float)


def test_table_has_a_header_and_one_line_per_step():
    o, _, _ = neuron()
    with trace() as t:
        o.backward()
    lines = str(t).splitlines()
    assert lines[0].split()[:3] == ["step", "op", "scope"]
    assert len(lines) == 2 + len(t.steps)
    assert lines[2].split()[:3] == ["1", "tanh", "neuron"]
    assert "(2,) (2,) -> (2,)" in lines[5]
    assert repr(t) == "<Trace of 4 backward steps>"
    assert "no backward steps" in format_table([])


def test_tracer_is_restored_after_the_block_even_on_error():
    assert autograd.STATE.tracer is None
    with trace() as outer:
        with pytest.raises(RuntimeError), trace() as inner:
            assert autograd.STATE.tracer is inner
            mg.tensor(1.0).backward()  # does not require grad
        assert autograd.STATE.tracer is outer
    assert autograd.STATE.tracer is None


def test_nothing_is_recorded_outside_the_block():
    o, _, _ = neuron()
    with trace() as t:
        pass
    o.backward()
    assert t.steps == []


def test_two_backward_passes_continue_the_numbering():
    o, _, _ = neuron()
    with trace() as t:
        o.backward(retain_graph=True)
        o.backward()
    assert [s.number for s in t.steps] == list(range(1, 9))
    assert [s.number for s in t.steps_of(o._node)] == [1, 5]


def test_grad_function_is_traced_too():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    with trace() as t:
        mg.grad((x * x).sum(), x)
    assert [s.op for s in t.steps] == ["sum", "mul"]


def test_scope_path_keeps_the_innermost_of_a_module_chain():
    assert scope_path(("Transformer", "encoder", "encoder.layers.0", "encoder.layers.0.self_attn")) \
        == "Transformer/encoder.layers.0.self_attn"
    assert scope_path(("block", "inner")) == "block/inner"
    assert scope_path(()) == ""


# --------------------------------------------------------------------------- random graphs

UNARY = {"tanh": mg.tanh, "exp_small": lambda t: mg.exp(t * 0.1), "sum_keep": lambda t: t.sum(-1, keepdims=True)}
BINARY = {"add": mg.add, "mul": mg.mul, "sub": mg.sub}


@st.composite
def random_graphs(draw):
    """A recipe: a few leaves, then ops on any earlier tensors (repeats allowed, so
    ``x * x`` and shared subexpressions occur), then the sum of some tensors."""
    n_leaves = draw(st.integers(1, 3))
    steps = []
    for k in range(draw(st.integers(1, 12))):
        available = n_leaves + k
        if draw(st.booleans()):
            steps.append((draw(st.sampled_from(sorted(UNARY))), draw(st.integers(0, available - 1))))
        else:
            steps.append((draw(st.sampled_from(sorted(BINARY))), draw(st.integers(0, available - 1)),
                          draw(st.integers(0, available - 1))))
    total = n_leaves + len(steps)
    outputs = draw(st.lists(st.integers(n_leaves, total - 1), min_size=1, max_size=3))
    return n_leaves, steps, outputs


def build(recipe):
    n_leaves, steps, outputs = recipe
    rng = np.random.default_rng(0)
    tensors = [mg.tensor(rng.uniform(-1, 1, (2, 3)), requires_grad=True) for _ in range(n_leaves)]
    for op, *args in steps:
        fn = UNARY.get(op) or BINARY[op]
        tensors.append(fn(*(tensors[a] for a in args)))
    loss = tensors[outputs[0]].sum()
    for i in outputs[1:]:
        loss = loss + tensors[i].sum()
    return tensors[:n_leaves], tensors, loss


@given(random_graphs())
def test_trace_is_a_reverse_topological_order_of_the_graph(recipe):
    leaves, tensors, loss = build(recipe)
    reachable = set()
    stack = [loss]
    while stack:
        t = stack.pop()
        if t._node is not None and id(t._node) not in reachable:
            reachable.add(id(t._node))
            stack.extend(t._node.inputs)
    with trace() as t:
        loss.backward()
    position = {id(s.node): s.number for s in t.steps}
    assert len(position) == len(t.steps), "a node ran twice in one backward pass"
    assert set(position) == reachable, "every recorded op between the leaves and the loss runs once"
    for s in t.steps:
        for producer in s.input_nodes:
            if producer is not None:
                assert position[id(producer)] > s.number, (
                    f"{producer.op} (step {position[id(producer)]}) made an input of {s.op} "
                    f"(step {s.number}) but ran before it")
    traced = [leaf.grad.data.copy() for leaf in leaves if leaf.grad is not None]

    leaves2, _, loss2 = build(recipe)  # the same graph again, without a tracer
    loss2.backward()
    untraced = [leaf.grad.data for leaf in leaves2 if leaf.grad is not None]
    assert len(traced) == len(untraced)
    for a, b in zip(traced, untraced):
        np.testing.assert_array_equal(a, b)


def test_trace_object_is_a_plain_container():
    t = Trace()
    assert len(t) == 0 and list(t) == []


def test_where_gradients_add_up_the_trace_keeps_their_running_sum():
    """h = 3x is used by exp and twice by one mul: three gradients add up into the one
    that arrives at h's own step, and x gets h's gradient times 3."""
    x = mg.tensor([1.0, -2.0], requires_grad=True)
    h = x * 3
    y = (h * h + h.exp()).sum()
    with trace() as t:
        y.backward()
    ops = [s.op for s in t.steps]
    assert ops == ["sum", "add", "exp", "mul", "mul"]
    exp, square, times3 = t.steps[2:]
    hd = h.data.astype(np.float64)
    assert exp.input_grad_sums == ((0, (1, pytest.approx(np.linalg.norm(np.exp(hd))))),)
    assert square.input_grad_sums == (
        (0, (2, pytest.approx(np.linalg.norm(np.exp(hd) + hd), rel=1e-6))),
        (1, (3, pytest.approx(np.linalg.norm(np.exp(hd) + 2 * hd), rel=1e-6))))
    assert times3.grad_count == 3 and times3.grad_norm == pytest.approx(square.input_grad_sums[1][1][1])
    assert times3.grad_summary.values == pytest.approx((np.exp(hd) + 2 * hd).tolist(), rel=1e-6)
    assert times3.input_grad_sums == ((0, (1, pytest.approx(np.linalg.norm(x.grad.data)))),)
    assert t._sums == {}  # the running sums are dropped when the trace ends


def test_a_leaf_s_running_sum_goes_on_over_backward_passes_like_grad():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    with trace() as t:
        (x * 2).sum().backward()
        x.grad.data *= 0.5  # a change to .grad in between (clipping, say) is not a gradient
        (x * 2).sum().backward()
        (x * 2).sum().backward()
    first, second, third = t.steps[1], t.steps[3], t.steps[5]
    assert first.input_grad_sums == ((0, (1, pytest.approx(np.sqrt(8)))),)
    assert second.input_grad_sums == ((0, (2, pytest.approx(np.sqrt(32)))),)
    assert third.input_grad_sums == ((0, (3, pytest.approx(np.sqrt(72)))),)


def test_each_step_records_what_its_rule_used_and_sent():
    """a·b with a broadcast b: the step keeps the output, both inputs and the gradient
    each input received after broadcasting is undone (b's is summed over the rows)."""
    a = mg.tensor([[1.0, -2.0], [3.0, 4.0]], requires_grad=True)
    b = mg.tensor([0.5, -1.0], requires_grad=True)
    with trace() as t:
        (a * b).sum().backward()
    mul = t.steps[1]
    assert mul.op == "mul"
    assert mul.output_summary.values == (0.5, 2.0, 1.5, -4.0)
    assert [s.values for s in mul.input_summaries] == [(1.0, -2.0, 3.0, 4.0), (0.5, -1.0)]
    assert dict(mul.input_grad_summaries)[1].values == (4.0, 2.0)  # ḡ·a summed over the rows
    assert dict(mul.input_grad_summaries)[0].values == (0.5, -1.0, 0.5, -1.0)


def test_a_larger_array_is_summarized_with_a_histogram():
    values = np.arange(100, dtype=np.float32)
    summary = summarize(values)
    assert summary.values is None and len(summary.histogram) == BINS and sum(summary.histogram) == 100
    assert summary.histogram == (9, 8, 8, 8, 9, 8, 8, 8, 9, 8, 8, 9)  # bins 8.25 wide from 0 to 99
    assert summarize(np.arange(SMALL, dtype=np.float32)).histogram is None  # small: the values themselves
@pytest.mark.requires("dot")
def test_two_graphs_in_one_trace_keep_the_trace_s_step_numbers_in_the_picture_and_the_page():
    from minigrad.html import page_data
    from minigrad.viz import to_dot

    x = mg.tensor([1.0, 2.0], requires_grad=True, name="x")
    first = (x * x).sum()
    second = ((x.exp() * 3.0).tanh()).mean()
    with trace() as t:
        first.backward(retain_graph=True)
        second.backward(retain_graph=True)
    assert [s.op for s in t.steps] == ["sum", "mul", "mean", "tanh", "mul", "exp"]
    assert [s.number for s in t.steps] == [1, 2, 3, 4, 5, 6]
    page = page_data(second, trace=t)
    assert [(s["number"], s["op"]) for s in page["steps"]] == [(3, "mean"), (4, "tanh"), (5, "mul"), (6, "exp")]
    assert [(s["number"], s["op"]) for s in page_data(first, trace=t)["steps"]] == [(1, "sum"), (2, "mul")]
    dot = to_dot(second, trace=t, backward=True).source
    assert all(f"step {n}" in dot for n in (3, 4, 5, 6)) and "step 1" not in dot and "step 2" not in dot

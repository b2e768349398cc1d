"""minigrad.nn: layer gradients (property tests in float64), and Module bookkeeping:
names, sharing, state dicts, modes, repr, and the scope names ops record."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
from minigrad import nn
from minigrad.autograd import STATE
from minigrad.testing import arrays, check_grad, shapes

F64 = np.float64


def substitute(module, **tensors):
    """``module`` with the given tensors standing in for its parameters.

    gradcheck calls its function with fresh leaf tensors on every evaluation; forward
    reads parameters as plain attributes, so writing the leaves into the instance dict
    (bypassing __setattr__, which only accepts Parameters) routes them into forward.
    """
    vars(module).update(tensors)
    return module


def graph_nodes(out):
    """Every Node reachable from ``out``."""
    nodes, stack, seen = [], [out], set()
    while stack:
        t = stack.pop()
        if t._node is None or id(t) in seen:
            continue
        seen.add(id(t))
        nodes.append(t._node)
        stack.extend(t._node.inputs)
    return nodes


class Net(nn.Module):
    """Linear -> tanh -> LayerNorm -> Dropout -> Linear, with an extra scale parameter."""

    def __init__(self, rng=None, dtype=np.float32):
        super().__init__()
        rng = np.random.default_rng(0) if rng is None else rng
        self.layers = nn.ModuleList([nn.Linear(2, 4, rng=rng, dtype=dtype),
                                     nn.Linear(4, 3, rng=rng, dtype=dtype)])
        self.norm = nn.LayerNorm(4, dtype=dtype)
        self.drop = nn.Dropout(0.5, rng=rng)
        self.scale = nn.Parameter(np.full(3, 2.0, dtype=dtype))

    def forward(self, x):
        h = self.drop(self.norm(self.layers[0](x).tanh()))
        return self.layers[1](h) * self.scale


def snapshot(module):
    return {name: p.data.copy() for name, p in module.named_parameters()}


def assert_same(module, snap):
    for name, p in module.named_parameters():
        assert p.data.tobytes() == snap[name].tobytes(), name


# --------------------------------------------------------------------------- gradients


@given(st.data())
def test_linear_gradients_wrt_input_weight_and_bias(data):
    batch = data.draw(shapes(min_dims=0, max_dims=2, max_side=3), label="batch")
    n_in, n_out = data.draw(st.integers(1, 4), label="in"), data.draw(st.integers(1, 4), label="out")
    use_bias = data.draw(st.booleans(), label="bias")
    x = data.draw(arrays(batch + (n_in,)), label="x")
    w = data.draw(arrays((n_in, n_out)), label="w")
    layer = nn.Linear(n_in, n_out, bias=use_bias, dtype=F64)
    if use_bias:
        b = data.draw(arrays((n_out,)), label="b")
        check_grad(lambda x, w, b: substitute(layer, weight=w, bias=b)(x), x, w, b)
    else:
        check_grad(lambda x, w: substitute(layer, weight=w)(x), x, w)


@given(st.data())
def test_layer_norm_gradients(data):
    batch = data.draw(shapes(min_dims=0, max_dims=2, max_side=3), label="batch")
    d = data.draw(st.integers(2, 5), label="d")
    # Distinct values: a constant row has zero variance, where 1/√(var + eps) is so steep
    # that finite differences lose their accuracy.
    x = data.draw(arrays(batch + (d,), unique=True), label="x")
    if data.draw(st.booleans(), label="affine"):
        w, b = data.draw(arrays((d,)), label="w"), data.draw(arrays((d,)), label="b")
        layer = nn.LayerNorm(d, dtype=F64)
        check_grad(lambda x, w, b: substitute(layer, weight=w, bias=b)(x), x, w, b)
    else:
        layer = nn.LayerNorm(d, elementwise_affine=False, dtype=F64)
        check_grad(layer, x)


@given(st.data())
def test_embedding_gradients_with_repeated_indices(data):
    rows, dim = data.draw(st.integers(1, 5), label="rows"), data.draw(st.integers(1, 3), label="dim")
    index_shape = data.draw(shapes(min_dims=1, max_dims=2, max_side=4), label="index shape")
    indices = data.draw(hnp.arrays(np.int64, index_shape, elements=st.integers(0, rows - 1)),
                        label="indices")
    indices.flat[-1] = indices.flat[0]  # at least one repeat (when there are 2+ indices)
    table = data.draw(arrays((rows, dim)), label="table")
    layer = nn.Embedding(rows, dim, dtype=F64)
    check_grad(lambda w: substitute(layer, weight=w)(indices), table)


@given(st.data())
def test_embedding_padding_row_gets_exactly_zero_gradient(data):
    rows, dim = data.draw(st.integers(2, 5), label="rows"), data.draw(st.integers(1, 3), label="dim")
    padding_idx = data.draw(st.integers(0, rows - 1), label="padding_idx")
    indices = data.draw(hnp.arrays(np.int64, st.integers(1, 8), elements=st.integers(0, rows - 1)),
                        label="indices")
    indices[0] = padding_idx  # the padding row is always looked up
    layer = nn.Embedding(rows, dim, padding_idx=padding_idx, rng=np.random.default_rng(1), dtype=F64)
    assert np.all(layer.weight.data[padding_idx] == 0)
    cotangent = np.random.default_rng(2).uniform(0.5, 1.5, indices.shape + (dim,))
    (layer(indices) * cotangent).sum().backward()

    expected = np.zeros((rows, dim))
    np.add.at(expected, indices, cotangent)
    expected[padding_idx] = 0
    assert np.all(layer.weight.grad.data[padding_idx] == 0)
    np.testing.assert_allclose(layer.weight.grad.data, expected, rtol=1e-12)


# --------------------------------------------------------------------------- options with non-default values


@given(st.data())
def test_layer_norm_eps_is_the_one_given(data):
    d = data.draw(st.integers(2, 5), label="d")
    x = data.draw(arrays((3, d)), label="x")
    eps = data.draw(st.sampled_from([1e-3, 0.1, 0.5, 2.0]), label="eps")
    layer = nn.LayerNorm(d, eps=eps, dtype=F64)
    with mg.no_grad():
        layer.weight.copy_(np.linspace(0.5, 1.5, d))
        layer.bias.copy_(np.linspace(-1, 1, d))
    # Written out: (x - mean) / √(biased variance + eps) · weight + bias.
    expected = (x - x.mean(-1, keepdims=True)) / np.sqrt(((x - x.mean(-1, keepdims=True)) ** 2).mean(-1, keepdims=True)
                                                         + eps) * layer.weight.data + layer.bias.data
    np.testing.assert_allclose(layer(mg.Tensor(x)).data, expected, rtol=1e-12, atol=1e-12)
    check_grad(lambda x, w, b: substitute(layer, weight=w, bias=b)(x), x, layer.weight.data.copy(),
               layer.bias.data.copy())


def test_layer_norm_without_affine_parameters_has_none():
    layer = nn.LayerNorm(3, elementwise_affine=False, dtype=F64)
    assert list(layer.named_parameters()) == [] and layer.weight is None and layer.bias is None
    x = np.array([[1.0, 2.0, 4.0]])
    np.testing.assert_allclose(layer(mg.Tensor(x)).data, (x - x.mean()) / np.sqrt(x.var() + 1e-5), rtol=1e-12)


def test_linear_without_bias_has_no_bias_parameter_and_adds_nothing():
    layer = nn.Linear(3, 2, bias=False, rng=np.random.default_rng(0), dtype=F64)
    assert layer.bias is None and [name for name, _ in layer.named_parameters()] == ["weight"]
    assert layer.num_parameters() == 6 and "bias=False" in repr(layer)
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(layer(mg.Tensor(x)).data, x @ layer.weight.data)


def test_embedding_negative_padding_idx_counts_from_the_end():
    layer = nn.Embedding(4, 2, padding_idx=-1, rng=np.random.default_rng(0), dtype=F64)
    assert layer.padding_idx == 3 and np.all(layer.weight.data[3] == 0)
    indices = np.array([3, 0, 3, 1])
    (layer(indices) * mg.Tensor(np.arange(8.0).reshape(4, 2))).sum().backward()
    np.testing.assert_array_equal(layer.weight.grad.data, [[2, 3], [6, 7], [0, 0], [0, 0]])


@pytest.mark.parametrize("p", [0.1, 0.75])
def test_dropout_drops_with_the_probability_given(p):
    drop = nn.Dropout(p, rng=np.random.default_rng(5))
    y = drop(mg.tensor(np.ones((200, 200), np.float32))).data
    assert abs(np.mean(y == 0) - p) < 0.01
    np.testing.assert_allclose(y[y != 0], 1 / (1 - p), rtol=1e-6)


def test_dropout_gradient_uses_the_same_mask():
    # A fresh Generator with a fixed seed per call: every evaluation draws the same mask.
    check_grad(lambda x: nn.Dropout(0.4, rng=np.random.default_rng(3))(x), np.linspace(-1, 1, 12))


# --------------------------------------------------------------------------- layers


def test_linear_layout_is_x_at_w_plus_b():
    layer = nn.Linear(3, 2, rng=np.random.default_rng(0))
    assert layer.weight.shape == (3, 2) and layer.bias.shape == (2,)
    layer.bias.data[:] = [1.0, -1.0]
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.testing.assert_allclose(layer(mg.tensor(x)).data, x @ layer.weight.data + layer.bias.data)
    with pytest.raises(ValueError, match=r"Linear 3->2.*\(4, 5\).*\(\.\.\., 3\)"):
        layer(mg.tensor(np.zeros((4, 5), np.float32)))


def test_same_seed_gives_bitwise_identical_models_and_dtype_is_configurable():
    a, b = Net(np.random.default_rng(7)), Net(np.random.default_rng(7))
    assert_same(b, snapshot(a))
    assert all(p.dtype == np.float32 for p in a.parameters())
    c = Net(np.random.default_rng(7), dtype=F64)
    assert all(p.dtype == F64 for p in c.parameters())
    # float64 and float32 models see the same draws
    np.testing.assert_allclose(c.layers[0].weight.data, a.layers[0].weight.data, rtol=1e-7)
    assert not np.array_equal(Net(np.random.default_rng(8)).layers[0].weight.data,
                              a.layers[0].weight.data)


def test_init_functions_fill_in_place_with_the_documented_distributions():
    rng = np.random.default_rng(0)
    w = nn.Parameter(np.empty((200, 300), np.float32))
    assert nn.init.xavier_uniform_(w, rng=rng) is w
    bound = np.sqrt(6 / 500)
    assert np.abs(w.data).max() <= bound and np.abs(w.data).max() > 0.99 * bound
    nn.init.xavier_normal_(w, rng=rng)
    assert abs(w.data.std() - np.sqrt(2 / 500)) < 0.02 * np.sqrt(2 / 500)
    nn.init.normal_(w, std=0.02, rng=rng)
    assert abs(w.data.std() - 0.02) < 0.001
    nn.init.uniform_(w, -0.5, 0.5, rng=rng)
    assert -0.5 <= w.data.min() < -0.49 and 0.49 < w.data.max() <= 0.5
    assert nn.init.zeros_(w).data.sum() == 0 and nn.init.ones_(w).data.sum() == w.size
    assert w.dtype == np.float32 and w._version > 0  # in place: same array, version bumped
    with pytest.raises(ValueError, match=r"xavier_uniform_.*\(5,\)"):
        nn.init.xavier_uniform_(nn.Parameter(np.zeros(5)), rng=rng)


def test_dropout_train_and_eval():
    drop = nn.Dropout(0.25, rng=np.random.default_rng(0))
    x = mg.tensor(np.ones((100, 100), np.float32))
    y = drop(x).data
    assert 0.23 < np.mean(y == 0) < 0.27
    np.testing.assert_allclose(y[y != 0], 1 / 0.75)
    assert drop.eval()(x) is x
    with pytest.raises(ValueError, match="p must be in"):
        nn.Dropout(1.5)


def test_module_list_and_sequential():
    rng = np.random.default_rng(0)
    a, b, c = nn.Linear(2, 3, rng=rng), nn.Linear(3, 3, rng=rng), nn.Linear(3, 1, rng=rng)
    layers = nn.ModuleList([a, b]).append(c)
    assert len(layers) == 3 and list(layers) == [a, b, c]
    assert layers[0] is a and layers[-1] is c and list(layers[1:]) == [b, c]
    assert [name for name, _ in layers.named_children()] == ["0", "1", "2"]
    with pytest.raises(IndexError, match="index 3 is out of range for 3"):
        layers[3]
    seq = nn.Sequential(a, b, c)
    x = mg.tensor(rng.standard_normal((5, 2)).astype(np.float32))
    np.testing.assert_array_equal(seq(x).data, c(b(a(x))).data)


# --------------------------------------------------------------------------- Module


def test_named_parameters_modules_and_children():
    net = Net()
    assert [n for n, _ in net.named_parameters()] == [
        "scale", "layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias",
        "norm.weight", "norm.bias"]
    assert [n for n, _ in net.named_modules()] == ["", "layers", "layers.0", "layers.1", "norm", "drop"]
    assert [n for n, _ in net.named_children()] == ["layers", "norm", "drop"]
    assert list(net.children())[0] is net.layers
    assert net.num_parameters() == 3 + (8 + 4) + (12 + 3) + (4 + 4)


def test_shared_parameters_and_modules_are_listed_once():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(3, 3)
            self.b = nn.Linear(3, 3)
            self.b.weight = self.a.weight  # tied weights
            self.again = self.a  # the same module under two names

    tied = Tied()
    assert [n for n, _ in tied.named_parameters()] == ["a.weight", "a.bias", "b.bias"]
    assert [n for n, _ in tied.named_modules()] == ["", "a", "b"]
    assert tied.num_parameters() == 9 + 3 + 3
    assert list(tied.state_dict()) == ["a.weight", "a.bias", "b.bias"]


def test_state_dict_round_trip_is_bitwise_and_copies():
    source, target = Net(np.random.default_rng(1)), Net(np.random.default_rng(2))
    state = source.state_dict()
    assert list(state) == [n for n, _ in source.named_parameters()]
    missing, unexpected = target.load_state_dict(state)
    assert missing == [] and unexpected == []
    assert_same(target, snapshot(source))
    state["scale"][:] = 99  # the state dict holds copies, not the live arrays
    assert source.scale.data[0] == 2.0 and target.scale.data[0] == 2.0
    # Loading casts to the parameter's dtype.
    target.load_state_dict({k: v.astype(F64) for k, v in source.state_dict().items()})
    assert all(p.dtype == np.float32 for p in target.parameters())
    assert_same(target, snapshot(source))


def test_load_state_dict_lists_every_problem_and_changes_nothing():
    net = Net(np.random.default_rng(1))
    before = snapshot(net)
    state = Net(np.random.default_rng(2)).state_dict()
    del state["norm.bias"]
    state["extra.weight"] = np.zeros(3)
    state["layers.1.weight"] = np.zeros((4, 2))
    with pytest.raises(ValueError) as info:
        net.load_state_dict(state)
    message = str(info.value)
    assert "3 problem(s)" in message and "nothing was loaded" in message
    assert "missing key 'norm.bias' (shape (4,))" in message
    assert "unexpected key 'extra.weight'" in message
    assert "'layers.1.weight': the state has (4, 2), the model has (4, 3)" in message
    assert_same(net, before)  # the valid entries were not loaded either

    # strict=False tolerates missing/unexpected keys but never a wrong shape.
    with pytest.raises(ValueError, match="1 problem"):
        net.load_state_dict(state, strict=False)
    state["layers.1.weight"] = np.ones((4, 3))
    missing, unexpected = net.load_state_dict(state, strict=False)
    assert missing == ["norm.bias"] and unexpected == ["extra.weight"]
    assert np.all(net.layers[1].weight.data == 1) and np.array_equal(net.norm.bias.data, before["norm.bias"])


def test_buffers_persistent_ones_are_in_the_state_dict():
    class WithBuffers(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("table", np.arange(4.0))
            self.register_buffer("cache", np.zeros(2), persistent=False)

    m = WithBuffers()
    assert list(m.state_dict()) == ["table"]
    assert [n for n, _ in m.named_buffers()] == ["table", "cache"]
    m.load_state_dict({"table": np.full(4, 7.0)})
    assert np.all(m.table == 7.0)
    with pytest.raises(ValueError, match=r"'table': the state has \(3,\)"):
        m.load_state_dict({"table": np.zeros(3)})


def test_train_and_eval_reach_every_submodule():
    net = Net()
    assert net.training and net.drop.training
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())


def test_zero_grad_clears_every_gradient():
    net = Net()
    net(mg.tensor(np.ones((2, 2), np.float32))).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_repr_shows_the_tree_with_parameter_shapes():
    text = repr(Net())
    assert text.startswith("Net(\n  (scale): Parameter (3,)\n  (layers): ModuleList(\n")
    assert "    (0): Linear(in_features=2, out_features=4, bias=True)  [weight (2, 4), bias (4,)]" in text
    assert "  (norm): LayerNorm(4, eps=1e-05, elementwise_affine=True)  [weight (4,), bias (4,)]" in text
    assert "  (drop): Dropout(p=0.5)\n)" in text
    assert repr(nn.Linear(2, 2, dtype=F64)).endswith("[weight (2, 2) float64, bias (2,) float64]")


def test_assignment_rules_give_clear_errors():
    class Forgot(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(2, 2)

    with pytest.raises(RuntimeError, match=r"call super\(\).__init__\(\)"):
        Forgot()
    layer = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="Linear.weight is a parameter"):
        layer.weight = mg.tensor(np.zeros((2, 2), np.float32))
    layer.bias = None  # removing an optional parameter is allowed
    assert [n for n, _ in layer.named_parameters()] == ["weight"]
    with pytest.raises(TypeError, match="only floating-point"):
        nn.Parameter(np.zeros(3, dtype=np.int64))


# --------------------------------------------------------------------------- names and scopes


def test_forward_records_module_scopes_on_nodes():
    net = Net()
    with mg.name_scope("outer"):
        out = net(mg.tensor(np.ones((2, 2), np.float32)))
    assert out.grad_fn.scope == ("outer", "Net")  # the final multiply by scale
    scopes = {node.scope for node in graph_nodes(out)}
    assert {("outer", "Net", "layers.0"), ("outer", "Net", "norm"), ("outer", "Net", "drop"),
            ("outer", "Net", "layers.1")} <= scopes
    assert STATE.scope == ()


def test_scope_is_restored_when_forward_raises():
    net = Net()
    with pytest.raises(ValueError, match="layers.0"):  # the qualified name is in the message
        net(mg.tensor(np.ones((2, 5), np.float32)))
    assert STATE.scope == ()
    net(mg.tensor(np.ones((2, 2), np.float32)))  # and the next call is top-level again
    assert net.layers[0]._qualified_name == "layers.0"


def test_top_level_call_names_modules_and_unnamed_parameters():
    net = Net()
    net.norm.weight.name = "gamma"  # a name given by the user is kept
    net(mg.tensor(np.ones((1, 2), np.float32)))
    assert net.layers[1].weight.name == "layers.1.weight" and net.scale.name == "scale"
    assert net.norm.weight.name == "gamma"
    # A submodule called on its own keeps its path from the model it belongs to.
    out = net.layers[0](mg.tensor(np.ones(2, np.float32)))
    assert out.grad_fn.scope == ("layers.0",)
    assert nn.Linear(2, 2)(mg.tensor(np.ones(2, np.float32))).grad_fn.scope == ("Linear",)  # a real root
    net(mg.tensor(np.ones((1, 2), np.float32)))  # the whole model again: names relative to Net
    assert net.layers[0]._qualified_name == "layers.0"


def test_modules_added_after_a_call_are_named_at_the_next_call():
    net = Net()
    net(mg.tensor(np.ones((1, 2), np.float32)))
    net.head = nn.Linear(3, 1)  # a structural change invalidates the cached naming
    out = net.head(net(mg.tensor(np.ones((1, 2), np.float32))))
    assert net.head.weight.name == "head.weight"
    assert out.grad_fn.scope == ("head",)  # called from outside forward: still named from its model
    x = mg.tensor(np.ones((1, 2), np.float32))
    assert net(x).grad_fn.scope == ("Net",) and net.head._qualified_name == "head"

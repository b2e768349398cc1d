# %% [markdown]
# # 0 · Autograd from scratch
#
# Every gradient in this project's Transformer is computed by `minigrad`, a few hundred
# lines of reverse-mode automatic differentiation on numpy. Before the Transformer, this
# notebook takes the engine apart on the smallest possible model, one neuron, and checks
# each thing it says with a number:
#
# 1. the chain rule by hand and the engine give the same gradients;
# 2. every rule in the table of VJPs agrees with finite differences;
# 3. the backward pass visits the ops in the reverse of the order they were recorded;
# 4. `gradcheck` catches a rule you break yourself, and training with that rule fails.
#
# The notebook ends with assertions on the measured numbers, so if a claim stops holding
# the test suite (which runs every notebook) fails.

# %%
import os

from threadpoolctl import threadpool_limits

threadpool_limits(1)  # one BLAS thread: on a small shared machine two threads only contend
QUICK = os.environ.get("NOTEBOOK_QUICK") == "1"  # the test suite runs every notebook with small sizes

import inspect

import matplotlib.pyplot as plt
import numpy as np

import minigrad as mg
from minigrad.autograd import record

# %% [markdown]
# ## 1 · A neuron by hand
#
# A neuron computes $o = \tanh(w \cdot x + b)$. With $z = w\cdot x + b$ the chain rule gives
#
# $$\frac{\partial o}{\partial z} = 1 - o^2,\qquad
#   \frac{\partial o}{\partial w_i} = (1 - o^2)\,x_i,\qquad
#   \frac{\partial o}{\partial b} = 1 - o^2 .$$
#
# First with plain numpy, writing every derivative ourselves:

# %%
x_np = np.array([2.0, -1.0, 0.5])
w_np = np.array([0.3, -0.8, 1.1])
b_np = 0.2

z = w_np @ x_np + b_np
o = np.tanh(z)
do_dz = 1 - o**2
grad_w_by_hand = do_dz * x_np
grad_b_by_hand = do_dz
print(f"o = {o:.6f}")
print("do/dw by hand:", grad_w_by_hand, "  do/db by hand:", grad_b_by_hand)

# %% [markdown]
# Now the same neuron with the engine. Each op records its inputs and one rule per input;
# `backward()` runs the rules from the output back to the leaves.

# %%
w = mg.tensor(w_np, requires_grad=True, name="w")
x = mg.tensor(x_np, name="x")
b = mg.tensor(b_np, requires_grad=True, dtype=np.float64, name="b")  # float64 like w and x
with mg.name_scope("neuron"):
    out = mg.tanh((w * x).sum() + b)
out.name = "o"
with mg.trace() as backward_steps:
    out.backward(retain_graph=True)  # keep the graph so we can draw it below

neuron_error = max(np.abs(w.grad.data - grad_w_by_hand).max(), abs(float(b.grad.data) - grad_b_by_hand))
print("do/dw engine:  ", w.grad.data, "  do/db engine:", float(b.grad.data))
print(f"largest difference from the hand-written chain rule: {neuron_error:.2e}")

# %% [markdown]
# ## 2 · The table of rules (VJPs)
#
# The engine never forms a Jacobian. For an op $y = f(a, b)$ it stores, per input, a
# *vector-Jacobian product*: given $\bar y = \partial L/\partial y$ it returns
# $\bar a = \bar y\, \partial y/\partial a$. Here are a few rules exactly as
# `minigrad/ops.py` writes them; the docstring line states the math.

# %%
for op in (mg.ops.mul, mg.ops.tanh, mg.ops.exp, mg.ops.sum):
    lines = inspect.getsource(op).splitlines()
    print("\n".join([lines[0], lines[1], "    ...", lines[-1]]), end="\n\n")

# %% [markdown]
# A rule is right when it agrees with central finite differences
# $\frac{f(a + \epsilon e_j) - f(a - \epsilon e_j)}{2\epsilon}$. We measure that agreement
# for several ops, in float64, with a random cotangent $\bar y$ (so that every element of
# the Jacobian matters): $\max_j |\,\text{analytic}_j - \text{numeric}_j\,|$.

# %%
rng = np.random.default_rng(0)


def vjp_error(fn, *arrays, eps=1e-6):
    """max |engine VJP - finite-difference VJP| over all elements of all inputs, float64."""
    inputs = [mg.Tensor(a.astype(np.float64), requires_grad=True) for a in arrays]
    y = fn(*inputs)
    cotangent = rng.standard_normal(y.shape)
    (y * mg.Tensor(cotangent)).sum().backward()
    worst = 0.0
    for t, a in zip(inputs, arrays):
        numeric = np.zeros_like(a, dtype=np.float64)
        for j in np.ndindex(a.shape):
            up, down = [x.astype(np.float64) for x in arrays], [x.astype(np.float64) for x in arrays]
            k = next(i for i, s in enumerate(arrays) if s is a)
            up[k][j] += eps
            down[k][j] -= eps
            f_up = (fn(*map(mg.Tensor, up)).data * cotangent).sum()
            f_down = (fn(*map(mg.Tensor, down)).data * cotangent).sum()
            numeric[j] = (f_up - f_down) / (2 * eps)
        worst = max(worst, float(np.abs(t.grad.data - numeric).max()))
    return worst


a, c = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
m = rng.standard_normal((4, 2))
cases = {
    "add": (lambda p, q: p + q, a, c),
    "mul": (lambda p, q: p * q, a, c),
    "div": (lambda p, q: p / (q * q + 1), a, c),
    "exp": (lambda p: mg.exp(p), a),
    "log": (lambda p: mg.log(p * p + 0.5), a),
    "tanh": (lambda p: mg.tanh(p), a),
    "sigmoid": (lambda p: mg.sigmoid(p), a),
    "sum(axis=1)": (lambda p: p.sum(axis=1), a),
    "matmul": (lambda p, q: p @ q, a, m),
    "softmax": (lambda p: mg.softmax(p, axis=-1), a),
    "layer_norm": (lambda p: mg.layer_norm(p), a),
    "broadcast add": (lambda p, q: p + q, a, c[:1]),
}
rule_errors = {name: vjp_error(fn, *arrays) for name, (fn, *arrays) in cases.items()}
for name, err in rule_errors.items():
    print(f"{name:>14}: {err:.1e}")

# %%
fig, ax = plt.subplots(figsize=(8, 3.2))
ax.bar(list(rule_errors), [max(e, 1e-17) for e in rule_errors.values()], color="tab:blue")
ax.axhline(1e-6, color="tab:red", ls="--", label="tolerance used below (1e-6)")
ax.set_yscale("log")
ax.set_ylabel("max |analytic − numeric|")
ax.set_title("Each VJP rule against central finite differences (float64, ε = 1e-6)")
ax.tick_params(axis="x", rotation=40)
ax.legend(loc="upper left")
fig.tight_layout()
plt.show()

# %% [markdown]
# All errors sit around $10^{-10}$, the size finite differences themselves can resolve
# in float64: the rules are exact up to the measurement.
#
# ## 3 · The backward pass, step by step
#
# `mg.trace()` recorded which rule ran when, above. Every node gets a number when it is
# recorded; backward runs the waiting nodes newest first, so a node runs only after every
# node that used its output has sent its gradient.

# %%
print(backward_steps)


def recorded_nodes(root):
    """Every Node of the graph that made ``root`` (kept by retain_graph), in recording order."""
    found, stack = {}, [root]
    while stack:
        t = stack.pop()
        if t._node is not None and id(t._node) not in found:
            found[id(t._node)] = t._node
            stack.extend(t._node.inputs)
    return sorted(found.values(), key=lambda node: node.seq)


forward_order = [node.op for node in recorded_nodes(out)]  # read from the graph, by Node.seq
backward_order = [step.op for step in backward_steps]      # read from the trace of backward
print("\nforward (recorded):", forward_order, "\nbackward (ran)    :", backward_order)

# %% [markdown]
# The same graph as a picture (`minigrad.viz.to_dot`, which needs Graphviz's `dot`):
# tensors are boxes, ops ellipses, parameters blue, the output orange, and the number on
# each op is its step in the backward pass above. The second picture is the backward
# graph itself, coloured by gradient norm.

# %%
from minigrad.viz import to_dot

to_dot(out, trace=backward_steps, show_data=True, rankdir="LR", title="o = tanh(w·x + b)")

# %%
to_dot(out, trace=backward_steps, backward=True, show_grad=True, rankdir="LR", title="its backward pass")

# %% [markdown]
# ## 4 · A rule you break yourself
#
# `gradcheck` compares the engine with finite differences on the whole Jacobian and
# raises `GradcheckError` naming the input, the element and both values. Here is `tanh`
# written as a new op, once with the right rule $\bar x = \bar y\,(1 - o^2)$ and once with
# a plausible slip, $\bar x = \bar y\,(1 - o)$.

# %%
def my_tanh(t):
    """tanh t.   t̄ = ḡ·(1 - out²)"""
    return record("my_tanh", np.tanh(t.data), (t,), lambda g, out: g * (1 - out * out))


def broken_tanh(t):
    """tanh with a wrong rule: t̄ = ḡ·(1 - out)   (the square is missing)"""
    return record("broken_tanh", np.tanh(t.data), (t,), lambda g, out: g * (1 - out))


point = mg.Tensor(rng.standard_normal((2, 3)), requires_grad=True)
right_rule_passes = mg.gradcheck(my_tanh, [point])
print("the right rule passes gradcheck:", right_rule_passes)
try:
    mg.gradcheck(broken_tanh, [point])
    broken_rule_caught = False
except mg.GradcheckError as error:
    broken_rule_caught = True
    print("the broken rule is caught:\n ", str(error).splitlines()[0])

# %% [markdown]
# What a wrong rule costs: fit a small tanh network $y = \tanh(X W_1) W_2$ to a target
# with each rule, same data, same initialization, plain gradient descent. The forward
# pass is identical; only the gradient differs.

# %%
steps = 150 if QUICK else 400
data_rng = np.random.default_rng(1)
X = data_rng.standard_normal((64, 3))
Y = np.sin(X @ np.array([[1.0], [-2.0], [0.5]]))


def train_curve(activation, steps=steps, lr=0.1):
    init = np.random.default_rng(2)
    w1 = mg.Tensor(init.standard_normal((3, 16)) * 0.5, requires_grad=True)
    w2 = mg.Tensor(init.standard_normal((16, 1)) * 0.5, requires_grad=True)
    losses = []
    for _ in range(steps):
        loss = ((activation(mg.Tensor(X) @ w1) @ w2 - mg.Tensor(Y)) ** 2).mean()
        w1.grad = w2.grad = None
        loss.backward()
        for p in (w1, w2):
            p.data -= lr * p.grad.data
        losses.append(float(loss.data))
    return np.array(losses)


curves = {"right rule": train_curve(my_tanh), "broken rule": train_curve(broken_tanh)}
fig, ax = plt.subplots(figsize=(6, 3.2))
for label, losses in curves.items():
    ax.plot(losses, label=f"{label} (final {losses[-1]:.3f})")
ax.set_yscale("log")
ax.set_xlabel("gradient-descent step")
ax.set_ylabel("mean squared error")
ax.set_title("Same forward pass, right vs broken tanh rule")
ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ### Try it yourself
#
# Break a rule of your own: change the lambda in `my_square` below (drop the `2`, flip a
# sign, return `g * t` instead of `g * t * 2`...) and run the cell. `gradcheck` prints
# what it caught instead of stopping the notebook.

# %%
def my_square(t):
    """t².   t̄ = ḡ·2t"""
    return record("my_square", t.data ** 2, (t,), lambda g, out: g * t * 2)


def my_square_broken(t):
    """t² with the factor 2 forgotten in its rule"""
    return record("my_square_broken", t.data ** 2, (t,), lambda g, out: g * t)


for fn in (my_square, my_square_broken):
    try:
        mg.gradcheck(fn, [point])
        print(f"{fn.__name__}: gradcheck passed")
    except mg.GradcheckError as error:
        print(f"{fn.__name__}: gradcheck FAILED -> {str(error).splitlines()[0]}")

# %% [markdown]
# ## What we measured
#
# The checks below are what the test suite runs on this notebook.

# %%
right_final, broken_final = curves["right rule"][-1], curves["broken rule"][-1]
print(f"neuron: engine vs chain rule by hand, max difference {neuron_error:.1e}")
print(f"VJP table: worst rule error against finite differences {max(rule_errors.values()):.1e}")
print(f"backward order {backward_order} is the forward order reversed")
print(f"gradcheck: right rule passes, broken rule caught = {broken_rule_caught}")
print(f"training: final loss {right_final:.4f} with the right rule, {broken_final:.4f} with the broken one "
      f"({broken_final / right_final:.1f}x)")

assert neuron_error < 1e-12
assert max(rule_errors.values()) < 1e-6
assert backward_order == forward_order[::-1]
assert right_rule_passes and broken_rule_caught
assert broken_final > 2 * right_final

# %% [markdown]
# ## Exercises
#
# Fill in each function below and run the cell after it: the check says "passed", or
# names what is wrong (the element, the axis). A check whose function still raises
# `NotImplementedError` only says "not done yet". Solutions: `solutions/autograd.py`.
#
# **1 · The VJP of sigmoid.** $\sigma(x) = 1/(1 + e^{-x})$. Write its rule the way
# `record` calls it: given the output's gradient `g` and the output `out` (both
# Tensors), return the input's gradient as a Tensor. The check makes it the rule of a
# new op and runs `gradcheck` on it.

# %%
import exercises  # the checks, in notebooks/exercises.py


def sigmoid_rule(g, out):
    """x̄ from ḡ and out = σ(x)."""
    raise NotImplementedError


exercises.run(exercises.check_sigmoid_rule, sigmoid_rule)

# %% [markdown]
# **2 · Undo broadcasting.** When `a` of shape (3, 1) is added to `b` of shape (2, 3, 4),
# `a` is used 2·4 times per element, so its gradient is the sum of the output gradient
# over the axes broadcasting created or stretched. Write `unbroadcast(grad, shape)` with
# numpy (`grad` is an array, `shape` the input's shape); the check compares it with the
# engine's `mg.sum_to` on five cases.

# %%
def unbroadcast(grad, shape):
    """Sum ``grad`` back to ``shape``."""
    raise NotImplementedError


exercises.run(exercises.check_unbroadcast, unbroadcast)

# %% [markdown]
# # 0a · An autograd engine from an empty cell
#
# Before taking `minigrad` apart (notebook 0), we build a reverse-mode engine ourselves,
# from nothing, in well under 150 lines (counted at the end). Each step adds one idea and
# is checked at once,
# against `minigrad` and against finite differences:
#
# 1. a `Tensor` that remembers the op that made it and one VJP rule per input;
# 2. `backward`, running the rules newest op first (a heap ordered by recording number);
# 3. tensors used twice: their gradients must *add up*;
# 4. broadcasting, undone by summing the gradient back to the input's shape;
# 5. enough ops to train a small network, step for step equal to `minigrad`;
#
# and at the end `minigrad/autograd.py`'s own backward loop, read next to ours.

# %%
import os

from threadpoolctl import threadpool_limits

threadpool_limits(1)  # one BLAS thread: on a small shared machine two threads only contend
QUICK = os.environ.get("NOTEBOOK_QUICK") == "1"  # the test suite runs every notebook with small sizes

import heapq
import inspect
import itertools

import numpy as np

import minigrad as mg

rng = np.random.default_rng(0)


def numeric_gradient(f, x, eps=1e-6):
    """∂f/∂x by central differences, one element at a time (f: array -> float)."""
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[i] += eps
        down[i] -= eps
        grad[i] = (f(up) - f(down)) / (2 * eps)
    return grad

# %% [markdown]
# ## 1 · A tensor that remembers how it was made
#
# A tensor holds its numbers (`data`) and, if an op made it, the op's inputs (`parents`)
# and one rule per input (`vjps`): given the gradient $\bar y$ of the output, rule $i$
# returns the gradient of input $i$, $\bar y\,\partial y/\partial x_i$, a
# *vector-Jacobian product*. Every tensor also gets a number (`seq`) when it is made,
# so a tensor is always numbered after its inputs.

# %%
_counter = itertools.count()


class Tensor:
    def __init__(self, data, parents=(), vjps=(), op="leaf"):
        self.data = np.asarray(data, dtype=np.float64)
        self.parents, self.vjps, self.op = parents, vjps, op
        self.grad = None
        self.seq = next(_counter)  # recording order: inputs are always older than outputs

    @property
    def shape(self):
        return self.data.shape

    def __repr__(self):
        return f"Tensor({self.op}, shape {self.shape})"


def lift(x):
    return x if isinstance(x, Tensor) else Tensor(x)


def add(a, b):
    a, b = lift(a), lift(b)
    return Tensor(a.data + b.data, (a, b), (lambda g: g, lambda g: g), "add")


def mul(a, b):
    a, b = lift(a), lift(b)
    return Tensor(a.data * b.data, (a, b), (lambda g: g * b.data, lambda g: g * a.data), "mul")


def total(a):
    """Sum of every element: each element's gradient is the output's."""
    return Tensor(a.data.sum(), (a,), (lambda g: g * np.ones_like(a.data),), "sum")


Tensor.__add__ = Tensor.__radd__ = add
Tensor.__mul__ = Tensor.__rmul__ = mul
Tensor.sum = total

x, w = Tensor([1.0, 2.0, 3.0]), Tensor([0.5, -1.0, 2.0])
y = (x * w).sum() + 1.0
print(y, "=", y.data, "; numpy:", (x.data * w.data).sum() + 1.0)
print("how y was made:", y.op, "<-", [p.op for p in y.parents], "<-", [q.op for q in y.parents[0].parents])
assert y.data == (x.data * w.data).sum() + 1.0

# %% [markdown]
# ## 2 · Backward: newest op first
#
# To run a tensor's rules we need its *whole* gradient, so every tensor made from it
# must have sent its share first. Those were all made later, so they have larger
# `seq`: taking the waiting tensor with the largest `seq` each time (a heap) is a valid
# order, with no separate sort and no recursion. The first version *assigns* each
# gradient it receives.

# %%
def backward_assigning(root):
    """First attempt: a tensor's gradient is whatever it was sent last."""
    grads = {id(root): np.ones_like(root.data)}
    waiting = [(-root.seq, id(root), root)]
    while waiting:
        _, _, t = heapq.heappop(waiting)
        g = grads.pop(id(t))
        if not t.parents:
            t.grad = g
        for parent, vjp in zip(t.parents, t.vjps):
            if id(parent) not in grads:
                heapq.heappush(waiting, (-parent.seq, id(parent), parent))
            grads[id(parent)] = vjp(g)  # overwrites a gradient sent earlier


x_np, w_np = rng.standard_normal(3), rng.standard_normal(3)
x, w = Tensor(x_np), Tensor(w_np)
backward_assigning((x * w).sum())
reference_x, reference_w = mg.Tensor(x_np, requires_grad=True), mg.Tensor(w_np, requires_grad=True)
(reference_x * reference_w).sum().backward()
print("ours    :", x.grad, w.grad)
print("minigrad:", reference_x.grad.data, reference_w.grad.data)
assert np.allclose(x.grad, reference_x.grad.data) and np.allclose(w.grad, reference_w.grad.data)

# %% [markdown]
# ## 3 · A tensor used twice
#
# That agrees on $\sum x \cdot w$. Now use a tensor twice: $f(x) = \sum x\cdot x + x$.
# $x$ reaches the output through three paths, so its gradient is the *sum* of what each
# path sends, $2x + 1$. Assigning keeps only the last one:

# %%
def f_ours(x):
    return (x * x + x).sum()


x = Tensor(x_np)
backward_assigning(f_ours(x))
by_differences = numeric_gradient(lambda a: float(f_ours(Tensor(a)).data), x_np)
print("assigning:          ", x.grad)
print("finite differences: ", by_differences, "(= 2x + 1)")
assigning_error = float(np.abs(x.grad - by_differences).max())
print(f"largest error: {assigning_error:.2f}")

# %% [markdown]
# The fix is one line: a gradient arriving at a tensor that already holds one is
# *added*. The same loop also has to handle broadcasting, which is the next step, so
# here is the final `backward` with both, and `unbroadcast` explained below.

# %%
def unbroadcast(g, shape):
    """Sum a gradient back to ``shape``: over the axes broadcasting added in front, and
    over the axes where the input had size 1."""
    g = g.sum(axis=tuple(range(g.ndim - len(shape))))
    return g.sum(axis=tuple(i for i, n in enumerate(shape) if n == 1), keepdims=True)


def backward(root):
    """Accumulate d(root)/d(leaf) into each leaf's .grad (root: a scalar Tensor)."""
    grads = {id(root): np.ones_like(root.data)}
    waiting = [(-root.seq, id(root), root)]
    while waiting:
        _, _, t = heapq.heappop(waiting)
        g = grads.pop(id(t))  # complete: everything made from t was newer and has run
        if not t.parents:
            t.grad = g if t.grad is None else t.grad + g
        for parent, vjp in zip(t.parents, t.vjps):
            g_parent = unbroadcast(vjp(g), parent.shape)
            if id(parent) in grads:
                grads[id(parent)] = grads[id(parent)] + g_parent  # used more than once: add up
            else:
                grads[id(parent)] = g_parent
                heapq.heappush(waiting, (-parent.seq, id(parent), parent))


Tensor.backward = backward
x = Tensor(x_np)
f_ours(x).backward()
reference = mg.Tensor(x_np, requires_grad=True)
(reference * reference + reference).sum().backward()
accumulating_error = float(np.abs(x.grad - by_differences).max())
print("accumulating:", x.grad, f"(error against finite differences {accumulating_error:.1e})")
print("minigrad:    ", reference.grad.data)
assert accumulating_error < 1e-6 and np.allclose(x.grad, reference.grad.data)

# %% [markdown]
# ## 4 · Broadcasting, undone
#
# `b + a` with `b` of shape (3, 4) and `a` of shape (4,) uses each element of `a` three
# times, once per row; its gradient is the sum over the rows. A rule written for equal
# shapes returns a (3, 4) gradient for `a`; `unbroadcast` sums it back to (4,). Without
# it the gradient would have the wrong shape: that is what the engine checks below.

# %%
b_np, a_np = rng.standard_normal((3, 4)), rng.standard_normal(4)
b, a = Tensor(b_np), Tensor(a_np)
((b + a) * (b + a)).sum().backward()
without_unbroadcast = (2 * (b_np + a_np)).shape  # what the rule itself returns for `a`
ref_b, ref_a = mg.Tensor(b_np, requires_grad=True), mg.Tensor(a_np, requires_grad=True)
((ref_b + ref_a) * (ref_b + ref_a)).sum().backward()
by_differences = numeric_gradient(lambda v: float(((b_np + v) ** 2).sum()), a_np)
broadcast_error = float(max(np.abs(a.grad - ref_a.grad.data).max(), np.abs(a.grad - by_differences).max()))
print(f"a has shape {a.shape}; the rule alone gives shape {without_unbroadcast}; after unbroadcast {a.grad.shape}")
print(f"a.grad vs minigrad and finite differences: largest difference {broadcast_error:.1e}")
assert a.grad.shape == a.shape and broadcast_error < 1e-6

# %% [markdown]
# ## 5 · Enough ops for a network
#
# Matrix product, tanh, subtraction, a power and the mean: each is its forward line and
# its rules. For $Y = A B$: $\bar A = \bar Y B^\top$, $\bar B = A^\top \bar Y$. For
# $y = \tanh x$: $\bar x = \bar y\,(1 - y^2)$, reusing the output.

# %%
def matmul(a, b):
    a, b = lift(a), lift(b)
    return Tensor(a.data @ b.data, (a, b), (lambda g: g @ b.data.T, lambda g: a.data.T @ g), "matmul")


def tanh(a):
    out = np.tanh(a.data)
    return Tensor(out, (a,), (lambda g: g * (1 - out ** 2),), "tanh")


def power(a, k):
    return Tensor(a.data ** k, (a,), (lambda g: g * k * a.data ** (k - 1),), f"pow {k}")


def neg(a):
    return Tensor(-a.data, (a,), (lambda g: -g,), "neg")


def mean(a):
    return total(a) * (1.0 / a.data.size)


Tensor.__matmul__ = matmul
Tensor.__pow__ = power
Tensor.__neg__ = neg
Tensor.__sub__ = lambda a, b: a + (-lift(b))
Tensor.__rsub__ = lambda a, b: lift(b) + (-a)
Tensor.tanh = tanh
Tensor.mean = mean

op_errors = {}
cases = {  # our op and minigrad's on the same inputs
    "matmul": (lambda p, q: (p @ q).sum(), (3, 4), (4, 2)),
    "tanh": (lambda p, q: (p.tanh() * q).sum(), (3, 4), (3, 4)),
    "sub (broadcast)": (lambda p, q: ((p - q) ** 2).mean(), (3, 4), (1, 4)),
    "pow": (lambda p, q: (p ** 3 * q).sum(), (2, 3), (2, 3)),
}
for name, (f, shape_p, shape_q) in cases.items():
    p_np, q_np = rng.standard_normal(shape_p), rng.standard_normal(shape_q)
    p, q = Tensor(p_np), Tensor(q_np)
    f(p, q).backward()
    mp, mq = mg.Tensor(p_np, requires_grad=True), mg.Tensor(q_np, requires_grad=True)
    f(mp, mq).backward()
    numeric_p = numeric_gradient(lambda v: float(f(Tensor(v), Tensor(q_np)).data), p_np)
    op_errors[name] = max(np.abs(p.grad - mp.grad.data).max(), np.abs(q.grad - mq.grad.data).max(),
                          np.abs(p.grad - numeric_p).max())
    print(f"{name:>16}: largest difference from minigrad and finite differences {op_errors[name]:.1e}")

# %% [markdown]
# That is the whole engine. Now the tiny network of notebook 0, $\hat y = \tanh(X W_1) W_2$,
# trained by gradient descent with our engine and with `minigrad`, from the same start:
# the losses must agree at every step.

# %%
data = np.random.default_rng(1)
X = data.standard_normal((64, 3))
Y = np.sin(X @ np.array([[1.0], [-2.0], [0.5]]))
init = np.random.default_rng(2)
start = [init.standard_normal((3, 16)) * 0.5, init.standard_normal((16, 1)) * 0.5]


def train(make, steps=60 if QUICK else 200, lr=0.1):
    """Gradient descent with tensors made by ``make``; returns the loss per step."""
    w1, w2 = (p.copy() for p in start)
    losses = []
    for _ in range(steps):
        t1, t2 = make(w1), make(w2)
        loss = (((make(X) @ t1).tanh() @ t2 - make(Y)) ** 2).mean()
        loss.backward()
        w1, w2 = w1 - lr * array(t1.grad), w2 - lr * array(t2.grad)
        losses.append(float(array(loss)))
    return np.array(losses)


def array(t):
    """The numbers of one of our Tensors, a minigrad Tensor, or an array (our .grad)."""
    return t.data if isinstance(t, (Tensor, mg.Tensor)) else t


ours = train(Tensor)
theirs = train(lambda a: mg.Tensor(a, requires_grad=True))
training_difference = float(np.abs(ours - theirs).max())
print(f"loss {ours[0]:.4f} -> {ours[-1]:.4f} with our engine, {theirs[0]:.4f} -> {theirs[-1]:.4f} with minigrad; "
      f"largest difference over {len(ours)} steps {training_difference:.1e}")

# %% [markdown]
# ## 6 · The same loop in minigrad
#
# `minigrad.autograd.run_backward` is our `backward` grown up. Read it next to ours:
#
# | ours | minigrad |
# | --- | --- |
# | `seq` on every Tensor | `Node.seq`, on the op's record (a leaf has no node) |
# | heap of `(-seq, id, tensor)` | the same heap, `heapq.heappush(waiting, (-t._node.seq, t))` |
# | `grads[id(parent)] + g_parent` | `send`: `entry[1] = entry[1] + g` for a tensor used more than once |
# | `unbroadcast` after every rule | `_undo_broadcast`, which also *names* a rule that returns a wrong shape |
# | rules on numpy arrays | rules on Tensors, so with `create_graph=True` the gradient has a graph (grad of grad) |
# | keeps the graph forever | frees each node's rules unless `retain_graph=True`; a second backward says so |
# | trusts the data | version counters catch an input changed in place between forward and backward |
# | `.grad` of leaves only | also returns the gradients of chosen `inputs` (`mg.grad`); records a trace for pictures |

# %%
source = inspect.getsource(mg.autograd.run_backward)
print(source)
ours_source = inspect.getsource(backward)
print(f"ours: {len(ours_source.splitlines())} lines; minigrad's: {len(source.splitlines())} lines")

# %% [markdown]
# ## What we measured

# %%
functions = (lift, add, mul, total, unbroadcast, backward, matmul, tanh, power, neg, mean,
             Tensor.__init__, Tensor.shape.fget, Tensor.__repr__)
attached = [name for name in vars(Tensor) if name not in ("__init__", "shape", "__repr__", "__module__", "__dict__",
                                                          "__weakref__", "__doc__", "__qualname__")]
# the functions and methods, the class line, the counter, and at most one line per attached operator
engine_lines = sum(len(inspect.getsource(f).splitlines()) for f in functions) + 2 + len(attached)
print(f"engine: at most {engine_lines} lines (Tensor, 9 ops, unbroadcast, backward), without the checks")
print(f"a tensor used twice: assigning is off by {assigning_error:.2f}, accumulating {accumulating_error:.1e}")
print(f"broadcast gradient vs minigrad and finite differences: {broadcast_error:.1e}")
print(f"ops vs minigrad and finite differences: worst {max(op_errors.values()):.1e}")
print(f"training, our engine vs minigrad: largest loss difference {training_difference:.1e} over {len(ours)} steps")

assert assigning_error > 0.5                 # assigning loses the paths sent earlier
assert accumulating_error < 1e-6 and broadcast_error < 1e-6
assert max(op_errors.values()) < 1e-6
assert training_difference < 1e-10 and ours[-1] < 0.5 * ours[0]
assert engine_lines < 100

# %% [markdown]
# ## Exercises
#
# Extend the engine and run the cell after each function: the check builds tensors of
# *this notebook's* `Tensor`, runs `backward` and compares with `minigrad`, naming the
# element that is wrong. Solutions: `solutions/engine.py`.
#
# **1 · exp.** `exp(a)` returns a new `Tensor` holding $e^a$, with the rule for its input.

# %%
import exercises  # the checks, in notebooks/exercises.py


def exp(a):
    raise NotImplementedError


exercises.run(lambda fn: exercises.check_engine_exp(fn, Tensor), exp)

# %% [markdown]
# **2 · Division, with broadcasting.** `divide(a, b)` for tensors of broadcastable shapes:
# $a / b$, with $\bar a = \bar y / b$ and $\bar b = -\bar y\,a / b^2$. The check divides a
# (3, 4) tensor by a (4,) one; `backward` undoes the broadcasting for you.

# %%
def divide(a, b):
    raise NotImplementedError


exercises.run(lambda fn: exercises.check_engine_divide(fn, Tensor), divide)

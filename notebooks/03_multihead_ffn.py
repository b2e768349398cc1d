# %% [markdown]
# # 3 · Multi-head attention and the feed-forward network (多头注意力机制 · 前馈神经网络)
#
# One attention head computes one weighted average per token. Multi-head attention runs
# $H$ heads side by side, each on its own $d_k = d_{model}/H$ slice of learned projections,
# and concatenates their outputs before a last projection $W_O$:
#
# $$\mathrm{MultiHead}(Q,K,V) = \mathrm{Concat}(\text{head}_1, \dots, \text{head}_H)\,W_O .$$
#
# A common description says that heads learn to look for different things. We first
# follow the shapes through one multi-head block, then measure that description on a
# model trained on the coreference task of notebook 2 (4 heads per layer): how different
# the heads' attention patterns are, and what each head is worth, by switching it off
# and measuring the accuracy drop. Then the feed-forward network: it is applied to every
# position on its own, which we check by permuting positions and by perturbing one.

# %%
import os

from threadpoolctl import threadpool_limits

threadpool_limits(1)  # one BLAS thread: on a small shared machine two threads only contend
QUICK = os.environ.get("NOTEBOOK_QUICK") == "1"  # the test suite runs every notebook with small sizes

import matplotlib.pyplot as plt
import numpy as np

import minigrad as mg
from transformer.attention import MultiHeadAttention, scaled_dot_product_attention
from transformer.layers import FeedForward

# %% [markdown]
# ## 0 · The shapes through one multi-head block
#
# With batch B, length T, model width d_model and H heads of width d_k = d_model / H:
# the three projections keep (B, T, d_model); splitting the last axis into H pieces and
# moving the head axis forward gives (B, H, T, d_k); each head scores its T queries
# against its T keys, (B, H, T, T); the weighted sum of values is (B, H, T, d_k) again;
# joining the heads returns (B, T, d_model) for $W_O$. The cell below runs the library's
# `MultiHeadAttention` one step at a time and asserts every shape.

# %%
B, T, d_model_demo, H = 2, 11, 32, 4
block = MultiHeadAttention(d_model_demo, H, rng=np.random.default_rng(0))
x_demo = mg.Tensor(np.random.default_rng(1).standard_normal((B, T, d_model_demo)).astype(np.float32))
d_k = block.d_k
with mg.no_grad():
    q_proj = block.w_q(x_demo)
    q, k, v = (block.split_heads(p(x_demo)) for p in (block.w_q, block.w_k, block.w_v))
    heads_out, weights = scaled_dot_product_attention(q, k, v)
    joined = block.merge_heads(heads_out)
    out = block.w_o(joined)
    reference = block(x_demo, x_demo, x_demo)
steps_and_shapes = [("input x", x_demo.shape, (B, T, d_model_demo)),
                    ("x W_Q (and W_K, W_V)", q_proj.shape, (B, T, d_model_demo)),
                    ("split_heads: Q, K, V", q.shape, (B, H, T, d_k)),
                    ("scores / weights Q Kᵀ/√d_k", weights.shape, (B, H, T, T)),
                    ("weights · V (per head)", heads_out.shape, (B, H, T, d_k)),
                    ("merge_heads (concatenate)", joined.shape, (B, T, d_model_demo)),
                    ("· W_O: the block's output", out.shape, (B, T, d_model_demo))]
for name, shape, expected in steps_and_shapes:
    assert shape == expected, (name, shape, expected)
    print(f"{name:<30} {str(shape):<16} asserted == {expected}")
split_error = float(np.abs(q.data[:, 1] - q_proj.data[..., d_k:2 * d_k]).max())  # head 1 = dimensions d_k..2d_k
block_error = float(np.abs(out.data - reference.data).max())
print(f"head 1 holds dimensions {d_k}..{2 * d_k - 1} of every position: max difference {split_error:.1e}")
print(f"step by step vs MultiHeadAttention.forward: max difference {block_error:.1e}")

# %%
# isort: split
import coreference as task  # the it -> referent task, in notebooks/coreference.py

vocab = task.WordVocab()
train_set, test_set = task.split(seed=0)
train_arrays, test_arrays = task.to_arrays(train_set, vocab), task.to_arrays(test_set, vocab)
n_heads, n_layers = 4, 2
steps, batch_size = (400, 32) if QUICK else (700, 64)
test_other = task.other_noun_ids(test_set, vocab)   # the noun that is not the referent
chance = task.chance_levels(test_set, vocab)

model = task.ReferentModel(len(vocab), d_model=32, n_heads=n_heads, n_layers=n_layers, d_ff=64, seed=0)
untrained = task.ReferentModel(len(vocab), d_model=32, n_heads=n_heads, n_layers=n_layers, d_ff=64, seed=0)
losses = task.train(model, *train_arrays, steps=steps, batch_size=batch_size, lr=5e-3, seed=0)
base_scores = task.accuracies(model, *test_arrays, test_other)
base_accuracy = base_scores["vocabulary"]
print(f"trained {steps} steps: final loss {losses[-20:].mean():.4f}, held-out accuracy {base_accuracy:.1%} "
      f"(argmax over all {len(vocab)} words; chance {chance['uniform']:.1%} for a random word, "
      f"{chance['constant']:.1%} for the most frequent referent), {base_scores['two_nouns']:.1%} right noun "
      "above wrong noun (chance 50%)")

# %% [markdown]
# ## 1 · Do the heads attend to different things?
#
# For 300 held-out sentences we take every head's attention distribution of every query
# and compare heads of the same layer pairwise by total-variation distance,
# $\tfrac12\sum_j |a_j - b_j|$ (0: the same distribution, 1: disjoint), averaged over
# queries and sentences. The same model *before* training is the baseline.

# %%
sample = np.random.default_rng(0).choice(len(test_set), 100 if QUICK else 300, replace=False)
sample_arrays = tuple(a[sample] for a in test_arrays)


def head_distances(m):
    """(layers, H, H): mean total-variation distance between the heads' attention rows."""
    attn = task.attention_weights(m, *sample_arrays[:2])           # (layers, B, H, T, T)
    real = sample_arrays[0] != task.PAD                             # (B, T) real query rows
    out = np.zeros((n_layers, n_heads, n_heads))
    for layer in range(n_layers):
        for a in range(n_heads):
            for b in range(n_heads):
                tv = 0.5 * np.abs(attn[layer, :, a] - attn[layer, :, b]).sum(-1)   # (B, T)
                out[layer, a, b] = tv[real].mean()
    return out, attn


trained_distance, attn = head_distances(model)
untrained_distance, _ = head_distances(untrained)
off_diagonal = ~np.eye(n_heads, dtype=bool)
mean_trained = trained_distance[:, off_diagonal].mean()
mean_untrained = untrained_distance[:, off_diagonal].mean()

fig, axes = plt.subplots(1, n_layers + 1, figsize=(14, 3.8))
for layer in range(n_layers):
    image = axes[layer].imshow(trained_distance[layer], vmin=0, vmax=1, cmap="magma")
    axes[layer].set_title(f"trained, layer {layer}")
    fig.colorbar(image, ax=axes[layer], label="total-variation distance")
image = axes[-1].imshow(untrained_distance[0], vmin=0, vmax=1, cmap="magma")
axes[-1].set_title("untrained, layer 0")
fig.colorbar(image, ax=axes[-1], label="total-variation distance")
for ax in axes:
    ax.set_xticks(range(n_heads), [f"head {h}" for h in range(n_heads)], fontsize=8)
    ax.set_yticks(range(n_heads), [f"head {h}" for h in range(n_heads)], fontsize=8)
fig.suptitle("How differently two heads of a layer attend (mean over queries)", fontsize=12)
fig.tight_layout()
plt.show()
print(f"mean distance between two heads: trained {mean_trained:.2f}, untrained {mean_untrained:.2f}")

# %% [markdown]
# What each head of the trained model does with the seed's sentence:

# %%
words = "the animal didn't cross the street because it was too tired".split()
one = np.array([vocab.encode(words)])
one_attn = task.attention_weights(model, one, np.array([words.index("it")]))   # (layers, 1, H, T, T)
fig, axes = plt.subplots(n_layers, n_heads, figsize=(4.2 * n_heads, 4 * n_layers))
for layer in range(n_layers):
    for head in range(n_heads):
        ax = axes[layer, head]
        image = ax.imshow(one_attn[layer, 0, head], vmin=0, vmax=1, cmap="viridis")
        ax.set_title(f"layer {layer}, head {head}", fontsize=10)
        ax.set_xticks(range(len(words)), words, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(len(words)), words, fontsize=8)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03)
fig.suptitle("Each head's attention on the seed's sentence (row: query, column: key)", fontsize=13)
fig.tight_layout()
plt.show()

# %% [markdown]
# Trained heads do attend differently: on average about half of their weight sits on
# different keys. But the untrained baseline is not far behind: random projections
# already make heads look at different places, so "the heads differ" by itself does not
# show that they *specialize*. The ablation below does.
#
# ## 2 · What is each head worth? Ablation
#
# Switching a head off: zero its $d_k$ rows of $W_O$, so its output never reaches the
# rest of the model (`coreference.ablate_head`), measure the held-out accuracy, restore.

# %%
blocks = model.attention_blocks()
drops = np.zeros((n_layers, n_heads))
for layer, block in enumerate(blocks):
    for head in range(n_heads):
        saved = task.ablate_head(block, head)
        drops[layer, head] = base_accuracy - task.accuracy(model, *test_arrays)
        task.restore_head(block, head, saved)
assert task.accuracy(model, *test_arrays) == base_accuracy  # restored exactly

fig, ax = plt.subplots(figsize=(7, 3.4))
labels = [f"L{layer}H{head}" for layer in range(n_layers) for head in range(n_heads)]
ax.bar(labels, 100 * drops.ravel(), color=["tab:blue"] * n_heads + ["tab:orange"] * n_heads)
ax.set_xlabel("ablated head (layer, head)")
ax.set_ylabel("held-out accuracy drop (points)")
ax.set_title(f"One head off at a time (accuracy with all heads: {base_accuracy:.1%})")
ax.axhline(100 * (base_accuracy - chance["constant"]), color="gray", ls="--",
           label="drop to the most-frequent-referent guess")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()
for label, drop in zip(labels, drops.ravel()):
    print(f"{label}: accuracy {base_accuracy - drop:.1%} (drop {100 * drop:+.1f} points)")

# %% [markdown]
# The heads of this model are far from interchangeable: a few carry the task, others can
# be removed at almost no cost. This is one model (seed 0); which heads matter, and how
# uneven they are, may differ in another.
#
# ## 3 · The feed-forward network is position-wise (前馈神经网络)
#
# $\mathrm{FFN}(x) = \max(0, xW_1 + b_1)W_2 + b_2$ is applied to every position with the same
# weights and sees only that position. Two consequences we can measure on the library's
# `FeedForward`:
#
# - permuting the positions of the input permutes the output the same way;
# - changing the input at one position changes the output at that position only.
#
# Self-attention (without positional encodings) passes the first test too, but not the
# second: every output depends on every input.

# %%
rng = np.random.default_rng(0)
d_model, length = 32, 10
ffn = FeedForward(d_model, 64, rng=rng)
attention = MultiHeadAttention(d_model, 4, rng=rng)
x = rng.standard_normal((1, length, d_model)).astype(np.float32)
permutation = rng.permutation(length)
nudged = x.copy()
nudged[0, 3] += 1.0                                     # change position 3 only


def self_attention(t):
    return attention(t, t, t)


checks = {}
with mg.no_grad():
    for name, layer in (("FFN", ffn), ("self-attention", self_attention)):
        y = layer(mg.Tensor(x)).data
        y_perm = layer(mg.Tensor(x[:, permutation])).data
        y_nudged = layer(mg.Tensor(nudged)).data
        change = np.abs(y_nudged - y)[0].max(-1)        # (T,) largest change at each position
        checks[name] = dict(permutation_error=float(np.abs(y_perm - y[:, permutation]).max()),
                            change=change, elsewhere=float(np.delete(change, 3).max()))
        print(f"{name:>15}: permutation error {checks[name]['permutation_error']:.1e}; "
              f"change at position 3: {change[3]:.3f}; largest change elsewhere: {checks[name]['elsewhere']:.1e}")

fig, ax = plt.subplots(figsize=(6.5, 3.2))
width = 0.4
for i, (name, c) in enumerate(checks.items()):
    ax.bar(np.arange(length) + (i - 0.5) * width, c["change"] + 1e-12, width, label=name)
ax.set_yscale("log")
ax.set_ylim(1e-8, 10)
ax.set_xlabel("position")
ax.set_ylabel("max |output change|")
ax.set_title("Input changed at position 3 only (FFN: exactly 0 elsewhere)")
ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1))
fig.tight_layout()
plt.show()

# %% [markdown]
# ### Try it yourself
#
# Switch off a whole layer's heads, or every head of the model, and watch the accuracy
# fall towards a guess; edit `heads_off` to choose your own set. Both scores are shown:
# the argmax over all 41 words (a random word 2.4%, the most frequent referent 13.9%),
# and whether the right noun scores above the wrong one (a coin flip: 50%).

# %%
heads_off = [(1, h) for h in range(n_heads)]           # (layer, head) pairs: here all of layer 1
saved = {(layer, head): task.ablate_head(blocks[layer], head) for layer, head in heads_off}
scores_without = task.accuracies(model, *test_arrays, test_other)
accuracy_without = scores_without["vocabulary"]
for (layer, head), rows in saved.items():
    task.restore_head(blocks[layer], head, rows)
print(f"heads off: {heads_off} -> held-out accuracy {accuracy_without:.1%} over all words, "
      f"{scores_without['two_nouns']:.1%} right noun above wrong noun "
      f"(all heads on: {base_accuracy:.1%} and {base_scores['two_nouns']:.1%})")

# %% [markdown]
# With layer 1's heads off, the model does worse than a coin flip between the two nouns
# (the two-noun score above is below 50%): it does not fall back to guessing, it
# prefers the wrong noun more often than the right one. What remains of the model is
# not a neutral guesser. Its vocabulary-wide score (32.0%) is therefore no sign of a half
# guess: it sits above the 13.9% of a constant answer only because the answer is often
# one of the two nouns, just too often the wrong one.
#
# ## What we measured

# %%
print("multi-head shapes: " + " -> ".join(str(shape) for _, shape, _ in steps_and_shapes[1:]) +
      f"; step by step = forward to {block_error:.1e}")
print(f"held-out accuracy {base_accuracy:.1%}; heads differ by a mean total-variation distance of "
      f"{mean_trained:.2f} trained vs {mean_untrained:.2f} untrained")
print(f"one head off: accuracy drops from {100 * drops.min():+.1f} to {100 * drops.max():+.1f} points; "
      f"a whole layer off: {accuracy_without:.1%} over all words, {scores_without['two_nouns']:.1%} two-noun "
      f"(chance {chance['constant']:.1%} and 50%)")
print(f"FFN: permutation error {checks['FFN']['permutation_error']:.1e}, change outside the nudged position "
      f"{checks['FFN']['elsewhere']:.1e}; self-attention: {checks['self-attention']['elsewhere']:.2f}")

assert block_error < 1e-6 and split_error == 0                # the shapes walk is the block's own computation
assert base_accuracy > 0.75                                   # the task is learned (chance 0.14; two nouns 0.5)
assert mean_trained > 0.3                                     # heads put their weight in different places
assert drops.max() > 0.1                                      # some head carries the task ...
assert drops.max() - drops.min() > 0.1                        # ... and heads are not interchangeable
assert accuracy_without < base_accuracy - 0.2                 # a layer's heads together are needed
assert checks["FFN"]["permutation_error"] < 1e-5 and checks["FFN"]["elsewhere"] == 0   # position-wise
assert checks["self-attention"]["permutation_error"] < 1e-5   # attention is permutation-equivariant too
assert checks["self-attention"]["elsewhere"] > 1e-3           # ... but mixes positions

# %% [markdown]
# ## Exercises
#
# Fill in each function (numpy only) and run the cell after it: the check says "passed",
# or names the axis or element that is wrong. Solutions: `solutions/heads.py`.
#
# **1 · Split into heads.** `split_heads(x, n_heads)`: (B, T, d_model) →
# (B, H, T, d_k), head h holding dimensions h·d_k … (h+1)·d_k − 1 of every position. The
# check compares it with `MultiHeadAttention.split_heads` on an array whose elements are
# all different, so a reshape that puts the right numbers in the wrong place is caught.

# %%
import exercises  # the checks, in notebooks/exercises.py


def split_heads(x, n_heads):
    raise NotImplementedError


exercises.run(exercises.check_split_heads, split_heads)

# %% [markdown]
# **2 · Join the heads.** `merge_heads(x)`: (B, H, T, d_k) → (B, T, H·d_k), the inverse
# of `split_heads` (the "Concat" of the formula above).

# %%
def merge_heads(x):
    raise NotImplementedError


exercises.run(exercises.check_merge_heads, merge_heads)

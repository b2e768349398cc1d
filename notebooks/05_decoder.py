# %% [markdown]
# # 5 · The decoder: masked self-attention and cross-attention (掩码注意力 · Cross-Attention)
#
# The decoder writes the output one token at a time. During training it reads the whole
# correct output at once, shifted right by one (teacher forcing: `<bos>` + target), and
# must predict, at every position, the *next* token. Two attention blocks make this work:
#
# - **masked self-attention**: position $t$ may look only at positions $\le t$. Without the
#   mask it could read the token it is asked to predict, which sits one step to the right;
# - **cross-attention**: queries from the decoder, keys and values from the encoder's
#   output, so each output step can look up the part of the input it needs.
#
# We measure both claims: a model trained *without* the mask reaches a far lower training
# loss, yet fails at generating; and in trained copy and reverse models the
# cross-attention of each output step points at the source position it copies.

# %%
import os

from threadpoolctl import threadpool_limits

threadpool_limits(1)  # one BLAS thread: on a small shared machine two threads only contend
QUICK = os.environ.get("NOTEBOOK_QUICK") == "1"  # the test suite runs every notebook with small sizes

import matplotlib.pyplot as plt
import numpy as np

import minigrad as mg
from minigrad import optim
from transformer.attention import causal_mask, padding_mask
from transformer.decoding import greedy_decode
from transformer.evaluation import evaluate
from transformer.loss import sequence_loss
from transformer.model import Transformer, TransformerConfig
from transformer.tasks import Task, batches, make_batch, make_splits, tokenizer_for

# %% [markdown]
# ## 1 · The causal mask (掩码注意力)
#
# The mask is a lower-triangular matrix: row $t$ (a query) may attend to columns $0..t$.

# %%
fig, ax = plt.subplots(figsize=(4, 3.6))
image = ax.imshow(causal_mask(8)[0, 0], cmap="Greys", vmin=0, vmax=1)
ax.set_xlabel("key position (what is read)")
ax.set_ylabel("query position (what is predicted)")
ax.set_title("Causal mask: white = may not attend")
fig.colorbar(image, ax=ax, ticks=[0, 1], label="may attend")
fig.tight_layout()
plt.show()

# %% [markdown]
# Teacher forcing in one example: the decoder's input `tgt_in` is `<bos>` + target, and
# the answer it is scored on at each position, `tgt_out`, is target + `<eos>`: the same
# ids moved one step left. Without the mask, position t could read `tgt_in[t + 1]`,
# which *is* its answer.
#
# Training task: **copy, then three random digits** ("4082913" → "4082913" + "571"). The
# copy part is determined by the source; the random tail is not, so a model that can
# only look at the past must pay $\ln 10$ per tail digit, while a model that can see the
# future can read each tail digit from the position to its right (teacher forcing puts
# it there). The model is the library's tiny Transformer (d_model 64, 4 heads, 2+2
# layers), Adam with warmup and cosine decay, plain cross-entropy (no label smoothing).
# We train it twice: with the causal mask, and with only the padding mask (we replace
# the model's `tgt_mask`).

# %%
def copy_with_tail(rng):
    """("4082913", "4082913571"): the source, then the source and 3 random digits."""
    source = "".join(map(str, rng.integers(0, 10, rng.integers(1, 9))))
    return source, source + "".join(map(str, rng.integers(0, 10, 3)))


COPY_WITH_TAIL = Task("copy_with_tail", copy_with_tail, "0123456789", max_sources=10 ** 9)
example_tokenizer = tokenizer_for(COPY_WITH_TAIL)
example = make_batch([("4082913", "4082913571")], example_tokenizer)
names = {example_tokenizer.pad_id: "<pad>", example_tokenizer.bos_id: "<bos>", example_tokenizer.eos_id: "<eos>"}
print("source      ", example.src[0], "=", "4082913")
for field in ("tgt_in", "tgt_out"):
    ids = getattr(example, field)[0]
    print(f"{field:<12}", ids, "=", " ".join(names.get(i, example_tokenizer.decode([i])) for i in ids))
print("at step t the decoder reads tgt_in[0..t] and is scored on tgt_out[t], the token tgt_in[t + 1]")
assert (example.tgt_in[0, 1:] == example.tgt_out[0, :-1]).all()


def endless_batches(pairs, tokenizer, rng):
    """Shuffled batches of 64, epoch after epoch (``tasks.batches`` gives one epoch)."""
    while True:
        yield from batches(pairs, tokenizer, 64, rng)


def train_model(task, steps, causal=True, seed=0):
    """A tiny Transformer trained on ``task``; returns (model, tokenizer, test pairs, losses)."""
    tokenizer = tokenizer_for(task)
    splits = make_splits(task, n_train=20_000, n_valid=0, n_test=300 if QUICK else 1000, seed=seed)
    config = TransformerConfig.tiny(tokenizer.vocab_size, tokenizer.vocab_size, dropout=0.0)
    model = Transformer(config, seed=seed)
    if not causal:  # every target position may attend to every other (real) one
        model.tgt_mask = lambda tgt: padding_mask(tgt, config.pad_id)
    optimizer = optim.Adam(model.parameters(), betas=(0.9, 0.98), eps=1e-9)
    schedule = optim.WarmupCosineSchedule(optimizer, max_lr=3e-3, warmup_steps=30, total_steps=steps)
    stream = endless_batches(splits.train, tokenizer, np.random.default_rng(seed))
    losses = []
    for _ in range(steps):
        batch = next(stream)
        optimizer.zero_grad()
        loss = sequence_loss(model(batch.src, batch.tgt_in), batch.tgt_out, label_smoothing=0.0)
        loss.backward()
        optim.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(float(loss.data))
    return model, tokenizer, splits.test, np.array(losses)


def copy_part_correct(model, pairs):
    """Greedy decoding: the share of examples whose output starts with the copied source."""
    outputs = [tokenizer.decode(row) for row in greedy_decode(model, make_batch(pairs, tokenizer).src)]
    return float(np.mean([out[:len(source)] == source for (source, _), out in zip(pairs, outputs)]))


copy_steps = 150 if QUICK else 400
runs = {}
for causal in (True, False):
    model, tokenizer, test_pairs, losses = train_model(COPY_WITH_TAIL, copy_steps, causal=causal)
    scores = evaluate(model, test_pairs, tokenizer, label_smoothing=0.0)
    scores["copy_part"] = copy_part_correct(model, test_pairs)
    runs["with the mask" if causal else "without the mask"] = (model, losses, scores)
    print(f"{'with' if causal else 'without'} the mask: training loss {losses[-20:].mean():.3f}; held-out "
          f"teacher-forced token accuracy {scores['token_accuracy']:.1%}; greedy decoding copies the source "
          f"in {scores['copy_part']:.1%}")
tail_floor = 3 * np.log(10) / np.mean([len(t) + 1 for _, t in test_pairs])
print(f"(the best a causal model can do: ln 10 per tail digit, {tail_floor:.2f} per token on average)")

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3.8))
for name, (_, losses, _) in runs.items():
    left.plot(np.convolve(losses, np.ones(10) / 10, mode="valid"), label=name)
left.axhline(tail_floor, color="gray", ls=":", label="floor for a model that sees only the past")
left.set_yscale("log")
left.set_xlabel("step")
left.set_ylabel("training cross-entropy (10-step mean)")
left.set_title("Teacher-forced training loss")
left.legend(fontsize=8)
names = list(runs)
x_at = np.arange(len(names))
for offset, (metric, label) in zip((-0.2, 0.2), (("token_accuracy", "teacher-forced token accuracy"),
                                                   ("copy_part", "greedy decoding: source copied"))):
    right.bar(x_at + offset, [runs[n][2][metric] for n in names], 0.4, label=label)
right.set_xticks(x_at, names)
right.set_ylim(0, 1.05)
right.set_ylabel("held-out score")
right.set_title("What the loss promises vs what decoding delivers")
right.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# What the unmasked model does when it has to generate: it learned to read each token
# from the position to its right, which does not exist yet at generation time.

# %%
unmasked = runs["without the mask"][0]
masked = runs["with the mask"][0]
examples = test_pairs[:6]
batch = make_batch(examples, tokenizer)
for name, model in (("with the mask", masked), ("without the mask", unmasked)):
    outputs = [tokenizer.decode(row) for row in greedy_decode(model, batch.src)]
    print(f"{name}:")
    for (source, target), output in zip(examples, outputs):
        print(f"   {source:>8} -> {output!r:<14} (target {target}; source copied: "
              f"{'yes' if output[:len(source)] == source else 'NO'})")

# %% [markdown]
# ## 2 · Cross-attention as alignment (Cross-Attention)
#
# In copy, output step $t$ needs source position $t$; in reverse it needs position
# $S - 1 - t$. If cross-attention acts as an alignment, the source position with the
# largest weight should be that one. We use the masked model above (its copy part) and
# train a reverse model, and measure, over held-out examples (teacher forced, only the
# $S$ digits that come from the source), how often the argmax of the last decoder
# layer's cross-attention (averaged over heads, and for the best single head) is the
# aligned position. Chance is $1/S$.

# %%
reverse_steps = 500 if QUICK else 800
reverse_model, reverse_tokenizer, reverse_test, reverse_losses = train_model("reverse", reverse_steps)
reverse_scores = evaluate(reverse_model, reverse_test, reverse_tokenizer, label_smoothing=0.0)
print(f"reverse: greedy exact match {reverse_scores['exact_match']:.1%}")


def cross_attention(model, pairs, tokenizer):
    """Last decoder layer's cross-attention, teacher forced: (B, H, T, S), and the batch."""
    batch = make_batch(pairs, tokenizer)
    block = model.decoder.layers[-1].cross_attn
    model.eval()
    block.keep_weights = True
    try:
        with mg.no_grad():
            model(batch.src, batch.tgt_in)
        return block.weights, batch
    finally:
        block.keep_weights, block.weights = False, None


def alignment_rate(model, pairs, tokenizer, aligned):
    """Share of output digits whose cross-attention argmax is ``aligned(t, S)`` (head mean,
    best head), and the chance level 1/S.  Only the S digits that come from the source count."""
    weights, batch = cross_attention(model, pairs, tokenizer)
    hits_mean, hits_heads, total = 0, np.zeros(weights.shape[1]), 0
    for b, (source, _) in enumerate(pairs):
        s = len(source)
        for t in range(s):
            want = aligned(t, s)
            hits_mean += weights[b, :, t, :s].mean(0).argmax() == want
            hits_heads += weights[b, :, t, :s].argmax(-1) == want
            total += 1
    chance = np.mean([1 / len(source) for source, _ in pairs])
    return hits_mean / total, hits_heads.max() / total, chance, weights, batch


alignment = {
    "copy": alignment_rate(masked, test_pairs, tokenizer, lambda t, s: t),
    "reverse": alignment_rate(reverse_model, reverse_test, reverse_tokenizer, lambda t, s: s - 1 - t),
}
for task_name, (mean_rate, head_rate, chance, _, _) in alignment.items():
    print(f"{task_name:>8}: argmax of cross-attention = aligned source position for {mean_rate:.1%} of output "
          f"digits (heads averaged), {head_rate:.1%} (best head); chance {chance:.1%}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
for ax, (task_name, (_, _, _, weights, batch)) in zip(axes, alignment.items()):
    b = int(np.argmax([len(s) for s in batch.src_texts]))           # the longest example
    source, target = batch.src_texts[b], batch.tgt_texts[b]
    matrix = weights[b].mean(0)[: len(target) + 1, : len(source)]
    image = ax.imshow(matrix, cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(len(source)), list(source))
    ax.set_yticks(range(len(target) + 1), list(target) + ["<eos>"])
    ax.set_xlabel("source character (key)")
    ax.set_ylabel("output character (query)")
    ax.set_title(f"{task_name}: cross-attention\n(last decoder layer, heads averaged)", fontsize=10)
    fig.colorbar(image, ax=ax, label="weight", fraction=0.046, pad=0.04)
fig.tight_layout()
plt.show()

# %% [markdown]
# ### Try it yourself
#
# Break the mask at generation time instead: take the model trained *with* the mask and
# remove it (swap in the padding-only mask) only when it generates. There are two ways
# to generate:
#
# - with the key/value cache (the default), each step feeds only the newest token and
#   attends to the cached past: there is no future to hide, so the mask cannot matter;
# - re-running the whole prefix at every step (`use_cache=False`), earlier positions
#   now see later ones, which they never did in training, and their vectors change.
#
# And, for comparison, the same model *scored* with teacher forcing and no mask, where
# every position sees the answer it is asked for.

# %%
def copy_rate(model, pairs, use_cache):
    outputs = [tokenizer.decode(row) for row in
               greedy_decode(model, make_batch(pairs, tokenizer).src, use_cache=use_cache)]
    return float(np.mean([out[:len(source)] == source for (source, _), out in zip(pairs, outputs)])), outputs


generated = {}
for mask_removed in (False, True):
    if mask_removed:
        masked.tgt_mask = lambda tgt: padding_mask(tgt, masked.config.pad_id)
    try:
        for use_cache in (True, False):
            generated[mask_removed, use_cache] = copy_rate(masked, test_pairs, use_cache)
        peeking = evaluate(masked, test_pairs, tokenizer, label_smoothing=0.0) if mask_removed else None
    finally:
        masked.__dict__.pop("tgt_mask", None)  # back to the class's causal mask
restored = evaluate(masked, test_pairs, tokenizer, label_smoothing=0.0)
same_with_cache = np.mean([a == b for a, b in zip(generated[False, True][1], generated[True, True][1])])
for (mask_removed, use_cache), (rate, _) in generated.items():
    how = f"{'mask removed' if mask_removed else 'causal mask '}, {'with the cache' if use_cache else 'no cache'}"
    print(f"{how:<28}: greedy decoding copies the source in {rate:.1%}")
print(f"with the cache, outputs identical with and without the mask: {same_with_cache:.1%}")
print(f"teacher-forced token accuracy: {restored['token_accuracy']:.1%} with its causal mask, "
      f"{peeking['token_accuracy']:.1%} with the future visible")

# %% [markdown]
# At generation time the mask hardly matters here. With the cache it cannot: the outputs
# are identical with and without it. Re-running the prefix without it lets earlier
# positions see later ones, which changes their vectors, but the last position, the one
# that picks the next token, saw the whole prefix anyway; the copy rate moves from 99.9%
# to 99.8%. Where the mask matters is wherever the *answer* is in the input: in training
# (section 1), and in teacher-forced scoring, where the model that learned with the mask
# falls from 73.1% to 22.4% token accuracy once every position can see the next one:
# inputs it never learned to use only disturb it.
#
# ## What we measured

# %%
with_mask, without_mask = runs["with the mask"], runs["without the mask"]
loss_with, loss_without = with_mask[1][-20:].mean(), without_mask[1][-20:].mean()
print(f"training loss: {loss_with:.3f} with the mask (floor {tail_floor:.2f}), {loss_without:.3f} without")
print(f"teacher-forced token accuracy: {with_mask[2]['token_accuracy']:.1%} with, "
      f"{without_mask[2]['token_accuracy']:.1%} without")
print(f"greedy decoding copies the source: {with_mask[2]['copy_part']:.1%} with the mask, "
      f"{without_mask[2]['copy_part']:.1%} without")
print("cross-attention alignment (heads averaged, best head, chance):",
      {k: tuple(round(float(x), 3) for x in v[:3]) for k, v in alignment.items()})
print(f"masked model scored with the future visible: {peeking['token_accuracy']:.1%} (causal: "
      f"{restored['token_accuracy']:.1%}); generating without the mask copies the source in "
      f"{generated[True, True][0]:.1%} with the cache, {generated[True, False][0]:.1%} without "
      f"(with the mask: {generated[False, False][0]:.1%})")

assert loss_with > 0.8 * tail_floor                                  # with the mask: stuck near the floor
assert loss_without < 0.5 * loss_with                                # without: far lower, read from the future
assert without_mask[2]["token_accuracy"] > with_mask[2]["token_accuracy"] + 0.05  # teacher forced, looks better
assert without_mask[2]["copy_part"] < 0.2                            # yet it cannot generate
assert with_mask[2]["copy_part"] > without_mask[2]["copy_part"] + 0.3
for task_name, (_, head_rate, chance, _, _) in alignment.items():
    assert head_rate > max(3 * chance, 0.5), task_name              # the argmax finds the aligned digit
assert peeking["token_accuracy"] < restored["token_accuracy"] - 0.1
assert same_with_cache == 1.0                                        # with the cache the mask cannot matter
assert generated[False, True][1] == generated[False, False][1]       # cache or not: the same outputs with the mask

# %% [markdown]
# ## Exercises
#
# Fill in each function (numpy or plain lists) and run the cell after it: the check says
# "passed", or names what is wrong. Solutions: `solutions/decoder.py`.
#
# **1 · The causal mask.** `causal_mask(T)` returns a (T, T) boolean array, True where
# query t (the row) may attend to key s (the column). The check compares it with the
# library's `causal_mask` and recognizes the two classic slips.

# %%
import exercises  # the checks, in notebooks/exercises.py


def causal_mask_exercise(length):
    raise NotImplementedError


exercises.run(exercises.check_causal_mask, causal_mask_exercise)

# %% [markdown]
# **2 · Shift the target.** `shift_target(ids, bos, eos)` turns a target's token ids into
# the pair `(tgt_in, tgt_out)` that teacher forcing uses (see the example at the top).
# The check compares it with `make_batch`.

# %%
def shift_target(ids, bos, eos):
    raise NotImplementedError


exercises.run(exercises.check_shift_target, shift_target)

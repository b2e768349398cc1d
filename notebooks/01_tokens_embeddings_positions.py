# %% [markdown]
# # 1 · Tokens, embeddings and positions (分词 · 嵌入向量 · 位置编码)
#
# A Transformer reads numbers, not text. This notebook follows the seed text's first step:
#
# 1. **Tokenization (分词)**: the sentence cut into characters, then into byte-pair (BPE)
#    tokens learned from a small corpus, and the merges BPE learned.
# 2. **Embedding (嵌入向量)**: each token id becomes a learned vector, multiplied by
#    $\sqrt{d_{model}}$. We measure why: it puts tokens and positions on the same scale.
# 3. **Positional encoding (位置编码)**: the sinusoidal table, and two measured facts about
#    it: $PE(p)\cdot PE(p+k)$ depends on the offset $k$ only, and $PE(p+k)$ is a fixed
#    linear map (a rotation) of $PE(p)$ whatever $p$ is.

# %%
import os

from threadpoolctl import threadpool_limits

threadpool_limits(1)  # one BLAS thread: on a small shared machine two threads only contend
QUICK = os.environ.get("NOTEBOOK_QUICK") == "1"  # the test suite runs every notebook with small sizes

import math

import matplotlib.pyplot as plt
import numpy as np

from transformer.embedding import Embeddings, sinusoidal_table
from transformer.tokenizer import BPETokenizer, CharTokenizer

SENTENCE = "The animal didn't cross the street because it was too tired"

# %% [markdown]
# ## 1 · Tokenization (分词)
#
# The simplest tokenizer gives every character its own id. It never meets an unknown word,
# but sequences are long: attention costs grow with the square of the length.

# %%
chars = CharTokenizer.from_texts([SENTENCE])
char_ids = chars.encode(SENTENCE)
print(f"{len(SENTENCE)} characters -> {len(char_ids)} tokens, vocabulary of {chars.vocab_size}")
print(char_ids)

# %% [markdown]
# Byte-pair encoding starts from the 256 byte values and repeatedly merges the most
# frequent neighbouring pair into a new token. We train it (`BPETokenizer.train`) on a
# small corpus: the sentences of the coreference task used in the next notebook
# ("the dog didn't chase the cat because it was too tired", ...). A tokenizer is used on
# text it was not trained on, so we hold text out: every sentence that mentions "animal"
# or "street" is kept out of training, and we measure on those sentences and on the
# seed's sentence, whose words "animal", "street" and "The" the tokenizer never saw.

# %%
from coreference import sentences  # the next notebook's task, in notebooks/coreference.py

from transformer.tokenizer import split_into_chunks

HELD_OUT_WORDS = {"animal", "street"}
all_sentences = [words for words, *_ in sentences()]
seen = [" ".join(w) for w in all_sentences if not HELD_OUT_WORDS & set(w)]
unseen = [" ".join(w) for w in all_sentences if HELD_OUT_WORDS & set(w)]
corpus = seen[:: 4 if QUICK else 1]
vocab_size = 400
bpe = BPETokenizer.train(corpus, vocab_size=vocab_size)
chunks = {c for text in corpus for c in split_into_chunks(text)}
print(f"training corpus: {len(corpus)} sentences, {len(chunks)} distinct chunks (words, ' ' + word, "
      f"punctuation); asked for a vocabulary of {vocab_size}, learned {len(bpe.merges)} merges")
print(f"after them every chunk of the corpus is one token: "
      f"{all(len(bpe.encode(c)) == 1 for c in chunks)}, so no pair is left to merge and training stops")
print("the first 24 merges, in the order learned:")
print(" | ".join(repr(bpe.token_text(260 + r)) for r in range(24)))


def characters_per_token(texts):
    return sum(map(len, texts)) / sum(len(bpe.encode(t)) for t in texts)


seen_ratio, unseen_ratio = characters_per_token(corpus[:500]), characters_per_token(unseen[:500])
print(f"\ncharacters per BPE token: {seen_ratio:.2f} on training sentences, {unseen_ratio:.2f} on held-out "
      "sentences (with 'animal' or 'street')")
bpe_ids = bpe.encode(SENTENCE)
bpe_pieces = [bpe.token_text(i) for i in bpe_ids]
print(f"\n{SENTENCE!r} (held out)\n-> {len(bpe_ids)} BPE tokens: {bpe_pieces}")
assert bpe.decode(bpe_ids) == SENTENCE  # byte-level BPE round-trips any text

# %% [markdown]
# The first merges are pieces of the most frequent words, whole words follow. Words the
# training text never had fall back to smaller pieces: "animal" and "street" fall apart,
# mostly into single letters, and the capital "T" never occurs in the
# lowercase corpus, so "The" stays in pieces. The apostrophe is a chunk of its own (BPE
# never merges across the chunker's letter/punctuation boundary), so "didn't" is
# ' didn' + "'" + 't'. The held-out sentences therefore take more tokens per character
# than the training ones (the two ratios above), yet far fewer than one per character.
# How the length of the seed's sentence falls as BPE learns more merges:

# %%
merge_counts = sorted({0, 10, 20, 40, 80, len(bpe.merges)})
lengths = [len(BPETokenizer(bpe.merges[:n]).encode(SENTENCE)) for n in merge_counts]
fig, ax = plt.subplots(figsize=(6, 3.2))
ax.plot(merge_counts, lengths, "o-", label="BPE")
ax.axhline(len(char_ids), color="gray", ls="--", label="characters")
ax.set_xlabel("merges learned (vocabulary = 260 + merges)")
ax.set_ylabel("tokens in the sentence")
ax.set_title("The seed's sentence (held out): tokens vs BPE merges")
ax.legend()
fig.tight_layout()
plt.show()
print(dict(zip(merge_counts, lengths)))

# %% [markdown]
# ## 2 · Embedding and the √d_model scale (嵌入向量)
#
# `Embeddings` looks up a row of a learned matrix $E$ (one row per token id) and
# computes $\sqrt{d_{model}}\,E[\text{token}] + PE[\text{position}]$. The rows of $E$ are
# initialized $\mathcal N(0, 1/d_{model})$ so that, with the tied output projection,
# logits start at unit scale. Without the factor $\sqrt{d_{model}}$ the token vector would
# then have norm about 1 while the positional vector has norm $\sqrt{d_{model}/2}$: the
# position would drown the token. We measure both norms as $d_{model}$ grows.
#
# The outcome follows from that initialization: $\|E[t]\| \approx 1$, so
# $\|\sqrt{d}\,E[t]\| \approx \sqrt d$, and since every (sin, cos) pair of $PE$ has norm 1,
# $\|PE[p]\| = \sqrt{d/2}$ exactly: the ratio is $\sqrt 2 \approx 1.41$ at every width. With
# another initialization (PyTorch's `nn.Embedding` draws $\mathcal N(0, 1)$) the same
# factor would make tokens $\sqrt{d}$ times too large; the factor and the initialization
# go together. What the measurement adds is that the module really applies it.

# %%
d_models = [16, 32, 64, 128, 256, 512]
token_norm, token_norm_unscaled, position_norm = [], [], []
for d in d_models:
    embed = Embeddings(100, d, max_len=64, dropout=0.0, pad_id=0, rng=np.random.default_rng(0))
    rows = embed.tokens.weight.data[1:]                         # E[token], unscaled
    token_norm_unscaled.append(np.linalg.norm(rows, axis=1).mean())
    token_norm.append(np.linalg.norm(rows * math.sqrt(d), axis=1).mean())
    position_norm.append(np.linalg.norm(sinusoidal_table(64, d), axis=1).mean())
    scaled = embed(np.zeros((1, 1), dtype=np.int64) + 5).data[0, 0] - sinusoidal_table(1, d)[0]
    assert np.allclose(scaled, rows[4] * math.sqrt(d), atol=1e-5)  # the module does scale by √d
ratio_scaled = np.array(token_norm) / np.array(position_norm)
ratio_unscaled = np.array(token_norm_unscaled) / np.array(position_norm)

fig, ax = plt.subplots(figsize=(6, 3.4))
ax.plot(d_models, position_norm, "s-", label="‖PE[p]‖ (positions)")
ax.plot(d_models, token_norm, "o-", label="‖√d · E[t]‖ (tokens, scaled)")
ax.plot(d_models, token_norm_unscaled, "x--", label="‖E[t]‖ (tokens, unscaled)")
ax.set_xscale("log", base=2)
ax.set_yscale("log")
ax.set_xlabel("d_model")
ax.set_ylabel("mean vector norm")
ax.set_title("Token and position vectors: same scale only with √d_model")
ax.legend()
fig.tight_layout()
plt.show()
for d, rs, ru in zip(d_models, ratio_scaled, ratio_unscaled):
    print(f"d_model {d:>3}: token/position norm ratio {rs:.2f} scaled, {ru:.3f} unscaled")

# %% [markdown]
# ## 3 · The sinusoidal positional encoding (位置编码)
#
# $PE[p, 2i] = \sin(p\,\omega_i)$ and $PE[p, 2i+1] = \cos(p\,\omega_i)$ with
# $\omega_i = 10000^{-2i/d}$: each pair of dimensions turns at its own frequency, fast in
# the first columns and slow in the last.

# %%
d_model, n_positions = 64, 100
table = sinusoidal_table(n_positions, d_model)
fig, ax = plt.subplots(figsize=(7, 3.6))
image = ax.imshow(table, aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1)
ax.set_xlabel("dimension (even: sin, odd: cos; frequency falls to the right)")
ax.set_ylabel("position p")
ax.set_title(f"Sinusoidal positional encoding, d_model = {d_model}")
fig.colorbar(image, ax=ax, label="PE[p, dim]")
fig.tight_layout()
plt.show()

# %% [markdown]
# **Claim 1: the dot product of two positions depends only on their distance.**
# $PE(p)\cdot PE(q) = \sum_i \cos((p - q)\,\omega_i)$, so every diagonal of the matrix
# of dot products is constant. We measure, for each offset $k$, the spread (max − min)
# of $PE(p)\cdot PE(p+k)$ over all $p$.

# %%
dots = table @ table.T                                          # (positions, positions)
offsets = np.arange(1, 40)
spread = np.array([np.ptp(np.diagonal(dots, k)) for k in offsets])
dot_at_offset = np.array([np.diagonal(dots, k).mean() for k in offsets])
print(f"largest spread of PE(p)·PE(p+k) over p, for k = 1..39: {spread.max():.1e}")
print(f"(the dot products themselves range from {dot_at_offset.min():.1f} to {dots.max():.1f})")

fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
image = left.imshow(dots, cmap="viridis")
left.set_xlabel("position q")
left.set_ylabel("position p")
left.set_title("PE(p) · PE(q): constant along diagonals")
fig.colorbar(image, ax=left, label="dot product")
right.plot(offsets, dot_at_offset, "o-", ms=3)
right.set_xlabel("offset k = q − p")
right.set_ylabel("PE(p) · PE(p+k)  (same for every p)")
right.set_title("Dot product vs offset: falls, not monotonically")
fig.tight_layout()
plt.show()

# %% [markdown]
# **Claim 2: moving by k positions is one fixed linear map.** For each frequency,
# $(\sin((p+k)\omega), \cos((p+k)\omega))$ is the pair at $p$ rotated by the angle
# $k\omega$, so $PE(p+k) = M_k\,PE(p)$ with $M_k$ block-diagonal, made of 2×2 rotations,
# and independent of $p$. We build $M_k$ from the frequencies alone and apply it to every
# position. Then, without assuming its form, we ask least squares for the best single
# matrix mapping all $PE(p)$ to $PE(p+k)$ and measure what it misses.

# %%
frequencies = np.exp(-math.log(10000.0) * np.arange(0, d_model, 2) / d_model)


def shift_matrix(k):
    """M_k: 2×2 blocks [[cos kω, sin kω], [−sin kω, cos kω]] acting on each (sin, cos) pair."""
    M = np.zeros((d_model, d_model))
    for i, w in enumerate(frequencies):
        c, s = math.cos(k * w), math.sin(k * w)
        M[2 * i:2 * i + 2, 2 * i:2 * i + 2] = [[c, s], [-s, c]]
    return M


def best_linear_shift_error(t, k):
    """max |M PE(p) − PE(p+k)| over all p for the least-squares M (no form assumed)."""
    solution, *_ = np.linalg.lstsq(t[:-k], t[k:], rcond=None)
    return float(np.abs(t[:-k] @ solution - t[k:]).max())


shift_errors, fitted_errors = {}, {}
for k in (1, 3, 10):
    shifted = table[:-k] @ shift_matrix(k).T                      # M_k PE(p) for every p
    shift_errors[k] = float(np.abs(shifted - table[k:]).max())
    fitted_errors[k] = best_linear_shift_error(table, k)
    print(f"k = {k:>2}: max over p of |M_k PE(p) − PE(p+k)| = {shift_errors[k]:.1e}; "
          f"best least-squares map misses by {fitted_errors[k]:.1e}")

fig, ax = plt.subplots(figsize=(4.6, 4))
image = ax.imshow(shift_matrix(3)[:16, :16], cmap="RdBu_r", vmin=-1, vmax=1)
ax.set_xlabel("input dimension")
ax.set_ylabel("output dimension")
ax.set_title("M₃ (first 16 dimensions):\n2×2 rotation blocks")
fig.colorbar(image, ax=ax, label="entry")
fig.tight_layout()
plt.show()

# %% [markdown]
# ### Try it yourself
#
# Break the table and run the two measurements on it: `SINES_ONLY = True` makes every
# column a sine (no cosine partner), `SHUFFLE_POSITIONS = True` permutes the rows (each
# position gets another position's code). Either one breaks both facts: the dot product
# no longer depends on the offset alone, and no single matrix moves every position by k.
# Set both to False to get the real table back.

# %%
SINES_ONLY, SHUFFLE_POSITIONS = True, False


def broken_table(n, d, sines_only, shuffle_positions):
    t = sinusoidal_table(n, d)
    if sines_only:
        frequency = np.exp(-math.log(10000.0) * (np.arange(d) // 2 * 2) / d)
        t = np.sin(np.arange(n)[:, None] * frequency)
    if shuffle_positions:
        t = t[np.random.default_rng(0).permutation(n)]
    return t


bad = broken_table(n_positions, d_model, SINES_ONLY, SHUFFLE_POSITIONS)
bad_spread = max(np.ptp(np.diagonal(bad @ bad.T, k)) for k in offsets)
bad_shift_error = best_linear_shift_error(bad, 3)
broken_by = " and ".join(name for name, on in (("sines only", SINES_ONLY), ("shuffled rows", SHUFFLE_POSITIONS))
                         if on) or "the real table"
print(f"{broken_by}: spread of PE(p)·PE(p+k) over p = {bad_spread:.1e} (real table: {spread.max():.1e})")
print(f"{broken_by}: the best linear shift by 3 misses by {bad_shift_error:.2e} (real table: {fitted_errors[3]:.1e})")

# %% [markdown]
# ## What we measured

# %%
print(f"characters: {len(char_ids)} tokens; BPE with {len(bpe.merges)} merges: {len(bpe_ids)} tokens "
      f"({len(char_ids) / len(bpe_ids):.1f}x shorter)")
print(f"token/position norm ratio with √d scaling: {ratio_scaled.min():.2f}-{ratio_scaled.max():.2f}; "
      f"without: {ratio_unscaled.min():.3f}-{ratio_unscaled.max():.3f}")
print(f"PE(p)·PE(p+k) spread over p: {spread.max():.1e}; M_k PE(p) vs PE(p+k): {max(shift_errors.values()):.1e}; "
      f"best linear map: {max(fitted_errors.values()):.1e}; {broken_by}: {bad_spread:.1f} and "
      f"{bad_shift_error:.2f}")
print(f"characters per BPE token: {seen_ratio:.2f} on training text, {unseen_ratio:.2f} on held-out text")

assert len(bpe_ids) * 2 < len(char_ids)                        # BPE on held-out text: at least 2x fewer tokens
assert 1 < unseen_ratio < seen_ratio                           # ... but fewer characters per token than on seen text
assert all(0.5 < r < 2 for r in ratio_scaled)                  # same scale at every d_model
assert all(r < 0.4 for r in ratio_unscaled) and ratio_unscaled[-1] < 0.1  # drowned without the scale
assert spread.max() < 1e-9                                     # depends on k only
assert max(shift_errors.values()) < 1e-9                       # one fixed rotation M_k, whatever p
assert max(fitted_errors.values()) < 1e-6                      # ... and least squares finds an exact map
if SINES_ONLY or SHUFFLE_POSITIONS:
    assert bad_spread > 1 and bad_shift_error > 0.05           # the checks do catch a broken table

# %% [markdown]
# ## Exercises
#
# Fill in each function and run the cell after it: the check says "passed", or names
# the position and dimension that are wrong. Solutions: `solutions/positions.py`.
#
# **1 · The sinusoidal table.** `positional_encoding(n, d)` returns the (n, d) array
# $PE[p, 2i] = \sin(p\,\omega_i)$, $PE[p, 2i+1] = \cos(p\,\omega_i)$,
# $\omega_i = 10000^{-2i/d}$; the check compares it with `sinusoidal_table`.

# %%
import exercises  # the checks, in notebooks/exercises.py


def positional_encoding(n, d):
    raise NotImplementedError


exercises.run(exercises.check_positional_encoding, positional_encoding)

# %% [markdown]
# **2 · The shift as a matrix.** Without looking at `shift_matrix` above, write
# `my_shift_matrix(k, d)`: the (d, d) matrix $M_k$ with $M_k\,PE(p) = PE(p+k)$ for every
# position p. The check applies it to every row of a 40-position table.

# %%
def my_shift_matrix(k, d):
    raise NotImplementedError


exercises.run(exercises.check_shift_matrix, my_shift_matrix)

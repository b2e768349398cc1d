"""A small coreference task for the notebooks: whom does `it` refer to?

    "the dog didn't chase the cat because it was too tired"  ->  dog   (tired: the subject)
    "the dog didn't chase the cat because it was too fast"   ->  cat   (fast: the object)

Both nouns come from one list, so the answer cannot be read from the kind of noun: the
model must combine the adjective (which class it belongs to) with word order (which
noun is the subject).  Sentences are word-tokenized; the model is a Transformer encoder
whose output *at the position of `it`* is scored against every word embedding (tied),
so whatever it knows about the referent must reach `it` through self-attention.

Held-out split: some (referent, adjective) pairs never occur in training, so test
accuracy measures combinations the model has never seen.
"""

from __future__ import annotations

import itertools

import numpy as np

import minigrad as mg
from minigrad import nn, optim
from transformer.attention import MultiHeadAttention
from transformer.embedding import Embeddings
from transformer.layers import Encoder

NOUNS = ["animal", "street", "dog", "cat", "horse", "fox", "bird", "cow", "river", "road", "sheep", "mouse"]
VERBS = ["cross", "chase", "follow", "catch", "pass"]
SUBJECT_ADJECTIVES = ["tired", "lazy", "sleepy", "scared", "weak", "hungry"]  # `it` is the subject
OBJECT_ADJECTIVES = ["wide", "fast", "far", "busy", "big", "quick"]           # `it` is the object
TEMPLATES = [
    "the {x} didn't {verb} the {y} because it was too {adj}",
    "the {x} did not {verb} the {y} because it was too {adj}",
    "yesterday the {x} didn't {verb} the {y} since it was too {adj}",
]
PAD, UNK = 0, 1
SPECIALS = ["<pad>", "<unk>"]


def sentences():
    """Every (words, referent, x, y, adjective) the templates make."""
    for template, x, y, verb, adj in itertools.product(TEMPLATES, NOUNS, NOUNS, VERBS,
                                                       SUBJECT_ADJECTIVES + OBJECT_ADJECTIVES):
        if x != y:
            words = template.format(x=x, y=y, verb=verb, adj=adj).split()
            yield words, (x if adj in SUBJECT_ADJECTIVES else y), x, y, adj


class WordVocab:
    """Word <-> id for the task's closed vocabulary (ids 0, 1 are <pad>, <unk>)."""

    def __init__(self):
        words = sorted({w for t in TEMPLATES for w in t.split() if "{" not in w})
        self.words = SPECIALS + words + VERBS + NOUNS + SUBJECT_ADJECTIVES + OBJECT_ADJECTIVES
        self.ids = {w: i for i, w in enumerate(self.words)}

    def __len__(self):
        return len(self.words)

    def encode(self, words):
        return [self.ids.get(w, UNK) for w in words]


def split(seed=0, held_out_share=0.25):
    """(train, test): lists of examples; test holds every sentence whose (referent,
    adjective) pair is one of a random ``held_out_share`` of all pairs."""
    rng = np.random.default_rng(seed)
    pairs = list(itertools.product(NOUNS, SUBJECT_ADJECTIVES + OBJECT_ADJECTIVES))
    held = {pairs[i] for i in rng.permutation(len(pairs))[: int(held_out_share * len(pairs))]}
    train, test = [], []
    for example in sentences():
        (test if (example[1], example[4]) in held else train).append(example)
    return train, test


def to_arrays(examples, vocab):
    """examples -> (tokens (N, T) padded, position of `it` (N,), referent id (N,))."""
    length = max(len(e[0]) for e in examples)
    tokens = np.zeros((len(examples), length), dtype=np.int64)
    for row, (words, *_) in enumerate(examples):
        tokens[row, :len(words)] = vocab.encode(words)
    it_position = np.array([e[0].index("it") for e in examples])
    referent = np.array([vocab.ids[e[1]] for e in examples])
    return tokens, it_position, referent


class ReferentModel(nn.Module):
    """Embeddings -> Transformer encoder -> the vector at `it` -> scores over the
    vocabulary through the tied embedding:  logits = h_it Eᵀ."""

    def __init__(self, vocab_size, d_model=32, n_heads=2, n_layers=2, d_ff=64, seed=0, norm_first=False):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.embed = Embeddings(vocab_size, d_model, max_len=32, dropout=0.0, pad_id=PAD, rng=rng)
        self.encoder = Encoder(n_layers, d_model, n_heads, d_ff, 0.0, "relu", norm_first, rng=rng)
        self.n_heads = n_heads

    def forward(self, tokens, it_position, mask=None):
        """tokens (B, T), it_position (B,) -> logits (B, V).  ``mask`` (B, 1, T, T) replaces
        the padding mask (True where a query may attend to a key)."""
        mask = (tokens != PAD)[:, None, None, :] if mask is None else mask
        h = self.encoder(self.embed(tokens), mask)                  # (B, T, d)
        h_it = h[np.arange(len(tokens)), it_position]                # (B, d)
        return h_it @ self.embed.tokens.weight.T                     # (B, V)

    def attention_blocks(self) -> list[MultiHeadAttention]:
        return [layer.self_attn for layer in self.encoder.layers]


def train(model, tokens, it_position, referent, steps=300, batch_size=64, lr=3e-3, seed=0, warmup=30):
    """Adam with ``warmup`` steps of linear warmup, then cosine decay; returns the loss per step."""
    rng = np.random.default_rng(seed)
    optimizer = optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.98))
    schedule = optim.WarmupCosineSchedule(optimizer, max_lr=lr, warmup_steps=warmup, total_steps=steps)
    losses = []
    model.train()
    for _ in range(steps):
        rows = rng.integers(0, len(tokens), batch_size)
        optimizer.zero_grad()
        loss = mg.cross_entropy(model(tokens[rows], it_position[rows]), referent[rows])
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(float(loss.data))
    return np.array(losses)


def accuracy(model, tokens, it_position, referent, mask=None):
    model.eval()
    with mg.no_grad():
        predicted = model(tokens, it_position, mask).data.argmax(-1)
    return float((predicted == referent).mean())


def other_noun_ids(examples, vocab):
    """The id of the noun that is *not* the referent, per example: (N,)."""
    return np.array([vocab.ids[e[3] if e[1] == e[2] else e[2]] for e in examples])


def accuracies(model, tokens, it_position, referent, other, mask=None):
    """Two scores of the same predictions: ``vocabulary``, the argmax over every word
    (what ``accuracy`` measures), and ``two_nouns``, the argmax over the two nouns of the
    sentence only (does the model prefer the right noun to the wrong one?)."""
    model.eval()
    with mg.no_grad():
        logits = model(tokens, it_position, mask).data
    rows = np.arange(len(tokens))
    return {"vocabulary": float((logits.argmax(-1) == referent).mean()),
            "two_nouns": float((logits[rows, referent] > logits[rows, other]).mean())}


def chance_levels(examples, vocab):
    """What guessing scores on ``examples``: ``uniform``, a random word of the vocabulary;
    ``constant``, always the most frequent referent; ``two_nouns``, a coin flip between
    the sentence's two nouns (also what the vocabulary-wide score of a model that finds
    the two nouns but ignores the adjective would be)."""
    referents = [e[1] for e in examples]
    most = max(set(referents), key=referents.count)
    return {"uniform": 1 / len(vocab), "constant": referents.count(most) / len(referents), "two_nouns": 0.5}


def attention_weights(model, tokens, it_position):
    """Per encoder layer, the attention weights of every query: (layers, B, H, T, T)."""
    model.eval()
    blocks = model.attention_blocks()
    for block in blocks:
        block.keep_weights = True
    try:
        with mg.no_grad():
            model(tokens, it_position)
        return np.stack([block.weights for block in blocks])
    finally:
        for block in blocks:
            block.keep_weights, block.weights = False, None


def positions(examples):
    """Where the referent, the other noun and the adjective are in each sentence: three (N,) arrays."""
    x_at = np.array([e[0].index(e[2]) for e in examples])
    y_at = np.array([len(e[0]) - 1 - e[0][::-1].index(e[3]) for e in examples])
    subject = np.array([e[4] in SUBJECT_ADJECTIVES for e in examples])
    adjective_at = np.array([e[0].index(e[4], x_at[i] + 1) for i, e in enumerate(examples)])
    return np.where(subject, x_at, y_at), np.where(subject, y_at, x_at), adjective_at


def ablate_head(block: MultiHeadAttention, head: int):
    """Zero head ``head``'s rows of W_O, so its output no longer reaches the model.
    Returns the saved rows; put them back with ``restore_head``."""
    rows = slice(head * block.d_k, (head + 1) * block.d_k)
    saved = block.w_o.weight.data[rows].copy()
    block.w_o.weight.data[rows] = 0
    return saved


def restore_head(block: MultiHeadAttention, head: int, saved):
    block.w_o.weight.data[head * block.d_k:(head + 1) * block.d_k] = saved

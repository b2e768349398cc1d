"""Generating target sequences: greedy decoding and beam search, both incremental.

The encoder runs once.  The decoder then produces one token per step; with a KV cache
each step feeds only the newest token and reuses the keys/values of earlier positions
(and the projected encoder memory), so a step costs O(T) instead of O(T²).  Without
the cache every step re-runs the decoder on the whole prefix — slower, same result.

Outputs are (B, T) int64 token arrays without BOS; each row ends with its EOS, or at its
length cap (``max_lengths``), and is padded with PAD after it.  Every loop is bounded by
the caps, so decoding always ends.

Only real output tokens and EOS are ever chosen.  PAD ("nothing here") and BOS ("start")
are inputs, never predictions, and UNK stands for an input character outside the
vocabulary, which no target of a task contains (and which ``Tokenizer.decode`` would drop
without a trace).  Their scores are excluded from the choice, not renormalized away: beam
scores stay the model's own log-probabilities.  This also keeps the two paths equal: the
uncached decoder masks PAD keys, the cache does not, so a PAD chosen mid-sequence would
make them disagree.
"""

from __future__ import annotations

import contextlib

import numpy as np

import minigrad as mg
from transformer.tokenizer import BOS, EOS, PAD, UNK

NEVER_CHOSEN = (PAD, BOS, UNK)  # token ids decoding never emits (see the module docstring)
EXTRA_TOKENS = 16  # the default cap: a row's source length + this many tokens (max_lengths)


@contextlib.contextmanager
def _inference(model):
    """No graph recording, dropout off; the model's mode is restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        with mg.no_grad():
            yield
    finally:
        model.train(was_training)


def _check_source(model, src):
    """src (B, S) int token ids, every row holding at least one real token."""
    src = model._check_tokens("src", src, model.config.src_vocab_size)
    empty = np.flatnonzero(~(src != model.config.pad_id).any(axis=1))
    if empty.size:
        raise ValueError(f"decoding: source row {int(empty[0])} is empty (only padding, shape {src.shape}); "
                         "every row needs at least one token")
    return src


def max_lengths(model_max_len, src, max_len=None, extra_tokens=EXTRA_TOKENS):
    """Each row's cap on output tokens, (B,) int: ``max_len`` for every row if given, else
    the row's own source length (its tokens other than PAD) + ``extra_tokens``, at most
    model_max_len - 1 (BOS takes the first position).  Per row, so a text's output never
    depends on the other texts decoded beside it.  A model trained on real pairs records
    the most extra tokens any training pair had (``Trained.extra_tokens``: 0 for pinyin,
    one syllable per character), so it cannot run on far past what it was taught."""
    limit = model_max_len - 1
    if max_len is None:
        if not (isinstance(extra_tokens, (int, np.integer)) and extra_tokens >= 0):
            raise ValueError(f"decoding: extra_tokens must be an integer >= 0, got {extra_tokens!r}")
        return np.minimum((np.asarray(src) != PAD).sum(axis=1) + extra_tokens, limit)
    if not 1 <= max_len <= limit:
        raise ValueError(f"decoding: max_len must be in [1, {limit}] for this model, got {max_len}")
    return np.full(len(src), max_len)


def _next_logits(model, tokens, memory, src_mask, cache, step):
    """Logits (B, V) for the token after ``tokens`` (B, step + 1)."""
    if cache is not None:
        h = model.decode(tokens[:, -1:], memory, src_mask, cache=cache, start=step)
    else:
        h = model.decode(tokens, memory, src_mask)
    return model.project(h[:, -1]).data


def _exclude_never_chosen(scores):
    """A copy of scores (..., V) with the NEVER_CHOSEN columns at -inf."""
    scores = np.array(scores, dtype=np.float64)
    scores[..., NEVER_CHOSEN] = -np.inf
    return scores


def _pad_rows(rows):
    out = np.full((len(rows), max(map(len, rows), default=0)), PAD, dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, :len(row)] = row
    return out


def greedy_decode(model, src, max_len=None, *, extra_tokens=EXTRA_TOKENS, use_cache=True, return_logits=False):
    """Pick the most probable token at every step (PAD, BOS and UNK are never chosen).

    src (B, S) int -> tokens (B, T) int64 (and, with ``return_logits``, logits (B, T, V)).
    A row stops at its EOS or after ``max_len`` tokens (default: its source length +
    ``extra_tokens``, at most config.max_len - 1; see ``max_lengths``), and is PAD after that.  logits[b, t] is
    the model's distribution from which tokens[b, t] was chosen; after a row has stopped
    nothing is decoded, so there it is NaN.
    """
    src = _check_source(model, src)
    caps = max_lengths(model.config.max_len, src, max_len, extra_tokens)
    with _inference(model):
        src_mask = model.src_mask(src)
        memory = model.encode(src, src_mask)
        cache = model.decoder.new_cache() if use_cache else None
        tokens = np.full((src.shape[0], 1), BOS, dtype=np.int64)
        finished = np.zeros(src.shape[0], dtype=bool)
        step_logits = []
        for step in range(caps.max()):
            logits = _next_logits(model, tokens, memory, src_mask, cache, step)  # (B, V)
            step_logits.append(np.where(finished[:, None], np.nan, logits))
            next_token = np.where(finished, PAD, _exclude_never_chosen(logits).argmax(-1))
            tokens = np.concatenate([tokens, next_token[:, None]], axis=1)
            finished |= (next_token == EOS) | (step + 1 >= caps)
            if finished.all():
                break
    if return_logits:
        return tokens[:, 1:], np.stack(step_logits, axis=1)
    return tokens[:, 1:]


def length_normalizer(length, alpha):
    """GNMT's lp(Y) = ((5 + |Y|) / 6)^α: beam scores are log p(Y) / lp(Y), so that longer
    hypotheses, whose log-probabilities are sums of more negative terms, can still win."""
    return ((5.0 + length) / 6.0) ** alpha


def beam_search(model, src, beam_size=4, max_len=None, *, extra_tokens=EXTRA_TOKENS, length_penalty=0.6,
                use_cache=True):
    """Keep the ``beam_size`` most probable prefixes per example, extend each by every
    allowed token (PAD, BOS and UNK never are), and keep the best ``beam_size`` again.
    A prefix that emits EOS is finished
    and scored log p / lp with lp = ((5 + |Y|) / 6)^length_penalty; an example is done when it has
    ``beam_size`` finished hypotheses.  Batched: the B·K hypotheses run as one batch.

    src (B, S) int -> tokens (B, T) int64, the best finished hypothesis per example.
    """
    if beam_size < 1:
        raise ValueError(f"beam_search: beam_size must be at least 1, got {beam_size}")
    src = _check_source(model, src)
    caps = max_lengths(model.config.max_len, src, max_len, extra_tokens)
    b_size, k = src.shape[0], beam_size
    with _inference(model):
        src_mask = model.src_mask(src)
        memory = model.encode(src, src_mask)
        rows = np.repeat(np.arange(b_size), k)  # hypothesis b·K + j belongs to example b
        memory, src_mask = memory[rows], src_mask[rows]
        cache = model.decoder.new_cache() if use_cache else None

        tokens = np.full((b_size * k, 1), BOS, dtype=np.int64)
        scores = np.full((b_size, k), -np.inf)
        scores[:, 0] = 0.0  # all beams start identical: expand only the first
        finished = [[] for _ in range(b_size)]  # (normalized score, tokens) per example
        done = np.zeros(b_size, dtype=bool)

        for step in range(caps.max()):
            logits = _next_logits(model, tokens, memory, src_mask, cache, step)  # (B·K, V)
            log_probs = _exclude_never_chosen(mg.log_softmax(mg.Tensor(logits), -1).data)
            vocab = log_probs.shape[-1]
            candidates = (scores[:, :, None] + log_probs.reshape(b_size, k, vocab)).reshape(b_size, k * vocab)
            # At most K candidates end in EOS, so the best 2K always hold K that go on.
            best = np.argsort(-candidates, axis=1, kind="stable")[:, :2 * k]

            next_tokens = np.full((b_size, k), PAD, dtype=np.int64)
            parents = np.tile(np.arange(k), (b_size, 1))
            next_scores = np.full((b_size, k), -np.inf)
            for b in np.flatnonzero(~done):
                kept = 0
                for flat in best[b]:
                    score = candidates[b, flat]
                    if score == -np.inf:
                        break
                    parent, token = divmod(int(flat), vocab)
                    if token == EOS:
                        hypothesis = tokens[b * k + parent, 1:].tolist() + [EOS]
                        finished[b].append((score / length_normalizer(len(hypothesis), length_penalty), hypothesis))
                    else:
                        next_tokens[b, kept], parents[b, kept], next_scores[b, kept] = token, parent, score
                        kept += 1
                        if kept == k:
                            break
                done[b] = len(finished[b]) >= k or kept == 0
            if done.all():
                break
            order = (np.arange(b_size)[:, None] * k + parents).reshape(-1)
            tokens = np.concatenate([tokens[order], next_tokens.reshape(-1, 1)], axis=1)
            scores = next_scores
            if cache is not None:
                for self_cache, _ in cache:  # cross-attention caches are equal within an example
                    self_cache.reorder(order)
            for b in np.flatnonzero(~done & (step + 1 >= caps)):  # out of steps: unfinished hypotheses compete too
                for j in range(k):
                    if scores[b, j] > -np.inf:
                        hypothesis = tokens[b * k + j, 1:].tolist()
                        finished[b].append((scores[b, j] / length_normalizer(len(hypothesis), length_penalty),
                                            hypothesis))
                done[b] = True
            if done.all():
                break
    return _pad_rows([max(hyps, key=lambda h: h[0])[1] for hyps in finished])


def translate(model, tokenizer, texts, *, beam_size=1, max_len=None, extra_tokens=EXTRA_TOKENS):
    """Source strings -> predicted target strings (beam_size 1 is greedy decoding), each at
    most its source's tokens + ``extra_tokens`` long unless ``max_len`` is given.

    Sources are encoded by ``tokenizer.source``, outputs decoded by ``tokenizer.target``
    (a lone tokenizer is both).  Each output is the decoded tokens before the first EOS.
    An empty text (no tokens) is refused with a ValueError naming it.
    """
    texts = list(texts)
    if not texts:
        return []
    src = tokenizer.source.encode_batch(texts)
    empty = [repr(text) for text, row in zip(texts, src) if not (row != PAD).any()]
    if empty:
        raise ValueError(f"translate: nothing to translate in {', '.join(empty)}: each text needs at least "
                         "one character")
    if beam_size == 1:
        tokens = greedy_decode(model, src, max_len, extra_tokens=extra_tokens)
    else:
        tokens = beam_search(model, src, beam_size, max_len, extra_tokens=extra_tokens)
    return [tokenizer.target.decode(_until_eos(row)) for row in tokens]


def _until_eos(row):
    row = list(row)
    return row[:row.index(EOS)] if EOS in row else row

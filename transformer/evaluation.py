"""How good is a model on held-out pairs: loss, token accuracy and exact match.

    loss            label-smoothed cross-entropy per target token, teacher forced (the
                    training objective, so train and valid curves can be compared)
    token_accuracy  teacher forced: the share of target tokens (EOS included) whose
                    most likely prediction is right, given the correct tokens before it
    exact_match     greedy decoding from the source alone: the share of sequences
                    produced exactly, EOS included (what a user of the model sees)
    by_length       exact match per source length in tokens (characters, symbols):
                    {"3": {"examples": 237, "exact_match": 1.0}, ...}
                    (JSON keys are strings), since a mean over lengths can hide a length
                    the model never gets right

``score_typed_inputs`` scores a task's ``typed_inputs`` apart: inputs a person types
first ("7", "1111") that a random test split seldom holds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

import minigrad as mg
from transformer.decoding import greedy_decode, translate
from transformer.loss import sequence_loss
from transformer.tasks import Batch, Pair, Task, batches
from transformer.tokenizer import PAD, Tokenizer, TokenizerPair


def token_accuracy_counts(logits: np.ndarray, targets: np.ndarray) -> tuple[int, int]:
    """(correct, total) over the non-pad targets; logits (B, T, V), targets (B, T)."""
    real = targets != PAD
    correct = (logits.argmax(-1) == targets) & real
    return int(correct.sum()), int(real.sum())


def exact_matches(predicted: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(B,) bool: row b of ``predicted`` (B, T') starts with target row b up to and
    including its EOS.  ``targets`` (B, T) is tgt_out: target + EOS, then PAD."""
    lengths = (targets != PAD).sum(axis=1)  # (B,) target tokens + EOS
    width = max(predicted.shape[1], targets.shape[1])
    predicted = np.pad(predicted, [(0, 0), (0, width - predicted.shape[1])], constant_values=PAD)
    targets = np.pad(targets, [(0, 0), (0, width - targets.shape[1])], constant_values=PAD)
    inside = np.arange(width)[None, :] < lengths[:, None]  # (B, width) True on the target span
    return np.all((predicted == targets) | ~inside, axis=1)


def evaluate(model, pairs: Sequence[Pair], tokenizer: Tokenizer | TokenizerPair, batch_size: int = 250,
             label_smoothing: float = 0.1, decode: bool = True) -> dict:
    """{"loss", "token_accuracy", "exact_match", "examples", "by_length"} of ``model`` on ``pairs``
    (sources read by ``tokenizer.source``, targets by ``tokenizer.target``).  With
    ``decode=False`` only the teacher-forced {"loss", "token_accuracy", "examples"}.

    Runs in eval mode (no dropout) without recording a graph; restores the mode after.
    """
    was_training = model.training
    model.eval()
    loss_sum = correct = tokens = matches = 0.0
    length_counts: dict[int, list[int]] = {}  # source length -> [examples, exact matches]
    try:
        with mg.no_grad():
            batch: Batch
            for batch in batches(pairs, tokenizer, batch_size, shuffle=False):
                logits = model(batch.src, batch.tgt_in)  # (B, T, V)
                n_correct, n_tokens = token_accuracy_counts(logits.data, batch.tgt_out)
                loss = sequence_loss(logits, batch.tgt_out, label_smoothing)  # mean over n_tokens
                loss_sum += float(loss.data) * n_tokens
                correct += n_correct
                tokens += n_tokens
                if not decode:
                    continue
                predicted = greedy_decode(model, batch.src)  # (B, T') ending in EOS, then PAD
                right = exact_matches(predicted, batch.tgt_out)
                matches += int(right.sum())
                for length, ok in zip((batch.src != PAD).sum(axis=1).tolist(), right):
                    counts = length_counts.setdefault(length, [0, 0])
                    counts[0] += 1
                    counts[1] += int(ok)
    finally:
        model.train(was_training)
    if not decode:
        return {"loss": loss_sum / max(tokens, 1), "token_accuracy": correct / max(tokens, 1), "examples": len(pairs)}
    return {"loss": loss_sum / max(tokens, 1), "token_accuracy": correct / max(tokens, 1),
            "exact_match": matches / max(len(pairs), 1), "examples": len(pairs),
            "by_length": {str(length): {"examples": n, "exact_match": right / n}
                          for length, (n, right) in sorted(length_counts.items())}}


def worst_length(result: dict) -> tuple[str, float]:
    """(source length, exact match) of the worst length bucket of an ``evaluate`` result."""
    length, bucket = min(result["by_length"].items(), key=lambda item: item[1]["exact_match"])
    return length, bucket["exact_match"]


def format_by_length(result: dict) -> str:
    """An ``evaluate`` result as a table: exact match per source length, then all and worst.

        length  examples  exact match
             1        10       100.0%
        ...
           all      2000        99.9%   worst: length 10, 99.2%
    """
    lines = ["length  examples  exact match"]
    for length, bucket in result["by_length"].items():
        lines.append(f"{length:>6}  {bucket['examples']:>8}  {bucket['exact_match']:>11.1%}")
    lines.append(f"{'all':>6}  {result['examples']:>8}  {result['exact_match']:>11.1%}")
    if result["by_length"]:
        length, exact = worst_length(result)
        lines[-1] += f"   worst: length {length}, {exact:.1%}"
    return "\n".join(lines)


def score_typed_inputs(model, tokenizer: Tokenizer | TokenizerPair, task: Task, shown: int = 5) -> str | None:
    """One line: how many of the task's ``typed_inputs`` the model gets exactly right
    (greedy), and the first ``shown`` it gets wrong; None for a task without such a list."""
    if task.typed_inputs is None:
        return None
    sources = task.typed_inputs()
    outputs = translate(model, tokenizer, sources)
    wrong = [f"{source!r} → {output!r}" for source, output in zip(sources, outputs) if output != task.answer(source)]
    line = (f"typed inputs ({', '.join(map(repr, sources[:3]))}, ...; {task.name}'s typed_inputs): "
            f"{len(sources) - len(wrong)} of {len(sources)} right")
    if wrong:
        line += "; wrong: " + ", ".join(wrong[:shown]) + (", ..." if len(wrong) > shown else "")
    return line

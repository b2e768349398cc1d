"""Training loss: label-smoothed cross-entropy (paper §5.4) with padding ignored."""

import minigrad as mg
from transformer.tokenizer import PAD


def sequence_loss(logits, targets, label_smoothing=0.1, pad_id=PAD):
    """Mean cross-entropy over the non-pad target tokens.

    logits (B, T, V), targets (B, T) int.  With smoothing ε each target is the
    distribution (1 - ε)·onehot + ε/V, which keeps the model from becoming over-confident
    (worse perplexity, better accuracy and BLEU in the paper).  Uses minigrad's fused
    cross_entropy (one node; backward = softmax - target distribution).
    """
    if logits.ndim != 3 or logits.shape[:2] != targets.shape:
        raise ValueError(f"sequence_loss: logits {logits.shape} and targets {targets.shape} must be (B, T, V) "
                         "and (B, T)")
    vocab = logits.shape[-1]
    return mg.cross_entropy(logits.reshape(-1, vocab), targets.reshape(-1), ignore_index=pad_id,
                            label_smoothing=label_smoothing)

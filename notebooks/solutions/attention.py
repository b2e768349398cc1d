"""Notebook 2 · Self-attention."""

import math

import numpy as np


def softmax(scores):
    """Row-wise softmax; subtracting the row maximum changes nothing but keeps exp finite."""
    e = np.exp(scores - scores.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def attention(q, k, v, mask=None):
    """softmax(Q Kᵀ / √d_k) V, masked keys at −inf; returns (output, weights)."""
    scores = q @ k.swapaxes(-1, -2) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    weights = softmax(scores)
    return weights @ v, weights

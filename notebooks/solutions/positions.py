"""Notebook 1 · Tokens, embeddings and positions."""

import math

import numpy as np


def positional_encoding(n, d):
    """PE[p, 2i] = sin(p ω_i), PE[p, 2i+1] = cos(p ω_i), ω_i = 10000^(−2i/d)."""
    omega = np.exp(-math.log(10000.0) * np.arange(0, d, 2) / d)
    angles = np.arange(n)[:, None] * omega           # (n, d/2)
    table = np.zeros((n, d))
    table[:, 0::2], table[:, 1::2] = np.sin(angles), np.cos(angles)
    return table


def shift_matrix(k, d):
    """Block-diagonal 2×2 rotations by the angle k ω_i, one per (sin, cos) pair."""
    m = np.zeros((d, d))
    for i, w in enumerate(np.exp(-math.log(10000.0) * np.arange(0, d, 2) / d)):
        c, s = math.cos(k * w), math.sin(k * w)
        m[2 * i:2 * i + 2, 2 * i:2 * i + 2] = [[c, s], [-s, c]]
    return m

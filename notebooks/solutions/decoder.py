"""Notebook 5 · The decoder."""

import numpy as np


def causal_mask(length):
    """Query t (row) may see keys 0..t (columns): the lower triangle, diagonal included."""
    return np.tril(np.ones((length, length), dtype=bool))


def shift_target(ids, bos, eos):
    """Teacher forcing: the decoder reads <bos> + target and must predict target + <eos>."""
    return [bos] + list(ids), list(ids) + [eos]

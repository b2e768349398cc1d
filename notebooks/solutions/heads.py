"""Notebook 3 · Multi-head attention."""


def split_heads(x, n_heads):
    """(B, T, d_model) -> (B, T, H, d_k) -> (B, H, T, d_k)."""
    b, t, d_model = x.shape
    return x.reshape(b, t, n_heads, d_model // n_heads).transpose(0, 2, 1, 3)


def merge_heads(x):
    """(B, H, T, d_k) -> (B, T, H, d_k) -> (B, T, H·d_k)."""
    b, h, t, d_k = x.shape
    return x.transpose(0, 2, 1, 3).reshape(b, t, h * d_k)

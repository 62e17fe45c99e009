"""Notebook 01 · Attention: reference implementations."""

from __future__ import annotations

import math

import torch

__all__ = ["softmax", "scaled_dot_product_attention", "causal_mask"]


def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Numerically stable softmax along ``dim``."""
    x = x - x.amax(dim=dim, keepdim=True)  # largest entry becomes 0: exp cannot overflow
    e = x.exp()
    return e / e.sum(dim=dim, keepdim=True)


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q kᵀ / sqrt(d_k)) v, with an optional boolean mask (True = may attend).

    q: (..., seq_q, d_k), k: (..., seq_k, d_k), v: (..., seq_k, d_v),
    mask: broadcastable to (..., seq_q, seq_k).
    Returns output (..., seq_q, d_v) and weights (..., seq_q, seq_k).
    """
    d_k = q.size(-1)
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)  # (..., seq_q, seq_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = softmax(scores, dim=-1)  # each row sums to 1 over the keys
    return weights @ v, weights  # (..., seq_q, d_v), (..., seq_q, seq_k)


def causal_mask(seq_len: int) -> torch.Tensor:
    """Boolean (seq_len, seq_len) mask, True on and below the diagonal."""
    return torch.ones(seq_len, seq_len, dtype=torch.bool).tril()

"""Notebook 02 · Multi-head attention: reference implementations."""

from __future__ import annotations

import torch
import torch.nn as nn

from utils.reference.attention import scaled_dot_product_attention

__all__ = ["split_heads", "merge_heads", "MultiHeadAttention"]


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """(batch, seq, d_model) -> (batch, n_heads, seq, d_head), d_head = d_model // n_heads.

    Head i gets the features i*d_head to (i+1)*d_head - 1 of every token.
    """
    batch, seq, d_model = x.shape
    if d_model % n_heads != 0:
        raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
    x = x.view(batch, seq, n_heads, d_model // n_heads)  # (batch, seq, heads, d_head)
    return x.transpose(1, 2)  # (batch, heads, seq, d_head)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(batch, n_heads, seq, d_head) -> (batch, seq, n_heads * d_head): the inverse of split_heads."""
    batch, n_heads, seq, d_head = x.shape
    x = x.transpose(1, 2)  # (batch, seq, heads, d_head), no longer contiguous in memory
    return x.reshape(batch, seq, n_heads * d_head)  # reshape copies when it must


class MultiHeadAttention(nn.Module):
    """Multi-head attention with learned Q, K, V and output projections.

    forward(x, mask=None, context=None): x (batch, seq, d_model); mask a bool
    tensor broadcastable to (batch, n_heads, seq, seq_k), True = may attend.
    Returns output (batch, seq, d_model) and weights (batch, n_heads, seq, seq_k).

    Without ``context`` this is self-attention (seq_k = seq), as built in
    notebook 02. With ``context`` of shape (batch, seq_k, d_model) it is
    cross-attention (notebook 06): queries come from x, keys and values from
    context, such as the encoder's output.
    """

    def __init__(self, d_model: int, n_heads: int, bias: bool = True):
        super().__init__()
        if d_model % n_heads != 0:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        self.n_heads = n_heads
        self.d_head = d_model // n_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                context: torch.Tensor | None = None):
        kv = x if context is None else context  # where keys and values come from
        q = split_heads(self.q_proj(x), self.n_heads)  # (batch, heads, seq, d_head)
        k = split_heads(self.k_proj(kv), self.n_heads)  # (batch, heads, seq_k, d_head)
        v = split_heads(self.v_proj(kv), self.n_heads)
        out, weights = scaled_dot_product_attention(q, k, v, mask)  # scaled by sqrt(d_head)
        out = merge_heads(out)  # (batch, seq, d_model): the heads side by side
        return self.out_proj(out), weights  # (batch, seq, d_model), (batch, heads, seq, seq_k)

"""Notebook 10 · Looking inside: reference implementations.

``attention_weights_from_qkv`` recomputes a GPT layer's causal attention
weights from the output of its ``c_attn`` projection (the fused kernel that
the model calls never returns them); a forward hook on ``c_attn`` can call it.
The three head metrics each reduce a batch of attention weights
``(batch, heads, T, T)`` to one number per head:

* ``attention_entropy``: how spread out each query's weights are (nats);
* ``previous_token_score``: the mean weight on the token just before the query;
* ``induction_score``: on sequences that repeat with period ``period``, the mean
  weight on the token *after* the previous occurrence of the query's token.
"""

from __future__ import annotations

import math

import torch

from utils.reference.attention import causal_mask

__all__ = ["attention_weights_from_qkv", "attention_entropy", "previous_token_score", "induction_score"]


def attention_weights_from_qkv(qkv: torch.Tensor, n_head: int) -> torch.Tensor:
    """Causal attention weights from c_attn's output.

    qkv: (B, T, 3C), [q | k | v] along the last axis; n_head heads of size hs = C // n_head.
    returns: (B, n_head, T, T) in the dtype of qkv; row t is query t's weights over keys 0..T-1.
    """
    B, T, three_c = qkv.shape
    C = three_c // 3
    hs = C // n_head
    q, k, _ = qkv.split(C, dim=2)                               # (B, T, C) each; v is not needed
    q = q.view(B, T, n_head, hs).transpose(1, 2)                # (B, nh, T, hs)
    k = k.view(B, T, n_head, hs).transpose(1, 2)
    scores = q @ k.transpose(-2, -1) / math.sqrt(hs)            # (B, nh, T, T)
    scores = scores.masked_fill(~causal_mask(T).to(qkv.device), float("-inf"))
    return scores.softmax(dim=-1)


def attention_entropy(weights: torch.Tensor) -> torch.Tensor:
    """Mean entropy (nats) of each head's attention rows.

    weights: (B, H, T_q, T_k), rows summing to 1 (zeros allowed: 0 log 0 = 0).
    returns: (H,), averaged over the batch and the queries.
    """
    plogp = weights * weights.clamp_min(torch.finfo(weights.dtype).tiny).log()   # 0 where p = 0
    return -plogp.sum(dim=-1).mean(dim=(0, 2))                  # sum over keys, mean over B and queries


def previous_token_score(weights: torch.Tensor) -> torch.Tensor:
    """Mean weight each head puts on the previous token.

    weights: (B, H, T, T) with T >= 2.
    returns: (H,), the mean of weights[b, h, t, t - 1] over b and t = 1..T-1.
    """
    return weights.diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=(0, -1))   # (B, H, T-1) -> (H,)


def induction_score(weights: torch.Tensor, period: int) -> torch.Tensor:
    """Mean weight each head puts on the token after the previous occurrence of the current one.

    weights: (B, H, T, T) on sequences with x[t] = x[t - period] for t >= period, T > period.
    returns: (H,), the mean of weights[b, h, t, t - period + 1] over b and t = period..T-1.
    """
    stripe = weights.diagonal(offset=1 - period, dim1=-2, dim2=-1)   # (B, H, T - period + 1): t = period-1..T-1
    return stripe[..., 1:].mean(dim=(0, -1))                     # t = period-1 has no earlier occurrence

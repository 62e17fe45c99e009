"""Notebook 09 · Efficient attention: reference implementations.

FLOP counts of an attention layer and a transformer block; the online
(streaming) softmax; FlashAttention's forward pass as a tiled loop in plain
PyTorch, exact and never holding more than one (block × block) piece of the
score matrix; and a sliding-window (Longformer-style) mask.
"""

from __future__ import annotations

import math

import torch

__all__ = ["attention_flops", "block_flops", "online_softmax", "flash_attention_forward",
           "sliding_window_mask"]


def attention_flops(n: int, d: int) -> int:
    """Forward FLOPs of multi-head self-attention on one sequence of n tokens, width d.

    A multiply-add counts as 2 FLOPs; only the matrix products are counted.
    """
    projections = 4 * 2 * n * d * d  # q, k, v and output projections: (n x d)(d x d) each
    products = 2 * 2 * n * n * d  # q kᵀ and weights @ v, all heads together
    return projections + products


def block_flops(n: int, d: int, d_ff: int | None = None) -> int:
    """Forward FLOPs of one transformer block (attention + feed-forward), n tokens, width d."""
    d_ff = 4 * d if d_ff is None else d_ff
    return attention_flops(n, d) + 2 * 2 * n * d * d_ff  # (n x d)(d x d_ff) and back


def online_softmax(x: torch.Tensor, block_size: int) -> torch.Tensor:
    """Softmax along the last axis, with its max and sum computed in one streaming pass.

    x: (..., n) float. The running max m and running sum l = Σ exp(x - m) are
    updated one block of block_size entries at a time; when the max grows, the
    sum so far is rescaled by exp(m_old - m_new). Returns (..., n), dtype of x.
    """
    # Start at the most negative finite number, not -inf: a block of masked (-inf)
    # entries then gives exp(min - min) = 1 instead of exp(-inf - (-inf)) = NaN.
    m = torch.full(x.shape[:-1], torch.finfo(x.dtype).min, dtype=x.dtype, device=x.device)  # (...)
    l = torch.zeros(x.shape[:-1], dtype=x.dtype, device=x.device)  # (...)
    for start in range(0, x.size(-1), block_size):
        block = x[..., start:start + block_size]  # (..., <= block_size)
        m_new = torch.maximum(m, block.amax(dim=-1))
        l = l * torch.exp(m - m_new) + torch.exp(block - m_new[..., None]).sum(dim=-1)
        m = m_new
    return torch.exp(x - m[..., None]) / l[..., None]  # (..., n)


def flash_attention_forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_size: int,
                            causal: bool = False) -> torch.Tensor:
    """softmax(q kᵀ / sqrt(d)) v, tiled: never more than a (block × block) piece of the scores.

    q: (..., seq_q, d), k: (..., seq_k, d), v: (..., seq_k, d_v).
    causal: query i attends to keys j <= i only (self-attention, seq_q == seq_k).
    Returns (..., seq_q, d_v) in the dtype of q.
    """
    seq_q, seq_k = q.size(-2), k.size(-2)
    scale = 1.0 / math.sqrt(q.size(-1))
    outputs = []
    for i in range(0, seq_q, block_size):  # one block of queries at a time
        q_blk = q[..., i:i + block_size, :] * scale  # (..., bq, d)
        rows = q_blk.size(-2)
        m = torch.full(q_blk.shape[:-1], torch.finfo(q.dtype).min, dtype=q.dtype, device=q.device)  # (..., bq)
        l = torch.zeros_like(m)  # (..., bq) running sum of exp(s - m)
        acc = torch.zeros(*q_blk.shape[:-1], v.size(-1), dtype=q.dtype, device=q.device)  # (..., bq, d_v)
        for j in range(0, seq_k, block_size):  # stream over blocks of keys and values
            if causal and j > i + rows - 1:
                break  # this key block and every later one lie above the diagonal
            s = q_blk @ k[..., j:j + block_size, :].transpose(-2, -1)  # (..., bq, bk)
            if causal and j + s.size(-1) - 1 > i:  # the block crosses the diagonal
                q_idx = torch.arange(i, i + rows, device=q.device)[:, None]
                k_idx = torch.arange(j, j + s.size(-1), device=q.device)[None, :]
                s = s.masked_fill(k_idx > q_idx, float("-inf"))
            m_new = torch.maximum(m, s.amax(dim=-1))
            p = torch.exp(s - m_new[..., None])  # (..., bq, bk) unnormalised weights
            alpha = torch.exp(m - m_new)  # rescales what was accumulated under the old max
            l = alpha * l + p.sum(dim=-1)
            acc = alpha[..., None] * acc + p @ v[..., j:j + block_size, :]
            m = m_new
        outputs.append(acc / l[..., None])  # normalise once, at the end
    return torch.cat(outputs, dim=-2)  # (..., seq_q, d_v)


def sliding_window_mask(n: int, w: int) -> torch.Tensor:
    """Boolean (n, n) mask, True where |i - j| <= w: each token sees w neighbours on each side."""
    i = torch.arange(n)[:, None]
    j = torch.arange(n)[None, :]
    return (i - j).abs() <= w

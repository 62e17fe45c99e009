"""Notebook 03 · Positional encodings: reference implementations."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

__all__ = [
    "sinusoidal_positional_encoding",
    "LearnedPositionalEmbedding",
    "apply_rope",
    "alibi_bias",
    "relative_position_bucket",
]


def sinusoidal_positional_encoding(seq_len: int, d_model: int) -> torch.Tensor:
    """PE[pos, 2i] = sin(pos / 10000^(2i/d_model)), PE[pos, 2i+1] = cos(the same angle).

    Returns a float32 tensor of shape (seq_len, d_model); d_model is even.
    """
    pos = torch.arange(seq_len, dtype=torch.float64)[:, None]  # (seq_len, 1)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)  # (d_model/2,): 0, 2, 4, ...
    angles = pos / 10000 ** (two_i / d_model)  # (seq_len, d_model/2)
    pe = torch.zeros(seq_len, d_model, dtype=torch.float64)
    pe[:, 0::2] = angles.sin()  # even dimensions
    pe[:, 1::2] = angles.cos()  # odd dimensions: the same frequency, interleaved
    return pe.float()


class LearnedPositionalEmbedding(nn.Module):
    """One trained vector per position 0..max_len-1, added to the token vectors (GPT-2, BERT)."""

    def __init__(self, max_len: int, d_model: int):
        super().__init__()
        self.max_len = max_len
        self.embedding = nn.Embedding(max_len, d_model)  # row p: the vector of position p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, seq, d_model) -> x + embedding[:seq], same shape."""
        seq_len = x.size(1)
        if seq_len > self.max_len:
            raise ValueError(
                f"sequence length {seq_len} is longer than max_len={self.max_len}: "
                "a learned embedding has no vector for positions past max_len"
            )
        positions = torch.arange(seq_len, device=x.device)  # (seq,)
        return x + self.embedding(positions)  # (batch, seq, d) + (seq, d) broadcasts


def apply_rope(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding, interleaved pairs (x[2i], x[2i+1]) as in RoFormer.

    x: (batch, heads, seq, d_head), d_head even; positions: int tensor (seq,).
    Pair i of the token at position p is rotated by the angle p * theta_i,
    theta_i = 10000^(-2i/d_head). Returns a tensor of the shape and dtype of x.
    """
    d_head = x.size(-1)
    theta = 10000 ** (-torch.arange(0, d_head, 2, dtype=torch.float64) / d_head)  # (d_head/2,)
    angles = positions.to(torch.float64)[:, None] * theta  # (seq, d_head/2)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., 0::2], x[..., 1::2]  # (batch, heads, seq, d_head/2) each
    rotated = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)  # (..., d_head/2, 2)
    return rotated.flatten(-2)  # pairs back in place: (batch, heads, seq, d_head)


def alibi_bias(n_heads: int, seq_len: int) -> torch.Tensor:
    """ALiBi bias added to the attention scores: bias[h, i, j] = -m_h * (i - j).

    Slopes as in the paper's reference code. For n_heads a power of 2 they are
    the geometric sequence m_h = 2^(-8(h+1)/n_heads): 1/2, 1/4, ..., 1/256 for 8
    heads. Otherwise: the slopes of k heads, k the largest power of 2 below
    n_heads, followed by the first n_heads - k of every other slope of 2k heads
    (the values halfway between, on a log scale).

    Returns float32 (n_heads, seq_len, seq_len). The same linear formula is used
    for every (i, j): above the diagonal (j > i) the values are positive, and a
    causal mask must hide those keys, as it does in a decoder anyway.
    """

    def geometric(n: int) -> list[float]:  # the slopes for n a power of 2
        return [2 ** (-8 * (h + 1) / n) for h in range(n)]

    k = 2 ** math.floor(math.log2(n_heads))  # largest power of 2 <= n_heads
    slopes = torch.tensor(geometric(k) + geometric(2 * k)[0::2][: n_heads - k])  # (heads,)
    pos = torch.arange(seq_len)
    offset = pos[None, :] - pos[:, None]  # (seq, seq): j - i, negative for past keys
    return slopes[:, None, None] * offset  # (heads, seq, seq): -m_h * (i - j)


def relative_position_bucket(
    relative_position: torch.Tensor,
    bidirectional: bool = True,
    num_buckets: int = 32,
    max_distance: int = 128,
) -> torch.Tensor:
    """T5's bucket of each relative position (key position - query position).

    Small distances get one bucket each; larger ones share log-spaced buckets up
    to max_distance, and everything farther lands in the last bucket. With
    ``bidirectional``, half the buckets are for keys after the query (positive
    relative positions); without it, keys after the query all go to bucket 0.
    Returns an int64 tensor of the shape of ``relative_position``.
    """
    bucket = torch.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        bucket = bucket + (relative_position > 0).long() * num_buckets  # keys after the query
        distance = relative_position.abs()
    else:
        distance = (-relative_position).clamp(min=0)  # future keys count as distance 0
    max_exact = num_buckets // 2  # distances 0..max_exact-1 get a bucket each
    is_small = distance < max_exact
    log_ratio = torch.log(distance.float().clamp(min=1) / max_exact) / math.log(max_distance / max_exact)
    if_large = max_exact + (log_ratio * (num_buckets - max_exact)).long()
    if_large = if_large.clamp(max=num_buckets - 1)  # everything past max_distance shares the last
    return bucket + torch.where(is_small, distance, if_large)

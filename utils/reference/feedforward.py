"""Notebook 04 · Feed-forward networks, normalization and residuals: reference implementations.

The attribute names match PyTorch's, so weights copy both ways with
``load_state_dict``: ``FeedForward.linear1/linear2`` as in
``nn.TransformerEncoderLayer``, ``LayerNorm.weight/bias`` as in
``nn.LayerNorm``, ``RMSNorm.weight`` as in ``nn.RMSNorm``; ``SwiGLU.w1/w2/w3``
as in LLaMA.
"""

from __future__ import annotations

import functools
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["FeedForward", "SwiGLU", "LayerNorm", "RMSNorm"]

# The activations FeedForward accepts by name.
ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": F.relu,
    "gelu": F.gelu,  # exact: x * Phi(x)
    "gelu_tanh": functools.partial(F.gelu, approximate="tanh"),  # GPT-2's approximation
    "silu": F.silu,  # x * sigmoid(x), also called swish
}


class FeedForward(nn.Module):
    """Position-wise feed-forward network: Linear -> activation -> Linear (-> dropout).

    Every token goes through the same two-layer MLP on its own.
    x: (batch, seq, d_model) -> (batch, seq, d_model).
    """

    def __init__(self, d_model: int, d_ff: int | None = None, activation="gelu", dropout: float = 0.0):
        super().__init__()
        d_ff = 4 * d_model if d_ff is None else d_ff
        if callable(activation):
            self.activation = activation
        elif activation in ACTIVATIONS:
            self.activation = ACTIVATIONS[activation]
        else:
            raise ValueError(f"unknown activation {activation!r}; use one of {sorted(ACTIVATIONS)} or a callable")
        self.linear1 = nn.Linear(d_model, d_ff)  # expand
        self.linear2 = nn.Linear(d_ff, d_model)  # project back
        self.dropout = nn.Dropout(dropout)  # on the output, as nanoGPT's MLP does

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.activation(self.linear1(x))  # (batch, seq, d_ff)
        return self.dropout(self.linear2(h))  # (batch, seq, d_model)


class SwiGLU(nn.Module):
    """LLaMA's gated feed-forward network: w2(silu(w1 x) * w3 x), no biases.

    x: (batch, seq, d_model) -> (batch, seq, d_model).
    """

    def __init__(self, d_model: int, d_ff: int):
        super().__init__()
        self.w1 = nn.Linear(d_model, d_ff, bias=False)  # gate
        self.w3 = nn.Linear(d_model, d_ff, bias=False)  # up
        self.w2 = nn.Linear(d_ff, d_model, bias=False)  # down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))  # gate * up: (batch, seq, d_ff)


class LayerNorm(nn.Module):
    """(x - mean) / sqrt(var + eps) * weight + bias, over the last dimension.

    x: (..., d_model) -> (..., d_model). The variance is the biased one (divide by d).
    """

    def __init__(self, d_model: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))
        self.bias = nn.Parameter(torch.zeros(d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=-1, keepdim=True)  # (..., 1)
        var = x.var(dim=-1, keepdim=True, unbiased=False)  # (..., 1)
        x_hat = (x - mean) / torch.sqrt(var + self.eps)
        return x_hat * self.weight + self.bias


class RMSNorm(nn.Module):
    """x / sqrt(mean(x²) + eps) * weight, over the last dimension. No mean, no bias.

    x: (..., d_model) -> (..., d_model).
    """

    def __init__(self, d_model: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rms = torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps)  # (..., 1)
        return x / rms * self.weight

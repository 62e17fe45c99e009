"""Notebook 05 · The transformer block and the encoder: reference implementations.

A block is the two sublayers of notebooks 02 and 04, multi-head
self-attention and the feed-forward network, each wrapped in a residual
connection and a layer norm. Post-norm (the 2017 paper) normalises after the
residual add; pre-norm (GPT-2 and most models since) normalises the input of
each sublayer and leaves the residual stream alone. The attribute names let a
PyTorch ``nn.TransformerEncoderLayer``'s weights load into a block.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from utils.reference.feedforward import FeedForward, LayerNorm
from utils.reference.multihead import MultiHeadAttention
from utils.reference.positional import sinusoidal_positional_encoding

__all__ = ["TransformerBlock", "TransformerEncoder"]


class TransformerBlock(nn.Module):
    """One encoder block: self-attention and a feed-forward network, each with a residual and a norm.

    forward(x, mask=None): x (batch, seq, d_model); mask a bool tensor
    broadcastable to (batch, n_heads, seq, seq), True = may attend.
    Returns (batch, seq, d_model).

    post-norm (norm_first=False): x = norm1(x + drop(attn(x))); x = norm2(x + drop(ffn(x)))
    pre-norm  (norm_first=True):  x = x + drop(attn(norm1(x))); x = x + drop(ffn(norm2(x)))
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int | None = None, dropout: float = 0.0,
                 norm_first: bool = True):
        super().__init__()
        self.attn = MultiHeadAttention(d_model, n_heads)
        self.ffn = FeedForward(d_model, d_ff, activation="gelu", dropout=0.0)  # d_ff None -> 4 * d_model
        self.norm1 = LayerNorm(d_model)  # one norm per sublayer: each has its own weight and bias
        self.norm2 = LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)  # on each sublayer's output, before the residual add
        self.norm_first = norm_first

    def _sa(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        out, _ = self.attn(x, mask)  # (batch, seq, d_model); the weights are not needed here
        return self.dropout(out)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.norm_first:  # pre-norm: the residual stream x itself is never normalised
            x = x + self._sa(self.norm1(x), mask)
            x = x + self.dropout(self.ffn(self.norm2(x)))
        else:  # post-norm: normalise after each residual add
            x = self.norm1(x + self._sa(x, mask))
            x = self.norm2(x + self.dropout(self.ffn(x)))
        return x  # (batch, seq, d_model)


class TransformerEncoder(nn.Module):
    """Token embeddings + sinusoidal positions -> n_layers blocks -> final norm (pre-norm only).

    forward(idx, padding_mask=None): idx (batch, seq) int64 token ids;
    padding_mask (batch, seq) bool, True = real token, False = padding
    (None: no padding). Returns (batch, seq, d_model).

    The token embeddings are not scaled by sqrt(d_model) as in the 2017 paper.
    """

    def __init__(self, vocab_size: int, d_model: int, n_heads: int, n_layers: int, d_ff: int | None = None,
                 max_len: int = 512, dropout: float = 0.0, norm_first: bool = True, positional: bool = True):
        super().__init__()
        self.token_emb = nn.Embedding(vocab_size, d_model)
        self.register_buffer("pe", sinusoidal_positional_encoding(max_len, d_model))  # (max_len, d_model)
        self.blocks = nn.ModuleList(
            [TransformerBlock(d_model, n_heads, d_ff, dropout, norm_first) for _ in range(n_layers)]
        )
        # A pre-norm stack's residual stream is never normalised inside the blocks, so it ends with a
        # norm; a post-norm block already ends with one.
        self.norm = LayerNorm(d_model) if norm_first else nn.Identity()
        self.positional = positional

    def forward(self, idx: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        seq = idx.size(1)
        if seq > self.pe.size(0):
            raise ValueError(f"sequence length {seq} is longer than max_len={self.pe.size(0)}")
        x = self.token_emb(idx)  # (batch, seq, d_model)
        if self.positional:
            x = x + self.pe[:seq].to(x.dtype)  # (seq, d_model) broadcasts over the batch
        mask = None
        if padding_mask is not None:
            mask = padding_mask[:, None, None, :]  # (batch, 1, 1, seq): no query may look at a pad key
        for block in self.blocks:
            x = block(x, mask)  # (batch, seq, d_model)
        return self.norm(x)

"""Notebook 06 · The decoder, cross-attention and the encoder-decoder: reference implementations.

A decoder block has three sublayers: causal self-attention over the target
so far, cross-attention from the target to the encoder's output (the
*memory*), and the feed-forward network, each with a residual connection and
its own layer norm. The attribute names let a PyTorch
``nn.TransformerDecoderLayer``'s weights load into a block (its
``multihead_attn`` is our ``cross_attn``).

``EncoderDecoder`` is the 2017 Transformer / T5 shape: notebook 05's
``TransformerEncoder`` reads the source, a stack of decoder blocks writes the
target one token at a time, and ``greedy_decode`` runs it autoregressively.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from utils.reference.attention import causal_mask
from utils.reference.block import TransformerEncoder
from utils.reference.feedforward import FeedForward, LayerNorm
from utils.reference.multihead import MultiHeadAttention
from utils.reference.positional import sinusoidal_positional_encoding

__all__ = ["DecoderBlock", "EncoderDecoder", "greedy_decode"]


class DecoderBlock(nn.Module):
    """Masked self-attention, cross-attention to the memory, feed-forward; residuals and norms.

    forward(x, memory, self_mask=None, memory_mask=None):
      x:           (batch, tgt, d_model)  the decoder's residual stream
      memory:      (batch, src, d_model)  the encoder's output
      self_mask:   bool, broadcastable to (batch, heads, tgt, tgt), True = may attend (causal)
      memory_mask: bool, broadcastable to (batch, heads, tgt, src), True = may attend (padding)
    Returns (batch, tgt, d_model).

    pre-norm  (norm_first=True):  x = x + drop(self_attn(norm1(x)))
                                  x = x + drop(cross_attn(norm2(x), memory))
                                  x = x + drop(ffn(norm3(x)))
    post-norm (norm_first=False): x = norm1(x + drop(self_attn(x)))
                                  x = norm2(x + drop(cross_attn(x, memory)))
                                  x = norm3(x + drop(ffn(x)))
    The memory is never normalised here: the encoder's last step already did that.
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int | None = None, dropout: float = 0.0,
                 norm_first: bool = True):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads)  # queries, keys, values: the target
        self.cross_attn = MultiHeadAttention(d_model, n_heads)  # queries: target; keys, values: memory
        self.ffn = FeedForward(d_model, d_ff, activation="gelu", dropout=0.0)  # d_ff None -> 4 * d_model
        self.norm1 = LayerNorm(d_model)  # one norm per sublayer
        self.norm2 = LayerNorm(d_model)
        self.norm3 = LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)  # on each sublayer's output, before the residual add
        self.norm_first = norm_first

    def _sa(self, x, mask):
        return self.dropout(self.self_attn(x, mask)[0])  # (batch, tgt, d_model)

    def _ca(self, x, memory, mask):
        return self.dropout(self.cross_attn(x, mask, context=memory)[0])  # (batch, tgt, d_model)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, self_mask: torch.Tensor | None = None,
                memory_mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.norm_first:
            x = x + self._sa(self.norm1(x), self_mask)
            x = x + self._ca(self.norm2(x), memory, memory_mask)
            x = x + self.dropout(self.ffn(self.norm3(x)))
        else:
            x = self.norm1(x + self._sa(x, self_mask))
            x = self.norm2(x + self._ca(x, memory, memory_mask))
            x = self.norm3(x + self.dropout(self.ffn(x)))
        return x  # (batch, tgt, d_model)


class EncoderDecoder(nn.Module):
    """TransformerEncoder for the source; embeddings, sinusoidal positions, DecoderBlocks, a norm
    and a linear head for the target.

    encode(src, src_padding_mask=None) -> memory (batch, src_len, d_model)
    decode(tgt, memory, src_padding_mask=None) -> logits (batch, tgt_len, tgt_vocab)
    forward(src, tgt, src_padding_mask=None) -> logits (batch, tgt_len, tgt_vocab)

    src, tgt: int64 token ids; src_padding_mask (batch, src_len) bool, True = real token.
    The decoder's self-attention is always causal; its cross-attention never looks at a
    padded source position. Target padding needs no mask: with the padding at the end, a
    causal decoder's real positions never see it, and the loss ignores the padded positions.
    Like the encoder, the target embeddings are not scaled by sqrt(d_model), and the final
    norm exists only in a pre-norm stack. lm_head has no bias and is not tied to tgt_emb.
    """

    def __init__(self, src_vocab: int, tgt_vocab: int, d_model: int, n_heads: int, n_layers: int,
                 d_ff: int | None = None, max_len: int = 512, dropout: float = 0.0, norm_first: bool = True):
        super().__init__()
        self.encoder = TransformerEncoder(src_vocab, d_model, n_heads, n_layers, d_ff, max_len, dropout,
                                          norm_first)
        self.tgt_emb = nn.Embedding(tgt_vocab, d_model)
        self.register_buffer("pe", sinusoidal_positional_encoding(max_len, d_model))  # (max_len, d_model)
        self.blocks = nn.ModuleList(
            [DecoderBlock(d_model, n_heads, d_ff, dropout, norm_first) for _ in range(n_layers)]
        )
        self.norm = LayerNorm(d_model) if norm_first else nn.Identity()
        self.lm_head = nn.Linear(d_model, tgt_vocab, bias=False)

    def encode(self, src: torch.Tensor, src_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.encoder(src, src_padding_mask)  # (batch, src_len, d_model)

    def decode(self, tgt: torch.Tensor, memory: torch.Tensor,
               src_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        tgt_len = tgt.size(1)
        if tgt_len > self.pe.size(0):
            raise ValueError(f"target length {tgt_len} is longer than max_len={self.pe.size(0)}")
        x = self.tgt_emb(tgt)  # (batch, tgt_len, d_model)
        x = x + self.pe[:tgt_len].to(x.dtype)  # (tgt_len, d_model) broadcasts over the batch
        self_mask = causal_mask(tgt_len).to(tgt.device)  # (tgt_len, tgt_len)
        memory_mask = None
        if src_padding_mask is not None:
            memory_mask = src_padding_mask[:, None, None, :]  # (batch, 1, 1, src_len)
        for block in self.blocks:
            x = block(x, memory, self_mask, memory_mask)
        return self.lm_head(self.norm(x))  # (batch, tgt_len, tgt_vocab)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor,
                src_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        memory = self.encode(src, src_padding_mask)
        return self.decode(tgt, memory, src_padding_mask)


@torch.no_grad()
def greedy_decode(model: nn.Module, src: torch.Tensor, bos_id: int, eos_id: int, max_len: int,
                  src_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Generate with the most likely token at every step.

    src: (batch, src_len) int64; returns (batch, length) int64 with length <= max_len,
    column 0 = bos_id. A sequence that has produced eos_id is padded with eos_id from then on.
    The loop stops when every sequence has produced eos_id, or at max_len tokens (bos included).
    """
    memory = model.encode(src, src_padding_mask)  # encode once, reuse at every step
    ys = torch.full((src.size(0), 1), bos_id, dtype=torch.long, device=src.device)  # (batch, 1)
    done = torch.zeros(src.size(0), dtype=torch.bool, device=src.device)
    while ys.size(1) < max_len and not done.all():
        logits = model.decode(ys, memory, src_padding_mask)  # (batch, t, tgt_vocab)
        next_id = logits[:, -1].argmax(dim=-1)  # (batch,): the last position predicts the next token
        next_id = next_id.masked_fill(done, eos_id)  # finished sequences are padded with eos
        ys = torch.cat([ys, next_id[:, None]], dim=1)
        done = done | (next_id == eos_id)
    return ys

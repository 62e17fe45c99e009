"""Notebook 07 · A mini-GPT: reference implementations.

A decoder-only transformer in the shape of GPT-2: token and learned position
embeddings, a stack of pre-norm blocks (causal self-attention, then an MLP,
each inside a residual connection), a final layer norm, and a language-model
head that shares its weight with the token embedding. The attribute names
(``c_attn``, ``c_proj``, ``c_fc``, ``ln_1``, ``wte``...) are GPT-2's, so
GPT-2's weights load into it once its Conv1D matrices are transposed.

Generation: ``sample_next_token`` (temperature, top-k, top-p), ``generate``
(the whole context again for every new token) and ``generate_cached`` (a
``KVCache`` per layer, so each step feeds only the newest token).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.reference.attention import causal_mask

__all__ = [
    "GPTConfig", "CausalSelfAttention", "MLP", "Block", "GPT",
    "sample_next_token", "generate", "KVCache", "generate_cached",
]


@dataclass
class GPTConfig:
    vocab_size: int = 83     # characters in the prepared Shakespeare corpus
    block_size: int = 128    # the longest context the model sees (positions 0 .. block_size-1)
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128        # d_model
    dropout: float = 0.0
    bias: bool = True        # biases in the Linear layers and layer norms, as in GPT-2


class KVCache:
    """The keys and values one attention layer has computed so far.

    update(k, v): k, v (batch, n_head, T_new, head_size); appends them along
    the time axis and returns all keys and values, (batch, n_head, T_past + T_new, head_size).
    seq_len: how many positions are stored (0 when empty).
    """

    def __init__(self):
        self.k = None
        self.v = None

    @property
    def seq_len(self) -> int:
        return 0 if self.k is None else self.k.size(2)

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.k is None:
            self.k, self.v = k, v
        else:
            self.k = torch.cat([self.k, k], dim=2)  # (B, nh, T_past + T_new, hs)
            self.v = torch.cat([self.v, v], dim=2)
        return self.k, self.v


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where position t sees positions 0..t only.

    c_attn: one Linear (n_embd -> 3 n_embd) for q, k and v together; c_proj the output projection.
    forward(x, kv_cache=None): x (B, T, n_embd) -> (B, T, n_embd).
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        assert config.n_embd % config.n_head == 0, "n_embd must be divisible by n_head"
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.dropout = config.dropout
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, kv_cache: KVCache | None = None) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)               # 3 x (B, T, C)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        mask = None
        if kv_cache is not None:                  # generation: attend to the cached positions too
            k, v = kv_cache.update(k, v)          # (B, nh, T_past + T, hs)
            mask = causal_mask(k.size(2)).to(x.device)[-T:]  # the queries are the last T positions
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None,
                                           dropout_p=self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).contiguous().view(B, T, C)                 # merge heads: (B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    """Position-wise feed-forward network: n_embd -> 4 n_embd -> GELU (tanh form, as GPT-2) -> n_embd."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU(approximate="tanh")
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """Pre-norm block: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, kv_cache: KVCache | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), kv_cache)
        x = x + self.mlp(self.ln_2(x))
        return x


class GPT(nn.Module):
    """A GPT-2-shaped language model.

    forward(idx, targets=None, kv_caches=None): idx (B, T) int64 token ids.
    Returns (logits (B, T, vocab_size), loss): the loss is the mean cross-entropy
    of next-token prediction when targets (B, T) are given, else None.
    kv_caches: one KVCache per block, for generation (positions continue after the cached ones).
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)   # token embedding
        self.wpe = nn.Embedding(config.block_size, config.n_embd)   # learned position embedding
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight   # weight tying: one matrix embeds and un-embeds
        self.apply(self._init_weights)
        # GPT-2: residual projections scaled by 1/sqrt(2 n_layer), two residual adds per block
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                kv_caches: list[KVCache] | None = None):
        B, T = idx.shape
        past = 0 if kv_caches is None else kv_caches[0].seq_len   # positions already in the cache
        if past + T > self.config.block_size:
            raise ValueError(f"GPT: {past + T} positions, but block_size is {self.config.block_size}; "
                             f"crop the context to its last {self.config.block_size} tokens")
        caches = kv_caches if kv_caches is not None else [None] * len(self.blocks)
        pos = torch.arange(past, past + T, device=idx.device)       # (T,)
        x = self.drop(self.wte(idx) + self.wpe(pos))                 # (B, T, C)
        for block, cache in zip(self.blocks, caches):
            x = block(x, cache)
        logits = self.lm_head(self.ln_f(x))                          # (B, T, vocab_size)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
        return logits, loss


def sample_next_token(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                      top_p: float | None = None) -> torch.Tensor:
    """logits (B, vocab) -> next token ids (B, 1) int64.

    temperature 0 is greedy (argmax). Otherwise divide by the temperature, keep
    the top_k largest logits, then the smallest set of tokens whose probability
    reaches top_p, and sample from what is left.
    """
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.size(-1)), dim=-1).values[:, [-1]]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = F.softmax(sorted_logits, dim=-1)
        before = probs.cumsum(dim=-1) - probs          # probability of the tokens ranked above
        sorted_logits = sorted_logits.masked_fill(before >= top_p, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    probs = F.softmax(logits, dim=-1)
    return torch.multinomial(probs, num_samples=1)


@torch.no_grad()
def generate(model: GPT, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """idx (B, T) int64 -> (B, T + max_new_tokens): the prompt followed by sampled tokens.

    Each step runs the model on the last block_size tokens and samples one more.
    """
    for _ in range(max_new_tokens):
        context = idx[:, -model.config.block_size:]        # crop to what the model can see
        logits, _ = model(context)
        next_id = sample_next_token(logits[:, -1, :], temperature, top_k, top_p)  # (B, 1)
        idx = torch.cat([idx, next_id], dim=1)
    return idx


@torch.no_grad()
def generate_cached(model: GPT, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                    top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """Like generate, but with a KVCache per layer: the prompt is fed once, then one token per step.

    The prompt and the new tokens must fit in block_size (learned positions end there).
    """
    if idx.size(1) + max_new_tokens > model.config.block_size:
        raise ValueError(f"generate_cached: {idx.size(1)} + {max_new_tokens} tokens do not fit "
                         f"in block_size {model.config.block_size}")
    caches = [KVCache() for _ in model.blocks]
    logits, _ = model(idx, kv_caches=caches)                # prefill: (B, T, vocab)
    for step in range(max_new_tokens):
        next_id = sample_next_token(logits[:, -1, :], temperature, top_k, top_p)  # (B, 1)
        idx = torch.cat([idx, next_id], dim=1)
        if step < max_new_tokens - 1:
            logits, _ = model(next_id, kv_caches=caches)    # only the new token: (B, 1, vocab)
    return idx

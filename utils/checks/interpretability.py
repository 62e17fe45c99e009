"""Checkers for notebook 10 · Looking inside: attention patterns and heads.

Ground truth:

* ``attention_weights_from_qkv``: the per-head weights that PyTorch's
  ``nn.MultiheadAttention`` returns (``need_weights=True,
  average_attn_weights=False``) under a causal mask. Its packed input
  projection stacks q, k and v in the same order as GPT-2's ``c_attn``, so
  ``F.linear(x, in_proj_weight, in_proj_bias)`` is the ``qkv`` the learner gets.
* ``attention_entropy``: ``torch.distributions.Categorical(probs=...).entropy()``.
* ``previous_token_score`` and ``induction_score``: the weights picked out
  entry by entry with index tensors.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
from torch.distributions import Categorical

from utils.checks._core import (
    call,
    describe,
    expect_close,
    expect_dtype,
    expect_shape,
    expect_tensor,
    expect_unchanged,
    fail,
    passed,
    rng,
)

__all__ = ["check_attention_weights_from_qkv", "check_attention_entropy", "check_previous_token_score",
           "check_induction_score"]

F64 = torch.float64


# ------------------------------------------------------ attention weights from c_attn's output


def _mha_case(B: int, T: int, C: int, n_head: int, seed: int, dtype=F64):
    """qkv as c_attn would return it, and the weights nn.MultiheadAttention computes from the same x."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mha = nn.MultiheadAttention(C, n_head, batch_first=True, dtype=dtype)
        with torch.no_grad():
            mha.in_proj_bias.normal_()  # nonzero biases, so a split in the wrong place shows
    x = torch.randn(B, T, C, generator=rng(seed), dtype=dtype)
    future = torch.ones(T, T, dtype=torch.bool).triu(1)  # nn.MultiheadAttention: True = may NOT attend
    with torch.no_grad():
        qkv = nn.functional.linear(x, mha.in_proj_weight, mha.in_proj_bias)   # (B, T, 3C): [q | k | v]
        _, weights = mha(x, x, x, attn_mask=future, need_weights=True, average_attn_weights=False)
    return qkv, weights  # (B, nh, T, T)


def _qkv_mistakes(qkv: torch.Tensor, n_head: int) -> dict:
    """What the common mistakes would return for this qkv."""
    B, T, three_c = qkv.shape
    C = three_c // 3
    hs = C // n_head
    q, k, v = qkv.split(C, dim=2)
    causal = torch.ones(T, T, dtype=torch.bool).tril()

    def heads(t):
        return t.reshape(B, T, n_head, hs).transpose(1, 2)

    def weights(q_, k_, *, scale=math.sqrt(hs), mask=causal, dim=-1, swap=False):
        s = (k_ @ q_.transpose(-2, -1) if swap else q_ @ k_.transpose(-2, -1)) / scale
        if mask is not None:
            s = s.masked_fill(~mask, float("-inf"))
        return s.softmax(dim=dim)

    interleaved = [t.reshape(B, T, hs, n_head).permute(0, 3, 1, 2) for t in (q, k)]
    no_transpose = [t.reshape(B, n_head, T, hs) for t in (q, k)]
    mistakes = {
        "you did not scale the scores: divide q·kᵀ by sqrt(hs), the head size.":
            weights(heads(q), heads(k), scale=1.0),
        "you scaled by sqrt(C), the model width; each head's dot product has hs = C // n_head "
        "terms, so divide by sqrt(hs).": weights(heads(q), heads(k), scale=math.sqrt(C)),
        "no causal mask: query t may only attend to keys 0..t. Fill the scores above the "
        "diagonal with -inf before the softmax.": weights(heads(q), heads(k), mask=None),
        "your mask is upside down: query t attends to keys 0..t, the lower triangle "
        "(causal_mask(T), or torch.tril), not the upper.": weights(heads(q), heads(k), mask=causal.T),
        "the softmax runs over the keys (dim=-1), so each query's weights sum to 1; you "
        "normalised over the queries.": weights(heads(q), heads(k), dim=-2),
        "scores are q @ kᵀ (rows are queries, columns are keys); you computed k @ qᵀ.":
            weights(heads(q), heads(k), swap=True),
        "qkv is [q | k | v] along the last axis: qkv.split(C, dim=2) gives q, k, v in that "
        "order. You used v where k belongs.": weights(heads(q), heads(v)),
        "heads are split wrongly: each head is a contiguous slice of hs channels. View as "
        "(B, T, n_head, hs), then transpose(1, 2).": [weights(*interleaved), weights(*no_transpose)],
    }
    return mistakes


def check_attention_weights_from_qkv(attention_weights_from_qkv) -> None:
    """Check ``attention_weights_from_qkv(qkv, n_head)`` against nn.MultiheadAttention's weights."""
    cases = [
        ("batch 2, T=7, C=16, 4 heads", 2, 7, 16, 4, 0),
        ("batch 1, T=5, C=12, 3 heads", 1, 5, 12, 3, 1),
        ("batch 3, T=6, C=8, 1 head", 3, 6, 8, 1, 2),
        ("batch 2, T=1 (one token), C=8, 2 heads", 2, 1, 8, 2, 3),
    ]
    for what, B, T, C, n_head, seed in cases:
        label = f"attention_weights_from_qkv on {what}"
        qkv, expected = _mha_case(B, T, C, n_head, seed)
        before = qkv.clone()
        got = expect_tensor(call(attention_weights_from_qkv, label, qkv, n_head), label)
        expect_unchanged(before, qkv, label, "its input qkv")
        expect_shape(got, expected.shape, label,
                     hint="return (B, n_head, T, T): one (T, T) matrix per example and head.")
        expect_close(got, expected, label, atol=1e-10, rtol=1e-8, mistakes=_qkv_mistakes(qkv, n_head))

    qkv, expected = _mha_case(2, 6, 16, 4, 4, dtype=torch.float32)
    label = "attention_weights_from_qkv on float32 input, batch 2, T=6, C=16, 4 heads"
    got = expect_tensor(call(attention_weights_from_qkv, label, qkv, 4), label)
    expect_dtype(got, torch.float32, label, hint="keep the dtype of qkv.")
    expect_close(got, expected, label, atol=1e-5, rtol=1e-4)
    passed("attention_weights_from_qkv",
           f"{len(cases) + 1} cases vs nn.MultiheadAttention's per-head weights under a causal mask")


# ------------------------------------------------------------------------- the head metrics


def _causal_weights(B: int, H: int, T: int, g: torch.Generator, sharpness: float = 3.0) -> torch.Tensor:
    """Random causal attention weights (B, H, T, T): zeros above the diagonal, rows sum to 1."""
    scores = torch.randn(B, H, T, T, generator=g, dtype=F64) * sharpness
    future = torch.ones(T, T, dtype=torch.bool).triu(1)
    return scores.masked_fill(future, float("-inf")).softmax(dim=-1)


def _expect_per_head(got: torch.Tensor, B: int, H: int, label: str) -> None:
    """One number per head: name the reduction that went wrong when the shape is off."""
    if tuple(got.shape) == (H,):
        return
    if got.dim() == 0 or got.numel() == 1:
        hint = "return one number per head, shape (H,): average over the batch and the queries, not the heads."
    elif tuple(got.shape) == (B, H):
        hint = "average over the batch as well as over the queries: mean(dim=(0, ...))."
    elif got.dim() >= 2 and got.shape[-1] != H:
        hint = "reduce over the batch and query axes (0 and 2) and keep the head axis (1)."
    else:
        hint = "the result has one entry per head: shape (H,)."
    fail(label, "returned the wrong shape.", expected=str((H,)), got=str(tuple(got.shape)), hint=hint)


def _run_metric(fn, label: str, args: tuple, expected: torch.Tensor, mistakes: dict,
                B: int, H: int) -> None:
    weights = args[0]
    before = weights.clone()
    got = expect_tensor(call(fn, label, *args), label)
    expect_unchanged(before, weights, label, "its input weights",
                     hint="work on a new tensor (w = w.clamp_min(...), not w.clamp_min_(...)): the "
                          "caller still needs the weights.")
    _expect_per_head(got, B, H, label)
    expect_close(got, expected, label, atol=1e-10, rtol=1e-8, mistakes=mistakes)


def _float32_case(fn, name: str, args32: tuple, expected32: torch.Tensor) -> None:
    label = f"{name} on float32 weights"
    got = expect_tensor(call(fn, label, *args32), label)
    expect_dtype(got, torch.float32, label, hint="keep the dtype of the weights.")
    expect_close(got, expected32, label, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------- attention_entropy


def _entropy_truth(w: torch.Tensor) -> torch.Tensor:
    return Categorical(probs=w, validate_args=False).entropy().mean(dim=(0, 2))


def _entropy_mistakes(w: torch.Tensor) -> dict:
    plogp = torch.special.entr(w)  # -p log p, 0 where p = 0
    return {
        "you computed in bits (log2); the course measures entropy in nats: use the natural log.":
            plogp.sum(-1).mean((0, 2)) / math.log(2),
        "you summed over the queries (dim=-2); each query's weights over the keys (dim=-1) form "
        "one distribution: sum -p·log p over the keys, then average over the queries.":
            plogp.sum(-2).mean((0, 2)),
        "you averaged -p·log p over the keys; entropy sums over them (then averages over queries "
        "and batch).": plogp.mean(-1).mean((0, 2)),
        "the sign is wrong: entropy is -Σ p·log p, which is never negative.": -plogp.sum(-1).mean((0, 2)),
        "0·log 0 must count as 0, but 0 * log(0) = 0 * -inf is NaN in floating point. Clamp the "
        "weights to a tiny positive number inside the log, or use torch.special.entr.":
            (w * w.log()).neg().sum(-1).mean((0, 2)),
    }


def check_attention_entropy(attention_entropy) -> None:
    """Check ``attention_entropy(weights) -> (H,)`` against torch.distributions.Categorical."""
    g = rng(10)
    one_hot = torch.eye(5, dtype=F64).expand(2, 3, 5, 5).clone()       # every query on itself
    uniform_causal = torch.ones(5, 5, dtype=F64).tril()
    uniform_causal = (uniform_causal / uniform_causal.sum(-1, keepdim=True)).expand(1, 2, 5, 5).clone()
    dense = torch.randn(2, 2, 3, 6, generator=g, dtype=F64).softmax(-1)  # 3 queries, 6 keys, no zeros
    cases = [
        ("causal weights, batch 2, 4 heads, T=6", _causal_weights(2, 4, 6, g)),
        ("causal weights, batch 1, 1 head, T=9", _causal_weights(1, 1, 9, g)),
        ("one-hot rows (entropy 0), batch 2, 3 heads, T=5", one_hot),
        ("uniform causal rows, batch 1, 2 heads, T=5", uniform_causal),
        ("dense weights with 3 queries and 6 keys, batch 2, 2 heads", dense),
    ]
    for what, w in cases:
        label = f"attention_entropy on {what}"
        B, H = w.shape[:2]
        _run_metric(attention_entropy, label, (w,), _entropy_truth(w),
                    _entropy_mistakes(w), B, H)
    w32 = _causal_weights(2, 3, 7, g).float()
    _float32_case(attention_entropy, "attention_entropy", (w32,), _entropy_truth(w32))
    passed("attention_entropy", f"{len(cases) + 1} cases vs torch.distributions.Categorical, "
                                "with exact zeros and one-hot rows")


# -------------------------------------------------------------------- previous_token_score


def _pick(w: torch.Tensor, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """w[b, h, queries[i], keys[i]] for every i, averaged over b and i: (H,)."""
    return w[:, :, queries, keys].mean(dim=(0, 2))


def _previous_mistakes(w: torch.Tensor) -> dict:
    T = w.size(-1)
    t = torch.arange(1, T)
    return {
        "you read the diagonal (each token attending to itself); the previous token of query t is "
        "key t - 1, the diagonal just below (offset=-1).": _pick(w, torch.arange(T), torch.arange(T)),
        "you read above the diagonal: key t + 1 is the next token, which a causal head never sees. "
        "The previous token is key t - 1 (diagonal offset=-1).": _pick(w, t - 1, t),
        "query 0 has no previous token: average over the T - 1 queries t = 1..T-1, not over all T.":
            w[:, :, t, t - 1].sum(dim=(0, 2)) / (w.size(0) * T),
        "the score is the mean weight on the previous token, not the fraction of queries whose "
        "largest weight is there.": (w[:, :, 1:].argmax(-1) == t - 1).to(w.dtype).mean(dim=(0, 2)),
    }


def check_previous_token_score(previous_token_score) -> None:
    """Check ``previous_token_score(weights) -> (H,)`` against weights picked by index."""
    g = rng(11)
    shifted = torch.zeros(1, 2, 6, 6, dtype=F64)
    shifted[:, :, 0, 0] = 1.0
    shifted[:, :, torch.arange(1, 6), torch.arange(5)] = 1.0                # a perfect previous-token head
    shifted[:, 1] = torch.eye(6, dtype=F64)                                 # and a perfect self head
    cases = [
        ("causal weights, batch 2, 4 heads, T=7", _causal_weights(2, 4, 7, g)),
        ("causal weights, batch 3, 1 head, T=5", _causal_weights(3, 1, 5, g)),
        ("dense (non-causal) weights, batch 2, 3 heads, T=6", torch.randn(2, 3, 6, 6, generator=g,
                                                                          dtype=F64).softmax(-1)),
        ("T=2, batch 1, 2 heads", _causal_weights(1, 2, 2, g)),
        ("a perfect previous-token head and a perfect self head, T=6", shifted),
    ]
    for what, w in cases:
        label = f"previous_token_score on {what}"
        T = w.size(-1)
        t = torch.arange(1, T)
        _run_metric(previous_token_score, label, (w,), _pick(w, t, t - 1),
                    _previous_mistakes(w), w.size(0), w.size(1))
    w32 = _causal_weights(2, 3, 7, g).float()
    t = torch.arange(1, 7)
    _float32_case(previous_token_score, "previous_token_score", (w32,), _pick(w32, t, t - 1))
    passed("previous_token_score", f"{len(cases) + 1} cases, causal and dense, T from 2 to 7")


# -------------------------------------------------------------------------- induction_score


def _induction_mistakes(w: torch.Tensor, period: int) -> dict:
    T = w.size(-1)
    t = torch.arange(period, T)
    mistakes = {
        "you read the previous occurrence of the current token (key t - period): that is a "
        "duplicate-token head. An induction head attends to the token AFTER it, key t - period + 1.":
            _pick(w, t, t - period),
        "query period - 1 belongs to the first copy: its token has not occurred before. Average "
        "over the queries t = period..T-1 only.":
            _pick(w, torch.arange(period - 1, T), torch.arange(period - 1, T) - period + 1),
        "you read the previous token (key t - 1); the induction target is key t - period + 1, "
        "one after the earlier copy of the current token.": _pick(w, t, t - 1),
        "you averaged over all T queries, counting the first copy as 0; average over the "
        "T - period queries of the repeat only.": w[:, :, t, t - period + 1].sum(dim=(0, 2)) / (w.size(0) * T),
    }
    if 2 * period - 1 <= T - 1:  # the offset read the wrong way: keys t + period - 1, in the future
        q = torch.arange(0, T - period + 1)
        mistakes["the key is in the past: key = t - period + 1, the diagonal offset is 1 - period "
                 "(negative), below the main diagonal."] = _pick(w, q, q + period - 1)
    return mistakes


def check_induction_score(induction_score) -> None:
    """Check ``induction_score(weights, period) -> (H,)`` against weights picked by index."""
    g = rng(12)
    cases = [
        ("causal weights, batch 2, 4 heads, period 5, T=10 (two copies)", _causal_weights(2, 4, 10, g), 5),
        ("causal weights, batch 1, 2 heads, period 4, T=11 (almost three copies)", _causal_weights(1, 2, 11, g), 4),
        ("causal weights, batch 3, 1 head, period 2, T=4", _causal_weights(3, 1, 4, g), 2),
        ("dense weights, batch 2, 3 heads, period 3, T=8", torch.randn(2, 3, 8, 8, generator=g,
                                                                      dtype=F64).softmax(-1), 3),
        ("causal weights, batch 1, 2 heads, period 6, T=7 (one query in the repeat)",
         _causal_weights(1, 2, 7, g), 6),
    ]
    for what, w, period in cases:
        label = f"induction_score(weights, period={period}) on {what}"
        t = torch.arange(period, w.size(-1))
        _run_metric(induction_score, label, (w, period), _pick(w, t, t - period + 1),
                    _induction_mistakes(w, period), w.size(0), w.size(1))
    w32 = _causal_weights(2, 3, 8, g).float()
    t = torch.arange(4, 8)
    _float32_case(induction_score, "induction_score", (w32, 4), _pick(w32, t, t - 3))
    passed("induction_score", f"{len(cases) + 1} cases, periods 2 to 6, two copies and more")

"""Checkers for notebook 01 · Attention.

Ground truth comes from PyTorch itself: ``torch.softmax``,
``F.scaled_dot_product_attention`` (its attention weights are recovered by
attending over an identity matrix of values) and ``torch.tril``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

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

__all__ = ["check_softmax", "check_scaled_dot_product_attention", "check_causal_mask"]



# ---------------------------------------------------------------- softmax


def _softmax_mistakes(x: torch.Tensor, dim: int) -> dict:
    e = x.exp()
    shifted = (x - x.amax(dim, keepdim=True)).exp()
    other_dims = [d for d in range(x.dim()) if d != dim % x.dim()]
    mistakes = {}
    for other in other_dims:
        mistakes[f"you normalised over the wrong axis (dim={other}): the entries along dim={dim} "
                 "must sum to 1. Use `dim` in both the max and the sum."] = torch.softmax(x, dim=other)
    mistakes |= {
        "exp overflowed to inf (inf/inf = NaN). Softmax is unchanged by subtracting a "
        "constant from every entry, so subtract the maximum along `dim` before exp.":
            e / e.sum(dim, keepdim=True),
        "your values are exp(x) without dividing by their sum: the result must sum to 1 "
        "along `dim`.": [e, shifted],
        "you divided by the sum over the whole tensor; sum along `dim` only, with "
        "keepdim=True so it broadcasts back.": [e / e.sum(), shifted / shifted.sum()],
        "you subtracted the maximum of the whole tensor. That avoids overflow but a row far "
        "below the global maximum underflows to 0/0 = NaN: subtract each row's own maximum "
        "(x.amax(dim=dim, keepdim=True)).": (x - x.max()).exp() / (x - x.max()).exp().sum(dim, keepdim=True),
    }
    if dim % x.dim() != x.dim() - 1:
        mistakes["you normalised over the wrong axis (always the last one): use the `dim` "
                 "argument."] = torch.softmax(x, dim=-1)
    return mistakes


def check_softmax(softmax) -> None:
    """Check ``softmax(x, dim=-1)`` against ``torch.softmax``."""
    g = rng(0)
    cases = [
        ("random logits, shape (2, 3, 5), dim=-1", torch.randn(2, 3, 5, generator=g, dtype=torch.float64) * 3, -1),
        ("random logits, shape (4, 3, 5), dim=0", torch.randn(4, 3, 5, generator=g, dtype=torch.float64), 0),
        ("random logits, shape (4, 3, 5), dim=1", torch.randn(4, 3, 5, generator=g, dtype=torch.float64), 1),
        ("a single logit, shape (1,)", torch.tensor([2.5], dtype=torch.float64), -1),
        ("large logits [1000, 1001, 1002]", torch.tensor([[1000.0, 1001.0, 1002.0]], dtype=torch.float64), -1),
        ("rows on very different scales", torch.tensor([[1000.0, 1001.0], [-1000.0, -999.0]], dtype=torch.float64), -1),
        ("-inf entries (masked positions)", torch.tensor([[0.0, -math.inf, 1.0], [2.0, 2.0, -math.inf]], dtype=torch.float64), -1),
    ]
    for what, x, dim in cases:
        label = f"softmax(x, dim={dim}) on {what}"
        x_before = x.clone()
        got = expect_tensor(call(softmax, label, x, dim=dim), label)
        expect_unchanged(x_before, x, label, "its input x",
                         hint="write `x = x - ...` (a new tensor), not `x -= ...`: the caller still needs x.")
        expect_close(got, torch.softmax(x, dim=dim), label, atol=1e-10, rtol=1e-10,
                     mistakes=_softmax_mistakes(x, dim))

    x32 = torch.randn(3, 7, generator=g)
    label = "softmax(x) on float32 input"
    got = expect_tensor(call(softmax, label, x32), label)
    expect_dtype(got, torch.float32, label, hint="return the same dtype as the input; don't convert.")
    expect_close(got, torch.softmax(x32, dim=-1), label, atol=1e-6, rtol=1e-5)
    passed("softmax", f"{len(cases) + 1} cases, including large and -inf logits")


# ------------------------------------------- scaled dot-product attention


def _torch_attention(q, k, v, mask):
    """Output and weights from PyTorch's own kernel (the independent ground truth)."""
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    # Attending over identity "values" returns the attention weights themselves.
    eye = torch.eye(k.size(-2), dtype=q.dtype).expand(*k.shape[:-1], k.size(-2))
    weights = F.scaled_dot_product_attention(q, k, eye, attn_mask=mask)
    return out, weights


def _attention_mistakes(q, k, v, mask) -> tuple[dict, dict]:
    """What common mistakes would return, as (weights mistakes, output mistakes)."""
    d_k, d_v = q.size(-1), v.size(-1)
    raw = q @ k.transpose(-2, -1)

    def softmax_masked(scores, fill=-math.inf, invert=False, dim=-1):
        if mask is not None:
            scores = scores.masked_fill(mask if invert else ~mask, fill)
        return torch.softmax(scores, dim=dim)

    weights = {
        "you did not scale the scores: divide q·kᵀ by sqrt(d_k) before the softmax.": softmax_masked(raw),
        "you divided by d_k; divide by sqrt(d_k) (math.sqrt(q.size(-1))).": softmax_masked(raw / d_k),
        "softmax runs over the keys, dim=-1: each query's weights over the keys must sum "
        "to 1. You normalised over the queries (dim=-2).": softmax_masked(raw / math.sqrt(d_k), dim=-2),
    }
    if d_v != d_k:
        weights["you scaled by sqrt(d_v) (v's last dimension); the scale is sqrt(d_k), "
                "the size of the vectors in the dot product: q.size(-1)."] = softmax_masked(raw / math.sqrt(d_v))
    if mask is not None:
        scaled = raw / math.sqrt(d_k)
        unmasked = torch.softmax(scaled, dim=-1)
        weights.update({
            "True in the mask means 'may attend' (PyTorch's convention): fill -inf where the "
            "mask is False (scores.masked_fill(~mask, float('-inf'))), not where it is True.":
                softmax_masked(scaled, invert=True),
            "you applied the mask after the softmax, so the remaining weights no longer sum to 1. "
            "Mask the scores (set them to -inf) before the softmax.": unmasked * mask,
            "you ignored the mask: positions where it is False must get weight 0.": unmasked,
            "masked scores must become -inf (or a very large negative number), not 0: exp(0) = 1 "
            "still gives a masked key weight.": softmax_masked(scaled, fill=0.0),
        })
    outputs = {hint: w @ v for hint, w in weights.items()}
    return weights, outputs


def check_scaled_dot_product_attention(scaled_dot_product_attention) -> None:
    """Check ``scaled_dot_product_attention(q, k, v, mask=None) -> (output, weights)``
    against ``torch.nn.functional.scaled_dot_product_attention``."""
    g = rng(1)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    causal = torch.ones(5, 5, dtype=torch.bool).tril()
    padding = torch.ones(2, 1, 1, 6, dtype=torch.bool)
    padding[1, ..., 4:] = False  # the second sequence has 2 padding tokens at the end
    cases = [
        ("batch 2, 3 heads, seq_q=4, seq_k=6, d_k=8, d_v=5, no mask",
         randn(2, 3, 4, 8), randn(2, 3, 6, 8), randn(2, 3, 6, 5), None),
        ("batch 1, seq_q=1, seq_k=7, 3-D inputs, no mask",
         randn(1, 1, 8), randn(1, 7, 8), randn(1, 7, 3), None),
        ("seq 5, causal mask of shape (5, 5) broadcast over batch 2",
         randn(2, 5, 16), randn(2, 5, 16), randn(2, 5, 16), causal),
        ("padding mask of shape (2, 1, 1, 6): last 2 keys of the 2nd sequence are padding",
         randn(2, 2, 6, 4), randn(2, 2, 6, 4), randn(2, 2, 6, 7), padding),
    ]
    for what, q, k, v, mask in cases:
        label = f"scaled_dot_product_attention on {what}"
        result = call(scaled_dot_product_attention, label, q, k, v, mask=mask)
        exp_out, exp_w = _torch_attention(q, k, v, mask)
        if not (isinstance(result, tuple) and len(result) == 2):
            fail(label, "should return a tuple (output, weights).", got=describe(result))
        out, w = (expect_tensor(t, label) for t in result)
        if tuple(out.shape) == tuple(exp_w.shape) and tuple(w.shape) == tuple(exp_out.shape) \
                and exp_w.shape != exp_out.shape:
            fail(label, "returned (weights, output); return (output, weights) in that order.")
        w_mistakes, out_mistakes = _attention_mistakes(q, k, v, mask)
        expect_shape(w, exp_w.shape, label + " (weights)",
                     hint="weights are (..., seq_q, seq_k): one row per query, one column per key.")
        expect_close(w, exp_w, label + " (weights)", atol=1e-10, rtol=1e-8, mistakes=w_mistakes)
        expect_shape(out, exp_out.shape, label + " (output)",
                     hint="output is weights @ v: (..., seq_q, d_v).")
        expect_close(out, exp_out, label + " (output)", atol=1e-10, rtol=1e-8, mistakes=out_mistakes,
                     hint="the weights are right; the output is weights @ v.")

    q, k, v = (torch.randn(2, 3, 4, generator=g) for _ in range(3))
    label = "scaled_dot_product_attention on float32 inputs"
    out, w = call(scaled_dot_product_attention, label, q, k, v)
    expect_dtype(out, torch.float32, label + " (output)")
    exp_out, _ = _torch_attention(q, k, v, None)
    expect_close(out, exp_out, label + " (output)", atol=1e-5, rtol=1e-5)
    passed("scaled_dot_product_attention",
           f"{len(cases) + 1} cases vs torch's F.scaled_dot_product_attention, with causal and padding masks")


# ------------------------------------------------------------ causal mask


def _grid(mask: torch.Tensor) -> str:
    rows = [" ".join(str(int(b)) for b in row) for row in mask.tolist()]
    return "\n" + "\n".join("            " + r for r in rows)


def check_causal_mask(causal_mask) -> None:
    """Check ``causal_mask(seq_len)`` against ``torch.tril``."""
    for n in (4, 1, 2, 7):  # 4 first: at n=1 several mistakes look alike
        label = f"causal_mask({n})"
        got = expect_tensor(call(causal_mask, label, n), label)
        expect_shape(got, (n, n), label, hint="the mask is (seq_len, seq_len): queries on rows, keys on columns.")
        expected = torch.ones(n, n, dtype=torch.bool).tril()
        if got.dtype != torch.bool:
            looks_additive = got.is_floating_point() and torch.isinf(got).any()
            fail(label, "should return a boolean mask.", expected="dtype torch.bool",
                 got=f"dtype {got.dtype}",
                 hint=("this looks like an additive float mask (0 and -inf). The course, like "
                       "PyTorch's F.scaled_dot_product_attention, uses a boolean mask where True "
                       "means 'may attend'." if looks_additive else
                       "build it with dtype=torch.bool (or call .bool()): True means 'may attend'."))
        if torch.equal(got, expected):
            continue
        ones = torch.ones(n, n, dtype=torch.bool)
        mistakes = {
            "your mask is upside down: query i may attend to keys j ≤ i (itself and the past), "
            "which is the lower triangle (torch.tril), not the upper.": ones.triu(),
            "the diagonal must be True: every position may attend to itself.": ones.tril(-1),
            "your mask is inverted: True marks the keys a query MAY attend to (the past and "
            "itself), not the ones it must not see.": ones.triu(1),
        }
        hint = next((h for h, wrong in mistakes.items() if torch.equal(got, wrong)), None)
        fail(label, "has the wrong True/False pattern (1 = True = may attend; rows are queries).",
             expected=_grid(expected), got=_grid(got), hint=hint)
    passed("causal_mask", "4 sizes from 1 to 7")

"""Every notebook-01 checker accepts the reference and rejects plausible mistakes.

Each wrong implementation below is a mistake learners really make; the test
asserts the checker rejects it AND that its message points at that mistake.
"""

from __future__ import annotations

import math

import torch

from utils import checks, reference

from checker_harness import checker_tests

# ----------------------------------------------------------------- softmax


def softmax_no_max_subtraction(x, dim=-1):  # overflows on large logits
    e = x.exp()
    return e / e.sum(dim, keepdim=True)


def softmax_over_dim0(x, dim=-1):  # hard-codes the wrong axis
    x = x - x.amax(0, keepdim=True)
    return x.exp() / x.exp().sum(0, keepdim=True)


def softmax_ignores_dim(x, dim=-1):  # always the last axis
    x = x - x.amax(-1, keepdim=True)
    return x.exp() / x.exp().sum(-1, keepdim=True)


def softmax_global_sum(x, dim=-1):  # normalises over the whole tensor
    e = (x - x.amax(dim, keepdim=True)).exp()
    return e / e.sum()


def softmax_not_normalised(x, dim=-1):  # forgets the denominator
    return (x - x.amax(dim, keepdim=True)).exp()


def softmax_global_max(x, dim=-1):  # subtracts the max of the whole tensor
    e = (x - x.max()).exp()
    return e / e.sum(dim, keepdim=True)


def softmax_in_place(x, dim=-1):  # modifies the caller's tensor
    x -= x.amax(dim, keepdim=True)
    e = x.exp()
    return e / e.sum(dim, keepdim=True)


def softmax_no_keepdim(x, dim=-1):  # broadcasting error without keepdim
    e = (x - x.amax(dim)).exp()
    return e / e.sum(dim)


def softmax_upcasts(x, dim=-1):  # returns float64 for float32 input
    return torch.softmax(x.double(), dim)


SOFTMAX_MISTAKES = [
    (softmax_no_max_subtraction, "subtract the maximum"),
    (softmax_over_dim0, "wrong axis"),
    (softmax_ignores_dim, "wrong axis"),
    (softmax_global_sum, "sum along `dim` only"),
    (softmax_not_normalised, "without dividing by their sum"),
    (softmax_global_max, "each row's own maximum"),
    (softmax_in_place, "in place"),
    (softmax_no_keepdim, "raised RuntimeError"),
    (softmax_upcasts, "dtype"),
]

# ------------------------------------------- scaled dot-product attention


def _attention(q, k, v, mask=None, *, scale=None, dim=-1, fill=-math.inf, invert=False,
               mask_after=False, swap=False):
    """The reference with one knob turned: each wrong implementation below sets one."""
    scale = math.sqrt(q.size(-1)) if scale is None else scale
    scores = q @ k.transpose(-2, -1) / scale
    if mask is not None and not mask_after:
        scores = scores.masked_fill(mask if invert else ~mask, fill)
    w = torch.softmax(scores, dim=dim)
    if mask is not None and mask_after:
        w = w * mask
    return (w, w @ v) if swap else (w @ v, w)


def attention_no_scale(q, k, v, mask=None):
    return _attention(q, k, v, mask, scale=1.0)


def attention_scale_by_d_k(q, k, v, mask=None):
    return _attention(q, k, v, mask, scale=q.size(-1))


def attention_scale_by_d_v(q, k, v, mask=None):
    return _attention(q, k, v, mask, scale=math.sqrt(v.size(-1)))


def attention_softmax_over_queries(q, k, v, mask=None):
    return _attention(q, k, v, mask, dim=-2)


def attention_mask_inverted(q, k, v, mask=None):
    return _attention(q, k, v, mask, invert=True)


def attention_mask_after_softmax(q, k, v, mask=None):
    return _attention(q, k, v, mask, mask_after=True)


def attention_mask_ignored(q, k, v, mask=None):
    return _attention(q, k, v, None)


def attention_mask_fill_zero(q, k, v, mask=None):
    return _attention(q, k, v, mask, fill=0.0)


def attention_returns_swapped(q, k, v, mask=None):
    return _attention(q, k, v, mask, swap=True)


def attention_k_not_transposed(q, k, v, mask=None):
    w = torch.softmax(q @ k / math.sqrt(q.size(-1)), dim=-1)
    return w @ v, w


ATTENTION_MISTAKES = [
    (attention_no_scale, "did not scale"),
    (attention_scale_by_d_k, "divided by d_k"),
    (attention_scale_by_d_v, "sqrt(d_v)"),
    (attention_softmax_over_queries, "normalised over the queries"),
    (attention_mask_inverted, "True in the mask means 'may attend'"),
    (attention_mask_after_softmax, "after the softmax"),
    (attention_mask_ignored, "ignored the mask"),
    (attention_mask_fill_zero, "not 0"),
    (attention_returns_swapped, "(output, weights) in that order"),
    (attention_k_not_transposed, "raised RuntimeError"),
]

# ------------------------------------------------------------ causal mask

CAUSAL_MISTAKES = [
    (lambda n: torch.ones(n, n, dtype=torch.bool).triu(), "upside down"),  # upper triangle
    (lambda n: torch.ones(n, n, dtype=torch.bool).tril(-1), "diagonal must be True"),  # no self
    (lambda n: torch.ones(n, n, dtype=torch.bool).triu(1), "inverted"),  # marks the future
    (lambda n: torch.ones(n, n).tril(), "dtype=torch.bool"),  # float 0/1
    (lambda n: torch.zeros(n, n).masked_fill(torch.ones(n, n).triu(1).bool(), -math.inf),
     "additive float mask"),  # additive mask
    (lambda n: torch.ones(1, n, n, dtype=torch.bool).tril(), "wrong shape"),  # extra batch dim
    (lambda n: torch.ones(n, n, dtype=torch.bool).tril().tolist(), "torch.Tensor"),  # a list
]

REFERENCES = [
    (checks.check_softmax, reference.softmax),
    (checks.check_scaled_dot_product_attention, reference.scaled_dot_product_attention),
    (checks.check_causal_mask, reference.causal_mask),
]

CASES = (
    [(checks.check_softmax, fn, hint) for fn, hint in SOFTMAX_MISTAKES]
    + [(checks.check_scaled_dot_product_attention, fn, hint) for fn, hint in ATTENTION_MISTAKES]
    + [(checks.check_causal_mask, fn, hint) for fn, hint in CAUSAL_MISTAKES]
)

(test_checker_accepts_reference,
 test_checker_rejects_mistake_with_targeted_message,
 test_every_checker_has_at_least_four_mistakes,
 test_checker_passes_not_implemented_through,
 test_checker_leaves_the_global_random_stream_alone) = checker_tests(REFERENCES, CASES)

"""Every notebook-10 checker accepts the reference and rejects plausible mistakes.

Each wrong implementation below is a mistake learners really make; the test
asserts the checker rejects it AND that its message points at that mistake.
Most are the reference with one thing changed.
"""

from __future__ import annotations

import math

import torch

from utils import checks, reference

from checker_harness import checker_tests

# ------------------------------------------------------ attention weights from c_attn's output


def _weights(qkv, n_head, *, scale="hs", mask="causal", dim=-1, swap=False, key="k", split="heads"):
    """The reference with one knob turned: each wrong implementation below sets one."""
    B, T, three_c = qkv.shape
    C = three_c // 3
    hs = C // n_head
    q, k, v = qkv.split(C, dim=2)
    k = v if key == "v" else k
    if split == "heads":
        q, k = (t.view(B, T, n_head, hs).transpose(1, 2) for t in (q, k))
    elif split == "interleaved":
        q, k = (t.reshape(B, T, hs, n_head).permute(0, 3, 1, 2) for t in (q, k))
    else:  # "no transpose"
        q, k = (t.reshape(B, n_head, T, hs) for t in (q, k))
    s = k @ q.transpose(-2, -1) if swap else q @ k.transpose(-2, -1)
    s = s / {"hs": math.sqrt(hs), "C": math.sqrt(C), "none": 1.0}[scale]
    allowed = torch.ones(T, T, dtype=torch.bool).tril()
    if mask == "causal":
        s = s.masked_fill(~allowed, float("-inf"))
    elif mask == "upper":
        s = s.masked_fill(~allowed.T, float("-inf"))
    return s.softmax(dim=dim)


def weights_no_scale(qkv, n_head):
    return _weights(qkv, n_head, scale="none")


def weights_scaled_by_model_width(qkv, n_head):  # sqrt(C) instead of sqrt(hs)
    return _weights(qkv, n_head, scale="C")


def weights_no_causal_mask(qkv, n_head):
    return _weights(qkv, n_head, mask="none")


def weights_upper_triangle_mask(qkv, n_head):  # triu instead of tril
    return _weights(qkv, n_head, mask="upper")


def weights_softmax_over_queries(qkv, n_head):
    return _weights(qkv, n_head, dim=-2)


def weights_k_times_q(qkv, n_head):  # k @ qᵀ: the transpose of the scores
    return _weights(qkv, n_head, swap=True)


def weights_v_as_keys(qkv, n_head):  # took the third chunk for k
    return _weights(qkv, n_head, key="v")


def weights_heads_interleaved(qkv, n_head):  # view(B, T, hs, n_head): heads strided across channels
    return _weights(qkv, n_head, split="interleaved")


def weights_heads_without_transpose(qkv, n_head):  # view(B, n_head, T, hs) straight away
    return _weights(qkv, n_head, split="no transpose")


def weights_averaged_over_heads(qkv, n_head):  # what nn.MultiheadAttention returns by default
    return _weights(qkv, n_head).mean(dim=1)


def weights_float64(qkv, n_head):  # upcasts float32 input
    return _weights(qkv.double(), n_head)


QKV_MISTAKES = [
    (weights_no_scale, "did not scale"),
    (weights_scaled_by_model_width, "sqrt(C), the model width"),
    (weights_no_causal_mask, "no causal mask"),
    (weights_upper_triangle_mask, "upside down"),
    (weights_softmax_over_queries, "normalised over the queries"),
    (weights_k_times_q, "you computed k @ qᵀ"),
    (weights_v_as_keys, "You used v where k belongs"),
    (weights_heads_interleaved, "heads are split wrongly"),
    (weights_heads_without_transpose, "heads are split wrongly"),
    (weights_averaged_over_heads, "one (T, T) matrix per example and head"),
    (weights_float64, "dtype"),
]

# ---------------------------------------------------------------------------- attention_entropy


def entropy_nan_at_zeros(weights):  # 0 * log(0) = nan
    return -(weights * weights.log()).sum(-1).mean(dim=(0, 2))


def entropy_in_bits(weights):
    return -(weights * weights.clamp_min(1e-300).log2()).sum(-1).mean(dim=(0, 2))


def entropy_over_queries(weights):  # sums over dim -2
    return torch.special.entr(weights).sum(-2).mean(dim=(0, 2))


def entropy_mean_over_keys(weights):  # averages -p log p instead of summing it
    return torch.special.entr(weights).mean(-1).mean(dim=(0, 2))


def entropy_sign_flipped(weights):
    return (weights * weights.clamp_min(1e-300).log()).sum(-1).mean(dim=(0, 2))


def entropy_per_example(weights):  # forgets to average over the batch
    return torch.special.entr(weights).sum(-1).mean(dim=-1)


def entropy_one_number(weights):  # averages over the heads as well
    return torch.special.entr(weights).sum(-1).mean()


def entropy_clamps_in_place(weights):  # clamp_ writes into the caller's weights
    return torch.special.entr(weights.clamp_(min=1e-300)).sum(-1).mean(dim=(0, 2))


ENTROPY_MISTAKES = [
    (entropy_nan_at_zeros, "0·log 0 must count as 0"),
    (entropy_in_bits, "in nats"),
    (entropy_over_queries, "you summed over the queries"),
    (entropy_mean_over_keys, "entropy sums over them"),
    (entropy_sign_flipped, "the sign is wrong"),
    (entropy_per_example, "average over the batch as well"),
    (entropy_one_number, "not the heads"),
    (entropy_clamps_in_place, "changed its input weights in place"),
]

# ------------------------------------------------------------------------- previous_token_score


def previous_reads_diagonal(weights):  # self-attention, offset 0
    return weights.diagonal(dim1=-2, dim2=-1).mean(dim=(0, -1))


def previous_reads_future(weights):  # offset +1
    return weights.diagonal(offset=1, dim1=-2, dim2=-1).mean(dim=(0, -1))


def previous_divides_by_t(weights):  # counts query 0 as a zero
    return weights.diagonal(offset=-1, dim1=-2, dim2=-1).sum(dim=(0, -1)) / (weights.size(0) * weights.size(-1))


def previous_argmax_fraction(weights):  # how often the previous token gets the largest weight
    T = weights.size(-1)
    return (weights[:, :, 1:].argmax(-1) == torch.arange(T - 1)).to(weights.dtype).mean(dim=(0, 2))


def previous_per_example(weights):
    return weights.diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=-1)


def previous_list(weights):  # a Python list of floats
    return weights.diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=(0, -1)).tolist()


PREVIOUS_MISTAKES = [
    (previous_reads_diagonal, "you read the diagonal"),
    (previous_reads_future, "you read above the diagonal"),
    (previous_divides_by_t, "query 0 has no previous token"),
    (previous_argmax_fraction, "not the fraction of queries"),
    (previous_per_example, "average over the batch as well"),
    (previous_list, "torch.Tensor"),
]

# ------------------------------------------------------------------------------ induction_score


def _stripe(weights, offset, first=0):
    return weights.diagonal(offset=offset, dim1=-2, dim2=-1)[..., first:].mean(dim=(0, -1))


def induction_duplicate_token(weights, period):  # key t - period: the earlier copy itself
    return _stripe(weights, -period)


def induction_includes_first_copy(weights, period):  # keeps query period - 1
    return _stripe(weights, 1 - period)


def induction_previous_token(weights, period):  # ignores the period
    return _stripe(weights, -1, first=period - 1)


def induction_divides_by_t(weights, period):
    stripe = weights.diagonal(offset=1 - period, dim1=-2, dim2=-1)[..., 1:]
    return stripe.sum(dim=(0, -1)) / (weights.size(0) * weights.size(-1))


def induction_offset_sign(weights, period):  # period - 1 above the diagonal: the future
    return _stripe(weights, period - 1)


def induction_one_number(weights, period):  # averages the heads too
    return _stripe(weights, 1 - period, first=1).mean()


INDUCTION_MISTAKES = [
    (induction_duplicate_token, "duplicate-token head"),
    (induction_includes_first_copy, "belongs to the first copy"),
    (induction_previous_token, "you read the previous token"),
    (induction_divides_by_t, "averaged over all T queries"),
    (induction_offset_sign, "the key is in the past"),
    (induction_one_number, "not the heads"),
]

REFERENCES = [
    (checks.check_attention_weights_from_qkv, reference.attention_weights_from_qkv),
    (checks.check_attention_entropy, reference.attention_entropy),
    (checks.check_previous_token_score, reference.previous_token_score),
    (checks.check_induction_score, reference.induction_score),
]

CASES = (
    [(checks.check_attention_weights_from_qkv, fn, hint) for fn, hint in QKV_MISTAKES]
    + [(checks.check_attention_entropy, fn, hint) for fn, hint in ENTROPY_MISTAKES]
    + [(checks.check_previous_token_score, fn, hint) for fn, hint in PREVIOUS_MISTAKES]
    + [(checks.check_induction_score, fn, hint) for fn, hint in INDUCTION_MISTAKES]
)

(test_checker_accepts_reference,
 test_checker_rejects_mistake_with_targeted_message,
 test_every_checker_has_at_least_four_mistakes,
 test_checker_passes_not_implemented_through,
 test_checker_leaves_the_global_random_stream_alone) = checker_tests(REFERENCES, CASES)

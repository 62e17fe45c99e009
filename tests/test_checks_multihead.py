"""Every notebook-02 checker accepts the reference and rejects plausible mistakes.

Each wrong implementation below is a mistake learners really make; the test
asserts the checker rejects it AND that its message points at that mistake.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from utils import checks, reference

from checker_harness import checker_tests

# ----------------------------------------------------------------- split_heads


def split_reshape_without_transpose(x, n_heads):  # cuts the flat memory into heads
    b, t, d = x.shape
    return x.reshape(b, n_heads, t, d // n_heads)


def split_wrong_head_order(x, n_heads):  # head i gets every n_heads-th feature
    b, t, d = x.shape
    return x.reshape(b, t, d // n_heads, n_heads).permute(0, 3, 1, 2)


def split_forgets_transpose(x, n_heads):  # returns (batch, seq, heads, d_head)
    b, t, d = x.shape
    return x.view(b, t, n_heads, d // n_heads)


def split_no_divisibility_check(x, n_heads):  # silently makes a different number of heads
    b, t, d = x.shape
    return x.view(b, t, -1, d // n_heads).transpose(1, 2)


def split_lets_view_fail(x, n_heads):  # the error comes from deep inside view
    b, t, d = x.shape
    return x.view(b, t, n_heads, -1).transpose(1, 2)


def split_asserts(x, n_heads):  # assert instead of ValueError
    b, t, d = x.shape
    assert d % n_heads == 0
    return x.view(b, t, n_heads, d // n_heads).transpose(1, 2)


def split_empty_value_error(x, n_heads):  # raises, but says nothing
    b, t, d = x.shape
    if d % n_heads:
        raise ValueError()
    return x.view(b, t, n_heads, d // n_heads).transpose(1, 2)


SPLIT_MISTAKES = [
    (split_reshape_without_transpose, "cuts the flat memory"),
    (split_wrong_head_order, "wrong order"),
    (split_forgets_transpose, "heads axis must come second"),
    (split_no_divisibility_check, "should raise ValueError"),
    (split_lets_view_fail, "check `d_model % n_heads != 0` yourself"),
    (split_asserts, "raise ValueError(...)"),
    (split_empty_value_error, "without a message"),
]

# ----------------------------------------------------------------- merge_heads


def merge_without_transpose(x):  # heads axis never moved back
    b, h, t, dh = x.shape
    return x.reshape(b, t, h * dh)


def merge_view_not_contiguous(x):  # .view after transpose fails
    b, h, t, dh = x.shape
    return x.transpose(1, 2).view(b, t, h * dh)


def merge_wrong_head_order(x):  # interleaves the heads' features
    b, h, t, dh = x.shape
    return x.permute(0, 2, 3, 1).reshape(b, t, h * dh)


def merge_forgets_flatten(x):  # stops at (batch, seq, heads, d_head)
    return x.transpose(1, 2)


def merge_upcasts(x):  # changes the dtype
    return reference.merge_heads(x).float()


MERGE_MISTAKES = [
    (merge_without_transpose, "without moving the heads axis back"),
    (merge_view_not_contiguous, "contiguous"),
    (merge_wrong_head_order, "wrong order"),
    (merge_forgets_flatten, "flatten (n_heads, d_head)"),
    (merge_upcasts, "dtype"),
]

# ----------------------------------------------------------- MultiHeadAttention


class _MHA(nn.Module):
    """The reference with one knob turned: each wrong class below sets one."""

    split = "ok"  # "ok", "no_transpose", "interleaved"
    merge = "ok"  # "ok", "no_transpose"
    scale = "d_head"  # "d_head", "d_model"
    out_proj_used = True
    shared = False  # q_proj for q, k and v
    invert_mask = ignore_mask = always_causal = False
    average_weights = swap = False

    def __init__(self, d_model, n_heads, bias=True):
        super().__init__()
        self.n_heads, self.d_head = n_heads, d_model // n_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def _split(self, y):
        b, t, d = y.shape
        if self.split == "no_transpose":
            return y.reshape(b, self.n_heads, t, self.d_head)
        if self.split == "interleaved":
            return y.reshape(b, t, self.d_head, self.n_heads).permute(0, 3, 1, 2)
        return reference.split_heads(y, self.n_heads)

    def forward(self, x, mask=None):
        b, t, d = x.shape
        projs = (self.q_proj,) * 3 if self.shared else (self.q_proj, self.k_proj, self.v_proj)
        q, k, v = (self._split(p(x)) for p in projs)
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_head if self.scale == "d_head" else d)
        if self.always_causal and mask is None:
            mask = torch.ones(t, t, dtype=torch.bool).tril()
        if mask is not None and not self.ignore_mask:
            scores = scores.masked_fill(mask if self.invert_mask else ~mask, float("-inf"))
        w = torch.softmax(scores, dim=-1)
        out = w @ v
        if self.merge == "no_transpose":
            out = out.reshape(b, t, d)
        elif self.split == "interleaved":
            out = out.permute(0, 2, 3, 1).reshape(b, t, d)
        else:
            out = reference.merge_heads(out)
        if self.out_proj_used:
            out = self.out_proj(out)
        if self.average_weights:
            w = w.mean(dim=1)
        return (w, out) if self.swap else (out, w)


class _WrongMHA(_MHA):
    pass


class MHASplitWithoutTranspose(_WrongMHA):  # reshape straight to (b, h, t, dh)
    split = "no_transpose"


class MHAInterleavedHeads(_WrongMHA):  # features split as (d_head, n_heads)
    split = "interleaved"


class MHANoOutputProjection(_WrongMHA):  # forgets out_proj
    out_proj_used = False


class MHAScaleByDModel(_WrongMHA):  # sqrt(d_model) instead of sqrt(d_head)
    scale = "d_model"


class MHAMergeWithoutTranspose(_WrongMHA):  # merge by reshape, no transpose back
    merge = "no_transpose"


class MHAInvertedMask(_WrongMHA):  # nn.MultiheadAttention's convention
    invert_mask = True


class MHAIgnoresMask(_WrongMHA):  # never passes the mask on
    ignore_mask = True


class MHAAlwaysCausal(_WrongMHA):  # hard-codes a causal mask
    always_causal = True


class MHAAveragedWeights(_WrongMHA):  # returns head-averaged weights (nn.MultiheadAttention's default)
    average_weights = True


class MHASharedProjection(_WrongMHA):  # q_proj used for q, k and v
    shared = True


class MHAReturnsSwapped(_WrongMHA):  # (weights, output)
    swap = True


class MHAOneLayerForQKV(_MHA):  # the same nn.Linear object three times
    def __init__(self, d_model, n_heads, bias=True):
        super().__init__(d_model, n_heads, bias)
        self.k_proj = self.v_proj = self.q_proj


class MHAIgnoresBiasFlag(_MHA):  # always has biases
    def __init__(self, d_model, n_heads, bias=True):
        super().__init__(d_model, n_heads, bias=True)


class MHAOtherNames(nn.Module):  # its own attribute names
    def __init__(self, d_model, n_heads, bias=True):
        super().__init__()
        self.n_heads, self.d_head = n_heads, d_model // n_heads
        self.query = nn.Linear(d_model, d_model, bias=bias)


class MHAExtraParameters(_MHA):  # a stray learnable scale
    def __init__(self, d_model, n_heads, bias=True):
        super().__init__(d_model, n_heads, bias)
        self.temperature = nn.Parameter(torch.ones(1))


class MHANoHeadAttributes(_MHA):  # forgets self.d_head
    def __init__(self, d_model, n_heads, bias=True):
        super().__init__(d_model, n_heads, bias)
        del self.d_head


MHA_MISTAKES = [
    (MHASplitWithoutTranspose, "heads are split wrongly"),
    (MHAInterleavedHeads, "split in the wrong order"),
    (MHANoOutputProjection, "output projection"),
    (MHAScaleByDModel, "sqrt(d_model)"),
    (MHAMergeWithoutTranspose, "merged wrongly"),
    (MHAInvertedMask, "True in the mask means 'may attend'"),
    (MHAIgnoresMask, "ignored the mask"),
    (MHAAlwaysCausal, "although none was given"),
    (MHAAveragedWeights, "averaged over the heads"),
    (MHASharedProjection, "same projection is used"),
    (MHAReturnsSwapped, "(output, weights) in that order"),
    (MHAOneLayerForQKV, "not three separate layers"),
    (MHAIgnoresBiasFlag, "bias=bias"),
    (MHAOtherNames, "exact names"),
    (MHAExtraParameters, "wrong number of parameters"),
    (MHANoHeadAttributes, "self.n_heads and self.d_head"),
]

REFERENCES = [
    (checks.check_split_heads, reference.split_heads),
    (checks.check_merge_heads, reference.merge_heads),
    (checks.check_MultiHeadAttention, reference.MultiHeadAttention),
]

CASES = (
    [(checks.check_split_heads, fn, hint) for fn, hint in SPLIT_MISTAKES]
    + [(checks.check_merge_heads, fn, hint) for fn, hint in MERGE_MISTAKES]
    + [(checks.check_MultiHeadAttention, fn, hint) for fn, hint in MHA_MISTAKES]
)

(test_checker_accepts_reference,
 test_checker_rejects_mistake_with_targeted_message,
 test_every_checker_has_at_least_four_mistakes,
 test_checker_passes_not_implemented_through,
 test_checker_leaves_the_global_random_stream_alone) = checker_tests(REFERENCES, CASES)


def test_the_knob_base_class_is_itself_correct():
    # Otherwise a "wrong" class could fail for a reason other than its one mistake.
    checks.check_MultiHeadAttention(_MHA)

"""Checkers for notebook 02 · Multi-head attention.

Ground truth:

* ``split_heads`` / ``merge_heads``: the definition itself, written with
  slicing and no reshapes at all. Head ``i`` owns the features
  ``i * d_head`` to ``(i + 1) * d_head - 1`` of every token, so head ``i`` is
  ``x[..., i * d_head:(i + 1) * d_head]`` and merging is ``torch.cat`` of the
  heads along the features.
* ``MultiHeadAttention``: ``torch.nn.MultiheadAttention`` with the learner's
  weights copied in (``in_proj_weight`` is the three projections stacked,
  q first) and the mask inverted (there, True means *not* allowed).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from utils.checks._core import (
    build_module,
    call,
    describe,
    expect_close,
    expect_dtype,
    expect_shape,
    expect_tensor,
    fail,
    passed,
    rng,
)

__all__ = ["check_split_heads", "check_merge_heads", "check_MultiHeadAttention"]



def _split_truth(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """(batch, seq, d_model) -> (batch, heads, seq, d_head), by slicing the features."""
    d_head = x.size(-1) // n_heads
    return torch.stack([x[..., i * d_head:(i + 1) * d_head] for i in range(n_heads)], dim=1)


def _merge_truth(x: torch.Tensor) -> torch.Tensor:
    """(batch, heads, seq, d_head) -> (batch, seq, heads * d_head): the heads side by side."""
    return torch.cat([x[:, i] for i in range(x.size(1))], dim=-1)


# Mistakes that show up as an exception rather than as wrong numbers.
_VIEW_HINT = ("`.view` needs a tensor that is contiguous in memory, and after `transpose` it is "
              "not. Use `.reshape(...)` (it copies when it must) or `.contiguous().view(...)`.")


def _call(fn, label, *args, **kwargs):
    """``call`` that recognises a `.view` on a non-contiguous tensor and says so."""
    try:
        return call(fn, label, *args, **kwargs)
    except AssertionError as e:
        if "view size is not compatible" in str(e):
            fail(label, "raised RuntimeError: view size is not compatible with input tensor's size "
                        "and stride.", hint=_VIEW_HINT)
        raise


# ------------------------------------------------------------ split_heads


def _split_mistakes(x: torch.Tensor, n_heads: int) -> dict:
    b, t, d = x.shape
    d_head = d // n_heads
    return {
        "you reshaped straight to (batch, n_heads, seq, d_head), which cuts the flat memory of "
        "the whole sequence into pieces, so one head gets features from several tokens. Split "
        "the last axis into (n_heads, d_head) first, then swap the seq and heads axes.":
            x.reshape(b, n_heads, t, d_head),
        "the heads are in the wrong order: you split the features as (d_head, n_heads), so head i "
        "gets every n_heads-th feature. Head i must own the contiguous block of features "
        "i*d_head to (i+1)*d_head - 1: split the last axis as (n_heads, d_head).":
            x.reshape(b, t, d_head, n_heads).permute(0, 3, 1, 2),
    }


def check_split_heads(split_heads) -> None:
    """Check ``split_heads(x, n_heads)`` against slicing the features into blocks."""
    g = rng(20)
    cases = [
        ("batch 2, seq 5, d_model 12, n_heads 3", (2, 5, 12), 3),
        ("batch 1, seq 1, d_model 8, n_heads 2", (1, 1, 8), 2),
        ("batch 3, seq 4, d_model 6, n_heads 6 (d_head 1)", (3, 4, 6), 6),
        ("batch 2, seq 3, d_model 8, n_heads 1", (2, 3, 8), 1),
    ]
    for what, shape, n_heads in cases:
        label = f"split_heads(x, {n_heads}) on {what}"
        x = torch.randn(*shape, generator=g, dtype=torch.float64)
        got = expect_tensor(_call(split_heads, label, x.clone(), n_heads), label)
        expected = _split_truth(x, n_heads)
        b, t, d = shape
        if n_heads > 1 and t > 1 and tuple(got.shape) == (b, t, n_heads, d // n_heads):
            fail(label, "returned the wrong shape.", expected=str(tuple(expected.shape)),
                 got=str(tuple(got.shape)),
                 hint="that is (batch, seq, n_heads, d_head): the heads axis must come second, "
                      "so also swap the seq and heads axes (transpose(1, 2)).")
        expect_shape(got, expected.shape, label,
                     hint="the result is (batch, n_heads, seq, d_head) with d_head = d_model // n_heads.")
        expect_dtype(got, x.dtype, label, hint="keep the dtype of x.")
        expect_close(got, expected, label, atol=0.0, mistakes=_split_mistakes(x, n_heads))

    # d_model not divisible by n_heads must be refused, clearly.
    for d_model, n_heads in ((10, 4), (8, 3)):
        label = f"split_heads(x, {n_heads}) with d_model={d_model}"
        x = torch.randn(2, 3, d_model, generator=g, dtype=torch.float64)
        try:
            got = split_heads(x, n_heads)
        except NotImplementedError:
            raise
        except AssertionError:
            fail(label, "raised AssertionError.", expected="ValueError saying d_model is not divisible by n_heads",
                 hint="`assert` is for bugs and can be switched off; for a bad argument, "
                      "raise ValueError(...) with a clear message.")
        except ValueError as e:
            if not str(e).strip():
                fail(label, "raised ValueError without a message.",
                     hint="say what is wrong, e.g. f'd_model={d_model} is not divisible by n_heads={n_heads}'.")
            continue
        except Exception as e:  # noqa: BLE001
            fail(label, f"raised {type(e).__name__} ({str(e).splitlines()[0] if str(e) else ''}).",
                 expected="ValueError saying d_model is not divisible by n_heads",
                 hint="check `d_model % n_heads != 0` yourself first and raise ValueError with a clear "
                      "message; a reshape error deep inside is hard to read.")
        fail(label, f"should raise ValueError: {d_model} features cannot be split evenly into "
             f"{n_heads} heads.", got=describe(got),
             hint="check `d_model % n_heads != 0` first and raise ValueError(...).")
    passed("split_heads", f"{len(cases)} shapes against slicing the features per head, "
                          "and a ValueError when d_model % n_heads != 0")


# ------------------------------------------------------------ merge_heads


def _merge_mistakes(x: torch.Tensor) -> dict:
    b, h, t, d_head = x.shape
    return {
        "you reshaped straight to (batch, seq, d_model) without moving the heads axis back, so "
        "each output token gets features from several tokens. Swap the heads and seq axes "
        "back first (transpose(1, 2)), then reshape.": x.reshape(b, t, h * d_head),
        "the heads are in the wrong order: you put the d_head axis before the heads axis, so "
        "the heads' features are interleaved. The result must be head 0's d_head features, "
        "then head 1's, and so on: (batch, seq, n_heads, d_head) -> (batch, seq, d_model).":
            x.permute(0, 2, 3, 1).reshape(b, t, h * d_head),
    }


def check_merge_heads(merge_heads) -> None:
    """Check ``merge_heads(x)`` against concatenating the heads along the features."""
    g = rng(21)
    cases = [
        # As weights @ v returns it: contiguous, so a transpose makes it non-contiguous.
        ("batch 2, 3 heads, seq 5, d_head 4", torch.randn(2, 3, 5, 4, generator=g, dtype=torch.float64)),
        # As split_heads returns it: already a transposed view.
        ("batch 2, 4 heads, seq 3, d_head 2, a non-contiguous view",
         torch.randn(2, 3, 4, 2, generator=g, dtype=torch.float64).transpose(1, 2)),
        ("batch 1, 2 heads, seq 1, d_head 4", torch.randn(1, 2, 1, 4, generator=g, dtype=torch.float64)),
        ("batch 2, 1 head, seq 4, d_head 6", torch.randn(2, 1, 4, 6, generator=g, dtype=torch.float64)),
    ]
    for what, x in cases:
        label = f"merge_heads(x) on {what}"
        got = expect_tensor(_call(merge_heads, label, x), label)
        expected = _merge_truth(x)
        b, h, t, d_head = x.shape
        if h > 1 and tuple(got.shape) == (b, t, h, d_head):
            fail(label, "returned the wrong shape.", expected=str(tuple(expected.shape)),
                 got=str(tuple(got.shape)),
                 hint="after moving the heads axis back, also flatten (n_heads, d_head) into d_model.")
        expect_shape(got, expected.shape, label,
                     hint="the result is (batch, seq, n_heads * d_head).")
        expect_dtype(got, x.dtype, label, hint="keep the dtype of x.")
        expect_close(got, expected, label, atol=0.0, mistakes=_merge_mistakes(x))
    passed("merge_heads", f"{len(cases)} shapes against concatenating the heads, "
                          "including a non-contiguous input")


# ------------------------------------------------------------ MultiHeadAttention


def _weights(d_model: int, bias: bool, g: torch.Generator) -> dict:
    """Random float64 weights for the four projections (nn.Linear layout: (out, in))."""
    w = {}
    for name in ("q", "k", "v", "o"):
        w[name] = torch.randn(d_model, d_model, generator=g, dtype=torch.float64) / math.sqrt(d_model)
        w[name + "_b"] = (torch.randn(d_model, generator=g, dtype=torch.float64) * 0.5 if bias else None)
    return w


def _linear(x, w, name):
    y = x @ w[name].T
    return y if w[name + "_b"] is None else y + w[name + "_b"]


def _torch_mha(x, w, n_heads, mask, bias):
    """Output and per-head weights from nn.MultiheadAttention with our weights copied in."""
    d_model = x.size(-1)
    with torch.random.fork_rng(devices=[]):  # its __init__ draws random numbers
        mha = nn.MultiheadAttention(d_model, n_heads, bias=bias, batch_first=True, dropout=0.0,
                                    dtype=torch.float64)
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([w["q"], w["k"], w["v"]], dim=0))  # (3 d_model, d_model)
        mha.out_proj.weight.copy_(w["o"])
        if bias:
            mha.in_proj_bias.copy_(torch.cat([w["q_b"], w["k_b"], w["v_b"]]))
            mha.out_proj.bias.copy_(w["o_b"])
    kwargs = {}
    if mask is not None and mask.dim() == 4:  # (batch, 1, 1, seq): a padding mask
        kwargs["key_padding_mask"] = ~mask[:, 0, 0, :]  # True = ignore, there
    elif mask is not None:  # (seq, seq)
        kwargs["attn_mask"] = ~mask  # True = NOT allowed, there
    mha.eval()
    with torch.no_grad():
        out, weights = mha(x, x, x, need_weights=True, average_attn_weights=False, **kwargs)
    return out, weights


def _mha_variant(x, w, n_heads, mask, *, split="ok", merge="ok", scale="d_head", out_proj=True,
                 shared=None, invert_mask=False, ignore_mask=False, always_causal=False):
    """Multi-head attention with one knob turned: what a known mistake returns."""
    b, t, d = x.shape
    h, dh = n_heads, d // n_heads

    def split_(y):
        if split == "no_transpose":
            return y.reshape(b, h, t, dh)
        if split == "interleaved":
            return y.reshape(b, t, dh, h).permute(0, 3, 1, 2)
        return y.reshape(b, t, h, dh).transpose(1, 2)

    names = {"q": "q", "k": "k", "v": "v"} if shared is None else {"q": shared, "k": shared, "v": shared}
    q, k, v = (split_(_linear(x, w, names[n])) for n in ("q", "k", "v"))
    divisor = {"d_head": math.sqrt(dh), "d_model": math.sqrt(d), "d_head_no_sqrt": dh, "none": 1.0}[scale]
    scores = q @ k.transpose(-2, -1) / divisor
    if always_causal:
        mask = torch.ones(t, t, dtype=torch.bool).tril() if mask is None else mask
    if mask is not None and not ignore_mask:
        scores = scores.masked_fill(mask if invert_mask else ~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    out = weights @ v  # (b, h, t, dh)
    if merge == "no_transpose":
        out = out.reshape(b, t, d)
    elif split == "interleaved":  # the same wrong order on the way back
        out = out.permute(0, 2, 3, 1).reshape(b, t, d)
    else:
        out = out.transpose(1, 2).reshape(b, t, d)
    if out_proj:
        out = _linear(out, w, "o")
    return out, weights


_MHA_MISTAKES = {
    "the heads are split wrongly: reshaping straight to (batch, n_heads, seq, d_head) mixes "
    "features of different tokens into one head. Split the last axis into (n_heads, d_head), "
    "then transpose(1, 2) (use split_heads).": dict(split="no_transpose"),
    "the heads are split in the wrong order: head i must get the contiguous block of features "
    "i*d_head to (i+1)*d_head - 1, as in nn.MultiheadAttention (split as (n_heads, d_head), "
    "not (d_head, n_heads)).": dict(split="interleaved"),
    "you scaled the scores by sqrt(d_model); each head's dot products run over d_head "
    "features, so divide by sqrt(d_head) (scaled_dot_product_attention does this for you "
    "when it gets q and k of width d_head).": dict(scale="d_model"),
    "you divided the scores by d_head; divide by sqrt(d_head).": dict(scale="d_head_no_sqrt"),
    "you did not scale the scores: divide them by sqrt(d_head).": dict(scale="none"),
    "True in the mask means 'may attend' in this course: mask the scores where the mask is "
    "False. (nn.MultiheadAttention uses the opposite convention; here, use ours.)": dict(invert_mask=True),
    "you ignored the mask: pass it on to the attention so masked keys get weight 0.": dict(ignore_mask=True),
    "you applied a causal mask although none was given: with mask=None every query may "
    "attend to every key.": dict(always_causal=True),
    "the same projection is used for queries, keys and values; use q_proj for q, k_proj for "
    "k and v_proj for v.": [dict(shared="q"), dict(shared="k"), dict(shared="v")],
}
_OUTPUT_ONLY_MISTAKES = {
    "you forgot the output projection: pass the merged heads through self.out_proj.":
        dict(out_proj=False),
    "the heads are merged wrongly: reshaping (batch, n_heads, seq, d_head) straight to (batch, "
    "seq, d_model) mixes tokens. transpose(1, 2) first, then reshape (use merge_heads).":
        dict(merge="no_transpose"),
}


def _mistake_outputs(x, w, n_heads, mask) -> tuple[dict, dict]:
    weight_mistakes, output_mistakes = {}, {}
    for hint, knobs in _MHA_MISTAKES.items():
        variants = [_mha_variant(x, w, n_heads, mask, **k) for k in (knobs if isinstance(knobs, list) else [knobs])]
        weight_mistakes[hint] = [wt for _, wt in variants]
        output_mistakes[hint] = [out for out, _ in variants]
    for hint, knobs in _OUTPUT_ONLY_MISTAKES.items():
        output_mistakes[hint] = _mha_variant(x, w, n_heads, mask, **knobs)[0]
    return weight_mistakes, output_mistakes


def _build(MultiHeadAttention, d_model, n_heads, bias, label):
    """Instantiate the learner's module (without touching the global RNG); check its layers."""
    mha = build_module(MultiHeadAttention, label + ": MultiHeadAttention(...)", d_model, n_heads, bias=bias)
    for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
        layer = getattr(mha, name, None)
        if not isinstance(layer, nn.Linear):
            fail(label, f"self.{name} should be an nn.Linear.",
                 got=describe(layer) if hasattr(mha, name) else f"no attribute self.{name}",
                 hint="later notebooks and this checker copy weights through these exact names: "
                      "self.q_proj, self.k_proj, self.v_proj, self.out_proj, each "
                      "nn.Linear(d_model, d_model, bias=bias).")
        if tuple(layer.weight.shape) != (d_model, d_model):
            fail(label, f"self.{name}.weight has the wrong shape.", expected=str((d_model, d_model)),
                 got=str(tuple(layer.weight.shape)),
                 hint="every projection maps d_model to d_model: all heads together.")
        if (layer.bias is not None) != bias:
            fail(label, f"self.{name} {'has' if layer.bias is not None else 'has no'} bias, "
                 f"but bias={bias} was passed.", hint="pass bias=bias to every nn.Linear.")
    if mha.q_proj is mha.k_proj or mha.q_proj is mha.v_proj or mha.k_proj is mha.v_proj:
        fail(label, "q_proj, k_proj and v_proj are not three separate layers.",
             hint="create three nn.Linear layers; one shared layer would make q, k and v identical.")
    if getattr(mha, "n_heads", None) != n_heads or getattr(mha, "d_head", None) != d_model // n_heads:
        fail(label, "self.n_heads and self.d_head should hold the number of heads and the head size.",
             expected=f"n_heads={n_heads}, d_head={d_model // n_heads}",
             got=f"n_heads={getattr(mha, 'n_heads', None)!r}, d_head={getattr(mha, 'd_head', None)!r}")
    expected_params = 4 * d_model * d_model + (4 * d_model if bias else 0)
    n_params = sum(p.numel() for p in mha.parameters())
    if n_params != expected_params:
        extra = [n for n, _ in mha.named_parameters()
                 if n.split(".")[0] not in ("q_proj", "k_proj", "v_proj", "out_proj")]
        fail(label, "has the wrong number of parameters.",
             expected=f"{expected_params} (4 d_model² weights{' + 4 d_model biases' if bias else ''})",
             got=f"{n_params}" + (f", including {extra}" if extra else ""),
             hint="the four projections are all the parameters this layer needs.")
    return mha


def check_MultiHeadAttention(MultiHeadAttention) -> None:
    """Check ``MultiHeadAttention(d_model, n_heads, bias)`` against ``nn.MultiheadAttention``
    with the same weights copied in."""
    g = rng(22)
    pad = torch.ones(2, 1, 1, 6, dtype=torch.bool)
    pad[1, ..., 4:] = False  # the second sequence ends in 2 padding tokens
    causal = lambda t: torch.ones(t, t, dtype=torch.bool).tril()  # noqa: E731
    cases = [  # (what, batch, seq, d_model, n_heads, bias, mask)
        ("batch 2, seq 5, d_model 12, 3 heads, bias, no mask", 2, 5, 12, 3, True, None),
        ("batch 2, seq 5, d_model 12, 3 heads, bias, causal mask (5, 5)", 2, 5, 12, 3, True, causal(5)),
        ("batch 1, seq 6, d_model 8, 2 heads, no bias, causal mask (6, 6)", 1, 6, 8, 2, False, causal(6)),
        ("batch 3, seq 4, d_model 8, 4 heads, no bias, no mask", 3, 4, 8, 4, False, None),
        ("batch 2, seq 6, d_model 8, 2 heads, padding mask (2, 1, 1, 6)", 2, 6, 8, 2, True, pad),
        ("batch 2, seq 1, d_model 6, 3 heads, bias, causal mask (1, 1)", 2, 1, 6, 3, True, causal(1)),
        ("batch 2, seq 3, d_model 6, 1 head, bias, no mask", 2, 3, 6, 1, True, None),
    ]
    for what, b, t, d, h, bias, mask in cases:
        label = f"MultiHeadAttention on {what}"
        mha = _build(MultiHeadAttention, d, h, bias, label).to(torch.float64)
        w = _weights(d, bias, g)
        with torch.no_grad():
            for name, key in (("q_proj", "q"), ("k_proj", "k"), ("v_proj", "v"), ("out_proj", "o")):
                getattr(mha, name).weight.copy_(w[key])
                if bias:
                    getattr(mha, name).bias.copy_(w[key + "_b"])
        x = torch.randn(b, t, d, generator=g, dtype=torch.float64)
        with torch.no_grad():
            result = call(mha, label, x) if mask is None else call(mha, label, x, mask=mask)
        if not (isinstance(result, tuple) and len(result) == 2):
            fail(label, "forward should return a tuple (output, weights).", got=describe(result))
        out, weights = (expect_tensor(r, label) for r in result)
        exp_out, exp_w = _torch_mha(x, w, h, mask, bias)

        if h > 1 and tuple(weights.shape) == (b, t, t):
            fail(label + " (weights)", "returned weights averaged over the heads.",
                 expected=str(tuple(exp_w.shape)), got=str(tuple(weights.shape)),
                 hint="return the per-head weights, (batch, n_heads, seq, seq), exactly as the "
                      "attention computed them; do not average or sum over the heads.")
        if tuple(out.shape) == tuple(exp_w.shape) and tuple(weights.shape) == tuple(exp_out.shape) \
                and exp_w.shape != exp_out.shape:
            fail(label, "returned (weights, output); return (output, weights) in that order.")
        expect_shape(weights, exp_w.shape, label + " (weights)",
                     hint="weights are (batch, n_heads, seq, seq): one attention matrix per head.")
        w_mistakes, out_mistakes = _mistake_outputs(x, w, h, mask)
        expect_close(weights, exp_w, label + " (weights)", atol=1e-10, rtol=1e-8, mistakes=w_mistakes)
        expect_shape(out, exp_out.shape, label + " (output)", hint="the output is (batch, seq, d_model).")
        expect_close(out, exp_out, label + " (output)", atol=1e-10, rtol=1e-8, mistakes=out_mistakes,
                     hint="the attention weights are right, so look at what comes after them: "
                          "weights @ v per head, merge the heads, then the output projection.")

    # The default dtype, as the notebook uses it.
    label = "MultiHeadAttention on float32 input (batch 2, seq 4, d_model 8, 2 heads)"
    mha = _build(MultiHeadAttention, 8, 2, True, label)
    x = torch.randn(2, 4, 8, generator=g)
    with torch.no_grad():
        out, _ = call(mha, label, x, mask=causal(4))
    expect_dtype(out, torch.float32, label + " (output)")
    passed("MultiHeadAttention",
           f"{len(cases) + 1} cases vs torch.nn.MultiheadAttention with the same weights: "
           "bias on and off, causal and padding masks, batch 1, seq 1, 1 head")

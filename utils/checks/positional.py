"""Checkers for notebook 03 · Positional encodings.

PyTorch has no positional encodings of its own, so each ground truth here is
computed independently of the reference, from the paper's own definition:

- sinusoidal: the formula of Vaswani et al., in float64 NumPy;
- learned: x + the embedding rows 0..seq-1, with known weights copied in;
- RoPE: the complex-number form of RoFormer (pairs as complex numbers, times
  exp(i * pos * theta)), plus two properties: rotations keep norms, and q·k
  depends only on the offset between the two positions;
- ALiBi: the slopes from the paper's reference code (``get_slopes``);
- T5 buckets: a table computed by hand, and the bucket formula evaluated in
  exact integer arithmetic.
"""

from __future__ import annotations

import math

import numpy as np
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
    expect_unchanged,
    fail,
    passed,
    rng,
)

__all__ = [
    "check_sinusoidal_positional_encoding",
    "check_LearnedPositionalEmbedding",
    "check_apply_rope",
    "check_alibi_bias",
    "check_relative_position_bucket",
]



# ------------------------------------------------------------- sinusoidal


def _sinusoid_np(seq_len: int, d_model: int, *, base: float = 10000.0, exponent: str = "2i",
                 layout: str = "interleaved", swap: bool = False) -> torch.Tensor:
    """The paper's PE in float64 NumPy; the keyword knobs produce known mistakes."""
    pos = np.arange(seq_len, dtype=np.float64)[:, None]
    i = np.arange(d_model // 2, dtype=np.float64)  # pair index
    power = {"2i": 2 * i / d_model, "i": i / d_model}[exponent]
    angles = pos / base ** power  # (seq_len, d_model/2)
    first, second = (np.cos(angles), np.sin(angles)) if swap else (np.sin(angles), np.cos(angles))
    if layout == "interleaved":
        pe = np.zeros((seq_len, d_model))
        pe[:, 0::2], pe[:, 1::2] = first, second
    elif layout == "blocks":
        pe = np.concatenate([first, second], axis=1)
    else:  # "per-dimension": every dimension j its own frequency 1/base^(j/d)
        j = np.arange(d_model, dtype=np.float64)
        ang = pos / base ** (j / d_model)
        pe = np.where(j % 2 == 0, np.sin(ang), np.cos(ang))
    return torch.from_numpy(pe)


def _sinusoid_mistakes(seq_len: int, d_model: int) -> dict:
    return {
        "sin and cos are swapped: the even dimensions 2i hold the sine, the odd ones 2i+1 the "
        "cosine.": _sinusoid_np(seq_len, d_model, swap=True),
        "the exponent is 2i/d_model, where i counts the pairs (dimensions 2i and 2i+1): you "
        "wrote i/d_model, so the frequencies fall off half as fast.": _sinusoid_np(seq_len, d_model, exponent="i"),
        "dimensions 2i and 2i+1 share one frequency, 1/10000^(2i/d_model); you gave every "
        "dimension its own (j/d_model for dimension j).": _sinusoid_np(seq_len, d_model, layout="per-dimension"),
        "you concatenated all the sines, then all the cosines. The paper interleaves them: "
        "sin in the even dimensions (pe[:, 0::2]) and cos in the odd ones (pe[:, 1::2]).":
            [_sinusoid_np(seq_len, d_model, layout="blocks"),
             _sinusoid_np(seq_len, d_model, layout="blocks", swap=True)],
        "the base is 10000, not 1000.": _sinusoid_np(seq_len, d_model, base=1000.0),
    }


def check_sinusoidal_positional_encoding(sinusoidal_positional_encoding) -> None:
    """Check ``sinusoidal_positional_encoding(seq_len, d_model)`` against the paper's formula."""
    cases = [(10, 16), (1, 8), (50, 64), (7, 2), (33, 6)]
    for seq_len, d_model in cases:
        label = f"sinusoidal_positional_encoding(seq_len={seq_len}, d_model={d_model})"
        got = expect_tensor(call(sinusoidal_positional_encoding, label, seq_len, d_model), label)
        expect_shape(got, (seq_len, d_model), label,
                     hint="one row per position, one column per dimension: (seq_len, d_model).")
        expect_close(got.to(torch.float64), _sinusoid_np(seq_len, d_model), label, atol=1e-4,
                     mistakes=_sinusoid_mistakes(seq_len, d_model))
        expect_dtype(got, torch.float32, label,
                     hint="the values are right; return float32 (the dtype of the token embeddings it "
                          "is added to): call .float() at the end.")
    passed("sinusoidal_positional_encoding",
           f"{len(cases)} sizes against the paper's formula, computed in float64")


# ---------------------------------------------------------------- learned


def _forward(module, x: torch.Tensor, label: str, max_len: int) -> torch.Tensor:
    try:
        return expect_tensor(call(module, label, x), label)
    except AssertionError as e:
        message = str(e)
        problem = message.splitlines()[0].removeprefix(label + " ")
        if "must match the size" in message:
            fail(label, problem,
                 hint=f"you added all max_len={max_len} position vectors to a sequence of "
                      f"{x.size(1)} tokens; take the first seq = x.size(1) of them (positions "
                      "0..seq-1).")
        if "index out of range" in message:
            fail(label, problem,
                 hint="the positions of a sequence of length seq are 0, 1, ..., seq-1 "
                      "(torch.arange(seq)); an index of max_len or more is out of range.")
        raise


def check_LearnedPositionalEmbedding(LearnedPositionalEmbedding) -> None:
    """Check ``LearnedPositionalEmbedding(max_len, d_model)``: x + embedding[:seq], ValueError past max_len."""
    g = rng(2)
    max_len, d_model = 10, 6
    label = f"LearnedPositionalEmbedding(max_len={max_len}, d_model={d_model})"
    module = build_module(LearnedPositionalEmbedding, label, max_len, d_model)
    embedding = getattr(module, "embedding", None)
    if not isinstance(embedding, nn.Embedding):
        fail(label, "needs an attribute `self.embedding` that is an nn.Embedding.",
             got=describe(embedding), hint="in __init__: self.embedding = nn.Embedding(max_len, d_model).")
    if tuple(embedding.weight.shape) != (max_len, d_model):
        fail(label + ".embedding", "has the wrong size.", expected=f"weight of shape {(max_len, d_model)}",
             got=f"weight of shape {tuple(embedding.weight.shape)}",
             hint="one row per position (max_len rows), each a d_model-vector.")

    module = module.double()
    weight = torch.randn(max_len, d_model, generator=g, dtype=torch.float64)
    with torch.no_grad():
        embedding.weight.copy_(weight)

    for batch, seq in [(2, 7), (1, 1), (3, max_len)]:
        x = torch.randn(batch, seq, d_model, generator=g, dtype=torch.float64)
        x_before = x.clone()
        what = f"{label} on x of shape {tuple(x.shape)}"
        got = _forward(module, x, what, max_len)
        expect_unchanged(x_before, x, what)
        mistakes = {
            "you returned the position embeddings alone; add them to x (x + ...).": weight[:seq].expand_as(x),
            "you returned x unchanged: add the position vectors.": x,
        }
        if seq < max_len:
            mistakes["positions start at 0: the first token gets row 0 of the embedding, not row 1."] = \
                x + weight[1:seq + 1]
        expect_close(got, x + weight[:seq], what, atol=1e-12, mistakes=mistakes)

    x = torch.randn(2, 4, d_model, generator=g, dtype=torch.float64)
    embedding.weight.grad = None
    out = call(module, label, x)
    if out.requires_grad:
        out.sum().backward()
    grad = embedding.weight.grad
    expected_grad = torch.zeros(max_len, d_model, dtype=torch.float64)
    expected_grad[:4] = 2.0
    if grad is None or not torch.allclose(grad, expected_grad):
        fail(label, "no gradient reached rows 0..seq-1 of self.embedding.weight.",
             hint="look the positions up in self.embedding (or slice its weight), so the vectors are "
                  "trained; do not copy them into a plain tensor.")

    too_long = max_len + 1
    x = torch.randn(1, too_long, d_model, generator=g, dtype=torch.float64)
    what = f"{label} on a sequence of {too_long} tokens"
    try:
        module(x)
    except NotImplementedError:
        raise
    except ValueError:
        pass
    except Exception as e:  # noqa: BLE001 - any other error is not the one asked for
        fail(what, f"should raise ValueError, but raised {type(e).__name__}: {e}",
             hint="check the length yourself and raise ValueError with a message that names the "
                  "sequence length and max_len; an error from deep inside nn.Embedding ('index out "
                  "of range in self') does not tell the user what went wrong.")
    else:
        fail(what, f"returned a result, but there is no learned vector for positions {max_len} and up.",
             expected="ValueError", got="no error",
             hint="a sequence longer than max_len must raise ValueError (if seq > self.max_len: raise "
                  "...); silently reusing or clamping positions hides the problem.")
    passed("LearnedPositionalEmbedding",
           "x + embedding[:seq] for seq 1 to max_len, gradients reach the table, ValueError past max_len")


# ------------------------------------------------------------------- RoPE


def _thetas(d_head: int, exponent: str = "2i") -> torch.Tensor:
    i = torch.arange(d_head // 2, dtype=torch.float64)
    power = {"2i": -2 * i / d_head, "i": -i / d_head, "+2i": 2 * i / d_head}[exponent]
    return 10000.0 ** power


def _rope_complex(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """RoFormer's complex form: pair (x[2i], x[2i+1]) as x[2i] + i x[2i+1], times exp(i p theta_i)."""
    d_head = x.size(-1)
    angles = positions.to(torch.float64)[:, None] * _thetas(d_head)  # (seq, d_head/2)
    pairs = torch.view_as_complex(x.to(torch.float64).reshape(*x.shape[:-1], d_head // 2, 2).contiguous())
    rotated = pairs * torch.polar(torch.ones_like(angles), angles)  # (..., seq, d_head/2), complex
    return torch.view_as_real(rotated).flatten(-2)


def _rope_variant(x, positions, *, exponent="2i", sign=1.0, swap=False, layout="interleaved"):
    """RoPE with one knob turned, for the mistakes table."""
    d_head = x.size(-1)
    angles = positions.to(torch.float64)[:, None] * _thetas(d_head, exponent)
    cos, sin = angles.cos(), sign * angles.sin()
    if swap:
        cos, sin = sin, cos
    if layout == "half":  # GPT-NeoX / Hugging Face LLaMA: pairs (x[i], x[i + d/2])
        x1, x2 = x[..., : d_head // 2], x[..., d_head // 2:]
        return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)


def _rope_mistakes(x: torch.Tensor, positions: torch.Tensor) -> dict:
    seq = x.size(-2)
    return {
        "you used the half-split ('rotate_half') layout of GPT-NeoX and Hugging Face LLaMA, pairing "
        "x[i] with x[i + d_head/2]. This exercise pairs neighbours, as RoFormer does: "
        "(x[..., 0::2], x[..., 1::2]), and puts each rotated pair back in place.":
            _rope_variant(x, positions, layout="half"),
        "the frequencies are wrong: theta_i = 10000^(-2i/d_head) for pair i = 0, 1, ..., d_head/2 - 1 "
        "(the exponent is negative and counts pairs twice).":
            [_rope_variant(x, positions, exponent="i"), _rope_variant(x, positions, exponent="+2i")],
        "you rotate the wrong way (by -angle): the rotated pair is "
        "(x1 cos - x2 sin, x1 sin + x2 cos).": _rope_variant(x, positions, sign=-1.0),
        "cos and sin are swapped: the rotated pair is (x1 cos - x2 sin, x1 sin + x2 cos).":
            [_rope_variant(x, positions, swap=True), _rope_variant(x, positions, swap=True, sign=-1.0)],
        "you ignored the `positions` argument and used 0, 1, ..., seq-1. Rotate token t by "
        "positions[t] (with a KV cache the positions do not start at 0).":
            _rope_complex(x, torch.arange(seq)),
        "x came back unrotated: each pair must turn by the angle position * theta_i.": x,
    }


def check_apply_rope(apply_rope) -> None:
    """Check ``apply_rope(x, positions)``: RoFormer's interleaved rotation, as complex numbers."""
    g = rng(3)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    # 1. Rotations keep every vector's length.
    x, positions = randn(2, 3, 5, 8), torch.arange(5)
    label = "apply_rope on x of shape (2, 3, 5, 8), positions 0..4"
    x_before = x.clone()
    got = expect_tensor(call(apply_rope, label, x, positions), label)
    expect_unchanged(x_before, x, label)
    expect_shape(got, x.shape, label, hint="the output has the shape of x: (batch, heads, seq, d_head).")
    if not torch.allclose(got.norm(dim=-1), x.norm(dim=-1), atol=1e-6):
        fail(label, "changed the length of the vectors; a rotation keeps it.",
             expected=f"norms {[round(v, 4) for v in x.norm(dim=-1).flatten()[:4].tolist()]}",
             got=f"norms {[round(v, 4) for v in got.norm(dim=-1).flatten()[:4].tolist()]}",
             hint="each pair (x1, x2) becomes (x1 cos - x2 sin, x1 sin + x2 cos); both outputs use both inputs.")

    # 2. q·k depends only on the offset between the positions.
    q, k = randn(1, 1, 1, 16).expand(1, 1, 8, 16), randn(1, 1, 1, 16).expand(1, 1, 8, 16)
    label = "apply_rope: the same q and k at positions 0..7, then at 100..107"
    scores = []
    for start in (0, 100):
        pos = torch.arange(start, start + 8)
        qr = expect_tensor(call(apply_rope, label, q, pos), label)
        kr = expect_tensor(call(apply_rope, label, k, pos), label)
        scores.append((qr @ kr.transpose(-2, -1))[0, 0])  # (8, 8): query position m, key position n
    if not torch.allclose(scores[0], scores[1], atol=1e-4):
        fail(label, "q·k changed when both positions moved by 100; with RoPE it may depend only on "
             "the offset m - n.", expected=f"scores[0, :4] = {scores[0][0, :4].tolist()}",
             got=f"{scores[1][0, :4].tolist()}",
             hint="rotate q and k by the same rule: angle = position * theta_i, one angle per pair.")

    # 3. The complex-number form, on several shapes and non-contiguous positions.
    cases = [
        ("x (2, 3, 5, 8), positions 5..9", x, torch.arange(5, 10)),
        ("x (1, 1, 1, 4), position 0", randn(1, 1, 1, 4), torch.tensor([0])),
        ("x (1, 2, 1, 6), a single token at position 9", randn(1, 2, 1, 6), torch.tensor([9])),
        ("x (2, 2, 6, 16), positions [3, 7, 0, 12, 5, 40]", randn(2, 2, 6, 16), torch.tensor([3, 7, 0, 12, 5, 40])),
        ("x (1, 1, 4, 2), d_head = 2, positions 10..13", randn(1, 1, 4, 2), torch.arange(10, 14)),
    ]
    for what, x, positions in cases:
        label = f"apply_rope on {what}"
        got = expect_tensor(call(apply_rope, label, x, positions), label)
        expect_close(got, _rope_complex(x, positions), label, atol=1e-4, mistakes=_rope_mistakes(x, positions))

    x = torch.randn(1, 2, 3, 8, generator=g)
    label = "apply_rope on float32 x"
    got = expect_tensor(call(apply_rope, label, x, torch.arange(3)), label)
    expect_dtype(got, torch.float32, label,
                 hint="return the dtype of x: compute cos and sin, then .to(x.dtype) before multiplying.")
    expect_close(got.double(), _rope_complex(x, torch.arange(3)), label, atol=1e-4)
    passed("apply_rope", f"norms kept, scores depend only on m - n, {len(cases) + 1} cases vs the "
                         "complex-number form, incl. non-contiguous positions")


# ------------------------------------------------------------------ ALiBi


def _paper_slopes(n: int) -> list[float]:
    """``get_slopes`` from the ALiBi paper's reference code (ofirpress/attention_with_linear_biases)."""

    def get_slopes_power_of_2(n):
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        ratio = start
        return [start * ratio**i for i in range(n)]

    if math.log2(n).is_integer():
        return get_slopes_power_of_2(n)
    closest_power_of_2 = 2 ** math.floor(math.log2(n))
    return get_slopes_power_of_2(closest_power_of_2) + _paper_slopes(2 * closest_power_of_2)[0::2][: n - closest_power_of_2]


def _linear_bias(slopes, seq_len: int) -> torch.Tensor:
    slopes = torch.as_tensor(slopes, dtype=torch.float64)
    pos = torch.arange(seq_len, dtype=torch.float64)
    return slopes[:, None, None] * (pos[None, :] - pos[:, None])  # -m_h (i - j): (heads, seq, seq)


def _fmt_slopes(slopes) -> str:
    return "[" + ", ".join(f"2^{math.log2(s):.2f}" if s > 0 else f"{s:.4f}" for s in slopes) + "]"


def _slope_mistakes(n: int) -> dict:
    right = _paper_slopes(n)
    mistakes = {
        "the slopes start one step too high: the first head's slope is 2^(-8/n_heads) "
        "(1/2 for 8 heads), not 1. Use the exponent -8(h+1)/n_heads for h = 0, 1, ...":
            [2 ** (-8 * h / n) for h in range(n)],
        "the slopes must form a geometric sequence (each one the previous times 2^(-8/n_heads)), "
        "not an arithmetic one.":
            [[(h + 1) / n for h in range(n)], [1 / (h + 1) for h in range(n)],
             np.linspace(right[0], 2**-8, n).tolist(), [(n - h) / n / 2 for h in range(n)]],
        "the slopes always run from 2^(-8/n_heads) down to 2^-8 = 1/256: the ratio between neighbours "
        "is 2^(-8/n_heads), not 1/2 (that is right for 8 heads only).": [2.0 ** -(h + 1) for h in range(n)],
        "the heads are in reverse order: head 0 gets the largest (steepest) slope, 2^(-8/n_heads).":
            right[::-1],
        "the sign is flipped: a key farther in the past must get a more negative bias (a penalty), "
        "bias[h, i, j] = -m_h * (i - j), so -bias[h, 1, 0] is the positive slope.":
            [-s for s in right],
    }
    if not math.log2(n).is_integer():
        mistakes[f"{n} is not a power of 2, and the paper does not simply plug n_heads={n} into "
                 "2^(-8(h+1)/n): it takes the slopes of k heads (k the largest power of 2 below n), "
                 "then the first n - k of every other slope of 2k heads."] = \
            [2 ** (-8 * (h + 1) / n) for h in range(n)]
        mistakes["right values, wrong order: keep the paper's order, the k power-of-2 slopes first, "
                 "then the extra ones, not sorted."] = sorted(right, reverse=True)
    return mistakes


def check_alibi_bias(alibi_bias) -> None:
    """Check ``alibi_bias(n_heads, seq_len)``: the paper's slopes times the signed distance."""
    cases = [(8, 5), (4, 3), (1, 2), (6, 7), (12, 4), (3, 1), (16, 3)]
    for n_heads, seq_len in cases:
        label = f"alibi_bias(n_heads={n_heads}, seq_len={seq_len})"
        got = expect_tensor(call(alibi_bias, label, n_heads, seq_len), label)
        expect_shape(got, (n_heads, seq_len, seq_len), label,
                     hint="one (seq_len, seq_len) matrix per head: (n_heads, seq_len, seq_len).")
        if not got.is_floating_point():
            fail(label, "should return a float tensor.", got=describe(got))
        expected = _linear_bias(_paper_slopes(n_heads), seq_len)
        if seq_len >= 2:  # the slopes, read off one step back: -bias[h, 1, 0] = m_h
            got_slopes = (-got[:, 1, 0]).to(torch.float64)
            right = torch.tensor(_paper_slopes(n_heads), dtype=torch.float64)
            if not torch.allclose(got_slopes, right, rtol=1e-5, atol=1e-7):
                hint = None
                for mistake_hint, wrong in _slope_mistakes(n_heads).items():
                    candidates = wrong if isinstance(wrong[0], list) else [wrong]
                    if any(torch.allclose(got_slopes, torch.tensor(c, dtype=torch.float64), rtol=1e-4, atol=1e-7)
                           for c in candidates):
                        hint = mistake_hint
                        break
                fail(label, "has the wrong slopes (read as m_h = -bias[h, 1, 0], the penalty for one "
                     "step back).", expected=_fmt_slopes(right.tolist()), got=_fmt_slopes(got_slopes.tolist()),
                     hint=hint)
        lower = torch.ones(seq_len, seq_len, dtype=torch.bool).tril()
        expect_close(got.to(torch.float64), expected, label, atol=1e-6, rtol=1e-5, mistakes={
            "keep the same formula above the diagonal (j > i), -m_h * (i - j), which is positive there; "
            "this function returns the bias only, and the causal mask is applied separately.":
                [expected.masked_fill(~lower, -math.inf), expected.masked_fill(~lower, 0.0)],
            "the bias is -m_h * (i - j), signed, not -m_h * |i - j|: above the diagonal it is positive "
            "(the causal mask hides those keys).": -(expected.abs()),
            "the bias grows linearly with the distance i - j, not with its square.":
                expected * _linear_bias([1.0] * n_heads, seq_len).abs(),
        })
    passed("alibi_bias", f"{len(cases)} shapes, slopes as in the paper for powers of 2 and for 3, 6, 12 heads")


# ------------------------------------------------------------ T5 buckets


def _exact_bucket(rel: int, bidirectional: bool, num_buckets: int, max_distance: int) -> tuple[int, bool]:
    """T5's bucket in exact integer arithmetic; also whether rel sits exactly on a log-bucket edge."""
    bucket = 0
    if bidirectional:
        num_buckets //= 2
        bucket += num_buckets if rel > 0 else 0
        n = abs(rel)
    else:
        n = max(-rel, 0)
    max_exact = num_buckets // 2
    if n < max_exact:
        return bucket + n, False
    steps = num_buckets - max_exact
    # offset b = floor(steps * log(n / max_exact) / log(max_distance / max_exact)), i.e. the largest b with
    # (n / max_exact)^steps >= (max_distance / max_exact)^b, checked in integers.
    b, edge = 0, False
    while n**steps * max_exact**(b + 1) >= max_distance**(b + 1) * max_exact**steps:
        b += 1
    edge = n**steps * max_exact**b == max_distance**b * max_exact**steps and b > 0
    return bucket + min(max_exact + b, num_buckets - 1), edge and max_exact + b <= num_buckets - 1


def _bucket_variant(rel: torch.Tensor, bidirectional=True, num_buckets=32, max_distance=128, *,
                    log=True, offset=True, flip=False, clamp=True, halve=True) -> torch.Tensor:
    """T5's bucket in float64, with knobs for the mistakes table."""
    if flip:
        rel = -rel
    bucket = torch.zeros_like(rel)
    if bidirectional:
        if halve:
            num_buckets //= 2
        if offset:
            bucket = bucket + (rel > 0).long() * num_buckets
        n = rel.abs()
    else:
        n = (-rel).clamp(min=0)
    max_exact = num_buckets // 2
    if log:
        ratio = torch.log(n.double().clamp(min=1) / max_exact) / math.log(max_distance / max_exact)
        large = max_exact + (ratio * (num_buckets - max_exact)).long()
    else:
        large = n
    if clamp:
        large = large.clamp(max=num_buckets - 1)
    return bucket + torch.where(n < max_exact, n, large)


def _bucket_mistakes(rel, bidirectional, num_buckets, max_distance) -> dict:
    args = (rel, bidirectional, num_buckets, max_distance)
    mistakes = {
        "past max_exact = num_buckets // 2 (half of them with bidirectional) the buckets must be "
        "log-spaced up to max_distance: bucket = max_exact + floor(log(n / max_exact) / "
        "log(max_distance / max_exact) * (num_buckets - max_exact)). Yours grow linearly.":
            [_bucket_variant(*args, log=False), _bucket_variant(*args, log=False, clamp=False)],
        "distances at or beyond max_distance must all share the last bucket, num_buckets - 1: clamp "
        "the log-spaced bucket (.clamp(max=num_buckets - 1), num_buckets halved if bidirectional).":
            _bucket_variant(*args, clamp=False),
        "the sign convention is flipped: relative_position = key position - query position, so a key "
        "in the past has a negative relative position. Bidirectional: keys after the query "
        "(relative_position > 0) get the upper half; causal: past keys get the distance buckets, "
        "future ones bucket 0.": _bucket_variant(*args, flip=True),
    }
    if bidirectional:
        mistakes["with bidirectional=True, keys after the query (relative_position > 0) go to the upper "
                 "half of the buckets: add num_buckets // 2 to their bucket, so +3 and -3 differ."] = \
            _bucket_variant(*args, offset=False)
        mistakes["with bidirectional=True, each direction gets half the buckets: halve num_buckets "
                 "first (num_buckets //= 2), then split that half into exact and log-spaced buckets."] = \
            _bucket_variant(*args, halve=False)
    return mistakes


# (relative_position -> bucket) for the defaults num_buckets=32, max_distance=128, by hand. Bidirectional:
# 16 buckets a direction, 0..7 exact, then 8 + floor(log(n/8) / log(16) * 8) = 8 + floor(2 log2(n/8)).
# Causal: 32 buckets, 0..15 exact, then 16 + floor(log(n/16) / log(8) * 16) = 16 + floor(16/3 log2(n/16)).
HAND_BUCKETS = {
    True: {0: 0, -1: 1, -7: 7, -8: 8, -12: 9, -16: 10, -20: 10, -32: 12, -64: 14, -100: 15,
           -127: 15, -128: 15, -1000: 15, 1: 17, 7: 23, 8: 24, 16: 26, 200: 31},
    False: {0: 0, -1: 1, -15: 15, -16: 16, -20: 17, -32: 21, -64: 26, -100: 30, -127: 31,
            -128: 31, -1000: 31, 1: 0, 5: 0, 100: 0},
}


def _expect_buckets(got, rel, bidirectional, num_buckets, max_distance, label) -> None:
    expected, edges = [], []
    for r in rel.reshape(-1).tolist():
        b, edge = _exact_bucket(r, bidirectional, num_buckets, max_distance)
        expected.append(b)
        edges.append(edge)
    expected = torch.tensor(expected).reshape(rel.shape)
    edges = torch.tensor(edges).reshape(rel.shape)
    # Exactly on a log-bucket edge, floating-point log may land a hair below the integer: allow it.
    got = got.to(torch.int64)
    wrong = (got != expected) & ~(edges & (got == expected - 1))
    if not wrong.any():
        return
    rel_flat, exp_flat, got_flat = rel.reshape(-1), expected.reshape(-1), got.reshape(-1)
    shown = wrong.reshape(-1).nonzero()[:5, 0].tolist()
    hint = None
    for mistake_hint, candidates in _bucket_mistakes(rel, bidirectional, num_buckets, max_distance).items():
        candidates = candidates if isinstance(candidates, list) else [candidates]
        if any(torch.equal(got, c) for c in candidates):
            hint = mistake_hint
            break
    fail(label, f"wrong bucket for {int(wrong.sum())} of {rel.numel()} relative positions.",
         expected=", ".join(f"{rel_flat[i]} -> {exp_flat[i]}" for i in shown),
         got=", ".join(f"{rel_flat[i]} -> {got_flat[i]}" for i in shown), hint=hint)


def check_relative_position_bucket(relative_position_bucket) -> None:
    """Check ``relative_position_bucket(relative_position, bidirectional, num_buckets, max_distance)``."""
    sweep = torch.arange(-300, 301)
    for bidirectional in (True, False):
        # 1. A hand-computed table for the defaults.
        table = HAND_BUCKETS[bidirectional]
        rel = torch.tensor(list(table))
        label = (f"relative_position_bucket(a hand-computed table of {len(rel)} relative positions, "
                 f"bidirectional={bidirectional})")
        got = expect_tensor(call(relative_position_bucket, label, rel.clone(), bidirectional=bidirectional), label)
        expect_shape(got, rel.shape, label, hint="one bucket per relative position: the shape of the input.")
        if got.is_floating_point() or got.dtype == torch.bool:
            fail(label, "should return an integer tensor (bucket indices).", got=describe(got),
                 hint="the log-spaced part is a float: convert it with .long() before combining.")
        _expect_buckets(got, rel, bidirectional, 32, 128, label)

        # 2. Monotone in the distance within each direction, and inside [0, num_buckets).
        label = f"relative_position_bucket(arange(-300, 301), bidirectional={bidirectional})"
        got = expect_tensor(call(relative_position_bucket, label, sweep.clone(), bidirectional=bidirectional), label)
        expect_shape(got, sweep.shape, label)
        past, future = got[:301].flip(0), got[300:]  # distance 0, 1, 2, ... in each direction
        for name, seq in (("into the past", past), ("into the future", future)):
            if (seq[1:] < seq[:-1]).any():
                d = int((seq[1:] < seq[:-1]).nonzero()[0, 0]) + 1
                fail(label, f"buckets must not decrease as the distance grows {name}.",
                     got=f"distance {d - 1} -> bucket {int(seq[d - 1])}, distance {d} -> bucket {int(seq[d])}")
        _expect_buckets(got, sweep, bidirectional, 32, 128, label)

    # 3. Other sizes, and a (query, key) matrix as input.
    pos = torch.arange(40)
    matrix = pos[None, :] - pos[:, None]  # (40, 40): key - query
    for bidirectional, num_buckets, max_distance in [(True, 16, 32), (False, 16, 32), (True, 64, 256)]:
        rel = matrix if num_buckets == 16 else sweep
        label = (f"relative_position_bucket(relative_position of shape {tuple(rel.shape)}, bidirectional="
                 f"{bidirectional}, num_buckets={num_buckets}, max_distance={max_distance})")
        rel_before = rel.clone()
        got = expect_tensor(call(relative_position_bucket, label, rel, bidirectional=bidirectional,
                                 num_buckets=num_buckets, max_distance=max_distance), label)
        expect_unchanged(rel_before, rel, label)
        expect_shape(got, rel.shape, label)
        _expect_buckets(got, rel, bidirectional, num_buckets, max_distance, label)
    passed("relative_position_bucket",
           "a hand-computed table, monotone buckets, bidirectional and causal, 3 other sizes")

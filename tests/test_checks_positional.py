"""Every notebook-03 checker accepts the reference and rejects plausible mistakes.

Each wrong implementation below is a mistake learners really make; the test
asserts the checker rejects it AND that its message points at that mistake.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from utils import checks, reference

from checker_harness import checker_tests

# ------------------------------------------------------------- sinusoidal


def _sinusoid(seq_len, d_model, *, base=10000.0, two=2.0, swap=False, blocks=False, dtype=torch.float32):
    """The reference with one knob turned: each wrong implementation below sets one."""
    pos = torch.arange(seq_len, dtype=torch.float64)[:, None]
    i = torch.arange(d_model // 2, dtype=torch.float64)
    angles = pos / base ** (two * i / d_model)
    first, second = (angles.cos(), angles.sin()) if swap else (angles.sin(), angles.cos())
    if blocks:
        pe = torch.cat([first, second], dim=1)
    else:
        pe = torch.zeros(seq_len, d_model, dtype=torch.float64)
        pe[:, 0::2], pe[:, 1::2] = first, second
    return pe.to(dtype)


def sinusoidal_sin_cos_swapped(seq_len, d_model):  # cos in the even dimensions
    return _sinusoid(seq_len, d_model, swap=True)


def sinusoidal_exponent_i_over_d(seq_len, d_model):  # 10000^(i/d) with i the pair index
    return _sinusoid(seq_len, d_model, two=1.0)


def sinusoidal_concatenated(seq_len, d_model):  # [all sines | all cosines]
    return _sinusoid(seq_len, d_model, blocks=True)


def sinusoidal_base_1000(seq_len, d_model):  # a typo in the base
    return _sinusoid(seq_len, d_model, base=1000.0)


def sinusoidal_returns_float64(seq_len, d_model):  # forgot the final .float()
    return _sinusoid(seq_len, d_model, dtype=torch.float64)


def sinusoidal_frequency_per_dimension(seq_len, d_model):  # 10000^(j/d) for every dimension j
    j = torch.arange(d_model, dtype=torch.float64)
    angles = torch.arange(seq_len, dtype=torch.float64)[:, None] / 10000 ** (j / d_model)
    return torch.where(j % 2 == 0, angles.sin(), angles.cos()).float()


def sinusoidal_transposed(seq_len, d_model):  # (d_model, seq_len)
    return _sinusoid(seq_len, d_model).T


SINUSOIDAL_MISTAKES = [
    (sinusoidal_sin_cos_swapped, "sin and cos are swapped"),
    (sinusoidal_exponent_i_over_d, "you wrote i/d_model"),
    (sinusoidal_concatenated, "The paper interleaves them"),
    (sinusoidal_base_1000, "not 1000"),
    (sinusoidal_returns_float64, "return float32"),
    (sinusoidal_frequency_per_dimension, "every dimension its own"),
    (sinusoidal_transposed, "wrong shape"),
]

# ---------------------------------------------------------------- learned


class _Learned(nn.Module):
    """The reference's structure; subclasses below override forward with one mistake each."""

    def __init__(self, max_len, d_model):
        super().__init__()
        self.max_len = max_len
        self.embedding = nn.Embedding(max_len, d_model)


class LearnedUsesMaxLenRows(_Learned):  # adds the whole table, whatever the length
    def forward(self, x):
        return x + self.embedding.weight


class LearnedReplacesX(_Learned):  # returns the position vectors instead of adding them
    def forward(self, x):
        if x.size(1) > self.max_len:
            raise ValueError("too long")
        return self.embedding(torch.arange(x.size(1))).expand_as(x)


class LearnedOffsetByOne(_Learned):  # positions 1..seq instead of 0..seq-1
    def forward(self, x):
        if x.size(1) > self.max_len:
            raise ValueError("too long")
        return x + self.embedding(torch.arange(1, x.size(1) + 1))


class LearnedNoErrorPastMaxLen(_Learned):  # clamps: positions past max_len reuse the last vector
    def forward(self, x):
        return x + self.embedding(torch.arange(x.size(1)).clamp(max=self.max_len - 1))


class LearnedUnclearError(_Learned):  # lets nn.Embedding raise "index out of range in self"
    def forward(self, x):
        return x + self.embedding(torch.arange(x.size(1)))


class LearnedInPlace(_Learned):  # x += ... changes the caller's tensor
    def forward(self, x):
        if x.size(1) > self.max_len:
            raise ValueError("too long")
        x += self.embedding(torch.arange(x.size(1)))
        return x


class LearnedDetached(_Learned):  # copies the vectors out of the graph: they never train
    def forward(self, x):
        if x.size(1) > self.max_len:
            raise ValueError("too long")
        return x + self.embedding.weight.detach()[: x.size(1)]


class LearnedWrongAttributeName(nn.Module):  # the table is not called self.embedding
    def __init__(self, max_len, d_model):
        super().__init__()
        self.pos = nn.Embedding(max_len, d_model)

    def forward(self, x):
        return x + self.pos(torch.arange(x.size(1)))


LEARNED_MISTAKES = [
    (LearnedUsesMaxLenRows, "take the first seq"),
    (LearnedReplacesX, "returned the position embeddings alone"),
    (LearnedOffsetByOne, "positions start at 0"),
    (LearnedNoErrorPastMaxLen, "must raise ValueError"),
    (LearnedUnclearError, "does not tell the user"),
    (LearnedInPlace, "in place"),
    (LearnedDetached, "no gradient"),
    (LearnedWrongAttributeName, "self.embedding"),
]

# ------------------------------------------------------------------- RoPE


def _rope(x, positions, *, exponent=-2.0, sign=1.0, swap=False, half=False, use_positions=True):
    """The reference with one knob turned."""
    d = x.size(-1)
    if not use_positions:
        positions = torch.arange(x.size(-2))
    theta = 10000 ** (exponent * torch.arange(d // 2, dtype=torch.float64) / d)
    angles = positions.double()[:, None] * theta
    cos, sin = angles.cos().to(x.dtype), sign * angles.sin().to(x.dtype)
    if swap:
        cos, sin = sin, cos
    if half:
        x1, x2 = x[..., : d // 2], x[..., d // 2:]
        return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)


def rope_rotate_half(x, positions):  # GPT-NeoX / HF LLaMA layout: pairs (x[i], x[i + d/2])
    return _rope(x, positions, half=True)


def rope_exponent_i_over_d(x, positions):  # theta_i = 10000^(-i/d)
    return _rope(x, positions, exponent=-1.0)


def rope_positive_exponent(x, positions):  # theta_i = 10000^(+2i/d): frequencies blow up
    return _rope(x, positions, exponent=2.0)


def rope_sign_flipped(x, positions):  # rotates by -angle
    return _rope(x, positions, sign=-1.0)


def rope_positions_ignored(x, positions):  # uses arange(seq) whatever the positions are
    return _rope(x, positions, use_positions=False)


def rope_cos_sin_swapped(x, positions):
    return _rope(x, positions, swap=True)


def rope_identity(x, positions):  # forgot to rotate at all
    return x.clone()


def rope_not_a_rotation(x, positions):  # scales each half instead of mixing the pair
    d = x.size(-1)
    angles = positions.double()[:, None] * 10000 ** (-2 * torch.arange(d // 2, dtype=torch.float64) / d)
    out = x.clone()
    out[..., 0::2] = x[..., 0::2] * angles.cos()
    out[..., 1::2] = x[..., 1::2] * angles.sin()
    return out


def rope_upcasts(x, positions):  # float64 cos/sin promote a float32 x
    d = x.size(-1)
    angles = positions.double()[:, None] * 10000 ** (-2 * torch.arange(d // 2, dtype=torch.float64) / d)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    cos, sin = angles.cos(), angles.sin()
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)


ROPE_MISTAKES = [
    (rope_rotate_half, "rotate_half"),
    (rope_exponent_i_over_d, "frequencies are wrong"),
    (rope_positive_exponent, "frequencies are wrong"),
    (rope_sign_flipped, "wrong way"),
    (rope_positions_ignored, "ignored the `positions` argument"),
    (rope_cos_sin_swapped, "cos and sin are swapped"),
    (rope_identity, "unrotated"),
    (rope_not_a_rotation, "a rotation keeps it"),
    (rope_upcasts, "return the dtype of x"),
]

# ------------------------------------------------------------------ ALiBi


def _alibi(slopes, seq_len, *, above=None, absolute=False):
    slopes = torch.as_tensor(slopes, dtype=torch.float32)
    pos = torch.arange(seq_len)
    distance = (pos[:, None] - pos[None, :]).float()
    if absolute:
        distance = distance.abs()
    bias = -slopes[:, None, None] * distance
    if above is not None:
        bias = bias.masked_fill(torch.ones(seq_len, seq_len, dtype=torch.bool).triu(1), above)
    return bias


def _geometric(n):  # 2^(-8(h+1)/n): right for powers of 2 only
    return [2 ** (-8 * (h + 1) / n) for h in range(n)]


def _paper(n):
    k = 2 ** math.floor(math.log2(n))
    return _geometric(k) + _geometric(2 * k)[0::2][: n - k]


def alibi_slopes_start_at_1(n_heads, seq_len):  # 2^(-8h/n): the first slope is 1
    return _alibi([2 ** (-8 * h / n_heads) for h in range(n_heads)], seq_len)


def alibi_slopes_arithmetic(n_heads, seq_len):  # evenly spaced instead of geometric
    return _alibi([(h + 1) / n_heads for h in range(n_heads)], seq_len)


def alibi_ratio_one_half(n_heads, seq_len):  # 1/2, 1/4, ... whatever n_heads is: right for 8 heads only
    return _alibi([2.0 ** -(h + 1) for h in range(n_heads)], seq_len)


def alibi_sign_flipped(n_heads, seq_len):  # +m (i - j): rewards distance
    return -_alibi(_paper(n_heads), seq_len)


def alibi_heads_reversed(n_heads, seq_len):  # smallest slope first
    return _alibi(_paper(n_heads)[::-1], seq_len)


def alibi_naive_non_power_of_2(n_heads, seq_len):  # plugs any n into the power-of-2 formula
    return _alibi(_geometric(n_heads), seq_len)


def alibi_minus_inf_above_diagonal(n_heads, seq_len):  # builds the causal mask in
    return _alibi(_paper(n_heads), seq_len, above=-math.inf)


def alibi_absolute_distance(n_heads, seq_len):  # -m |i - j| everywhere
    return _alibi(_paper(n_heads), seq_len, absolute=True)


ALIBI_MISTAKES = [
    (alibi_slopes_start_at_1, "start one step too high"),
    (alibi_slopes_arithmetic, "geometric sequence"),
    (alibi_ratio_one_half, "not 1/2"),
    (alibi_sign_flipped, "sign is flipped"),
    (alibi_heads_reversed, "reverse order"),
    (alibi_naive_non_power_of_2, "is not a power of 2"),
    (alibi_minus_inf_above_diagonal, "causal mask is applied separately"),
    (alibi_absolute_distance, "signed, not -m_h * |i - j|"),
]

# ------------------------------------------------------------ T5 buckets


def _bucket(rel, bidirectional=True, num_buckets=32, max_distance=128, *, log=True, offset=True,
            flip=False, clamp=True, halve=True, as_float=False):
    """The Hugging Face T5 formula with one knob turned."""
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
        n = -torch.min(rel, torch.zeros_like(rel))
    max_exact = num_buckets // 2
    if log:
        large = max_exact + torch.log(n.float() / max_exact) / math.log(max_distance / max_exact) * (
            num_buckets - max_exact)
        large = large if as_float else large.long()
    else:
        large = n
    if clamp:
        large = large.clamp(max=num_buckets - 1)
    return bucket + torch.where(n < max_exact, n, large)


def bucket_linear(rel, bidirectional=True, num_buckets=32, max_distance=128):  # no log region
    return _bucket(rel, bidirectional, num_buckets, max_distance, log=False)


def bucket_no_bidirectional_offset(rel, bidirectional=True, num_buckets=32, max_distance=128):
    return _bucket(rel, bidirectional, num_buckets, max_distance, offset=False)  # +3 and -3 collide


def bucket_sign_flipped(rel, bidirectional=True, num_buckets=32, max_distance=128):
    return _bucket(rel, bidirectional, num_buckets, max_distance, flip=True)  # query - key


def bucket_not_clamped(rel, bidirectional=True, num_buckets=32, max_distance=128):
    return _bucket(rel, bidirectional, num_buckets, max_distance, clamp=False)  # overflows past max_distance


def bucket_not_halved(rel, bidirectional=True, num_buckets=32, max_distance=128):
    return _bucket(rel, bidirectional, num_buckets, max_distance, halve=False)  # 32 buckets a direction


def bucket_returns_float(rel, bidirectional=True, num_buckets=32, max_distance=128):
    return _bucket(rel, bidirectional, num_buckets, max_distance, as_float=True)  # no .long()


BUCKET_MISTAKES = [
    (bucket_linear, "Yours grow linearly"),
    (bucket_no_bidirectional_offset, "go to the upper half"),
    (bucket_sign_flipped, "sign convention is flipped"),
    (bucket_not_clamped, "share the last bucket"),
    (bucket_not_halved, "halve num_buckets"),
    (bucket_returns_float, "integer tensor"),
]

# --------------------------------------------------------------- the tests

CHECKERS = [
    (checks.check_sinusoidal_positional_encoding, reference.sinusoidal_positional_encoding, SINUSOIDAL_MISTAKES),
    (checks.check_LearnedPositionalEmbedding, reference.LearnedPositionalEmbedding, LEARNED_MISTAKES),
    (checks.check_apply_rope, reference.apply_rope, ROPE_MISTAKES),
    (checks.check_alibi_bias, reference.alibi_bias, ALIBI_MISTAKES),
    (checks.check_relative_position_bucket, reference.relative_position_bucket, BUCKET_MISTAKES),
]
REFERENCES = [(checker, solution) for checker, solution, _ in CHECKERS]
CASES = [(checker, wrong, hint) for checker, _, mistakes in CHECKERS for wrong, hint in mistakes]

(test_checker_accepts_reference,
 test_checker_rejects_mistake_with_targeted_message,
 test_every_checker_has_at_least_four_mistakes,
 test_checker_passes_not_implemented_through,
 test_checker_leaves_the_global_random_stream_alone) = checker_tests(REFERENCES, CASES)


# The hand-computed bucket table, stated here so a reader can verify it with a calculator.
# Defaults: num_buckets=32, max_distance=128; relative_position = key - query.
# Bidirectional: 16 buckets a direction; distances 0..7 exact; beyond, 8 + floor(8 * log(n/8) / log(16)),
# i.e. 8 + floor(2 * log2(n/8)), clamped to 15; keys after the query add 16.
#   -12: 2 * log2(1.5) = 1.17 -> 9     -16: 2 * log2(2) = 2 -> 10     -20: 2 * log2(2.5) = 2.64 -> 10
#   -64: 2 * log2(8) = 6 -> 14         -100: 2 * log2(12.5) = 7.29 -> 15    -128: 8 -> clamped to 15
#   +16: 16 + 10 = 26                  +200: 16 + 15 = 31
# Causal (bidirectional=False): 32 buckets for the past; 0..15 exact; beyond, 16 + floor(16 * log(n/16) / log(8)),
# i.e. 16 + floor((16/3) * log2(n/16)); keys after the query go to bucket 0.
#   -20: (16/3) * 0.32 = 1.72 -> 17     -32: 16/3 = 5.33 -> 21     -64: 32/3 = 10.67 -> 26
#   -100: (16/3) * 2.64 = 14.1 -> 30    -128: 16 -> clamped to 31   +5: 0
HAND_TABLE = {
    True: {0: 0, -1: 1, -7: 7, -8: 8, -12: 9, -16: 10, -20: 10, -64: 14, -100: 15, -128: 15,
           -1000: 15, 1: 17, 8: 24, 16: 26, 200: 31},
    False: {0: 0, -1: 1, -15: 15, -16: 16, -20: 17, -32: 21, -64: 26, -100: 30, -128: 31, 5: 0},
}


@pytest.mark.parametrize("bidirectional", [True, False])
def test_reference_buckets_match_the_hand_computed_table(bidirectional):
    table = HAND_TABLE[bidirectional]
    got = reference.relative_position_bucket(torch.tensor(list(table)), bidirectional=bidirectional)
    assert got.tolist() == list(table.values())
    assert got.dtype == torch.int64


def test_alibi_slopes_match_the_paper():
    slopes = -reference.alibi_bias(8, 2)[:, 1, 0]
    assert torch.allclose(slopes, torch.tensor([2.0**-k for k in range(1, 9)]))
    # 6 heads: the 4-head slopes, then every other 8-head slope (2^-1, 2^-3).
    slopes = -reference.alibi_bias(6, 2)[:, 1, 0]
    assert torch.allclose(slopes, torch.tensor([2.0**-2, 2.0**-4, 2.0**-6, 2.0**-8, 2.0**-1, 2.0**-3]))

"""Every notebook-09 checker accepts the reference and rejects plausible mistakes.

Each wrong implementation below is a mistake learners really make; the test
asserts the checker rejects it AND that its message points at that mistake.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from utils import checks, reference

from checker_harness import checker_tests

# ----------------------------------------------------------------- FLOP counts


def attention_flops_multiply_adds(n, d):  # counts a multiply-add once
    return 4 * n * d * d + 2 * n * n * d


def attention_flops_no_out_proj(n, d):  # q, k, v projections only
    return 6 * n * d * d + 4 * n * n * d


def attention_flops_only_projections(n, d):  # forgets the n² products
    return 8 * n * d * d


def attention_flops_one_product(n, d):  # counts q kᵀ but not weights @ v
    return 8 * n * d * d + 2 * n * n * d


def attention_flops_no_projections(n, d):  # only the n² products
    return 4 * n * n * d


def attention_flops_swapped(n, d):  # n and d exchanged
    return 8 * n * n * d + 4 * n * d * d


def attention_flops_tensor(n, d):  # a tensor instead of a number
    return torch.tensor([8 * n * d * d + 4 * n * n * d])


ATTENTION_FLOPS_MISTAKES = [
    (attention_flops_multiply_adds, "You counted multiply-adds"),
    (attention_flops_no_out_proj, "output projection"),
    (attention_flops_only_projections, "counted only the projections"),
    (attention_flops_one_product, "you counted one"),
    (attention_flops_no_projections, "counted only the attention products"),
    (attention_flops_swapped, "n and d are swapped"),
    (attention_flops_tensor, "return a Python int"),
]


def block_flops_multiply_adds(n, d, d_ff=None):
    return reference.block_flops(n, d, d_ff) // 2


def block_flops_ignores_d_ff(n, d, d_ff=None):  # always 4d
    return reference.block_flops(n, d)


def block_flops_default_d(n, d, d_ff=None):  # d_ff defaults to d
    return reference.block_flops(n, d, d if d_ff is None else d_ff)


def block_flops_ffn_one_product(n, d, d_ff=None):  # counts d -> d_ff only
    d_ff = 4 * d if d_ff is None else d_ff
    return reference.attention_flops(n, d) + 2 * n * d * d_ff


def block_flops_no_attention(n, d, d_ff=None):
    d_ff = 4 * d if d_ff is None else d_ff
    return 4 * n * d * d_ff


def block_flops_no_ffn(n, d, d_ff=None):
    return reference.attention_flops(n, d)


def block_flops_no_n_squared(n, d, d_ff=None):  # projections and FFN only
    d_ff = 4 * d if d_ff is None else d_ff
    return 8 * n * d * d + 4 * n * d * d_ff


BLOCK_FLOPS_MISTAKES = [
    (block_flops_multiply_adds, "You counted multiply-adds"),
    (block_flops_ignores_d_ff, "use the d_ff passed in"),
    (block_flops_default_d, "d_ff=None means the usual 4 * d"),
    (block_flops_ffn_one_product, "two matrix products"),
    (block_flops_no_attention, "add the attention's FLOPs"),
    (block_flops_no_ffn, "left out the feed-forward network"),
    (block_flops_no_n_squared, "forgot attention's n² products"),
]

# ----------------------------------------------------------------- online softmax


def _streaming(x, block_size, *, rescale=True, running=True, shift=True, last=True, m0=None, divide=True):
    """A streaming softmax with one knob turned: each wrong implementation below sets one."""
    m = torch.full(x.shape[:-1], -math.inf if m0 == "-inf" else torch.finfo(x.dtype).min, dtype=x.dtype)
    l = torch.zeros(x.shape[:-1], dtype=x.dtype)
    stop = x.size(-1) if last else (x.size(-1) // block_size) * block_size
    for start in range(0, stop, block_size):
        block = x[..., start:start + block_size]
        if not shift:
            l = l + block.exp().sum(-1)
            continue
        m_new = torch.maximum(m, block.amax(-1)) if running else block.amax(-1)
        l = (l * (m - m_new).exp() if rescale else l) + (block - m_new[..., None]).exp().sum(-1)
        m = m_new
    e = x.exp() if not shift else (x - m[..., None]).exp()
    return e / l[..., None] if divide else e


def online_softmax_no_rescale(x, block_size):  # l keeps sums computed with old maxima
    return _streaming(x, block_size, rescale=False)


def online_softmax_block_max(x, block_size):  # m is the block's max, not the running max
    return _streaming(x, block_size, running=False)


def online_softmax_no_max(x, block_size):  # plain exp: overflows on large logits
    return _streaming(x, block_size, shift=False)


def online_softmax_drops_last_block(x, block_size):  # range(0, n - n % bs, bs)
    return _streaming(x, block_size, last=False)


def online_softmax_minus_inf_start(x, block_size):  # NaN when a whole block is -inf
    return _streaming(x, block_size, m0="-inf")


def online_softmax_not_divided(x, block_size):
    return _streaming(x, block_size, divide=False)


def online_softmax_whole_row(x, block_size):  # right values, but not streaming
    m = x.amax(-1, keepdim=True)
    e = (x - m).exp()
    return e / e.sum(-1, keepdim=True)


def online_softmax_upcasts(x, block_size):  # float64 for float32 input
    return _streaming(x.double(), block_size)


def online_softmax_in_place(x, block_size):  # x -= max: changes the caller's tensor
    x -= x[..., :1].clone()
    return _streaming(x, block_size)


ONLINE_SOFTMAX_MISTAKES = [
    (online_softmax_no_rescale, "multiply l by exp(m_old - m_new)"),
    (online_softmax_block_max, "running max over every block"),
    (online_softmax_no_max, "exp overflowed"),
    (online_softmax_drops_last_block, "the last block is shorter"),
    (online_softmax_minus_inf_start, "torch.finfo(x.dtype).min"),
    (online_softmax_not_divided, "divide exp(x - m) by the running sum"),
    (online_softmax_whole_row, "never reduce over the whole row"),
    (online_softmax_upcasts, "keep the dtype of x"),
    (online_softmax_in_place, "in place"),
]

# ----------------------------------------------------------------- FlashAttention


def _flash(q, k, v, bs, causal=False, *, rescale_acc=True, rescale_l=True, divide=True, scale=True,
           running=True, mask_diag=True, skip_above=True, visit_diag=True, strict=False,
           last_k=True, last_q=True, honour_causal=True, all_keys=False):
    """Tiled attention with one knob turned: each wrong implementation below sets one."""
    causal = causal and honour_causal
    n_q, n_k = q.size(-2), k.size(-2)
    q = q / math.sqrt(q.size(-1)) if scale else q
    q_stop = n_q if last_q else (n_q // bs) * bs
    k_stop = n_k if last_k else (n_k // bs) * bs
    k_step = n_k if all_keys else bs
    outs = []
    for i in range(0, q_stop, bs):
        qb = q[..., i:i + bs, :]
        rows = qb.size(-2)
        m = torch.full(qb.shape[:-1], -math.inf, dtype=q.dtype)
        l = torch.zeros_like(m)
        acc = torch.zeros(*qb.shape[:-1], v.size(-1), dtype=q.dtype)
        for j in range(0, k_stop, k_step):
            if causal and skip_above and (j > i + rows - 1 if visit_diag else j >= i):
                break
            s = qb @ k[..., j:j + k_step, :].transpose(-2, -1)
            if causal and mask_diag:
                qi = torch.arange(i, i + rows)[:, None]
                kj = torch.arange(j, j + s.size(-1))[None, :]
                s = s.masked_fill(kj >= qi if strict else kj > qi, -math.inf)
            m_new = torch.maximum(m, s.amax(-1)) if running else s.amax(-1)
            m_safe = torch.where(m_new == -math.inf, torch.zeros_like(m_new), m_new)  # FA's guard
            p = (s - m_safe[..., None]).exp()
            alpha = (m - m_safe).exp()
            l = (alpha * l if rescale_l else l) + p.sum(-1)
            acc = (alpha[..., None] * acc if rescale_acc else acc) + p @ v[..., j:j + k_step, :]
            m = m_new
        outs.append(acc / l[..., None] if divide else acc)
    return torch.cat(outs, dim=-2)


def flash_no_acc_rescale(q, k, v, block_size, causal=False):
    return _flash(q, k, v, block_size, causal, rescale_acc=False)


def flash_no_l_rescale(q, k, v, block_size, causal=False):
    return _flash(q, k, v, block_size, causal, rescale_l=False)


def flash_not_divided(q, k, v, block_size, causal=False):  # forgets acc / l
    return _flash(q, k, v, block_size, causal, divide=False)


def flash_no_scale(q, k, v, block_size, causal=False):  # forgets 1/sqrt(d)
    return _flash(q, k, v, block_size, causal, scale=False)


def flash_block_max(q, k, v, block_size, causal=False):  # m = block max, not running max
    return _flash(q, k, v, block_size, causal, running=False)


def flash_ignores_causal(q, k, v, block_size, causal=False):
    return _flash(q, k, v, block_size, causal, honour_causal=False)


def flash_no_diagonal_mask(q, k, v, block_size, causal=False):  # skips blocks above, no mask inside
    return _flash(q, k, v, block_size, causal, mask_diag=False)


def flash_skips_diagonal_block(q, k, v, block_size, causal=False):  # stops at j >= i
    return _flash(q, k, v, block_size, causal, visit_diag=False)


def flash_strict_mask(q, k, v, block_size, causal=False):  # masks the diagonal itself
    return _flash(q, k, v, block_size, causal, strict=True)


def flash_drops_last_key_block(q, k, v, block_size, causal=False):
    return _flash(q, k, v, block_size, causal, last_k=False)


def flash_drops_last_query_block(q, k, v, block_size, causal=False):
    return _flash(q, k, v, block_size, causal, last_q=False)


def flash_no_causal_skipping(q, k, v, block_size, causal=False):  # right values, visits every tile
    return _flash(q, k, v, block_size, causal, skip_above=False)


def flash_query_block_against_all_keys(q, k, v, block_size, causal=False):  # (block x seq_k) scores
    return _flash(q, k, v, block_size, causal, all_keys=True)


def flash_naive(q, k, v, block_size, causal=False):  # the full n x n matrix
    s = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if causal:
        s = s.masked_fill(torch.ones(s.shape[-2:], dtype=torch.bool).triu(1), -math.inf)
    return s.softmax(-1) @ v


def flash_calls_sdpa(q, k, v, block_size, causal=False):
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal)


def flash_float64_accumulators(q, k, v, block_size, causal=False):  # returns float64 for float32 input
    return reference.flash_attention_forward(q.double(), k.double(), v.double(), block_size, causal)


FLASH_MISTAKES = [
    (flash_no_acc_rescale, "rescale the output accumulator"),
    (flash_no_l_rescale, "rescale the running sum"),
    (flash_not_divided, "divide the accumulator by the running sum"),
    (flash_no_scale, "did not scale the scores"),
    (flash_block_max, "running max over all key blocks"),
    (flash_ignores_causal, "Your output ignores it"),
    (flash_no_diagonal_mask, "inside a block that crosses the diagonal"),
    (flash_skips_diagonal_block, "block on the diagonal must be visited"),
    (flash_strict_mask, "not j >= i"),
    (flash_drops_last_key_block, "last key/value block is shorter"),
    (flash_drops_last_query_block, "last query block is shorter"),
    (flash_no_causal_skipping, "skip the key blocks that lie entirely above the diagonal"),
    (flash_query_block_against_all_keys, "don't score a block against every key"),
    (flash_naive, "built the full seq_q x seq_k score matrix"),
    (flash_calls_sdpa, "write the tiled loop yourself"),
    (flash_float64_accumulators, "keep the dtype of q"),
]

# ----------------------------------------------------------------- sliding window


def _band(n, lo, hi):
    """True where -lo <= j - i <= hi."""
    i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
    return (j - i >= -lo) & (j - i <= hi)


SLIDING_WINDOW_MISTAKES = [
    (lambda n, w: _band(n, w - 1, w - 1), "stops one short"),  # |i - j| < w
    (lambda n, w: _band(n, w, 0), "kept only the past side"),  # causal window only
    (lambda n, w: _band(n, 0, w), "kept only the future side"),
    (lambda n, w: _band(n, w // 2, w // 2), "on EACH side"),  # w read as the total width
    (lambda n, w: _band(n, w, w) & ~torch.eye(n, dtype=torch.bool), "diagonal must be True"),
    (lambda n, w: ~_band(n, w, w), "inverted"),
    (lambda n, w: _band(n, w, w).float(), "boolean mask"),
    (lambda n, w: _band(n, w, w)[None], "wrong shape"),
]

REFERENCES = [
    (checks.check_attention_flops, reference.attention_flops),
    (checks.check_block_flops, reference.block_flops),
    (checks.check_online_softmax, reference.online_softmax),
    (checks.check_flash_attention_forward, reference.flash_attention_forward),
    (checks.check_sliding_window_mask, reference.sliding_window_mask),
]

CASES = (
    [(checks.check_attention_flops, fn, hint) for fn, hint in ATTENTION_FLOPS_MISTAKES]
    + [(checks.check_block_flops, fn, hint) for fn, hint in BLOCK_FLOPS_MISTAKES]
    + [(checks.check_online_softmax, fn, hint) for fn, hint in ONLINE_SOFTMAX_MISTAKES]
    + [(checks.check_flash_attention_forward, fn, hint) for fn, hint in FLASH_MISTAKES]
    + [(checks.check_sliding_window_mask, fn, hint) for fn, hint in SLIDING_WINDOW_MISTAKES]
)

(test_checker_accepts_reference,
 test_checker_rejects_mistake_with_targeted_message,
 test_every_checker_has_at_least_four_mistakes,
 test_checker_passes_not_implemented_through,
 test_checker_leaves_the_global_random_stream_alone) = checker_tests(REFERENCES, CASES)


def test_reference_flash_attention_is_within_1e_5_of_sdpa_in_float32():
    # The notebook's promise: max abs error <= 1e-5 in float32, causal and not.
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 300, 64, generator=g) for _ in range(3))
    for causal in (False, True):
        out = reference.flash_attention_forward(q, k, v, 64, causal)
        expected = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        assert (out - expected).abs().max() <= 1e-5

"""Checkers for notebook 09 · Efficient attention.

Ground truth:

* ``attention_flops`` and ``block_flops``: PyTorch's ``FlopCounterMode``
  counting a real ``nn.MultiheadAttention`` (with ``need_weights=True``, its
  explicit path) and a real ``nn.TransformerEncoderLayer`` (with the MATH
  backend of ``scaled_dot_product_attention``: the fused CPU kernel is not
  counted by ``FlopCounterMode``).
* ``online_softmax``: ``torch.softmax``.
* ``flash_attention_forward``: ``F.scaled_dot_product_attention`` (with
  ``is_causal`` for the causal cases).
* ``sliding_window_mask``: a band cut out of a matrix of ones with
  ``torch.triu`` and ``torch.tril``.

Two properties values alone cannot show are checked by watching the
learner's code run (``_Watch``, a ``TorchDispatchMode`` that sees every
PyTorch operation): the online softmax must not reduce over more than one
block at a time, and the tiled attention must never build a tensor larger
than its inputs and outputs (the full score matrix, or a query block's scores
against every key); causal attention must skip the key blocks above the
diagonal, which ``FlopCounterMode`` shows as about half the FLOPs.
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode

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

__all__ = ["check_attention_flops", "check_block_flops", "check_online_softmax",
           "check_flash_attention_forward", "check_sliding_window_mask"]

F64 = torch.float64


# ----------------------------------------------------------- watching the learner's code


# Reductions, and how to find the axes they reduce over: (position of `dim` in args, its kwarg name).
_REDUCTIONS = {
    "aten.amax.default": 1, "aten.amin.default": 1, "aten.max.dim": 1, "aten.min.dim": 1,
    "aten.sum.dim_IntList": 1, "aten.logsumexp.default": 1, "aten._softmax.default": 1,
    "aten._log_softmax.default": 1, "aten.mean.dim": 1,
    "aten.max.default": None, "aten.min.default": None, "aten.sum.default": None,
}


def _reduced_entries(name: str, args, kwargs) -> int:
    """How many entries one output of a reduction combines."""
    x = args[0]
    where = _REDUCTIONS[name]
    dim = None if where is None else (args[where] if len(args) > where else kwargs.get("dim"))
    if dim is None or (isinstance(dim, (list, tuple)) and len(dim) == 0):
        return x.numel()
    dims = [dim] if isinstance(dim, int) else list(dim)
    return math.prod(x.size(d) for d in dims) if x.dim() else 1


class _Watch(TorchDispatchMode):
    """Sees every PyTorch operation the learner's code runs and records:

    the largest tensor any operation produced (numel, shape, operation), the
    widest reduction (entries combined into one value, operation), and the
    names of all operations.
    """

    def __init__(self):
        super().__init__()
        self.largest = (0, (), "")
        self.widest = (0, "")
        self.ops: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = str(func)
        self.ops.add(name)
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.numel() > self.largest[0]:
                self.largest = (t.numel(), tuple(t.shape), name)
        if name in _REDUCTIONS and isinstance(args[0], torch.Tensor):
            entries = _reduced_entries(name, args, kwargs)
            if entries > self.widest[0]:
                self.widest = (entries, name)
        return out


def _op(name: str) -> str:
    """aten.amax.default -> amax"""
    return name.split(".")[1] if name.startswith("aten.") else name


# ----------------------------------------------------------- FLOP counts


def _expect_count(got, expected: int, label: str, mistakes: dict[str, int]) -> None:
    if isinstance(got, bool) or not isinstance(got, numbers.Real):
        fail(label, "should return a number (an int).", got=describe(got),
             hint="return a Python int, for example 2 * n * d * d, not a tensor or a tuple.")
    if got == expected:
        return
    hint = next((h for h, wrong in mistakes.items() if got == wrong), None)
    ratio = f" ({got / expected:.3g} times the right count)" if expected else ""
    fail(label, f"wrong FLOP count{ratio}.", expected=f"{expected:,} (counted by FlopCounterMode)",
         got=f"{got:,}" if isinstance(got, int) else f"{got!r}", hint=hint)


def _measured_flops(module: nn.Module, x: torch.Tensor, **kwargs) -> int:
    with torch.enable_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        module(*(x,) * (3 if isinstance(module, nn.MultiheadAttention) else 1), **kwargs)
    return counter.get_total_flops()


def _torch_module(factory):
    with torch.random.fork_rng(devices=[]):  # building a layer draws random weights
        return factory()


def check_attention_flops(attention_flops) -> None:
    """Check ``attention_flops(n, d)`` against FlopCounterMode on ``nn.MultiheadAttention``."""
    cases = [(100, 32, 4), (128, 64, 8), (1, 16, 2), (257, 48, 6)]
    g = rng(0)
    for n, d, h in cases:
        label = f"attention_flops(n={n}, d={d})"
        got = call(attention_flops, label, n, d)
        layer = _torch_module(lambda: nn.MultiheadAttention(d, h, batch_first=True))
        x = torch.randn(1, n, d, generator=g)
        expected = _measured_flops(layer, x, need_weights=True)
        mistakes = {
            "a multiply-add is 2 FLOPs (one multiply, one add): an (a x b)(b x c) product costs 2abc. "
            "You counted multiply-adds.": 4 * n * d * d + 2 * n * n * d,
            "you left out the output projection: four projections (q, k, v and out), "
            "each (n x d)(d x d).": 6 * n * d * d + 4 * n * n * d,
            "you counted only the projections: the scores q kᵀ and weights @ v add "
            "2 * n * n * d FLOPs each.": 8 * n * d * d,
            "there are two products of size n x n x d: the scores q kᵀ and the weighted sum "
            "weights @ v; you counted one.": 8 * n * d * d + 2 * n * n * d,
            "you counted only the attention products: the four projections (q, k, v, out) cost "
            "2 * n * d * d each.": 4 * n * n * d,
            "n and d are swapped: a projection is (n x d)(d x d), 2nd² FLOPs; a score matrix is "
            "(n x d)(d x n), 2n²d FLOPs.": 8 * n * n * d + 4 * n * d * d,
        }
        _expect_count(got, expected, label, mistakes)
    passed("attention_flops", f"{len(cases)} sizes, each equal to FlopCounterMode on nn.MultiheadAttention")


def check_block_flops(block_flops) -> None:
    """Check ``block_flops(n, d, d_ff=None)`` against FlopCounterMode on ``nn.TransformerEncoderLayer``."""
    cases = [(100, 32, None, 4), (64, 16, 48, 2), (1, 8, None, 2), (50, 24, 200, 3)]
    g = rng(1)
    for n, d, d_ff, h in cases:
        ff = 4 * d if d_ff is None else d_ff
        label = f"block_flops(n={n}, d={d}" + (")" if d_ff is None else f", d_ff={d_ff})")
        got = call(block_flops, label, n, d) if d_ff is None else call(block_flops, label, n, d, d_ff)
        layer = _torch_module(lambda: nn.TransformerEncoderLayer(d, h, ff, dropout=0.0, batch_first=True))
        expected = _measured_flops(layer, torch.randn(1, n, d, generator=g))
        attn = 8 * n * d * d + 4 * n * n * d
        mistakes = {
            "a multiply-add is 2 FLOPs: an (a x b)(b x c) product costs 2abc. You counted "
            "multiply-adds.": expected // 2,
            "a block is attention AND a feed-forward network: add the attention's FLOPs.": 4 * n * d * ff,
            "you left out the feed-forward network: (n x d)(d x d_ff) and back, 4 * n * d * d_ff.": attn,
            "the feed-forward network has two matrix products, d -> d_ff and d_ff -> d: "
            "2 * n * d * d_ff each.": attn + 2 * n * d * ff,
            "you forgot attention's n² products (q kᵀ and weights @ v, 4 * n * n * d).": 8 * n * d * d + 4 * n * d * ff,
        }
        if d_ff is None:
            mistakes["d_ff=None means the usual 4 * d, not d."] = attn + 4 * n * d * d
        else:
            mistakes[f"use the d_ff passed in ({d_ff}); 4 * d is only the default when d_ff is None."] = \
                attn + 16 * n * d * d
        _expect_count(got, expected, label, mistakes)
    passed("block_flops", f"{len(cases)} sizes with and without d_ff, each equal to FlopCounterMode "
                          "on nn.TransformerEncoderLayer")


# ----------------------------------------------------------- online softmax


def _online(x: torch.Tensor, block_size: int, *, rescale=True, running_max=True, subtract_max=True,
            remainder=True, m0=None, normalise=True) -> torch.Tensor:
    """A streaming softmax with one knob turned: what each known mistake returns."""
    m = torch.full(x.shape[:-1], torch.finfo(x.dtype).min if m0 is None else m0, dtype=x.dtype)
    l = torch.zeros(x.shape[:-1], dtype=x.dtype)
    n = x.size(-1)
    stop = n if remainder else n - n % block_size
    for start in range(0, stop, block_size):
        block = x[..., start:start + block_size]
        if not subtract_max:
            l = l + block.exp().sum(-1)
            continue
        m_new = torch.maximum(m, block.amax(-1)) if running_max else block.amax(-1)
        l = (l * torch.exp(m - m_new) if rescale else l) + torch.exp(block - m_new[..., None]).sum(-1)
        m = m_new
    if not subtract_max:
        return x.exp() / l[..., None]
    e = torch.exp(x - m[..., None])
    return e / l[..., None] if normalise else e


def _online_mistakes(x: torch.Tensor, block_size: int) -> dict:
    return {  # first match wins: the -inf mistake first, as other mistakes also give NaN there
        "a block whose entries are all -inf (masked) makes m_new = -inf and exp(-inf - (-inf)) = NaN. "
        "Start m at torch.finfo(x.dtype).min instead of -inf (or guard that case).":
            _online(x, block_size, m0=-math.inf),
        "when the running max grows, the sum so far was computed with the old max: multiply l by "
        "exp(m_old - m_new) before adding the new block's sum.": _online(x, block_size, rescale=False),
        "m must be the running max over every block so far: m_new = max(m, block max), not the "
        "block's own max (with a smaller block after a large one, exp(m_old - m_new) overflows).":
            _online(x, block_size, running_max=False),
        "exp overflowed: subtract the running max m before exp, and rescale the sum when m "
        "changes.": _online(x, block_size, subtract_max=False),
        "the last block is shorter when n is not a multiple of block_size; it must be included "
        "(range(0, n, block_size) and slicing handle that).": _online(x, block_size, remainder=False),
        "divide exp(x - m) by the running sum l at the end.": _online(x, block_size, normalise=False),
    }


def check_online_softmax(online_softmax) -> None:
    """Check ``online_softmax(x, block_size)`` against ``torch.softmax(x, dim=-1)``."""
    g = rng(2)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=F64) * 3

    masked = randn(2, 9)
    masked[0, :4] = -math.inf  # the first block (and a bit more) of row 0 is masked
    masked[1, [2, 5, 8]] = -math.inf
    cases = [
        ("x of shape (3, 10), block_size=4 (the last block has 2 entries)", randn(3, 10), 4),
        ("increasing logits, shape (2, 8), block_size=2 (the max grows in every block)",
         torch.linspace(-4, 10, 16, dtype=F64).view(2, 8), 2),
        ("x of shape (2, 3, 16), block_size=16 (one block)", randn(2, 3, 16), 16),
        ("x of shape (4, 7), block_size=1", randn(4, 7), 1),
        ("x of shape (2, 5), block_size=8 (larger than the row)", randn(2, 5), 8),
        ("a single entry, shape (1, 1), block_size=3", randn(1, 1), 3),
        ("large logits [1000, 1001, 1002, 999, 1003], block_size=2",
         torch.tensor([[1000.0, 1001.0, 1002.0, 999.0, 1003.0]], dtype=F64), 2),
        ("large logits, then small ones [1000, 1001, 0, 1], block_size=2",
         torch.tensor([[1000.0, 1001.0, 0.0, 1.0]], dtype=F64), 2),
        ("-inf (masked) entries, row 0's first block all -inf, block_size=3", masked, 3),
    ]
    for what, x, bs in cases:
        label = f"online_softmax on {what}"
        before = x.clone()
        got = expect_tensor(call(online_softmax, label, x, bs), label)
        expect_unchanged(before, x, label, "its input x")
        expect_close(got, torch.softmax(x, dim=-1), label, atol=1e-10, rtol=1e-10,
                     mistakes=_online_mistakes(x, bs))

    x32 = torch.randn(3, 11, generator=g)
    label = "online_softmax on float32 input, block_size=4"
    got = expect_tensor(call(online_softmax, label, x32, 4), label)
    expect_dtype(got, torch.float32, label, hint="keep the dtype of x (create m and l with dtype=x.dtype).")
    expect_close(got, torch.softmax(x32, dim=-1), label, atol=1e-6, rtol=1e-5)

    # Streaming: no single max or sum may look at more than one block of a row.
    x, bs = randn(2, 12), 4
    label = "online_softmax on x of shape (2, 12), block_size=4, watching every operation"
    watch = _Watch()
    with watch:
        call(online_softmax, label, x, bs)
    entries, op = watch.widest
    if entries > bs:
        fail(label, f"{_op(op)} combined {entries} entries at once, but a block has only {bs}.",
             hint="stream: compute the max and the sum one block at a time (x[..., start:start + "
                  "block_size]), updating the running m and l; never reduce over the whole row.")
    passed("online_softmax", f"{len(cases) + 2} cases vs torch.softmax, with blocks of 1 to 16, "
                             "-inf entries, and one block reduced at a time")


# ----------------------------------------------------------- FlashAttention forward


def _tiled(q, k, v, bs, causal, *, rescale_acc=True, rescale_l=True, normalise=True, scale=True,
           running_max=True, mask_diagonal=True, visit_diagonal=True, strict=False, remainder=True,
           use_causal=True) -> torch.Tensor:
    """The tiled forward pass with one knob turned: what each known mistake returns."""
    causal = causal and use_causal
    n_q, n_k = q.size(-2), k.size(-2)
    sc = 1.0 / math.sqrt(q.size(-1)) if scale else 1.0
    k_stop = n_k if remainder else n_k - n_k % bs
    outs = []
    for i in range(0, n_q, bs):
        qb = q[..., i:i + bs, :] * sc
        rows = qb.size(-2)
        m = torch.full(qb.shape[:-1], torch.finfo(q.dtype).min, dtype=q.dtype)
        l = torch.zeros_like(m)
        acc = torch.zeros(*qb.shape[:-1], v.size(-1), dtype=q.dtype)
        for j in range(0, k_stop, bs):
            if causal and (j > i + rows - 1 if visit_diagonal else j >= i):
                break
            s = qb @ k[..., j:j + bs, :].transpose(-2, -1)
            if causal and mask_diagonal:
                qi = torch.arange(i, i + rows)[:, None]
                kj = torch.arange(j, j + s.size(-1))[None, :]
                s = s.masked_fill(kj >= qi if strict else kj > qi, -math.inf)
            m_new = torch.maximum(m, s.amax(-1)) if running_max else s.amax(-1)
            p = torch.exp(s - m_new[..., None])
            alpha = torch.exp(m - m_new)
            l = (alpha * l if rescale_l else l) + p.sum(-1)
            acc = (alpha[..., None] * acc if rescale_acc else acc) + p @ v[..., j:j + bs, :]
            m = m_new
        outs.append(acc / l[..., None] if normalise else acc)
    return torch.cat(outs, dim=-2)


def _flash_mistakes(q, k, v, bs, causal) -> dict:
    def t(**knobs):
        return _tiled(q, k, v, bs, causal, **knobs)

    mistakes = {
        "rescale the output accumulator too: when the running max grows from m_old to m_new, "
        "multiply acc by exp(m_old - m_new) before adding p @ v_block.":
            [t(rescale_acc=False), t(rescale_acc=False, rescale_l=False)],
        "rescale the running sum too: l = exp(m_old - m_new) * l + p.sum(-1).": t(rescale_l=False),
        "divide the accumulator by the running sum l at the end (once, after the last key block).":
            t(normalise=False),
        "you did not scale the scores: divide q·kᵀ by sqrt(d) (scale the query block once).": t(scale=False),
        "m must be the running max over all key blocks so far: m_new = max(m, block max). With the "
        "block's own max, exp(m_old - m_new) overflows after a block of large scores.":
            t(running_max=False),
        "the last key/value block is shorter when seq_k is not a multiple of block_size; it must "
        "be included.": t(remainder=False),
    }
    if causal:
        mistakes.update({
            "causal=True: query i may attend only to keys j <= i. Your output ignores it.": t(use_causal=False),
            "skipping the blocks above the diagonal is not enough: inside a block that crosses the "
            "diagonal, mask the keys j > i with -inf.": t(mask_diagonal=False),
            "the block on the diagonal must be visited (a query attends to itself): stop at key "
            "blocks that start after the query block's last row, not at its first.": t(visit_diagonal=False),
            "mask keys j > i, not j >= i: a query may attend to itself.": t(strict=True),
        })
    return mistakes


def _sdpa(q, k, v, causal):
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal)


def check_flash_attention_forward(flash_attention_forward) -> None:
    """Check ``flash_attention_forward(q, k, v, block_size, causal=False)`` against
    ``F.scaled_dot_product_attention``, and that it works tile by tile."""
    g = rng(3)

    def randn(*shape, dtype=F64):
        return torch.randn(*shape, generator=g, dtype=dtype)

    def qkv(*shape):
        return randn(*shape), randn(*shape), randn(*shape)

    cases = [
        ("batch 2, 3 heads, seq 10, d 8, block_size 4 (10 is not a multiple of 4)", *qkv(2, 3, 10, 8), 4, False),
        ("batch 2, 3 heads, seq 10, d 8, block_size 4, causal", *qkv(2, 3, 10, 8), 4, True),
        ("3-D input (2, 37, 16), block_size 8, causal", *qkv(2, 37, 16), 8, True),
        ("cross-attention: seq_q 5, seq_k 11, d 8, d_v 6, block_size 4",
         randn(2, 2, 5, 8), randn(2, 2, 11, 8), randn(2, 2, 11, 6), 4, False),
        ("block_size 1, seq 6, causal", *qkv(1, 6, 4), 1, True),
        ("block_size 16 larger than seq 5", *qkv(1, 1, 5, 4), 16, False),
        ("block_size 16 larger than seq 5, causal", *qkv(1, 1, 5, 4), 16, True),
        ("batch 1, seq 1, causal", *qkv(1, 1, 1, 4), 4, True),
        ("batch 1, 2 heads, seq 16, block_size 8 (a multiple)", *qkv(1, 2, 16, 8), 8, False),
        ("scores near +900 in the first key block and -900 in the second, block_size 3",
         torch.full((1, 2, 1), 30.0, dtype=F64), torch.tensor([30.0, 29.0, 30.0, -30.0, -29.0, -30.0],
                                                               dtype=F64).view(1, 6, 1),
         randn(1, 6, 2), 3, False),
    ]
    for what, q, k, v, bs, causal in cases:
        label = f"flash_attention_forward on {what}"
        inputs = [t.clone() for t in (q, k, v)]
        got = expect_tensor(call(flash_attention_forward, label, q, k, v, bs, causal=causal), label)
        for before, after, name in zip(inputs, (q, k, v), "qkv"):
            expect_unchanged(before, after, label, f"its input {name}",
                             hint="scale a copy (q_block = q[...] * scale), not q itself (q *= ...).")
        expected = _sdpa(q, k, v, causal)
        if got.dim() == expected.dim() and got.shape[:-2] == expected.shape[:-2] \
                and got.size(-2) < expected.size(-2):
            fail(label, "returned too few rows.", expected=str(tuple(expected.shape)), got=str(tuple(got.shape)),
                 hint="the last query block is shorter when seq_q is not a multiple of block_size; "
                      "loop with range(0, seq_q, block_size) and let slicing shorten it.")
        expect_shape(got, expected.shape, label, hint="the output is (..., seq_q, d_v): one row per query.")
        expect_close(got, expected, label, atol=1e-10, rtol=1e-8,
                     mistakes=_flash_mistakes(q, k, v, bs, causal))

    # float32: the tolerance the notebook promises.
    for causal in (False, True):
        q, k, v = (randn(2, 2, 100, 32, dtype=torch.float32) for _ in range(3))
        label = f"flash_attention_forward on float32, seq 100, block_size 32{', causal' if causal else ''}"
        got = expect_tensor(call(flash_attention_forward, label, q, k, v, 32, causal=causal), label)
        expect_dtype(got, torch.float32, label, hint="keep the dtype of q (create m, l and acc with dtype=q.dtype).")
        expect_close(got, _sdpa(q, k, v, causal), label, atol=1e-5, rtol=0.0)

    # Tile by tile: nothing bigger than the inputs and outputs, and causal skips the upper blocks.
    n, d, bs = 64, 4, 8
    q, k, v = qkv(1, 2, n, d)
    flops = {}
    for causal in (False, True):
        label = f"flash_attention_forward on seq {n}, d {d}, block_size {bs}{', causal' if causal else ''}, " \
                "watching every operation"
        watch = _Watch()
        with FlopCounterMode(display=False) as counter, watch:
            call(flash_attention_forward, label, q, k, v, bs, causal=causal)
        flops[causal] = counter.get_total_flops()
        if any("scaled_dot_product" in op for op in watch.ops):
            fail(label, "called F.scaled_dot_product_attention.",
                 hint="write the tiled loop yourself: that is the exercise.")
        numel, shape, op = watch.largest
        allowed = 2 * max(n * d, bs * bs)  # 2 heads: q, k, v, the output, or one (block x block) tile
        if numel > allowed:
            full = numel >= 2 * n * n
            fail(label, f"{_op(op)} built a tensor of shape {shape}: more memory than the inputs "
                        f"(2 heads x {n} x {d}) and far more than a tile ({bs} x {bs}).",
                 hint="you built the full seq_q x seq_k score matrix (or mask): the point is never to "
                      "hold it. Loop over key/value blocks and keep only one block of scores."
                 if full else
                 "the scores exist one (block_size x block_size) tile at a time: take a block of queries "
                 "AND a block of keys; don't score a block against every key (or every query).")
    if flops[False] and flops[True] > 0.75 * flops[False]:
        fail(f"flash_attention_forward on seq {n}, block_size {bs}, causal",
             f"causal attention cost {flops[True] / flops[False]:.0%} of the FLOPs of full attention.",
             expected=f"about {36 / 64:.0%} (the blocks on and below the diagonal)",
             hint="skip the key blocks that lie entirely above the diagonal (every key after the query "
                  "block's last row): they would be masked completely, so computing them is wasted work.")
    passed("flash_attention_forward",
           f"{len(cases) + 2} cases vs F.scaled_dot_product_attention, causal and not, lengths not multiples "
           "of the block size, float32 within 1e-5; one tile at a time, upper blocks skipped")


# ----------------------------------------------------------- sliding window


def _grid(mask: torch.Tensor) -> str:
    rows = [" ".join(str(int(b)) for b in row) for row in mask.tolist()]
    return "\n" + "\n".join("            " + r for r in rows)


def check_sliding_window_mask(sliding_window_mask) -> None:
    """Check ``sliding_window_mask(n, w)`` against a band of ones (triu and tril)."""
    cases = [(6, 3), (6, 1), (5, 0), (1, 3), (4, 10), (12, 2)]
    for n, w in cases:
        label = f"sliding_window_mask(n={n}, w={w})"
        got = expect_tensor(call(sliding_window_mask, label, n, w), label)
        expect_shape(got, (n, n), label, hint="the mask is (n, n): queries on rows, keys on columns.")
        if got.dtype != torch.bool:
            fail(label, "should return a boolean mask.", expected="dtype torch.bool", got=f"dtype {got.dtype}",
                 hint="build it from a comparison (which gives booleans) or with dtype=torch.bool: True = may attend.")
        ones = torch.ones(n, n, dtype=torch.bool)
        expected = ones.triu(-w).tril(w)
        if torch.equal(got, expected):
            continue
        mistakes = {
            "token i sees the keys with |i - j| <= w: w on each side and itself. Yours stops one "
            "short (< w instead of <= w).": ones.triu(-w + 1).tril(w - 1) if w > 0 else ~ones,
            "the window is two-sided (|i - j| <= w): you kept only the past side. A causal sliding window "
            "is sliding_window_mask(n, w) & causal_mask(n).": ones.triu(-w).tril(),
            "the window is two-sided (|i - j| <= w): you kept only the future side.": ones.triu().tril(w),
            "w is the reach on EACH side (2w + 1 keys in all), not the total width.": ones.triu(-(w // 2)).tril(w // 2),
            "the diagonal must be True: every token may attend to itself.": expected & ~torch.eye(n, dtype=torch.bool),
            "your mask is inverted: True marks the keys a query MAY attend to (inside the window).": ~expected,
        }
        hint = next((h for h, wrong in mistakes.items() if torch.equal(got, wrong)), None)
        fail(label, "has the wrong True/False pattern (1 = True = may attend; rows are queries).",
             expected=_grid(expected) if n <= 6 else f"{int(expected.sum())} True entries in a band",
             got=_grid(got) if n <= 6 else f"{int(got.sum())} True entries", hint=hint)
    passed("sliding_window_mask", f"{len(cases)} sizes, windows from 0 to wider than the sequence")

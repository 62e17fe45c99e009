"""Checkers for notebook 05 · The transformer block and the encoder.

Ground truth:

* ``TransformerBlock``: ``torch.nn.TransformerEncoderLayer`` (GELU, dropout 0,
  ``batch_first=True``) with random weights, loaded into the learner's block
  with the loaders of ``_torch_layers`` (``self_attn`` -> ``attn``,
  ``linear1/linear2`` -> ``ffn.linear1/linear2``, ``norm1/norm2``), for both
  ``norm_first`` settings. PyTorch's masks mean the opposite of ours (True =
  may NOT attend), so ours are inverted for it.
* ``TransformerEncoder``: ``torch.nn.TransformerEncoder`` made of such layers
  (and a final ``nn.LayerNorm`` for pre-norm), fed ``token_emb[idx] + pe[:seq]``
  with the sinusoidal encoding computed here from its formula.

PyTorch's layers are run with autograd on, which keeps them on their plain
("slow") path, the one that computes every position exactly as written.
The known mistakes are recognised by recomputing the block with PyTorch's
submodules arranged the wrong way (``_block``).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.checks._core import (
    build_module,
    call,
    describe,
    expect_close,
    expect_dtype,
    expect_shape,
    expect_unchanged,
    fail,
    passed,
    rng,
    tril_mask,
)
from utils.checks._torch_layers import load_attention, load_feedforward, load_layer_norm, randomise
from utils.checks.positional import _sinusoid_np

__all__ = ["check_TransformerBlock", "check_TransformerEncoder"]

F64 = torch.float64



def _torch_layer(d: int, h: int, d_ff: int, norm_first: bool, g: torch.Generator) -> nn.TransformerEncoderLayer:
    layer = nn.TransformerEncoderLayer(d, h, d_ff, dropout=0.0, activation="gelu", batch_first=True,
                                       norm_first=norm_first, dtype=F64)
    return randomise(layer, g).eval()


def _load_block(block: nn.Module, layer: nn.TransformerEncoderLayer, where: str, label: str) -> None:
    """Copy a TransformerEncoderLayer's weights into the learner's block (already float64)."""
    load_attention(getattr(block, "attn", None), layer.self_attn, f"{where}.attn", label)
    load_feedforward(getattr(block, "ffn", None), layer, f"{where}.ffn", label)
    norms = [getattr(block, f"norm{i}", None) for i in (1, 2)]
    if norms[0] is not None and norms[0] is norms[1]:
        fail(label, f"{where}.norm1 and {where}.norm2 are the same module.",
             hint="each sublayer has its own LayerNorm with its own weight and bias: "
                  "build two, self.norm1 = LayerNorm(d_model) and self.norm2 = LayerNorm(d_model).")
    for i, norm in enumerate(norms, start=1):
        if not isinstance(norm, nn.Module):
            fail(label, f"should have a LayerNorm at {where}.norm{i}.", got=describe(norm),
                 hint="name the norms norm1 (before or after attention) and norm2 (the feed-forward "
                      "network's), as nn.TransformerEncoderLayer does.")
        load_layer_norm(norm, getattr(layer, f"norm{i}"), f"{where}.norm{i}", label)


def _torch_mask(mask: torch.Tensor | None, b: int, h: int, t: int) -> torch.Tensor | None:
    """Our mask (True = may attend, broadcastable to (b, h, t, t)) as nn.MultiheadAttention's
    3-d attn_mask (b * h, t, t), True = may NOT attend."""
    if mask is None:
        return None
    return ~mask.expand(b, h, t, t).reshape(b * h, t, t)


def _block(layer: nn.TransformerEncoderLayer, x: torch.Tensor, mask: torch.Tensor | None, *,
           norm_first: bool, attn_res: bool = True, ffn_res: bool = True, normed_res: bool = False,
           norms: tuple[int, int] = (1, 2), ffn_first: bool = False, norm_in_branch: bool = False
           ) -> torch.Tensor:
    """One block computed from PyTorch's submodules, right or with one thing changed.

    Attention runs with need_weights=True, PyTorch's explicit-softmax path, so a
    row with every key masked gives NaN exactly as a hand-written attention does.
    """
    b, t, _ = x.shape
    h = layer.self_attn.num_heads
    n = {1: layer.norm1, 2: layer.norm2}
    attn_mask = _torch_mask(mask, b, h, t)

    def attn(z):
        return layer.self_attn(z, z, z, attn_mask=attn_mask, need_weights=True)[0]

    def ffn(z):
        return layer.linear2(F.gelu(layer.linear1(z)))

    subs = [(attn, n[norms[0]], attn_res), (ffn, n[norms[1]], ffn_res)]
    if ffn_first:
        subs = subs[::-1]
    for f, norm, res in subs:
        if norm_first:
            z = norm(x)
            x = (z if normed_res else x) * res + f(z)
        elif norm_in_branch:
            x = x * res + norm(f(x))
        else:
            x = norm(x * res + f(x))
    return x


def _block_mistakes(layer, x, mask, norm_first: bool, default_case: bool) -> dict:
    run = lambda m=mask, nf=norm_first, **kw: _block(layer, x, m, norm_first=nf, **kw)  # noqa: E731
    pre, post = "pre-norm (norm_first=True)", "post-norm (norm_first=False)"
    mistakes = {}
    if default_case:
        mistakes["norm_first defaults to True (pre-norm); your block computed post-norm when it was "
                 "not given."] = run(nf=False)
    if norm_first:
        mistakes[f"this block should be {pre}: x = x + attn(norm1(x)), then x = x + ffn(norm2(x)). "
                 "Yours computed post-norm, norm1(x + attn(x)); check which branch of "
                 "`if self.norm_first` does what."] = run(nf=False)
        mistakes["the residual must carry x itself, not its normalised copy: x = x + attn(norm1(x)). "
                 "Writing h = norm1(x); x = h + attn(h) normalises the residual stream at every "
                 "sublayer, which is what pre-norm avoids."] = run(normed_res=True)
    else:
        mistakes[f"this block should be {post}: x = norm1(x + attn(x)), then x = norm2(x + ffn(x)). "
                 "Yours computed pre-norm, x + attn(norm1(x)); check which branch of "
                 "`if self.norm_first` does what."] = run(nf=True)
        mistakes["in post-norm the norm wraps the residual sum, norm1(x + attn(x)), not just the "
                 "sublayer's output, x + norm1(attn(x))."] = run(norm_in_branch=True)
    mistakes |= {
        "the attention sublayer has no residual connection: add its input back "
        f"({'x = x + attn(norm1(x))' if norm_first else 'x = norm1(x + attn(x))'}).": run(attn_res=False),
        "the feed-forward sublayer has no residual connection: add its input back "
        f"({'x = x + ffn(norm2(x))' if norm_first else 'x = norm2(x + ffn(x))'}).": run(ffn_res=False),
        "neither sublayer has a residual connection: each adds its input back (x = x + ...).":
            run(attn_res=False, ffn_res=False),
        "you used one LayerNorm for both sublayers: attention goes with norm1 and the feed-forward "
        "network with norm2, each with its own weights.": [run(norms=(1, 1)), run(norms=(2, 2))],
        "the sublayers are in the wrong order: attention comes first (tokens gather from each "
        "other), then the feed-forward network (each token on its own).":
            [run(ffn_first=True), run(ffn_first=True, norms=(2, 1))],
    }
    if mask is not None:
        mistakes["the output is what the block gives with no mask at all: pass `mask` on to the "
                 "attention, self.attn(..., mask)."] = run(m=None)
        mistakes["the mask is inverted: ours is True = may attend, so hand it to self.attn as it is "
                 "(PyTorch's src_mask uses the opposite convention)."] = run(m=~mask)
    return mistakes


def _output(result, label: str) -> torch.Tensor:
    if isinstance(result, tuple):
        fail(label, "forward should return one tensor, (batch, seq, d_model).", got=describe(result),
             hint="self.attn returns (output, weights): keep the output, e.g. `a, _ = self.attn(...)`.")
    if not isinstance(result, torch.Tensor):
        fail(label, "forward should return a torch.Tensor.", got=describe(result))
    return result


def _run(module, label: str, x, *args, **kwargs) -> torch.Tensor:
    """Call the learner's module under no_grad; the input must come back unchanged."""
    before = x.clone()
    with torch.no_grad():
        out = _output(call(module, label, x, *args, **kwargs), label)
    expect_unchanged(before, x, label)
    return out


# ------------------------------------------------------------ TransformerBlock


def check_TransformerBlock(TransformerBlock) -> None:
    """Check ``TransformerBlock(d_model, n_heads, d_ff=None, dropout=0.0, norm_first=True)``
    against ``nn.TransformerEncoderLayer`` with the same random weights."""
    with torch.random.fork_rng(devices=[]):  # PyTorch's layers draw their initial weights from it
        _check_block(TransformerBlock)


def _check_block(TransformerBlock) -> None:
    g = rng(50)
    pad = torch.ones(2, 1, 1, 5, dtype=torch.bool)
    pad[1, ..., 3:] = False  # the second sequence ends in 2 padding tokens
    cases = [  # (what, norm_first, batch, seq, d_ff, mask kind)
        ("pre-norm, no mask", True, 2, 5, 16, None),
        ("post-norm, no mask", False, 2, 5, 16, None),
        ("pre-norm, padding mask (2, 1, 1, 5)", True, 2, 5, 16, "padding"),
        ("post-norm, padding mask (2, 1, 1, 5)", False, 2, 5, 16, "padding"),
        ("pre-norm, causal mask (5, 5)", True, 2, 5, 16, "causal"),
        ("post-norm, causal mask (5, 5)", False, 2, 5, 16, "causal"),
        ("pre-norm, causal & padding mask (2, 1, 5, 5)", True, 2, 5, 16, "both"),
        ("pre-norm, batch 1, seq 1, causal mask (1, 1)", True, 1, 1, 16, "causal"),
        ("post-norm, batch 1, seq 1, causal mask (1, 1)", False, 1, 1, 16, "causal"),
        ("the defaults (d_ff=None -> 4 * d_model, norm_first=True), batch 3, seq 4", None, 3, 4, None, None),
    ]
    d, h = 8, 2
    for what, norm_first, b, t, d_ff, kind in cases:
        default_case = norm_first is None
        nf = True if default_case else norm_first
        args = f"{d}, {h}" + ("" if default_case else f", d_ff={d_ff}, dropout=0.0, norm_first={nf}")
        label = f"TransformerBlock({args}) on {what}"
        kwargs = {} if default_case else {"d_ff": d_ff, "dropout": 0.0, "norm_first": nf}
        block = build_module(TransformerBlock, label, d, h, **kwargs).double().eval()
        layer = _torch_layer(d, h, 4 * d if d_ff is None else d_ff, nf, g)
        _load_block(block, layer, "self", label)

        mask, torch_kwargs = None, {}
        if kind in ("padding", "both"):
            mask = pad
            torch_kwargs["src_key_padding_mask"] = ~pad[:, 0, 0, :]  # (batch, seq), True = pad
        if kind in ("causal", "both"):
            mask = tril_mask(t) if mask is None else tril_mask(t) & mask  # (t, t) or (batch, 1, t, t)
            torch_kwargs["src_mask"] = ~tril_mask(t)  # True = may NOT attend
        x = torch.randn(b, t, d, generator=g, dtype=F64)
        got = _run(block, label, x) if mask is None else _run(block, label, x, mask)
        expected = layer(x, **torch_kwargs).detach()  # autograd on: PyTorch's plain path
        expect_shape(got, expected.shape, label, hint="a block returns the shape it was given.")
        with torch.no_grad():
            mistakes = _block_mistakes(layer, x, mask, nf, default_case)
        expect_close(got, expected, label, atol=1e-10, rtol=1e-8, mistakes=mistakes)

    # Dropout: a module (so eval() switches it off), used in training mode.
    label = f"TransformerBlock({d}, {h}, d_ff=16, dropout=0.5, norm_first=True)"
    block = build_module(TransformerBlock, label, d, h, d_ff=16, dropout=0.5, norm_first=True).double()
    layer = _torch_layer(d, h, 16, True, g)
    _load_block(block, layer, "self", label)
    x = torch.randn(2, 5, d, generator=g, dtype=F64)
    expected = layer(x).detach()
    expect_close(_run(block.eval(), label + " in eval mode", x), expected, label + " in eval mode",
                 atol=1e-10, rtol=1e-8,
                 hint="in eval mode dropout must do nothing: use an nn.Dropout module (self.dropout), "
                      "not F.dropout, which stays on.")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        train_out = _run(block.train(), label + " in training mode", x)
    if torch.allclose(train_out, expected, atol=1e-10):
        fail(label + " in training mode", "dropped nothing: the output equals the eval-mode output.",
             hint="apply self.dropout = nn.Dropout(dropout) to each sublayer's output, before it is "
                  "added to the residual stream.")

    label = f"TransformerBlock({d}, {h}) on float32 input, causal mask"
    block = build_module(TransformerBlock, label, d, h)
    out = _run(block.eval(), label, torch.randn(2, 4, d, generator=g), tril_mask(4))
    expect_shape(out, (2, 4, d), label)
    expect_dtype(out, torch.float32, label)
    passed("TransformerBlock", f"{len(cases) + 3} cases vs torch.nn.TransformerEncoderLayer with the same "
                               "weights: pre- and post-norm, padding and causal masks, batch 1, seq 1, dropout")


# ------------------------------------------------------------ TransformerEncoder


def _sinusoidal(seq: int, d: int) -> torch.Tensor:
    """The paper's encoding (notebook 03's ground truth), rounded to float32 as the buffer stores it."""
    return _sinusoid_np(seq, d).float().double()


def _load_encoder(enc: nn.Module, theirs: nn.TransformerEncoder, emb: torch.Tensor, n_layers: int,
                  norm_first: bool, label: str) -> None:
    token_emb = getattr(enc, "token_emb", None)
    vocab, d = emb.shape
    if not isinstance(token_emb, nn.Embedding) or tuple(token_emb.weight.shape) != (vocab, d):
        fail(label, f"should have self.token_emb = nn.Embedding({vocab}, {d}).", got=describe(token_emb))
    with torch.no_grad():
        token_emb.weight.copy_(emb)
    pe = getattr(enc, "pe", None)
    if isinstance(pe, torch.Tensor) and "pe" not in dict(enc.named_buffers()):
        fail(label, "self.pe should be a buffer: fixed (not trained), but moved by .to() and .double() "
                    "with the model.", got=f"a {'parameter' if isinstance(pe, nn.Parameter) else 'plain tensor'}",
             hint='self.register_buffer("pe", sinusoidal_positional_encoding(max_len, d_model)).')
    blocks = getattr(enc, "blocks", None)
    if not isinstance(blocks, nn.ModuleList) or len(blocks) != n_layers:
        fail(label, f"should have self.blocks, an nn.ModuleList of {n_layers} TransformerBlocks.",
             got=describe(blocks) if not isinstance(blocks, nn.ModuleList) else f"{len(blocks)} modules")
    if len({id(b) for b in blocks}) != n_layers:
        fail(label, f"self.blocks holds the same block more than once ({len({id(b) for b in blocks})} "
                    f"different modules for {n_layers} layers).",
             hint="each layer needs its own weights: build a new TransformerBlock for every layer, "
                  "nn.ModuleList([TransformerBlock(...) for _ in range(n_layers)]), not [block] * n_layers.")
    for i, (block, layer) in enumerate(zip(blocks, theirs.layers)):
        _load_block(block, layer, f"self.blocks[{i}]", label)
    norm = getattr(enc, "norm", None)
    if norm_first:
        if not isinstance(norm, nn.Module) or not any(True for _ in norm.parameters()):
            fail(label, "a pre-norm encoder needs a final LayerNorm at self.norm: inside the blocks the "
                        "residual stream is never normalised.", got=describe(norm),
                 hint="self.norm = LayerNorm(d_model) if norm_first else nn.Identity().")
        load_layer_norm(norm, theirs.norm, "self.norm", label)
    elif norm is not None and any(True for _ in norm.parameters()):
        fail(label, "a post-norm encoder needs no final norm: each block already ends with one.",
             got=f"self.norm = {type(norm).__name__} with parameters",
             hint="self.norm = LayerNorm(d_model) if norm_first else nn.Identity().")


def _encoder_mistakes(theirs: nn.TransformerEncoder, emb_x, pe, pad, norm_first: bool, positional: bool,
                      expected) -> dict:
    """What known mistakes return; emb_x = token_emb[idx], pe = pe[:seq], pad (b, seq) True = real."""
    d = emb_x.size(-1)
    layers = list(theirs.layers)
    mask = None if pad is None else pad[:, None, None, :]

    def run(x, m=mask, stack=layers, final=norm_first):
        for layer in stack:
            x = _block(layer, x, m, norm_first=norm_first)
        return theirs.norm(x) if final else x

    x = emb_x + pe if positional else emb_x
    mistakes = {}
    if positional:
        mistakes["the output matches an encoder without positional encoding: add self.pe[:seq] to the "
                 "token embeddings (when positional=True)."] = run(emb_x)
        mistakes["the positional encoding goes in before the blocks, added to the token embeddings; "
                 "you added it after them."] = [run(emb_x) + pe, run(emb_x, final=False) + pe] + (
            [theirs.norm(run(emb_x, final=False) + pe)] if norm_first else [])
        mistakes["the token embeddings are not scaled here: x = token_emb(idx) + pe[:seq], without the "
                 "paper's sqrt(d_model)."] = run(emb_x * math.sqrt(d) + pe)
    else:
        mistakes["with positional=False the encoder must not add the positional encoding."] = run(emb_x + pe)
    if norm_first:
        mistakes["a pre-norm stack ends with a final LayerNorm: return self.norm(x) after the blocks "
                 "(the blocks never normalise the residual stream themselves)."] = run(x, final=False)
    else:
        mistakes["a post-norm encoder has no final norm: each block already ends with one."] = \
            F.layer_norm(expected, (d,))
    if len(layers) > 1:
        mistakes["every layer ran with the same weights: run each block of self.blocks once, in order "
                 "(for block in self.blocks: x = block(x, mask))."] = \
            [run(x, stack=[layers[0]] * len(layers)), run(x, stack=[layers[-1]] * len(layers))]
    if pad is not None:
        mistakes["the padding mask was ignored: turn padding_mask (batch, seq) into an attention mask "
                 "that hides the pad keys, padding_mask[:, None, None, :], and pass it to every block."] = \
            run(x, m=None)
        mistakes["the padding mask is inverted: padding_mask is True for real tokens, and the attention "
                 "mask is True = may attend, so use it as it is: padding_mask[:, None, None, :]."] = \
            run(x, m=~mask)
    return mistakes


def check_TransformerEncoder(TransformerEncoder) -> None:
    """Check ``TransformerEncoder(vocab_size, d_model, n_heads, n_layers, d_ff=None, max_len=512,
    dropout=0.0, norm_first=True, positional=True)`` against ``nn.TransformerEncoder`` fed
    ``token_emb[idx] + pe[:seq]``."""
    with torch.random.fork_rng(devices=[]):  # PyTorch's layers draw their initial weights from it
        _check_encoder(TransformerEncoder)


def _check_encoder(TransformerEncoder) -> None:
    g = rng(51)
    vocab, d, h, max_len = 11, 8, 2, 16
    lengths = lambda *ls: torch.arange(max(ls))[None, :] < torch.tensor(ls)[:, None]  # noqa: E731
    cases = [  # (what, norm_first, positional, n_layers, d_ff, batch, seq, padding_mask)
        ("pre-norm, 2 layers, batch 2, seq 6, no padding", True, True, 2, 16, 2, 6, None),
        ("pre-norm, 2 layers, lengths 6, 4, 2 (padded)", True, True, 2, 16, 3, 6, lengths(6, 4, 2)),
        ("post-norm, 2 layers, lengths 6, 4, 2 (padded)", False, True, 2, 16, 3, 6, lengths(6, 4, 2)),
        ("pre-norm, positional=False, 2 layers, lengths 5, 3", True, False, 2, 16, 2, 5, lengths(5, 3)),
        ("post-norm, 1 layer, d_ff=None, batch 2, seq 7", False, True, 1, None, 2, 7, None),
        ("pre-norm, 3 layers, batch 1, seq 1", True, True, 3, 16, 1, 1, None),
    ]
    for what, norm_first, positional, n_layers, d_ff, b, t, pad in cases:
        label = (f"TransformerEncoder({vocab}, {d}, {h}, n_layers={n_layers}, d_ff={d_ff}, max_len={max_len}, "
                 f"norm_first={norm_first}, positional={positional}) on {what}")
        enc = build_module(TransformerEncoder, label, vocab, d, h, n_layers, d_ff=d_ff, max_len=max_len,
                     dropout=0.0, norm_first=norm_first, positional=positional).double().eval()
        layer = nn.TransformerEncoderLayer(d, h, 4 * d if d_ff is None else d_ff, dropout=0.0,
                                           activation="gelu", batch_first=True, norm_first=norm_first,
                                           dtype=F64)
        theirs = nn.TransformerEncoder(layer, n_layers, norm=nn.LayerNorm(d, dtype=F64) if norm_first else None,
                                       enable_nested_tensor=False)
        randomise(theirs, g).eval()  # every layer and the final norm get their own random weights
        emb = torch.randn(vocab, d, generator=g, dtype=F64)
        _load_encoder(enc, theirs, emb, n_layers, norm_first, label)

        idx = torch.randint(vocab, (b, t), generator=g)  # pad positions hold real-looking ids too
        pe = _sinusoidal(t, d)
        x = emb[idx] + pe if positional else emb[idx]
        key_padding = None if pad is None else ~pad  # PyTorch: True = pad
        expected = theirs(x, src_key_padding_mask=key_padding).detach()  # autograd on: the plain path
        got = _run(enc, label, idx) if pad is None else _run(enc, label, idx, pad)
        expect_shape(got, expected.shape, label, hint="the encoder returns (batch, seq, d_model).")
        with torch.no_grad():
            mistakes = _encoder_mistakes(theirs, emb[idx], pe, pad, norm_first, positional, expected)
        nan_hint = None
        if pad is not None and torch.isnan(got).any():
            nan_hint = ("a query with every key masked gives NaN: mask only the pad keys, "
                        "padding_mask[:, None, None, :] of shape (batch, 1, 1, seq); pad queries still "
                        "get an output, which the caller ignores.")
        expect_close(got, expected, label, atol=1e-6, rtol=1e-6, mistakes=mistakes, hint=nan_hint)

    # Longer than max_len: a clear ValueError.
    label = f"TransformerEncoder({vocab}, {d}, {h}, 1, max_len=4) on seq 5"
    enc = build_module(TransformerEncoder, label, vocab, d, h, 1, max_len=4)
    idx = torch.randint(vocab, (1, 5), generator=g)
    try:
        with torch.no_grad():
            out = enc(idx)
    except NotImplementedError:
        raise
    except ValueError as e:
        if "4" not in str(e):
            fail(label, "raised ValueError, but its message does not name max_len.", got=str(e)[:120],
                 hint="say what went wrong, e.g. f'sequence length {seq} is longer than max_len={max_len}'.")
    except Exception as e:  # noqa: BLE001 - any other crash is the wrong error
        fail(label, f"raised {type(e).__name__} ({str(e).splitlines()[0][:80] if str(e) else ''}).",
             expected="ValueError saying the sequence is longer than max_len",
             hint="check idx.size(1) > max_len first and raise ValueError with a clear message; "
                  "a broadcasting error deep inside is hard to read.")
    else:
        fail(label, "should raise ValueError: there are only max_len=4 positional encodings.",
             got=describe(out), hint="check idx.size(1) > max_len first and raise ValueError.")

    # Dropout reaches the blocks; the default dtype.
    label = f"TransformerEncoder({vocab}, {d}, {h}, 2, dropout=0.5) in training mode"
    enc = build_module(TransformerEncoder, label, vocab, d, h, 2, dropout=0.5)
    idx = torch.randint(vocab, (2, 5), generator=g)
    eval_out = _run(enc.eval(), label, idx)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        train_out = _run(enc.train(), label, idx)
    if torch.allclose(train_out, eval_out):
        fail(label, "dropped nothing: the output equals the eval-mode output.",
             hint="pass `dropout` on to every TransformerBlock.")
    expect_dtype(eval_out, torch.float32, label)
    passed("TransformerEncoder", f"{len(cases) + 2} cases vs torch.nn.TransformerEncoder with the same weights "
                                 "and sinusoidal positions: pre- and post-norm, padding, positional=False, "
                                 "batch 1, seq 1, seq > max_len")

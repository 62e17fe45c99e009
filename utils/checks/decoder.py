"""Checkers for notebook 06 · The decoder, cross-attention and the encoder-decoder.

Ground truth:

* ``DecoderBlock``: ``nn.TransformerDecoderLayer`` (GELU, no dropout) with
  random weights loaded into the learner's block (its ``self_attn`` into
  ``self_attn``, its ``multihead_attn`` into ``cross_attn``), a causal
  ``tgt_mask`` and a ``memory_key_padding_mask`` (both inverted: in PyTorch
  True means *not* allowed).
* ``EncoderDecoder``: the same model written with PyTorch's layers,
  ``nn.TransformerEncoderLayer`` and ``nn.TransformerDecoderLayer``, final
  ``nn.LayerNorm``s (pre-norm only), the sinusoidal encoding written out, and
  random weights loaded into the learner's model; plus properties that hold
  for any weights: causality, padded source tokens have no effect, the source
  matters, ``decode(encode(...))`` is ``forward``.
* ``greedy_decode``: a plain loop over one sequence at a time that appends the
  argmax of the last position's logits until eos or max_len, on a
  hand-made copying model (whose eos steps are known) and on a small random
  encoder-decoder.

The known mistakes are the same computations with one thing changed (the
causal mask left out, keys and values from the wrong sequence...), so a
matching wrong answer gets a hint that names the mistake.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.checks._core import (
    build_module,
    call,
    expect_close,
    expect_dtype,
    expect_shape,
    expect_tensor,
    expect_unchanged,
    fail,
    is_close,
    passed,
    rng,
    tril_mask,
)
from utils.checks._torch_layers import load_attention, load_feedforward, load_layer_norm, load_linear, randomise
from utils.checks.positional import _sinusoid_np

__all__ = ["check_DecoderBlock", "check_EncoderDecoder", "check_greedy_decode"]

F64 = torch.float64

_SHAPE_HINT = ("every sublayer's output must have x's shape (batch, tgt, d_model). In cross-attention "
               "the queries come from x (the decoder) and the keys and values from memory: "
               "self.cross_attn(h, memory_mask, context=memory), whose weights are (batch, heads, tgt, src).")


_MODEL_SHAPE_HINT = ("the masks must broadcast against the scores (batch, heads, queries, keys): "
                     "self_mask = causal_mask(tgt_len), (tgt, tgt); memory_mask = src_padding_mask[:, None, None, :], "
                     "(batch, 1, 1, src). Each block's cross-attention takes x as queries and memory as keys and values.")




def _call_shaped(fn, label: str, hint: str, *args):
    """``call``, adding ``hint`` when the crash is a size mismatch (queries and keys mixed up...)."""
    try:
        return call(fn, label, *args)
    except AssertionError as e:
        text = str(e)
        if "RuntimeError" in text and any(s in text for s in ("size of tensor", "must match the size",
                                                              "shape", "mat1 and mat2")):
            raise AssertionError(f"{text}\nHint: {hint}") from None
        raise


def _attr(module: nn.Module, name: str, kind, label: str, hint: str):
    sub = getattr(module, name, None)
    if not isinstance(sub, kind):
        fail(label, f"should have self.{name} ({kind.__name__}).",
             got="nothing" if sub is None else f"a {type(sub).__name__}", hint=hint)
    return sub


def _n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ------------------------------------------------------------ DecoderBlock


def _torch_decoder_layer(d, h, d_ff, norm_first, g) -> nn.TransformerDecoderLayer:
    with torch.random.fork_rng(devices=[]):  # its __init__ draws random numbers
        layer = nn.TransformerDecoderLayer(d, h, d_ff, dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=norm_first, dtype=F64)
    randomise(layer, g)
    return layer.train()  # dropout is 0; training mode keeps PyTorch off its fused fast paths


def _load_block(module: nn.Module, layer: nn.TransformerDecoderLayer, where: str, label: str) -> None:
    """Copy a TransformerDecoderLayer's weights into a DecoderBlock with the course's names."""
    load_attention(getattr(module, "self_attn", None), layer.self_attn, f"{where}self_attn", label)
    load_attention(getattr(module, "cross_attn", None), layer.multihead_attn, f"{where}cross_attn", label)
    load_feedforward(getattr(module, "ffn", None), layer, f"{where}ffn", label)
    for name in ("norm1", "norm2", "norm3"):
        load_layer_norm(getattr(module, name, None), getattr(layer, name), f"{where}{name}", label)


def _block_variant(layer, x, memory, self_mask, pad, norm_first, *, causal=True, memory_padding=True,
                   kv_from="memory", order=("self", "cross", "ffn"), norms=None, residual=(True, True, True),
                   norm_memory=False, always_causal=False):
    """The decoder layer written out with PyTorch's pieces, with one knob turned for a known mistake.

    ``norms`` is a tuple of norm names aligned with ``order`` (default: each sublayer's own).
    """
    t = x.size(1)
    attn_mask = None
    if self_mask is not None and causal:
        attn_mask = ~self_mask  # PyTorch: True = not allowed
    if self_mask is None and always_causal:
        attn_mask = ~tril_mask(t)
    key_padding = ~pad if (pad is not None and memory_padding) else None

    def self_attention(h):
        return layer.self_attn(h, h, h, attn_mask=attn_mask, need_weights=False)[0]

    def cross_attention(h):
        if kv_from == "x":
            return layer.multihead_attn(h, h, h, need_weights=False)[0]
        mem = layer.norm2(memory) if norm_memory else memory
        return layer.multihead_attn(h, mem, mem, key_padding_mask=key_padding, need_weights=False)[0]

    def feed_forward(h):
        return layer.linear2(F.gelu(layer.linear1(h)))

    fns = {"self": self_attention, "cross": cross_attention, "ffn": feed_forward}
    own = {"self": "norm1", "cross": "norm2", "ffn": "norm3"}
    norms = norms or tuple(own[s] for s in order)
    for sub, norm_name, res in zip(order, norms, residual):
        norm = getattr(layer, norm_name)
        if norm_first:
            x = (x if res else 0) + fns[sub](norm(x))
        else:
            x = norm((x if res else 0) + fns[sub](x))
    return x


def _block_mistakes(layer, x, memory, self_mask, pad, norm_first) -> dict:
    v = lambda **kw: _block_variant(layer, x, memory, self_mask, pad, norm_first, **kw)  # noqa: E731
    post = "norm2(x + cross_attn(x, ...))"
    pre = "x + cross_attn(norm2(x), ...)"
    mistakes = {}
    if self_mask is not None:
        mistakes["the self-attention ignores self_mask: without the causal mask each target position sees "
                 "the tokens after it, which do not exist yet when generating. Pass self_mask to "
                 "self.self_attn."] = v(causal=False)
    else:
        mistakes["with self_mask=None the self-attention should attend everywhere, but yours is causal: "
                 "use the mask you are given (the model builds the causal mask and passes it in)."] = \
            v(always_causal=True)
    if pad is not None and not bool(pad.all()):
        mistakes["the memory padding mask is ignored: pass memory_mask to self.cross_attn, so no target "
                 "position attends to a padded source position."] = v(memory_padding=False)
    mistakes |= {
        "cross-attention took its keys and values from x, which makes it a second self-attention. "
        "Queries come from x, keys and values from memory (the encoder's output): "
        "self.cross_attn(h, memory_mask, context=memory).": v(kv_from="x"),
        f"there is no residual connection around cross-attention: {pre if norm_first else post}.":
            v(residual=(True, False, True)),
        "there is no residual connection around self-attention: add the sublayer's output to x.":
            v(residual=(False, True, True)),
        "there is no residual connection around the feed-forward network: add its output to x.":
            v(residual=(True, True, False)),
        ("norm_first=True is pre-norm (x = x + sublayer(norm(x))), but you normalised after the residual "
         "add (post-norm)." if norm_first else
         "norm_first=False is post-norm (x = norm(x + sublayer(x))), but you normalised the sublayer's "
         "input (pre-norm)."): _block_variant(layer, x, memory, self_mask, pad, not norm_first),
    }
    if norm_first:
        mistakes["you normalised the memory too: the encoder's output arrives already normalised (its "
                 "final norm). Normalise only x, the decoder's own stream."] = v(norm_memory=True)
    identity = ("self", "cross", "ffn")
    wrong_orders = [p for p in itertools.permutations(identity) if p != identity]
    mistakes["the sublayers are in the wrong order: first masked self-attention (the target reads "
             "itself), then cross-attention (it reads the source), then the feed-forward network."] = \
        [v(order=o) for o in wrong_orders] + [v(order=o, norms=("norm1", "norm2", "norm3")) for o in wrong_orders]
    names = ("norm1", "norm2", "norm3")
    shared = [n for n in itertools.product(names, repeat=3) if len(set(n)) < 3]
    mistakes["one norm is used for several sublayers: each sublayer has its own LayerNorm, norm1 for "
             "self-attention, norm2 for cross-attention, norm3 for the feed-forward network."] = \
        [v(norms=n) for n in shared]
    swapped = [n for n in itertools.permutations(names) if n != names]
    mistakes["the norms are attached to the wrong sublayers: norm1 goes with self-attention, norm2 with "
             "cross-attention, norm3 with the feed-forward network (as in nn.TransformerDecoderLayer)."] = \
        [v(norms=n) for n in swapped]
    return mistakes


def _run_block(module, label, x, memory, self_mask, memory_mask):
    x_before, mem_before = x.clone(), memory.clone()
    with torch.no_grad():
        got = expect_tensor(_call_shaped(module, label, _SHAPE_HINT, x, memory, self_mask, memory_mask), label)
    expect_unchanged(x_before, x, label, "its input x")
    expect_unchanged(mem_before, memory, label, "its input memory")
    return got


def check_DecoderBlock(DecoderBlock) -> None:
    """Check ``DecoderBlock(d_model, n_heads, d_ff=None, dropout=0.0, norm_first=True)`` against
    ``nn.TransformerDecoderLayer`` with the same random weights."""
    g = rng(60)
    d, h, d_ff = 16, 4, 24

    # Structure: the names, one module per sublayer, the default d_ff.
    label = f"DecoderBlock({d}, {h}, {d_ff})"
    module = build_module(DecoderBlock, label, d, h, d_ff)
    names_hint = ("name the parts self_attn, cross_attn (MultiHeadAttention), ffn (FeedForward), "
                  "norm1, norm2, norm3 (LayerNorm) and dropout (nn.Dropout).")
    for name in ("self_attn", "cross_attn", "ffn", "norm1", "norm2", "norm3"):
        _attr(module, name, nn.Module, label, names_hint)
    _attr(module, "dropout", nn.Dropout, label, names_hint)
    if module.self_attn is module.cross_attn:
        fail(label, "self_attn and cross_attn are the same module.",
             hint="build two MultiHeadAttention modules: self- and cross-attention have their own weights.")
    norms = [module.norm1, module.norm2, module.norm3]
    if len({id(n) for n in norms}) < 3:
        fail(label, "norm1, norm2 and norm3 are not three separate modules: a norm is shared between "
                    "sublayers.", hint="build three LayerNorm(d_model): each sublayer has its own weight and bias.")
    reference_count = _n_params(_torch_decoder_layer(d, h, d_ff, True, rng(0)))
    if _n_params(module) != reference_count:
        fail(label, "has the wrong number of parameters.", expected=f"{reference_count:,} "
             "(two attentions, the FFN, three LayerNorms)", got=f"{_n_params(module):,}",
             hint="pass d_ff on to FeedForward, and build nothing beyond the parts listed in the exercise.")
    default = build_module(DecoderBlock, f"DecoderBlock({d}, {h})", d, h)
    linear1 = getattr(getattr(default, "ffn", None), "linear1", None)
    if isinstance(linear1, nn.Linear) and linear1.out_features != 4 * d:
        fail(f"DecoderBlock({d}, {h})", "the FFN's hidden width should default to 4 * d_model.",
             expected=str(4 * d), got=str(linear1.out_features),
             hint="pass d_ff (None by default) on to FeedForward, which turns None into 4 * d_model.")

    # Values: (what, norm_first, batch, tgt, src, lengths of the sources or None, causal self_mask?)
    cases = [
        ("pre-norm, batch 2, tgt 5, src 7, causal self_mask, the second source padded after 4",
         True, 2, 5, 7, [7, 4], True),
        ("post-norm, batch 2, tgt 5, src 7, causal self_mask, the second source padded after 3",
         False, 2, 5, 7, [7, 3], True),
        ("pre-norm, batch 1, tgt 1, src 4, causal self_mask, no padding", True, 1, 1, 4, [4], True),
        ("post-norm, batch 3, tgt 6, src 3, causal self_mask, padding", False, 3, 6, 3, [3, 1, 2], True),
        ("pre-norm, batch 2, tgt 4, src 4, self_mask=None and memory_mask=None", True, 2, 4, 4, None, False),
    ]
    for what, norm_first, batch, tgt, src, lengths, causal in cases:
        label = f"DecoderBlock({d}, {h}, {d_ff}, norm_first={norm_first}) on {what}"
        layer = _torch_decoder_layer(d, h, d_ff, norm_first, g)
        module = build_module(DecoderBlock, label, d, h, d_ff, norm_first=norm_first).double()
        _load_block(module, layer, "self.", label)
        x = torch.randn(batch, tgt, d, generator=g, dtype=F64)
        memory = torch.randn(batch, src, d, generator=g, dtype=F64)
        self_mask = tril_mask(tgt) if causal else None
        pad = None if lengths is None else torch.arange(src)[None, :] < torch.tensor(lengths)[:, None]
        memory_mask = None if pad is None else pad[:, None, None, :]  # (batch, 1, 1, src)
        got = _run_block(module, label, x, memory, self_mask, memory_mask)
        expect_shape(got, (batch, tgt, d), label, hint=_SHAPE_HINT)
        with torch.no_grad():
            expected = layer(x, memory, tgt_mask=None if self_mask is None else ~self_mask,
                             memory_key_padding_mask=None if pad is None else ~pad)
        if not is_close(got, expected, atol=1e-10, rtol=1e-8):  # only then work out the known mistakes
            with torch.no_grad():
                mistakes = _block_mistakes(layer, x, memory, self_mask, pad, norm_first)
            expect_close(got, expected, label, atol=1e-10, rtol=1e-8, mistakes=mistakes)

    # Dropout: off in eval mode, on in training mode.
    label = f"DecoderBlock({d}, {h}, {d_ff}, dropout=0.5)"
    layer = _torch_decoder_layer(d, h, d_ff, True, g)
    module = build_module(DecoderBlock, label, d, h, d_ff, dropout=0.5).double()
    _load_block(module, layer, "self.", label)
    x = torch.randn(2, 3, d, generator=g, dtype=F64)
    memory = torch.randn(2, 4, d, generator=g, dtype=F64)
    with torch.no_grad():
        expected = layer(x, memory, tgt_mask=~tril_mask(3))
    got = _run_block(module.eval(), label + " in eval mode", x, memory, tril_mask(3), None)
    expect_close(got, expected, label + " in eval mode", atol=1e-10, rtol=1e-8,
                 hint="in eval mode dropout must do nothing: use the nn.Dropout module self.dropout.")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        got = _run_block(module.train(), label + " in training mode", x, memory, tril_mask(3), None)
    if torch.allclose(got, expected, atol=1e-10, rtol=1e-8):
        fail(label + " in training mode", "dropped nothing: with p=0.5 the output should change.",
             hint="apply self.dropout to each sublayer's output before adding it to the residual stream.")
    passed("DecoderBlock", f"{len(cases)} cases vs nn.TransformerDecoderLayer with copied random weights: "
                           "pre- and post-norm, causal and padding masks, tgt and src lengths that differ, "
                           "and dropout")


# ------------------------------------------------------------ EncoderDecoder


def _pe(n: int, d: int) -> torch.Tensor:
    """The paper's encoding (notebook 03's ground truth), rounded to float32 as the buffer stores it."""
    return _sinusoid_np(n, d).float().to(F64)


class _TorchSeq2Seq:
    """The encoder-decoder written with PyTorch's layers and random weights."""

    def __init__(self, cfg: dict, norm_first: bool, g: torch.Generator):
        d, h, n, d_ff = cfg["d_model"], cfg["n_heads"], cfg["n_layers"], cfg["d_ff"]
        kw = dict(dropout=0.0, activation="gelu", batch_first=True, norm_first=norm_first, dtype=F64)
        with torch.random.fork_rng(devices=[]):
            self.enc = [nn.TransformerEncoderLayer(d, h, d_ff, **kw).train() for _ in range(n)]
            self.dec = [nn.TransformerDecoderLayer(d, h, d_ff, **kw).train() for _ in range(n)]
            self.enc_norm, self.dec_norm = nn.LayerNorm(d, dtype=F64), nn.LayerNorm(d, dtype=F64)
            self.src_emb = nn.Embedding(cfg["src_vocab"], d, dtype=F64)
            self.tgt_emb = nn.Embedding(cfg["tgt_vocab"], d, dtype=F64)
            self.head = nn.Linear(d, cfg["tgt_vocab"], bias=False, dtype=F64)
        for m in [*self.enc, *self.dec, self.enc_norm, self.dec_norm, self.src_emb, self.tgt_emb, self.head]:
            randomise(m, g)
        self.norm_first, self.d, self.pe = norm_first, d, _pe(cfg["max_len"], d)

    def load_into(self, model: nn.Module, label: str) -> None:
        with torch.no_grad():
            model.encoder.token_emb.weight.copy_(self.src_emb.weight)
            model.tgt_emb.weight.copy_(self.tgt_emb.weight)
        for i, (block, layer) in enumerate(zip(model.encoder.blocks, self.enc)):
            where = f"self.encoder.blocks[{i}]."
            load_attention(block.attn, layer.self_attn, where + "attn", label)
            for name in ("linear1", "linear2"):
                theirs = getattr(layer, name)
                load_linear(getattr(block.ffn, name), theirs.weight.detach(), theirs.bias.detach(),
                            f"{where}ffn.{name}", label)
            load_layer_norm(block.norm1, layer.norm1, where + "norm1", label)
            load_layer_norm(block.norm2, layer.norm2, where + "norm2", label)
        for i, (block, layer) in enumerate(zip(model.blocks, self.dec)):
            _load_block(block, layer, f"self.blocks[{i}].", label)
        if self.norm_first:
            load_layer_norm(model.encoder.norm, self.enc_norm, "self.encoder.norm", label)
            load_layer_norm(model.norm, self.dec_norm, "self.norm", label)
        load_linear(model.lm_head, self.head.weight.detach(), None, "self.lm_head", label)

    @torch.no_grad()
    def encode(self, src, pad, *, encoder_padding=True):
        x = self.src_emb(src) + self.pe[: src.size(1)]
        key_padding = ~pad if (pad is not None and encoder_padding) else None
        for layer in self.enc:
            x = layer(x, src_key_padding_mask=key_padding)
        return self.enc_norm(x) if self.norm_first else x

    @torch.no_grad()
    def __call__(self, src, tgt, pad, *, causal=True, cross_padding=True, encoder_padding=True,
                 final_norm=True, target_positions=True, emb_scale=1.0):
        memory = self.encode(src, pad, encoder_padding=encoder_padding)
        t = tgt.size(1)
        y = self.tgt_emb(tgt) * emb_scale + (self.pe[:t] if target_positions else 0.0)
        key_padding = ~pad if (pad is not None and cross_padding) else None
        for layer in self.dec:
            y = layer(y, memory, tgt_mask=~tril_mask(t) if causal else None, memory_key_padding_mask=key_padding)
        if self.norm_first and final_norm:
            y = self.dec_norm(y)
        return self.head(y)


def _seq2seq_mistakes(truth: _TorchSeq2Seq, src, tgt, pad) -> dict:
    v = lambda **kw: truth(src, tgt, pad, **kw)  # noqa: E731
    mistakes = {
        "the decoder's self-attention is not causal: build causal_mask(tgt_len) and pass it to every "
        "decoder block as self_mask.": v(causal=False),
        "the target has no positions: add the sinusoidal encoding to the target embeddings "
        "(self.tgt_emb(tgt) + self.pe[:tgt_len]), as the encoder does for the source.": v(target_positions=False),
        "you scaled the target embeddings by sqrt(d_model). The course's TransformerEncoder does not "
        "(see notebook 05), so the decoder does not either.": v(emb_scale=math.sqrt(truth.d)),
    }
    if truth.norm_first:
        mistakes["the decoder's final norm is missing: a pre-norm stack ends with self.norm before "
                 "lm_head, as the encoder does."] = v(final_norm=False)
    if pad is not None and not bool(pad.all()):
        mistakes["cross-attention looks at padded source positions: pass the padding mask to every decoder "
                 "block as memory_mask = src_padding_mask[:, None, None, :]."] = v(cross_padding=False)
        mistakes["the encoder was not given the padding mask: self.encoder(src, src_padding_mask)."] = \
            v(encoder_padding=False)
    return mistakes


def _expect_parameters(model: nn.Module, reference: nn.Module, label: str, norm_first: bool) -> None:
    """Same parameter names and shapes as the reference model, with a hint for the usual differences."""
    got = {n: tuple(p.shape) for n, p in model.named_parameters()}
    want = {n: tuple(p.shape) for n, p in reference.named_parameters()}
    if got == want:
        return
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    wrong = sorted(n for n in set(got) & set(want) if got[n] != want[n])
    hint = ("the parameters are: encoder.* (TransformerEncoder), tgt_emb.weight, blocks.<i>.* "
            "(n_layers DecoderBlocks), norm.* (pre-norm only) and lm_head.weight.")
    if any(n.startswith("encoder.") for n in missing + extra + wrong):
        hint = ("pass every argument on to the encoder, in its order: TransformerEncoder(src_vocab, d_model, "
                "n_heads, n_layers, d_ff, max_len, dropout, norm_first).")
    elif "lm_head.bias" in extra:
        hint = "lm_head has no bias: nn.Linear(d_model, tgt_vocab, bias=False)."
    elif "norm.weight" in missing:
        hint = "a pre-norm stack ends with a final LayerNorm: self.norm = LayerNorm(d_model) if norm_first."
    elif "norm.weight" in extra and not norm_first:
        hint = ("a post-norm stack has no final norm (each block already ends with one): "
                "self.norm = nn.Identity() when norm_first=False, as in TransformerEncoder.")
    elif any(n.startswith("blocks.") for n in missing + extra):
        hint = "self.blocks is an nn.ModuleList of n_layers DecoderBlock(d_model, n_heads, d_ff, dropout, norm_first)."
    elif any("emb" in n or "pos" in n for n in extra):
        hint = ("the target positions are the fixed sinusoidal encoding, a buffer "
                "(self.register_buffer(\"pe\", sinusoidal_positional_encoding(max_len, d_model))), not a parameter.")
    elif wrong:
        hint = "pass d_ff and the vocabulary sizes on: " + hint
    fmt = lambda names: ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")  # noqa: E731
    problem = "has the wrong parameters (named_parameters)."
    details = [f"missing {fmt(missing)}" if missing else "", f"unexpected {fmt(extra)}" if extra else "",
               f"wrong shape {fmt(wrong)}" if wrong else ""]
    fail(label, problem, got="; ".join(s for s in details if s), hint=hint)


def _expect_structure(model, label: str, cfg: dict, TransformerEncoder) -> None:
    _attr(model, "encoder", TransformerEncoder, label,
          "use TransformerEncoder from utils.reference (notebook 05) as self.encoder.")
    emb = _attr(model, "tgt_emb", nn.Embedding, label, "self.tgt_emb = nn.Embedding(tgt_vocab, d_model).")
    if (emb.num_embeddings, emb.embedding_dim) != (cfg["tgt_vocab"], cfg["d_model"]):
        fail(label, "self.tgt_emb has the wrong size.", expected=f"nn.Embedding({cfg['tgt_vocab']}, {cfg['d_model']})",
             got=f"nn.Embedding({emb.num_embeddings}, {emb.embedding_dim})")
    blocks = _attr(model, "blocks", nn.ModuleList, label,
                   "self.blocks = nn.ModuleList([DecoderBlock(...) for _ in range(n_layers)]).")
    if len(blocks) != cfg["n_layers"]:
        fail(label, "self.blocks has the wrong number of decoder blocks.", expected=str(cfg["n_layers"]),
             got=str(len(blocks)))
    _attr(model, "norm", nn.Module, label, "self.norm: LayerNorm(d_model) for pre-norm, nn.Identity() for post-norm.")
    head = _attr(model, "lm_head", nn.Linear, label, "self.lm_head = nn.Linear(d_model, tgt_vocab, bias=False).")
    if (head.in_features, head.out_features) != (cfg["d_model"], cfg["tgt_vocab"]):
        fail(label, "self.lm_head has the wrong size.", expected=f"nn.Linear({cfg['d_model']}, {cfg['tgt_vocab']})",
             got=f"nn.Linear({head.in_features}, {head.out_features})")
    for method in ("encode", "decode"):
        if not callable(getattr(model, method, None)):
            fail(label, f"has no method {method}.", hint="write encode(src, src_padding_mask=None) and "
                 "decode(tgt, memory, src_padding_mask=None); forward uses both.")


def _masked(x: torch.Tensor, pad: torch.Tensor | None) -> torch.Tensor:
    """Zero the padded source positions of (batch, src, d), which no one reads."""
    return x if pad is None else x * pad[..., None]


def check_EncoderDecoder(EncoderDecoder) -> None:
    """Check ``EncoderDecoder(src_vocab, tgt_vocab, d_model, n_heads, n_layers, d_ff=None, max_len=512,
    dropout=0.0, norm_first=True)`` against the same model built from PyTorch's layers, and on the
    properties any weights must have."""
    from utils.reference.block import TransformerEncoder
    from utils.reference.decoder import EncoderDecoder as Reference

    g = rng(61)
    cfg = dict(src_vocab=11, tgt_vocab=9, d_model=16, n_heads=2, n_layers=2, d_ff=24, max_len=32)
    args = (cfg["src_vocab"], cfg["tgt_vocab"], cfg["d_model"], cfg["n_heads"], cfg["n_layers"])
    sig = "EncoderDecoder(11, 9, d_model=16, n_heads=2, n_layers=2, d_ff=24, max_len=32"

    # (what, norm_first, source lengths (None: no padding mask), src_len, tgt_len)
    cases = [
        ("pre-norm, batch 3, src 7 with padding (lengths 7, 4, 2), tgt 5", True, [7, 4, 2], 7, 5),
        ("post-norm, batch 2, src 5 with padding (lengths 5, 3), tgt 6", False, [5, 3], 5, 6),
        ("pre-norm, batch 1, src 1, tgt 1, no padding mask", True, None, 1, 1),
        ("post-norm, batch 2, src 3, tgt 8, no padding mask", False, None, 3, 8),
    ]
    for what, norm_first, lengths, src_len, tgt_len in cases:
        label = f"{sig}, norm_first={norm_first})"
        model = build_module(EncoderDecoder, label, *args, d_ff=cfg["d_ff"], max_len=cfg["max_len"],
                       norm_first=norm_first)
        _expect_structure(model, label, cfg, TransformerEncoder)
        with torch.random.fork_rng(devices=[]):
            reference = Reference(*args, d_ff=cfg["d_ff"], max_len=cfg["max_len"], norm_first=norm_first)
        _expect_parameters(model, reference, label, norm_first)
        truth = _TorchSeq2Seq(cfg, norm_first, g)
        truth.load_into(model.double(), label)

        batch = 1 if lengths is None and src_len == 1 else (len(lengths) if lengths else 2)
        src = torch.randint(0, cfg["src_vocab"], (batch, src_len), generator=g)
        tgt = torch.randint(0, cfg["tgt_vocab"], (batch, tgt_len), generator=g)
        pad = None if lengths is None else torch.arange(src_len)[None, :] < torch.tensor(lengths)[:, None]
        label = f"{sig}, norm_first={norm_first}) on {what}"
        src_before, tgt_before = src.clone(), tgt.clone()

        # encode: the encoder's output; only the real positions are ever read.
        with torch.no_grad():
            memory = expect_tensor(_call_shaped(model.encode, label + ", encode(src, src_padding_mask)", _MODEL_SHAPE_HINT,
                                                src, pad),
                                   label)
        expect_shape(memory, (batch, src_len, cfg["d_model"]), label + ", encode(src, src_padding_mask)",
                     hint="encode returns the encoder's output (batch, src_len, d_model).")
        expect_close(_masked(memory, pad), _masked(truth.encode(src, pad), pad),
                     label + ", encode(src, src_padding_mask) at the real source positions", atol=1e-6, rtol=1e-6,
                     mistakes={"pass src_padding_mask to the encoder: self.encoder(src, src_padding_mask).":
                               _masked(truth.encode(src, pad, encoder_padding=False), pad)})

        with torch.no_grad():
            got = expect_tensor(_call_shaped(model, label, _MODEL_SHAPE_HINT, src, tgt, pad), label)
        if not (torch.equal(src, src_before) and torch.equal(tgt, tgt_before)):
            fail(label, "changed src or tgt in place.")
        expect_shape(got, (batch, tgt_len, cfg["tgt_vocab"]), label,
                     hint="forward returns logits (batch, tgt_len, tgt_vocab): lm_head after the decoder's blocks.")
        expect_dtype(got, F64, label, hint="keep the dtype of the model's weights.")
        _check_properties(model, label, cfg, src, tgt, pad, got, g)

        expected = truth(src, tgt, pad)
        expect_close(got, expected, label, atol=1e-6, rtol=1e-6, mistakes=_seq2seq_mistakes(truth, src, tgt, pad))
        with torch.no_grad():
            decoded = expect_tensor(_call_shaped(model.decode, label + ", decode(tgt, memory, src_padding_mask)",
                                                 _MODEL_SHAPE_HINT, tgt, memory, pad), label)
        expect_close(decoded, got, label + ": decode(tgt, encode(src, mask), mask) against forward(src, tgt, mask)",
                     atol=1e-10, rtol=1e-8,
                     hint="forward should be decode(tgt, self.encode(src, src_padding_mask), src_padding_mask).")
    passed("EncoderDecoder", f"{len(cases)} cases vs the same model built from nn.TransformerEncoderLayer and "
                             "nn.TransformerDecoderLayer with copied weights, pre- and post-norm; causality, "
                             "source padding, parameter names")


def _check_properties(model, label, cfg, src, tgt, pad, got, g) -> None:
    """What must hold for any weights: causality, no effect from padding, an effect from the source."""
    batch, tgt_len = tgt.shape
    run = lambda s, t: _call_shaped(model, label, _MODEL_SHAPE_HINT, s, t, pad)  # noqa: E731
    changed = src.clone()
    changed[:, 0] = (src[:, 0] + 1) % cfg["src_vocab"]
    with torch.no_grad():
        other = run(changed, tgt)
    if torch.allclose(other, got, atol=1e-12, rtol=0):
        fail(label, "changing the source did not change the logits: the decoder ignores the encoder.",
             hint="encode the source, memory = self.encode(src, src_padding_mask), and give memory to "
                  "every decoder block: block(x, memory, self_mask, memory_mask).")
    if tgt_len > 1:
        k = tgt_len // 2
        changed = tgt.clone()
        changed[:, k:] = (tgt[:, k:] + 1 + torch.randint(0, cfg["tgt_vocab"] - 1, tgt[:, k:].shape,
                                                         generator=g)) % cfg["tgt_vocab"]
        with torch.no_grad():
            other = run(src, changed)
        if not torch.allclose(other[:, :k], got[:, :k], atol=1e-9, rtol=1e-7):
            fail(label, f"is not causal: changing the target tokens at positions {k} and later changed the "
                        f"logits at positions 0..{k - 1}.",
                 hint="the decoder's self-attention needs the causal mask: causal_mask(tgt_len) as self_mask "
                      "in every decoder block.")
    if pad is not None and not bool(pad.all()):
        noisy = src.clone()
        noisy[~pad] = (src[~pad] + 1) % cfg["src_vocab"]  # every padded token changes
        with torch.no_grad():
            other = run(noisy, tgt)
            memory_changed = not torch.allclose(_masked(model.encode(noisy, pad), pad),
                                                _masked(model.encode(src, pad), pad), atol=1e-9)
        if not torch.allclose(other, got, atol=1e-9, rtol=1e-7):
            hint = ("the encoder was not given the padding mask: self.encoder(src, src_padding_mask)."
                    if memory_changed else
                    "cross-attention looks at padded source positions: pass the mask to every decoder "
                    "block as memory_mask = src_padding_mask[:, None, None, :].")
            fail(label, "changing the padded source tokens (where src_padding_mask is False) changed the logits.",
                 hint=hint)


# ------------------------------------------------------------ greedy_decode


class _CopyModel(nn.Module):
    """A hand-made 'model' that copies its source, then says eos.

    encode: one-hot source tokens, zeroed where the padding mask is False.
    decode: at target position t, the logits favour the source token at position t
    (by 2.5 over a fixed uneven background); past the end of the source, or at a
    padded position, they favour eos. The favourite gets about 40% of the
    probability, so sampling would often pick something else.
    """

    def __init__(self, vocab: int, eos_id: int):
        super().__init__()
        self.vocab, self.eos_id = vocab, eos_id
        g = rng(62)
        self.register_buffer("background", torch.rand(64, vocab, generator=g, dtype=F64))  # (position, vocab)

    def encode(self, src, src_padding_mask=None):
        memory = F.one_hot(src, self.vocab).to(F64)  # (batch, src, vocab)
        if src_padding_mask is not None:
            memory = memory * src_padding_mask[..., None]
        return memory

    def decode(self, tgt, memory, src_padding_mask=None):
        batch, t = tgt.shape
        src_len = memory.size(1)
        copy = torch.zeros(batch, t, self.vocab, dtype=F64)
        n = min(t, src_len)
        copy[:, :n] = memory[:, :n]
        missing = 1.0 - copy.sum(-1)  # 1 past the source or on padding
        copy[..., self.eos_id] += missing
        return self.background[:t] + 2.5 * copy  # (batch, t, vocab)

    def forward(self, src, tgt, src_padding_mask=None):
        return self.decode(tgt, self.encode(src, src_padding_mask), src_padding_mask)


def _greedy_truth(model, src, bos_id, eos_id, max_len, mask, *, position=-1, use_mask=True, stop_at_eos=True,
                  early_stop=True, with_bos=True, extra=0):
    """One sequence at a time: append the argmax of the chosen position's logits until eos or max_len.

    The keyword arguments switch on one known mistake each.
    """
    rows = []
    for b in range(src.size(0)):
        s = src[b:b + 1]
        m = mask[b:b + 1] if (mask is not None and use_mask) else None
        if m is not None:  # an unpadded sequence on its own: trim the padding, no mask needed
            s, m = s[:, : int(m.sum())], None
        with torch.no_grad():
            memory = model.encode(s, m)
            ys = [bos_id]
            while len(ys) < max_len + extra and not (stop_at_eos and ys[-1] == eos_id and len(ys) > 1):
                logits = model.decode(torch.tensor([ys]), memory, m)
                ys.append(int(logits[0, position].argmax()))
        if stop_at_eos and eos_id in ys[1:]:
            ys = ys[: ys.index(eos_id, 1) + 1]
        rows.append(ys if with_bos else ys[1:])
    length = max(len(r) for r in rows) if early_stop else max_len + extra - (0 if with_bos else 1)
    return torch.tensor([r + [eos_id] * (length - len(r)) for r in rows], dtype=torch.long)


def _greedy_mistakes(model, src, bos_id, eos_id, max_len, mask) -> dict:
    v = lambda **kw: _greedy_truth(model, src, bos_id, eos_id, max_len, mask, **kw)  # noqa: E731
    mistakes = {
        f"the output must start with bos_id ({bos_id}) in column 0, then the generated tokens.": v(with_bos=False),
        "the next token comes from the logits of the last position, logits[:, -1], not the first.": v(position=0),
        "stop the loop once every sequence has produced eos_id (the output is then shorter than max_len).":
            v(early_stop=False),
        "a finished sequence went on after eos_id. Once a sequence has produced eos_id, fill the rest of "
        "its row with eos_id (next_id.masked_fill(done, eos_id)), and stop when all are done.":
            v(stop_at_eos=False),
        "max_len counts bos too: the output has at most max_len tokens in all.": [v(extra=1),
                                                                                  v(extra=1, early_stop=False)],
    }
    if mask is not None and not bool(mask.all()):
        mistakes["pass src_padding_mask on to model.encode and model.decode."] = v(use_mask=False)
    return mistakes


def _show_rows(x: torch.Tensor) -> str:
    return "\n" + "\n".join(f"    {row}" for row in x.tolist()[:4])


def check_greedy_decode(greedy_decode) -> None:
    """Check ``greedy_decode(model, src, bos_id, eos_id, max_len, src_padding_mask=None)`` against a
    step-by-step argmax, one sequence at a time."""
    from utils.reference.decoder import EncoderDecoder

    bos, eos, vocab = 8, 9, 10
    copier = _CopyModel(vocab, eos)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(63)
        random_model = EncoderDecoder(7, vocab, 16, 2, 1, max_len=16).double().eval()
    g = rng(64)
    long_src = torch.randint(0, 7, (3, 6), generator=g)
    cases = [
        ("the copying model, batch 3: the sequences reach eos at steps 3, 2 and 6",
         copier, torch.tensor([[3, 5, eos, 2, 4, 6], [1, eos, 7, 7, 7, 7], [2, 4, 6, 1, 3, eos]]), 10, None),
        ("the copying model, batch 1, no eos before max_len=4", copier, torch.tensor([[3, 4, 5, 6, 7, 1, 2]]), 4, None),
        ("the copying model, batch 2 with a padded source (lengths 3 and 5)", copier,
         torch.tensor([[3, 5, 6, 0, 0], [4, 4, 4, 4, 4]]), 8, torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]).bool()),
        ("the copying model, max_len=1 (only bos)", copier, torch.tensor([[3, 4]]), 1, None),
        ("a random EncoderDecoder, batch 3 with padding (lengths 6, 2, 4), max_len=7", random_model,
         long_src, 7, torch.arange(6)[None, :] < torch.tensor([6, 2, 4])[:, None]),
    ]
    for what, model, src, max_len, mask in cases:
        label = f"greedy_decode(model, src, bos_id={bos}, eos_id={eos}, max_len={max_len}" + \
                (", src_padding_mask)" if mask is not None else ")") + f" with {what}"
        src_before = src.clone()
        outputs = []
        for seed in (0, 1):  # the same answer whatever the random state: greedy is deterministic
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                args = (model, src, bos, eos, max_len) + ((mask,) if mask is not None else ())
                outputs.append(expect_tensor(call(greedy_decode, label, *args), label))
        got = outputs[0]
        if not torch.equal(src, src_before):
            fail(label, "changed src in place.")
        expect_dtype(got, torch.long, label, hint="token ids are int64 (torch.long): build them with "
                                                  "torch.full(..., dtype=torch.long) and torch.cat.")
        if got.shape != outputs[1].shape or not torch.equal(got, outputs[1]):
            fail(label, "gave different tokens on two runs: the decoding is random.",
                 hint="greedy decoding takes the most likely token, logits[:, -1].argmax(dim=-1); "
                      "sampling (torch.multinomial) is for notebook 07.")
        if model is copier and max_len > 2:  # the copying model's output must follow its source
            changed = torch.where(src == eos, src, (src + 1) % bos)
            with torch.random.fork_rng(devices=[]):
                other = call(greedy_decode, label, *((model, changed) + args[2:]))
            if isinstance(other, torch.Tensor) and other.shape == got.shape and torch.equal(other, got):
                fail(label, "returned the same tokens for a different source: the output ignores src.",
                     hint="encode the source once, memory = model.encode(src, src_padding_mask), and pass that "
                          "memory to model.decode at every step.")
        expected = _greedy_truth(model, src, bos, eos, max_len, mask)
        if got.shape == expected.shape and torch.equal(got, expected):
            continue
        for hint, wrong in _greedy_mistakes(model, src, bos, eos, max_len, mask).items():
            for w in wrong if isinstance(wrong, list) else [wrong]:
                if got.shape == w.shape and torch.equal(got, w):
                    fail(label, "returned the wrong tokens.", expected=_show_rows(expected),
                         got=_show_rows(got), hint=hint)
        hint = None
        rows = got.tolist()
        if got.dim() == 2 and got.size(0) == src.size(0) and any(r and r[0] != bos for r in rows):
            hint = f"the output must start with bos_id ({bos}) in column 0."
        elif got.dim() == 2 and got.size(1) > max_len:
            hint = "max_len counts bos too: the output has at most max_len tokens in all."
        elif any(eos in r[1:] and any(t != eos for t in r[r.index(eos, 1):]) for r in rows if len(r) > 1):
            hint = ("a finished sequence went on after eos_id. Once a sequence has produced eos_id, "
                    "fill it with eos_id: next_id = next_id.masked_fill(done, eos_id).")
        fail(label, "returned the wrong tokens.", expected=_show_rows(expected), got=_show_rows(got), hint=hint)
    passed("greedy_decode", f"{len(cases)} cases against a step-by-step argmax: eos at different steps, "
                            "max_len, padding, bos first")

"""Checkers for notebook 07 · A mini-GPT.

Ground truth:

* ``CausalSelfAttention``: ``nn.MultiheadAttention`` with the learner's packed
  ``c_attn`` weight as its ``in_proj_weight`` (the same (3C, C) layout: q, k, v
  rows), ``c_proj`` as ``out_proj`` and a causal mask; then the KV-cache path:
  a sequence fed in two pieces through a ``KVCache`` gives the rows of the
  whole-sequence output.
* ``Block``: the pre-norm block written with ``F.layer_norm``,
  ``nn.MultiheadAttention`` and the tanh GELU of GPT-2.
* ``GPT``: Hugging Face ``transformers``' ``GPT2LMHeadModel``, built from a tiny
  config with random weights (nothing is downloaded), its weights copied into
  the learner's model (GPT-2 stores ``c_attn``, ``c_proj`` and ``c_fc`` as
  Conv1D, (in, out): transposed for nn.Linear). Logits to 1e-5, the loss against
  ``F.cross_entropy``, weight tying, GPT-2's initialisation statistics, and the
  KV-cache path.
* Sampling: properties that any correct sampler has (greedy is the argmax;
  top-k never leaves the k best; top-p keeps the smallest set that reaches p;
  frequencies follow softmax(logits / T); a seed fixes the draw), measured on
  thousands of draws from a private seed.
* ``generate`` and ``generate_cached``: a plain greedy loop on a small random
  reference GPT; cached and uncached tokens must be identical.
"""

from __future__ import annotations

import math
import os
import warnings

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
    expect_tensor,
    expect_unchanged,
    fail,
    passed,
    rng,
    tril_mask,
)
from utils.checks._torch_layers import load_linear, randomise
from utils.reference.gpt import GPT as _RefGPT
from utils.reference.gpt import GPTConfig, KVCache

__all__ = ["check_CausalSelfAttention", "check_Block", "check_GPT", "check_sample_next_token",
           "check_generate", "check_KVCache", "check_generate_cached"]

F64 = torch.float64


def _config(**kw) -> GPTConfig:
    base = dict(vocab_size=37, block_size=16, n_layer=2, n_head=4, n_embd=32, dropout=0.0, bias=True)
    return GPTConfig(**{**base, **kw})



# ------------------------------------------------------------ CausalSelfAttention


def _attention(x, w, b, w_o, b_o, n_head, *, causal=True, split="heads", scale="head", order="qkv",
               project=True, upper=False):
    """Causal self-attention written out, with one knob turned for each known mistake."""
    B, T, C = x.shape
    hs = C // n_head
    q, k, v = F.linear(x, w, b).split(C, dim=2)
    if order == "kqv":
        q, k = k, q

    def heads(t):
        if split == "no-transpose":  # reshaped straight to (B, nh, T, hs): mixes time and heads
            return t.reshape(B, n_head, T, hs)
        return t.view(B, T, n_head, hs).transpose(1, 2)

    q, k, v = heads(q), heads(k), heads(v)
    att = q @ k.transpose(-2, -1) / math.sqrt(hs if scale == "head" else C)
    if causal:
        mask = tril_mask(T) if not upper else torch.ones(T, T, dtype=torch.bool).triu()
        att = att.masked_fill(~mask, float("-inf"))
    y = att.softmax(dim=-1) @ v
    y = y.transpose(1, 2).reshape(B, T, C)
    return F.linear(y, w_o, b_o) if project else y


def _load_attention(module, c, g, label):
    """Random weights into the learner's c_attn and c_proj; returns them."""
    C = c.n_embd
    w = torch.randn(3 * C, C, generator=g, dtype=F64) / math.sqrt(C)
    b = torch.randn(3 * C, generator=g, dtype=F64) * 0.1 if c.bias else None
    w_o = torch.randn(C, C, generator=g, dtype=F64) / math.sqrt(C)
    b_o = torch.randn(C, generator=g, dtype=F64) * 0.1 if c.bias else None
    hint = "q, k and v come from one nn.Linear(n_embd, 3 * n_embd) called c_attn; c_proj is nn.Linear(n_embd, n_embd)."
    for name in ("c_attn", "c_proj"):
        if not isinstance(getattr(module, name, None), nn.Linear):
            fail(label, f"should have self.{name}, an nn.Linear.", got=describe(getattr(module, name, None)), hint=hint)
    load_linear(module.c_attn, w, b, "c_attn", label)
    load_linear(module.c_proj, w_o, b_o, "c_proj", label)
    return w, b, w_o, b_o


def _mha_truth(x, w, b, w_o, b_o, n_head):
    """nn.MultiheadAttention with the same packed weights and a causal mask."""
    C = x.size(-1)
    with torch.random.fork_rng(devices=[]):
        mha = nn.MultiheadAttention(C, n_head, bias=b is not None, batch_first=True, dtype=F64)
    with torch.no_grad():
        mha.in_proj_weight.copy_(w)
        mha.out_proj.weight.copy_(w_o)
        if b is not None:
            mha.in_proj_bias.copy_(b)
            mha.out_proj.bias.copy_(b_o)
    T = x.size(1)
    return mha(x, x, x, attn_mask=~tril_mask(T), need_weights=False)[0]


_CACHE_HINT = ("with a kv_cache the queries are only the newest positions, so is_causal=True would line them up "
               "with the first keys: pass attn_mask=mask (built in the given lines) and is_causal only when mask is None.")


def check_CausalSelfAttention(CausalSelfAttention) -> None:
    label = "CausalSelfAttention"
    g = rng(7)
    for bias in (True, False):
        c = _config(bias=bias)
        attn = build_module(CausalSelfAttention, label, c).to(F64).eval()
        w, b, w_o, b_o = _load_attention(attn, c, g, label)
        for B, T in ((3, 7), (1, 1), (2, 16)):
            x = torch.randn(B, T, c.n_embd, generator=g, dtype=F64)
            x0 = x.clone()
            got = expect_tensor(call(attn, label, x), label)
            expect_unchanged(x0, x, label)
            expect_shape(got, (B, T, c.n_embd), label, hint="return (B, T, n_embd): merge the heads back "
                         "with y.transpose(1, 2).contiguous().view(B, T, C), then c_proj.")
            mistakes = {
                "position t sees later positions: use is_causal=True (or a lower-triangular mask).":
                    _attention(x, w, b, w_o, b_o, c.n_head, causal=False),
                "the mask is upside down: keep positions j <= t (tril), not j >= t.":
                    _attention(x, w, b, w_o, b_o, c.n_head, upper=True),
                "the heads are split without the transpose: view(B, T, n_head, head_size).transpose(1, 2) "
                "gives (B, n_head, T, head_size); a straight reshape mixes time steps and heads.":
                    _attention(x, w, b, w_o, b_o, c.n_head, split="no-transpose"),
                "scores are divided by sqrt(n_embd); scale by sqrt(head_size), the size of one head's q and k.":
                    _attention(x, w, b, w_o, b_o, c.n_head, scale="model"),
                "c_attn's output is [q | k | v] in that order: split(n_embd, dim=2) gives q, k, v.":
                    _attention(x, w, b, w_o, b_o, c.n_head, order="kqv"),
                "the heads are merged but never projected: apply self.c_proj at the end.":
                    _attention(x, w, b, w_o, b_o, c.n_head, project=False),
            }
            expect_close(got, _mha_truth(x, w, b, w_o, b_o, c.n_head), label, atol=1e-9, rtol=1e-7,
                         mistakes=mistakes)
    # the KV-cache path: the same sequence in two pieces, then one token
    c = _config()
    attn = build_module(CausalSelfAttention, label, c).to(F64).eval()
    w, b, w_o, b_o = _load_attention(attn, c, g, label)
    x = torch.randn(2, 9, c.n_embd, generator=g, dtype=F64)
    whole = _mha_truth(x, w, b, w_o, b_o, c.n_head)
    cache = KVCache()
    first = call(attn, label + " with a kv_cache", x[:, :5], kv_cache=cache)
    second = call(attn, label + " with a kv_cache", x[:, 5:8], kv_cache=cache)
    third = call(attn, label + " with a kv_cache", x[:, 8:], kv_cache=cache)
    if cache.seq_len != 9:
        fail(label, "with a kv_cache, the keys and values must go through kv_cache.update(k, v).",
             expected="9 cached positions after feeding 5 + 3 + 1", got=f"{cache.seq_len}",
             hint="keep the given lines `if kv_cache is not None: k, v = kv_cache.update(k, v) ...`.")
    for piece, rows, name in ((first, slice(0, 5), "the first 5 positions"),
                              (second, slice(5, 8), "3 more positions after 5 cached ones"),
                              (third, slice(8, 9), "1 more position after 8 cached ones")):
        expect_close(piece, whole[:, rows], f"{label} with a kv_cache, on {name}", atol=1e-9, rtol=1e-7,
                     hint=_CACHE_HINT)
    passed(label, "matches nn.MultiheadAttention with a causal mask, with and without biases, batch 1 and "
                  "sequence 1; the KV-cache path agrees")


# ------------------------------------------------------------ Block


def _block_truth(x, p, n_head, *, pre_norm=True, residual=(True, True), order=("attn", "mlp"), same_norm=False):
    """The GPT-2 block from PyTorch pieces (with knobs for the known mistakes)."""
    C = x.size(-1)

    def ln(h, name):
        name = "ln_1" if same_norm else name
        return F.layer_norm(h, (C,), p[f"{name}.weight"], p.get(f"{name}.bias"))

    def attn(h):
        return _mha_truth(h, p["attn.c_attn.weight"], p.get("attn.c_attn.bias"), p["attn.c_proj.weight"],
                          p.get("attn.c_proj.bias"), n_head)

    def mlp(h):
        h = F.gelu(F.linear(h, p["mlp.c_fc.weight"], p.get("mlp.c_fc.bias")), approximate="tanh")
        return F.linear(h, p["mlp.c_proj.weight"], p.get("mlp.c_proj.bias"))

    subs = {"attn": (attn, "ln_1"), "mlp": (mlp, "ln_2")}
    for i, name in enumerate(order):
        f, norm = subs[name]
        if pre_norm:
            out = f(ln(x, norm))
            x = x + out if residual[i] else out
        else:
            x = ln((x + f(x)) if residual[i] else f(x), norm)
    return x


def _load_named(module, params, label, hint):
    """Copy {dotted name: tensor} into the learner's module, failing clearly on a missing name."""
    # remove_duplicate=False: a tied weight is listed under every name it has (wte.weight and lm_head.weight),
    # whichever of the two modules was built first.
    mine = dict(module.named_parameters(remove_duplicate=False))
    for name, value in params.items():
        if name not in mine:
            fail(label, f"has no parameter {name}.", expected=", ".join(sorted(params)),
                 got=", ".join(sorted(mine)) or "no parameters", hint=hint)
        if mine[name].shape != value.shape:
            fail(label, f"{name} has the wrong shape.", expected=str(tuple(value.shape)),
                 got=str(tuple(mine[name].shape)), hint=hint)
        with torch.no_grad():
            mine[name].copy_(value)


def _block_params(c, g, prefix=""):
    C = c.n_embd
    shapes = {"ln_1.weight": (C,), "ln_1.bias": (C,), "attn.c_attn.weight": (3 * C, C), "attn.c_attn.bias": (3 * C,),
              "attn.c_proj.weight": (C, C), "attn.c_proj.bias": (C,), "ln_2.weight": (C,), "ln_2.bias": (C,),
              "mlp.c_fc.weight": (4 * C, C), "mlp.c_fc.bias": (4 * C,), "mlp.c_proj.weight": (C, 4 * C),
              "mlp.c_proj.bias": (C,)}
    p = {}
    for name, shape in shapes.items():
        t = torch.randn(shape, generator=g, dtype=F64)
        p[prefix + name] = 1 + 0.2 * t if ".weight" in name and "ln_" in name else (
            t / math.sqrt(shape[-1]) if len(shape) == 2 else 0.1 * t)
    return p


_BLOCK_NAMES = "self.ln_1, self.attn (CausalSelfAttention), self.ln_2 and self.mlp (MLP)"


def check_Block(Block) -> None:
    label = "Block"
    g = rng(11)
    c = _config()
    block = build_module(Block, label, c).to(F64).eval()
    p = _block_params(c, g)
    _load_named(block, p, label, hint=f"name the parts {_BLOCK_NAMES}, as GPT-2 does.")
    for B, T in ((2, 9), (1, 1), (3, 16)):
        x = torch.randn(B, T, c.n_embd, generator=g, dtype=F64)
        x0 = x.clone()
        got = expect_tensor(call(block, label, x), label)
        expect_unchanged(x0, x, label)
        mistakes = {
            "that is a post-norm block (norm after the residual add); GPT-2 is pre-norm: "
            "x = x + self.attn(self.ln_1(x)), then x = x + self.mlp(self.ln_2(x)).":
                _block_truth(x, p, c.n_head, pre_norm=False),
            "the attention sublayer has no residual connection: add its output to x.":
                _block_truth(x, p, c.n_head, residual=(False, True)),
            "the MLP sublayer has no residual connection: add its output to x.":
                _block_truth(x, p, c.n_head, residual=(True, False)),
            "the MLP runs before the attention: attention first (tokens exchange information), then the MLP.":
                _block_truth(x, p, c.n_head, order=("mlp", "attn")),
            "ln_1 is used twice: the MLP's input is normalised by its own ln_2.":
                _block_truth(x, p, c.n_head, same_norm=True),
        }
        expect_close(got, _block_truth(x, p, c.n_head), label, atol=1e-9, rtol=1e-7, mistakes=mistakes)
    passed(label, "pre-norm residual block matches one built from PyTorch layers, batch 1 and sequence 1 included")


# ------------------------------------------------------------ GPT


def _hf_gpt2(c: GPTConfig, seed: int):
    """A tiny GPT2LMHeadModel with random weights, built in memory (nothing is downloaded)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        with warnings.catch_warnings():   # its tqdm import warns about ipywidgets in a notebook
            warnings.simplefilter("ignore")
            import transformers
            from transformers import GPT2Config, GPT2LMHeadModel
    except ImportError:  # pragma: no cover - transformers is a course dependency
        raise AssertionError("check_GPT needs Hugging Face transformers: run `make install` "
                             "(or pip install transformers) and restart the kernel.") from None
    transformers.logging.set_verbosity_error()
    hc = GPT2Config(vocab_size=c.vocab_size, n_positions=c.block_size, n_embd=c.n_embd, n_layer=c.n_layer,
                    n_head=c.n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0,
                    eos_token_id=0, activation_function="gelu_new", layer_norm_epsilon=1e-5)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(hc).eval()
        with torch.no_grad():  # biases and norms away from their 0 / 1 defaults, so none is skipped unseen
            for name, p in model.named_parameters():
                if name.endswith("bias") or ".ln_" in name:
                    p.add_(0.1 * torch.randn_like(p))
    return model


def _gpt2_to_ours(hf_model) -> dict:
    """GPT-2's state dict in the course's names; Conv1D (in, out) weights transposed to nn.Linear's (out, in)."""
    ours = {}
    for name, value in hf_model.state_dict().items():
        if name == "lm_head.weight":
            continue
        if name.endswith(("c_attn.weight", "c_proj.weight", "c_fc.weight")):
            value = value.t()
        ours[name.replace("transformer.h.", "blocks.").replace("transformer.", "")] = value.detach().clone()
    return ours


def _gpt_forward(p, idx, c, *, ln_f=True, wpe=True):
    """The GPT forward pass from PyTorch pieces, with knobs for the known mistakes."""
    T = idx.size(1)
    x = p["wte.weight"][idx]
    if wpe:
        x = x + p["wpe.weight"][:T]
    for i in range(c.n_layer):
        block = {k[len(f"blocks.{i}."):]: v for k, v in p.items() if k.startswith(f"blocks.{i}.")}
        x = _block_truth(x, block, c.n_head)
    if ln_f:
        x = F.layer_norm(x, (c.n_embd,), p["ln_f.weight"], p["ln_f.bias"])
    return x @ p["wte.weight"].T


_GPT_NAMES = ("name the parts as GPT-2 does: self.wte, self.wpe, self.blocks (an nn.ModuleList of Block), "
              "self.ln_f, self.lm_head.")


def _check_init(GPT, label):
    c = _config(vocab_size=300, block_size=256, n_layer=4, n_embd=96, n_head=4)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_module(GPT, label, c)
    for name in ("wte", "wpe", "blocks", "ln_f", "lm_head"):
        if getattr(model, name, None) is None:
            fail(label, f"has no self.{name}.", hint=_GPT_NAMES)
    if not isinstance(model.blocks, nn.ModuleList) or len(model.blocks) != c.n_layer:
        fail(label, "self.blocks should be an nn.ModuleList of config.n_layer Blocks.",
             expected=f"ModuleList of {c.n_layer}", got=describe(model.blocks),
             hint="a plain Python list hides the blocks' parameters from the optimizer.")
    if model.lm_head.weight is not model.wte.weight:
        fail(label, "the LM head is not tied to the token embedding.",
             hint="after building both: self.lm_head.weight = self.wte.weight (one (vocab, n_embd) matrix, used twice).")
    if getattr(model.lm_head, "bias", None) is not None:
        fail(label, "lm_head should have no bias (GPT-2's has none): nn.Linear(n_embd, vocab_size, bias=False).")
    want = 0.02 / math.sqrt(2 * c.n_layer)
    stats = {
        "wte.weight": (model.wte.weight, 0.02),
        "wpe.weight": (model.wpe.weight, 0.02),
        "blocks.0.attn.c_attn.weight": (model.blocks[0].attn.c_attn.weight, 0.02),
        "blocks.0.mlp.c_fc.weight": (model.blocks[0].mlp.c_fc.weight, 0.02),
        "blocks.0.attn.c_proj.weight": (model.blocks[0].attn.c_proj.weight, want),
        "blocks.3.mlp.c_proj.weight": (model.blocks[3].mlp.c_proj.weight, want),
    }
    for name, (w, std) in stats.items():
        got = w.detach().std().item()
        if abs(got - std) > 0.15 * std or abs(w.detach().mean().item()) > 0.2 * std:
            hint = ("GPT-2 initialises every Linear and Embedding weight from N(0, 0.02²) and the biases to 0; "
                    "override with self.apply(self._init_weights).")
            if "c_proj" in name:
                hint = (f"the residual projections (every c_proj.weight) use std 0.02 / sqrt(2 * n_layer) = {want:.5f}, "
                        "so the residual stream does not grow with depth.")
            fail(label, f"{name} does not have GPT-2's initialisation.", expected=f"std {std:.5f}, mean 0",
                 got=f"std {got:.5f}, mean {w.detach().mean().item():.5f}", hint=hint)
    c_attn_bias = model.blocks[0].attn.c_attn.bias
    if c_attn_bias is not None and c_attn_bias.detach().abs().max() > 0:
        fail(label, "biases should start at zero.", hint="nn.init.zeros_(module.bias) for every Linear with a bias.")


def check_GPT(GPT) -> None:
    label = "GPT"
    _check_init(GPT, label)
    c = _config(vocab_size=41, block_size=12, n_layer=2, n_head=4, n_embd=32)
    hf = _hf_gpt2(c, seed=3)
    params = _gpt2_to_ours(hf)
    with torch.random.fork_rng(devices=[]):
        model = build_module(GPT, label, c).eval()
    _load_named(model, params, label, hint=_GPT_NAMES + " Blocks have ln_1, attn.c_attn, attn.c_proj, ln_2, "
                                               "mlp.c_fc, mlp.c_proj.")
    g = rng(5)
    for B, T in ((3, 12), (1, 1), (2, 5)):
        idx = torch.randint(0, c.vocab_size, (B, T), generator=g)
        targets = torch.randint(0, c.vocab_size, (B, T), generator=g)
        out = call(model, label, idx)
        if not (isinstance(out, tuple) and len(out) == 2):
            fail(label, "forward(idx) should return (logits, loss).", got=describe(out))
        logits, loss = out
        if loss is not None:
            fail(label, "without targets, loss should be None.", got=describe(loss))
        with torch.no_grad():
            want = hf(idx).logits
        p64 = {k: v.to(F64) for k, v in params.items()}
        mistakes = {
            "the final layer norm is missing: logits = self.lm_head(self.ln_f(x)).":
                _gpt_forward(p64, idx, c, ln_f=False).float(),
            "the position embedding is missing: x = self.wte(idx) + self.wpe(pos) with pos = 0..T-1.":
                _gpt_forward(p64, idx, c, wpe=False).float(),
        }
        expect_close(expect_tensor(logits, label), want, label + " logits (vs Hugging Face GPT2LMHeadModel)",
                     atol=1e-5, rtol=1e-5, mistakes=mistakes)
        logits, loss = call(model, label, idx, targets)
        expect_tensor(loss, label + " loss")
        expect_shape(loss, (), label + " loss", hint="the loss is one number: the mean over all B*T positions.")
        truth = F.cross_entropy(want.view(-1, c.vocab_size), targets.view(-1))
        expect_close(loss.detach(), truth, label + " loss", atol=1e-5, rtol=1e-5, mistakes={
            "the loss is computed on probabilities: F.cross_entropy takes the raw logits (it applies log-softmax itself).":
                F.cross_entropy(want.softmax(-1).view(-1, c.vocab_size), targets.view(-1)),
            "the loss is summed; use the mean over positions (F.cross_entropy's default).":
                F.cross_entropy(want.view(-1, c.vocab_size), targets.view(-1), reduction="sum"),
        }, hint="loss = F.cross_entropy(logits.view(-1, vocab_size), targets.view(-1)).")
    # the KV-cache path: positions continue after the cached ones
    idx = torch.randint(0, c.vocab_size, (2, 10), generator=g)
    caches = [KVCache() for _ in range(c.n_layer)]
    with torch.no_grad():
        want = hf(idx).logits
        first, _ = call(model, label + " with kv_caches", idx[:, :7], kv_caches=caches)
        second, _ = call(model, label + " with kv_caches", idx[:, 7:], kv_caches=caches)
    expect_close(torch.cat([first, second], dim=1), want, label + " with kv_caches (7 tokens, then 3)",
                 atol=1e-5, rtol=1e-5,
                 hint="positions continue after the cached ones: pos = torch.arange(past, past + T); "
                      "and pass caches[i] to block i: block(x, cache).")
    passed(label, "logits match Hugging Face's GPT2LMHeadModel to 1e-5, loss, weight tying, GPT-2 init, "
                  "KV-cache positions")


# ------------------------------------------------------------ sampling


def _draw(fn, label, logits, seed, **kw):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        got = call(fn, label, logits, **kw)
    got = expect_tensor(got, label)
    expect_shape(got, (logits.size(0), 1), label, hint="return one id per row, shape (B, 1): "
                 "torch.multinomial(probs, num_samples=1).")
    expect_dtype(got, torch.int64, label)
    return got[:, 0]


def _support(samples: torch.Tensor) -> set:
    return set(samples.unique().tolist())


def check_sample_next_token(sample_next_token) -> None:
    label = "sample_next_token"
    g = rng(13)
    logits = torch.randn(6, 20, generator=g) * 2
    before = logits.clone()
    try:
        greedy = _draw(sample_next_token, label + " with temperature=0", logits, 0, temperature=0)
    except AssertionError as e:
        raise AssertionError(f"{e}\nHint: temperature=0 means greedy; dividing by it gives inf and NaN: "
                             "handle temperature == 0 first with logits.argmax(dim=-1, keepdim=True).") from None
    expect_unchanged(before, logits, label, what="the logits")
    if not torch.equal(greedy, logits.argmax(-1)):
        fail(label, "temperature=0 should be greedy: the argmax of each row.",
             expected=str(logits.argmax(-1).tolist()), got=str(greedy.tolist()),
             hint="handle temperature == 0 first: return logits.argmax(dim=-1, keepdim=True).")
    cold = _draw(sample_next_token, label + " with temperature=1e-3", logits, 0, temperature=1e-3)
    if not torch.equal(cold, logits.argmax(-1)):
        fail(label, "a temperature near 0 should (almost surely) pick the argmax.",
             expected=str(logits.argmax(-1).tolist()), got=str(cold.tolist()),
             hint="divide the logits by the temperature: logits / temperature sharpens as it goes to 0.")
    top1 = _draw(sample_next_token, label + " with top_k=1", logits, 0, top_k=1)
    if not torch.equal(top1, logits.argmax(-1)):
        fail(label, "top_k=1 should always give the argmax.", expected=str(logits.argmax(-1).tolist()),
             got=str(top1.tolist()), hint="keep the k largest logits: set the others to -inf before the softmax.")

    # frequencies: one row repeated n times, drawn in one call
    n = 20000
    row = torch.tensor([2.0, 1.0, 0.5, 0.0, -0.5, -1.0, -3.0])
    many = row.expand(n, -1).clone()
    for temperature in (1.0, 2.0):
        samples = _draw(sample_next_token, label, many, 1, temperature=temperature)
        freq = torch.bincount(samples, minlength=len(row)).float() / n
        want = (row / temperature).softmax(-1)
        if (freq - want).abs().max() > 0.02:
            hint = None
            if (freq - (row * temperature).softmax(-1)).abs().max() < 0.02:
                hint = "the logits are multiplied by the temperature; divide: logits / temperature."
            elif (freq - row.softmax(-1)).abs().max() < 0.02:
                hint = "the temperature is ignored: divide the logits by it before the softmax."
            elif freq.max() > 0.99:
                hint = "it always picks the most likely token: sample with torch.multinomial(probs, 1)."
            fail(label, f"the frequencies of {n} draws at temperature {temperature} do not follow "
                        "softmax(logits / temperature).", expected=str([round(v, 3) for v in want.tolist()]),
                 got=str([round(v, 3) for v in freq.tolist()]), hint=hint)

    # top-k: never outside the k best, and all k of them appear
    samples = _draw(sample_next_token, label + " with top_k=3", many, 2, top_k=3)
    if _support(samples) != {0, 1, 2}:
        hint = "keep the k largest logits: torch.topk(logits, k).values[:, [-1]] is the k-th largest; " \
               "set every logit below it to -inf."
        fail(label, "with top_k=3 the draws should come from exactly the 3 most likely tokens.",
             expected="{0, 1, 2}", got=str(sorted(_support(samples))), hint=hint)

    # top-p: the smallest set whose probability reaches p (probabilities in a shuffled order)
    probs = torch.tensor([0.05, 0.30, 0.10, 0.40, 0.15])
    p_logits = probs.log().expand(n, -1).clone()
    for top_p, want_set in ((0.65, {3, 1}), (0.8, {3, 1, 4}), (0.3, {3})):
        samples = _draw(sample_next_token, label + f" with top_p={top_p}", p_logits, 3, top_p=top_p)
        got_set = _support(samples)
        if got_set != want_set:
            hint = "sort the probabilities in descending order, keep tokens while the probability ranked above " \
                   "them is below p (the token that crosses p stays), and map back with the sort order."
            if got_set < want_set:
                hint = "the token whose probability crosses p must stay: remove a token only when the " \
                       "cumulative probability BEFORE it already reaches p (cumsum - probs >= p)."
            fail(label, f"with top_p={top_p} the draws should come from the smallest set of tokens whose "
                        f"probabilities sum to at least {top_p}.", expected=str(sorted(want_set)),
                 got=str(sorted(got_set)), hint=hint)
        kept = probs[sorted(want_set)]
        freq = torch.bincount(samples, minlength=5).float()[sorted(want_set)] / n
        if (freq - kept / kept.sum()).abs().max() > 0.02:
            fail(label, f"with top_p={top_p} the kept tokens should keep their relative probabilities.",
                 expected=str([round(v, 3) for v in (kept / kept.sum()).tolist()]),
                 got=str([round(v, 3) for v in freq.tolist()]),
                 hint="renormalise over the kept tokens: set the others to -inf and take the softmax.")

    # a seed fixes the draw
    a = _draw(sample_next_token, label, many[:50], 4, temperature=1.0, top_k=5)
    b = _draw(sample_next_token, label, many[:50], 4, temperature=1.0, top_k=5)
    if not torch.equal(a, b):
        fail(label, "the same seed gave different draws.",
             hint="draw with torch.multinomial, which uses PyTorch's random generator (torch.manual_seed sets it).")
    passed(label, "greedy, temperature, top-k, top-p and seeding all behave, on 20,000 draws")


# ------------------------------------------------------------ generation


def _tiny_model(seed: int, **kw) -> _RefGPT:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _RefGPT(_config(**kw))
        randomise(model, torch.Generator().manual_seed(seed), scale=0.6)
    return model.eval()


def _greedy(model, idx, n):
    for _ in range(n):
        logits, _ = model(idx[:, -model.config.block_size:])
        idx = torch.cat([idx, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return idx


def _check_generation(fn, label, *, block_size, prompt_len, n_new, cached):
    model = _tiny_model(21, block_size=block_size)
    g = rng(17)
    idx = torch.randint(0, model.config.vocab_size, (3, prompt_len), generator=g)
    before = idx.clone()
    with torch.no_grad():
        want = _greedy(model, idx, n_new)
    try:
        got = call(fn, label, model, idx, n_new, temperature=0)
    except AssertionError as e:
        if cached and "raised" in str(e):
            raise AssertionError(f"{str(e).splitlines()[0]}\nHint: one KVCache per block, made once before the "
                                 "prefill; each step feeds only next_id, so the caches grow by one position.") from None
        raise
    got = expect_tensor(got, label)
    expect_unchanged(before, idx, label, what="the prompt idx", hint="build a new tensor with torch.cat.")
    expect_shape(got, (3, prompt_len + n_new), label,
                 hint="return the prompt followed by the new tokens: (B, T + max_new_tokens).")
    if not torch.equal(got[:, :prompt_len], idx):
        fail(label, "the output should start with the prompt.", hint="torch.cat([idx, next_id], dim=1) each step.")
    if not torch.equal(got, want):
        wrong = (got != want).nonzero()[0].tolist()
        hint = "each step, sample from the logits of the LAST position: logits[:, -1, :]."
        if cached:
            hint = ("one KVCache per block, made once; feed the whole prompt first, then only the newest token "
                    "(next_id, shape (B, 1)) with the same caches.")
        fail(label, f"greedy decoding (temperature=0) produced different tokens, first at batch {wrong[0]}, "
                    f"position {wrong[1]}.", expected=str(want[wrong[0]].tolist()), got=str(got[wrong[0]].tolist()),
             hint=hint)
    return model, idx


def check_generate(generate) -> None:
    label = "generate"
    # 6 prompt tokens + 10 new tokens > block_size 8: the context must be cropped
    try:
        model, idx = _check_generation(generate, label, block_size=8, prompt_len=6, n_new=10, cached=False)
    except AssertionError as e:
        if "block_size" in str(e) and "raised ValueError" in str(e):
            raise AssertionError(f"{e}\nHint: crop the context before each forward pass: "
                                 "idx[:, -model.config.block_size:].") from None
        raise
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        a = call(generate, label, model, idx, 5, temperature=1.0, top_k=3)
        torch.manual_seed(0)
        b = call(generate, label, model, idx, 5, temperature=1.0, top_k=3)
        top1 = call(generate, label, model, idx, 5, temperature=1.0, top_k=1)
    if not torch.equal(a, b):
        fail(label, "the same seed gave different text.", hint="sample with sample_next_token (torch.multinomial).")
    with torch.no_grad():
        greedy = _greedy(model, idx, 5)
    if not torch.equal(top1, greedy):
        fail(label, "top_k=1 should give the greedy tokens.",
             hint="pass temperature, top_k and top_p on to sample_next_token.")
    passed(label, "greedy tokens match a plain argmax loop, the context is cropped to block_size, "
                  "seeded sampling repeats")


def check_KVCache(KVCache) -> None:
    label = "KVCache"
    g = rng(19)
    cache = call(KVCache, label)
    if call(lambda: cache.seq_len, label + ".seq_len") != 0:
        fail(label, "an empty cache should have seq_len 0.", got=describe(cache.seq_len),
             hint="return 0 while nothing is stored (self.k is None).")
    ks, vs = [], []
    for t in (4, 1, 1, 3):
        k = torch.randn(2, 3, t, 5, generator=g)
        v = torch.randn(2, 3, t, 5, generator=g)
        ks.append(k)
        vs.append(v)
        try:
            out = call(cache.update, label + ".update", k, v)
        except AssertionError as e:
            raise AssertionError(f"{e}\nHint: keys and values are (batch, n_head, T, head_size): concatenate "
                                 "along the time axis, torch.cat([self.k, k], dim=2).") from None
        if not (isinstance(out, tuple) and len(out) == 2):
            fail(label, "update(k, v) should return (all keys, all values).", got=describe(out))
        k_all, v_all = out
        want_k, want_v = torch.cat(ks, dim=2), torch.cat(vs, dim=2)
        length = want_k.size(2)
        expect_shape(expect_tensor(k_all, label), tuple(want_k.shape), label + ".update keys",
                     hint="concatenate along the time axis, dim=2 of (batch, n_head, T, head_size); "
                          "return everything stored so far, not only the new keys.")
        if torch.equal(k_all, want_v) and not torch.equal(k_all, want_k):
            fail(label, "update returned the values where the keys belong.", hint="return (keys, values) in that order.")
        expect_close(k_all, want_k, label + ".update keys", atol=0, mistakes={
            "the new keys went in front of the old ones: torch.cat([old, new], dim=2).": torch.cat(ks[::-1], dim=2)})
        expect_close(v_all, want_v, label + ".update values", atol=0,
                     hint="store the values the same way as the keys.")
        if cache.seq_len != length:
            fail(label, "seq_len should count the positions stored.", expected=str(length), got=describe(cache.seq_len),
                 hint="the size of the stored keys along dim 2.")
    passed(label, "appends keys and values along time, returns all of them, counts positions")


def check_generate_cached(generate_cached) -> None:
    label = "generate_cached"
    model, idx = _check_generation(generate_cached, label, block_size=24, prompt_len=5, n_new=19, cached=True)
    # one prompt pass, then one token per step
    seen = []
    hook = model.wte.register_forward_hook(lambda m, inp, out: seen.append(inp[0].size(1)))
    try:
        call(generate_cached, label, model, idx, 6, temperature=0)
    finally:
        hook.remove()
    # The prompt may be prefilled whole or in part (the rest fed one token at a time, as the new ones are), and a
    # last forward pass after the final token is wasted but harmless: every position is fed once, and only once.
    prompt_once = seen and 1 <= seen[0] <= idx.size(1) and all(t == 1 for t in seen[1:])
    if not prompt_once or sum(seen) > idx.size(1) + 6:
        fail(label, "the model should see the prompt once, then one new token per step.",
             expected=f"[{idx.size(1)}, 1, 1, 1, 1, 1]", got=str(seen),
             hint="after the prefill, call model(next_id, kv_caches=caches) with next_id of shape (B, 1).")
    try:
        generate_cached(model, idx, 30, temperature=0)
    except NotImplementedError:
        raise
    except ValueError:
        pass
    except Exception as e:  # noqa: BLE001
        fail(label, f"5 + 30 tokens do not fit in block_size 24; expected a ValueError, got {type(e).__name__}: {e}",
             hint="check idx.size(1) + max_new_tokens <= model.config.block_size first and raise ValueError.")
    else:
        fail(label, "5 + 30 tokens do not fit in block_size 24: raise a ValueError that says so.")
    passed(label, "identical to uncached greedy decoding; the prompt is fed once, then one token per step")

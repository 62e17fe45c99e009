"""Every notebook-05 checker accepts the reference and rejects plausible mistakes.

Each wrong implementation below is a mistake learners really make when they
assemble a block or an encoder; the test asserts the checker rejects it AND
that its message points at that mistake. Most are the reference with one
thing changed.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils import checks, reference

from checker_harness import checker_tests

# ------------------------------------------------------------ TransformerBlock


class _Block(reference.TransformerBlock):
    """The reference block written out, with knobs; each subclass below turns one."""

    pre = None  # None: follow norm_first; True/False: ignore it
    attn_res = ffn_res = True
    normed_res = False  # pre-norm: add to norm(x) instead of x
    norms = ("norm1", "norm2")
    ffn_first = False
    norm_in_branch = False  # post-norm: x + norm(f(x))
    use_mask = True
    invert_mask = False

    def forward(self, x, mask=None):
        if mask is not None and self.invert_mask:
            mask = ~mask
        m = mask if self.use_mask else None
        attn = lambda z: self.dropout(self.attn(z, m)[0])  # noqa: E731
        ffn = lambda z: self.dropout(self.ffn(z))  # noqa: E731
        subs = [(attn, getattr(self, self.norms[0]), self.attn_res),
                (ffn, getattr(self, self.norms[1]), self.ffn_res)]
        if self.ffn_first:
            subs = subs[::-1]
        pre = self.norm_first if self.pre is None else self.pre
        for f, norm, res in subs:
            if pre:
                z = norm(x)
                x = (z if self.normed_res else x) * res + f(z)
            elif self.norm_in_branch:
                x = x * res + norm(f(x))
            else:
                x = norm(x * res + f(x))
        return x


class BlockPrePostSwapped(_Block):  # the two branches of `if self.norm_first` swapped
    def forward(self, x, mask=None):
        self.pre = not self.norm_first
        return super().forward(x, mask)


class BlockNoAttentionResidual(_Block):
    attn_res = False


class BlockNoFFNResidual(_Block):
    ffn_res = False


class BlockResidualFromNormedX(_Block):  # x = norm(x); x = x + attn(x)
    normed_res = True


class BlockNorm1Twice(_Block):  # built norm2, but used norm1 for both sublayers
    norms = ("norm1", "norm1")


class BlockSharedNormModule(reference.TransformerBlock):  # one LayerNorm object under two names
    def __init__(self, d_model, n_heads, d_ff=None, dropout=0.0, norm_first=True):
        super().__init__(d_model, n_heads, d_ff, dropout, norm_first)
        self.norm2 = self.norm1


class BlockIgnoresMask(_Block):
    use_mask = False


class BlockInvertedMask(_Block):  # PyTorch's convention: True = may NOT attend
    invert_mask = True


class BlockFFNFirst(_Block):
    ffn_first = True


class BlockPostNormInsideBranch(_Block):  # x + norm(attn(x)) for post-norm
    norm_in_branch = True

    def __init__(self, d_model, n_heads, d_ff=None, dropout=0.0, norm_first=True):
        super().__init__(d_model, n_heads, d_ff, dropout, norm_first)
        self.pre = None if norm_first else False


class BlockDefaultPostNorm(reference.TransformerBlock):  # defaults to the 2017 paper's post-norm
    def __init__(self, d_model, n_heads, d_ff=None, dropout=0.0, norm_first=False):
        super().__init__(d_model, n_heads, d_ff, dropout, norm_first)


class BlockReturnsTuple(reference.TransformerBlock):  # passes attention's (out, weights) along
    def forward(self, x, mask=None):
        a, w = self.attn(self.norm1(x), mask)
        x = x + a
        return x + self.ffn(self.norm2(x)), w


class BlockInPlaceResidual(reference.TransformerBlock):  # x += ... writes into the caller's tensor
    def forward(self, x, mask=None):
        x += self.attn(self.norm1(x), mask)[0]
        x += self.ffn(self.norm2(x))
        return x


class _FunctionalDropout(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, z):
        return F.dropout(z, self.p)  # training=True by default: on even after .eval()


class BlockFunctionalDropout(_Block):  # F.dropout stays on in eval mode
    def __init__(self, d_model, n_heads, d_ff=None, dropout=0.0, norm_first=True):
        super().__init__(d_model, n_heads, d_ff, dropout, norm_first)
        self.dropout = _FunctionalDropout(dropout)


class BlockNoDropout(_Block):  # ignores the dropout argument
    def __init__(self, d_model, n_heads, d_ff=None, dropout=0.0, norm_first=True):
        super().__init__(d_model, n_heads, d_ff, 0.0, norm_first)


class BlockNanoGPTNames(nn.Module):  # ln_1 / ln_2 as in nanoGPT, not norm1 / norm2
    def __init__(self, d_model, n_heads, d_ff=None, dropout=0.0, norm_first=True):
        super().__init__()
        self.attn = reference.MultiHeadAttention(d_model, n_heads)
        self.ffn = reference.FeedForward(d_model, d_ff)
        self.ln_1, self.ln_2 = reference.LayerNorm(d_model), reference.LayerNorm(d_model)

    def forward(self, x, mask=None):
        x = x + self.attn(self.ln_1(x), mask)[0]
        return x + self.ffn(self.ln_2(x))


BLOCK_MISTAKES = [
    (BlockPrePostSwapped, "which branch of `if self.norm_first`"),
    (BlockNoAttentionResidual, "attention sublayer has no residual"),
    (BlockNoFFNResidual, "feed-forward sublayer has no residual"),
    (BlockResidualFromNormedX, "carry x itself, not its normalised copy"),
    (BlockNorm1Twice, "one LayerNorm for both sublayers"),
    (BlockSharedNormModule, "are the same module"),
    (BlockIgnoresMask, "pass `mask` on to the attention"),
    (BlockInvertedMask, "the mask is inverted"),
    (BlockFFNFirst, "sublayers are in the wrong order"),
    (BlockPostNormInsideBranch, "norm wraps the residual sum"),
    (BlockDefaultPostNorm, "norm_first defaults to True"),
    (BlockReturnsTuple, "keep the output"),
    (BlockInPlaceResidual, "not x += ..."),
    (BlockFunctionalDropout, "in eval mode dropout must do nothing"),
    (BlockNoDropout, "dropped nothing"),
    (BlockNanoGPTNames, "LayerNorm at self.norm1"),
]

# ------------------------------------------------------------ TransformerEncoder


class _Encoder(reference.TransformerEncoder):
    """The reference encoder written out, with knobs."""

    pe_where = "before"  # "before", "after" or "never" the blocks
    scale = False  # multiply the embeddings by sqrt(d_model)
    final_norm = True
    mask_kind = "keys"  # "keys", "none", "inverted", "keys_and_queries"
    repeat_first = False  # run blocks[0] n_layers times
    check_len = True

    def forward(self, idx, padding_mask=None):
        seq = idx.size(1)
        if self.check_len and seq > self.pe.size(0):
            raise ValueError(f"sequence length {seq} is longer than max_len={self.pe.size(0)}")
        x = self.token_emb(idx)
        if self.scale:
            x = x * math.sqrt(x.size(-1))
        add_pe = self.positional and self.pe_where != "never"
        if add_pe and self.pe_where == "before":
            x = x + self.pe[:seq]
        mask = None
        if padding_mask is not None and self.mask_kind != "none":
            keys = padding_mask if self.mask_kind != "inverted" else ~padding_mask
            mask = keys[:, None, None, :]
            if self.mask_kind == "keys_and_queries":
                mask = mask & padding_mask[:, None, :, None]
        blocks = [self.blocks[0]] * len(self.blocks) if self.repeat_first else self.blocks
        for block in blocks:
            x = block(x, mask)
        if add_pe and self.pe_where == "after":
            x = x + self.pe[:seq]
        return self.norm(x) if self.final_norm else x


class EncoderNoPositional(_Encoder):
    pe_where = "never"


class EncoderPEAfterBlocks(_Encoder):
    pe_where = "after"


class EncoderScaledEmbeddings(_Encoder):  # the paper's sqrt(d_model), not used here
    scale = True


class EncoderForgetsFinalNorm(_Encoder):  # self.norm built, never applied
    final_norm = False


class EncoderNoFinalNormModule(reference.TransformerEncoder):  # no final norm even for pre-norm
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.norm = nn.Identity()


class EncoderFinalNormInPostNorm(reference.TransformerEncoder):
    def __init__(self, vocab_size, d_model, *args, **kwargs):
        super().__init__(vocab_size, d_model, *args, **kwargs)
        self.norm = reference.LayerNorm(d_model)


class EncoderSharedBlock(reference.TransformerEncoder):  # [block] * n_layers: one set of weights
    def __init__(self, vocab_size, d_model, n_heads, n_layers, d_ff=None, max_len=512, dropout=0.0,
                 norm_first=True, positional=True):
        super().__init__(vocab_size, d_model, n_heads, n_layers, d_ff, max_len, dropout, norm_first, positional)
        self.blocks = nn.ModuleList([self.blocks[0]] * n_layers)


class EncoderRepeatsFirstBlock(_Encoder):  # loops n_layers times over blocks[0]
    repeat_first = True


class EncoderIgnoresPadding(_Encoder):
    mask_kind = "none"


class EncoderInvertedPadding(_Encoder):
    mask_kind = "inverted"


class EncoderMasksPadQueries(_Encoder):  # pad query rows fully masked: NaN
    mask_kind = "keys_and_queries"


class EncoderIgnoresPositionalFlag(_Encoder):  # always adds the positional encoding
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.positional = True


class EncoderNoLengthCheck(_Encoder):  # pe[:seq] is too short: a broadcasting RuntimeError
    check_len = False


class EncoderPlainTensorPE(reference.TransformerEncoder):  # not a buffer: .to() and .double() skip it
    def __init__(self, vocab_size, d_model, *args, max_len=512, **kwargs):
        super().__init__(vocab_size, d_model, *args, max_len=max_len, **kwargs)
        del self.pe
        self.pe = reference.sinusoidal_positional_encoding(max_len, d_model)


class EncoderNoDropout(reference.TransformerEncoder):  # dropout never reaches the blocks
    def __init__(self, vocab_size, d_model, n_heads, n_layers, d_ff=None, max_len=512, dropout=0.0,
                 norm_first=True, positional=True):
        super().__init__(vocab_size, d_model, n_heads, n_layers, d_ff, max_len, 0.0, norm_first, positional)


ENCODER_MISTAKES = [
    (EncoderNoPositional, "without positional encoding"),
    (EncoderPEAfterBlocks, "you added it after them"),
    (EncoderScaledEmbeddings, "without the paper's sqrt(d_model)"),
    (EncoderForgetsFinalNorm, "ends with a final LayerNorm"),
    (EncoderNoFinalNormModule, "needs a final LayerNorm at self.norm"),
    (EncoderFinalNormInPostNorm, "needs no final norm"),
    (EncoderSharedBlock, "holds the same block more than once"),
    (EncoderRepeatsFirstBlock, "every layer ran with the same weights"),
    (EncoderIgnoresPadding, "padding mask was ignored"),
    (EncoderInvertedPadding, "padding mask is inverted"),
    (EncoderMasksPadQueries, "mask only the pad keys"),
    (EncoderIgnoresPositionalFlag, "positional=False the encoder must not add"),
    (EncoderNoLengthCheck, "raise ValueError"),
    (EncoderPlainTensorPE, "should be a buffer"),
    (EncoderNoDropout, "pass `dropout` on to every TransformerBlock"),
]

CASES = (
    [(checks.check_TransformerBlock, cls, hint) for cls, hint in BLOCK_MISTAKES]
    + [(checks.check_TransformerEncoder, cls, hint) for cls, hint in ENCODER_MISTAKES]
)

REFERENCES = [
    (checks.check_TransformerBlock, reference.TransformerBlock),
    (checks.check_TransformerEncoder, reference.TransformerEncoder),
]


(test_checker_accepts_reference,
 test_checker_rejects_mistake_with_targeted_message,
 test_every_checker_has_at_least_four_mistakes,
 test_checker_passes_not_implemented_through,
 test_checker_leaves_the_global_random_stream_alone) = checker_tests(REFERENCES, CASES)


def test_encoder_checker_accepts_a_positional_encoding_computed_in_float32():
    # Another correct formula, exp(-log(10000) * 2i / d) in float32, differs in the last bits.
    class Float32PE(reference.TransformerEncoder):
        def __init__(self, vocab_size, d_model, *args, max_len=512, **kwargs):
            super().__init__(vocab_size, d_model, *args, max_len=max_len, **kwargs)
            pos = torch.arange(max_len, dtype=torch.float32)[:, None]
            freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
            pe = torch.zeros(max_len, d_model)
            pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)
            self.pe = pe

    checks.check_TransformerEncoder(Float32PE)


def test_reference_block_matches_torch_layer_with_loaded_state_dict():
    # notebook 06 builds on this block: its attribute names line up with nn.TransformerEncoderLayer's.
    torch.manual_seed(0)
    for norm_first in (True, False):
        layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=norm_first).eval()
        block = reference.TransformerBlock(8, 2, 16, norm_first=norm_first).eval()
        sd = layer.state_dict()
        w, b = sd["self_attn.in_proj_weight"].chunk(3), sd["self_attn.in_proj_bias"].chunk(3)
        ours = {f"attn.{n}_proj.{k}": t for n, wi, bi in zip("qkv", w, b) for k, t in (("weight", wi), ("bias", bi))}
        ours |= {f"attn.out_proj.{k}": sd[f"self_attn.out_proj.{k}"] for k in ("weight", "bias")}
        ours |= {f"ffn.{k}": v for k, v in sd.items() if k.startswith("linear")}
        ours |= {k: v for k, v in sd.items() if k.startswith("norm")}
        block.load_state_dict(ours)
        x = torch.randn(2, 5, 8)
        assert torch.allclose(block(x), layer(x), atol=1e-5)

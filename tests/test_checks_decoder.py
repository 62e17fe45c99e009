"""Every notebook-06 checker accepts the reference and rejects plausible mistakes.

Each wrong implementation below is a mistake learners really make; the test
asserts the checker rejects it AND that its message points at that mistake.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from utils import checks, reference
from utils.checks.decoder import _block_variant, _CopyModel, _torch_decoder_layer, _TorchSeq2Seq
from utils.checks._core import rng

from checker_harness import checker_tests

Ref = reference.DecoderBlock

# ------------------------------------------------------------ DecoderBlock


class _Block(Ref):
    """The reference block with its forward written out, so one step can be changed."""

    def sa(self, h, self_mask):
        return self.self_attn(h, self_mask)[0]

    def ca(self, h, memory, memory_mask):
        return self.cross_attn(h, memory_mask, context=memory)[0]

    def ff(self, h):
        return self.ffn(h)

    def forward(self, x, memory, self_mask=None, memory_mask=None):
        d = self.dropout
        if self.norm_first:
            x = x + d(self.sa(self.norm1(x), self_mask))
            x = x + d(self.ca(self.norm2(x), memory, memory_mask))
            return x + d(self.ff(self.norm3(x)))
        x = self.norm1(x + d(self.sa(x, self_mask)))
        x = self.norm2(x + d(self.ca(x, memory, memory_mask)))
        return self.norm3(x + d(self.ff(x)))


class DecoderBlockNoCausalMask(_Block):  # self-attention ignores self_mask: sees the future
    def sa(self, h, self_mask):
        return self.self_attn(h)[0]


class DecoderBlockBuildsItsOwnCausalMask(_Block):  # ignores self_mask, always causal
    def sa(self, h, self_mask):
        return self.self_attn(h, reference.causal_mask(h.size(1)))[0]


class DecoderBlockCrossKVFromX(_Block):  # a second self-attention; the memory mask then crashes
    def ca(self, h, memory, memory_mask):
        return self.cross_attn(h, memory_mask)[0]


class DecoderBlockCrossKVFromXNoMask(_Block):  # a second self-attention, no mask
    def ca(self, h, memory, memory_mask):
        return self.cross_attn(h)[0]


class DecoderBlockQueriesFromMemory(_Block):  # the roles of x and memory swapped
    def ca(self, h, memory, memory_mask):
        return self.cross_attn(memory, context=h)[0]


class DecoderBlockIgnoresMemoryMask(_Block):  # attends to padded source positions
    def ca(self, h, memory, memory_mask):
        return self.cross_attn(h, context=memory)[0]


class DecoderBlockNormalisesMemory(_Block):  # pre-norm applied to the memory as well
    def ca(self, h, memory, memory_mask):
        return self.cross_attn(h, memory_mask, context=self.norm2(memory))[0]


class DecoderBlockCrossFirst(Ref):  # cross-attention before self-attention
    def forward(self, x, memory, self_mask=None, memory_mask=None):
        if self.norm_first:
            x = x + self.cross_attn(self.norm2(x), memory_mask, context=memory)[0]
            x = x + self.self_attn(self.norm1(x), self_mask)[0]
            return x + self.ffn(self.norm3(x))
        x = self.norm1(x + self.cross_attn(x, memory_mask, context=memory)[0])
        x = self.norm2(x + self.self_attn(x, self_mask)[0])
        return self.norm3(x + self.ffn(x))


class DecoderBlockNoCrossResidual(Ref):  # x = cross_attn(...) instead of x = x + cross_attn(...)
    def forward(self, x, memory, self_mask=None, memory_mask=None):
        if self.norm_first:
            x = x + self.self_attn(self.norm1(x), self_mask)[0]
            x = self.cross_attn(self.norm2(x), memory_mask, context=memory)[0]
            return x + self.ffn(self.norm3(x))
        x = self.norm1(x + self.self_attn(x, self_mask)[0])
        x = self.norm2(self.cross_attn(x, memory_mask, context=memory)[0])
        return self.norm3(x + self.ffn(x))


class DecoderBlockReusesNorm1(Ref):  # norm2 and norm3 built but norm1 used everywhere
    def forward(self, x, memory, self_mask=None, memory_mask=None):
        n = self.norm1
        if self.norm_first:
            x = x + self.self_attn(n(x), self_mask)[0]
            x = x + self.cross_attn(n(x), memory_mask, context=memory)[0]
            return x + self.ffn(n(x))
        x = n(x + self.self_attn(x, self_mask)[0])
        x = n(x + self.cross_attn(x, memory_mask, context=memory)[0])
        return n(x + self.ffn(x))


class DecoderBlockSharedNormModule(Ref):  # one LayerNorm object under three names
    def __init__(self, d_model, n_heads, d_ff=None, dropout=0.0, norm_first=True):
        super().__init__(d_model, n_heads, d_ff, dropout, norm_first)
        self.norm2 = self.norm3 = self.norm1


class DecoderBlockOneAttention(Ref):  # self- and cross-attention share their weights
    def __init__(self, d_model, n_heads, d_ff=None, dropout=0.0, norm_first=True):
        super().__init__(d_model, n_heads, d_ff, dropout, norm_first)
        self.cross_attn = self.self_attn


class DecoderBlockAlwaysPreNorm(Ref):  # ignores norm_first
    def __init__(self, d_model, n_heads, d_ff=None, dropout=0.0, norm_first=True):
        super().__init__(d_model, n_heads, d_ff, dropout, norm_first=True)


class DecoderBlockNoDropout(_Block):  # ignores the dropout argument
    def forward(self, x, memory, self_mask=None, memory_mask=None):
        self.dropout.p = 0.0
        return super().forward(x, memory, self_mask, memory_mask)


class DecoderBlockIgnoresDff(Ref):  # always 4 * d_model
    def __init__(self, d_model, n_heads, d_ff=None, dropout=0.0, norm_first=True):
        super().__init__(d_model, n_heads, None, dropout, norm_first)


DECODER_BLOCK_MISTAKES = [
    (DecoderBlockNoCausalMask, "ignores self_mask"),
    (DecoderBlockBuildsItsOwnCausalMask, "use the mask you are given"),
    (DecoderBlockCrossKVFromX, "keys and values from memory"),
    (DecoderBlockCrossKVFromXNoMask, "second self-attention"),
    (DecoderBlockQueriesFromMemory, "queries come from x"),
    (DecoderBlockIgnoresMemoryMask, "memory padding mask is ignored"),
    (DecoderBlockNormalisesMemory, "you normalised the memory"),
    (DecoderBlockCrossFirst, "wrong order"),
    (DecoderBlockNoCrossResidual, "no residual connection around cross-attention"),
    (DecoderBlockReusesNorm1, "one norm is used for several sublayers"),
    (DecoderBlockSharedNormModule, "a norm is shared"),
    (DecoderBlockOneAttention, "same module"),
    (DecoderBlockAlwaysPreNorm, "norm_first=False is post-norm"),
    (DecoderBlockNoDropout, "dropped nothing"),
    (DecoderBlockIgnoresDff, "wrong number of parameters"),
]

# ------------------------------------------------------------ EncoderDecoder

Model = reference.EncoderDecoder


class _Model(Model):
    """The reference model with decode written out, so one step can be changed."""

    causal, cross_padding, final_norm, positions, scale, memory_is_x = True, True, True, True, 1.0, False

    def decode(self, tgt, memory, src_padding_mask=None):
        t = tgt.size(1)
        x = self.tgt_emb(tgt) * self.scale
        if self.positions:
            x = x + self.pe[:t].to(x.dtype)
        self_mask = reference.causal_mask(t) if self.causal else None
        memory_mask = None
        if src_padding_mask is not None and self.cross_padding:
            memory_mask = src_padding_mask[:, None, None, :]
        for block in self.blocks:
            x = block(x, x if self.memory_is_x else memory, self_mask, None if self.memory_is_x else memory_mask)
        return self.lm_head(self.norm(x) if self.final_norm else x)


class ModelNoCausalMask(_Model):  # the decoder sees the future
    causal = False


class ModelIgnoresEncoder(_Model):  # the decoder blocks attend to x as "memory"
    memory_is_x = True


class ModelNoCrossPadding(_Model):  # memory_mask never passed to the blocks
    cross_padding = False


class ModelNoFinalNormApplied(_Model):  # self.norm built, then forgotten
    final_norm = False


class ModelNoTargetPositions(_Model):
    positions = False


class ModelScaledEmbedding(_Model):  # the 2017 paper's sqrt(d_model), which the course's encoder omits
    scale = math.sqrt(16)


class ModelNoEncoderPadding(Model):  # the encoder is not told where the padding is
    def encode(self, src, src_padding_mask=None):
        return self.encoder(src)


class ModelMemoryMaskWrongShape(Model):  # (batch, 1, src) does not broadcast to (batch, heads, tgt, src)
    def decode(self, tgt, memory, src_padding_mask=None):
        t = tgt.size(1)
        x = self.tgt_emb(tgt) + self.pe[:t].to(memory.dtype)
        mask = None if src_padding_mask is None else src_padding_mask[:, None, :]
        for block in self.blocks:
            x = block(x, memory, reference.causal_mask(t), mask)
        return self.lm_head(self.norm(x))


class ModelNoFinalNorm(Model):  # no final norm at all, even pre-norm
    def __init__(self, *args, norm_first=True, **kwargs):
        super().__init__(*args, norm_first=norm_first, **kwargs)
        self.norm = nn.Identity()


class ModelAlwaysFinalNorm(Model):  # a final LayerNorm in post-norm too
    def __init__(self, *args, norm_first=True, **kwargs):
        super().__init__(*args, norm_first=norm_first, **kwargs)
        self.norm = reference.LayerNorm(self.tgt_emb.embedding_dim)


class ModelLmHeadBias(Model):  # nn.Linear's default bias=True
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lm_head = nn.Linear(self.lm_head.in_features, self.lm_head.out_features)


class ModelLearnedTargetPositions(Model):  # a learned table instead of the sinusoidal buffer
    def __init__(self, src_vocab, tgt_vocab, d_model, n_heads, n_layers, d_ff=None, max_len=512, **kwargs):
        super().__init__(src_vocab, tgt_vocab, d_model, n_heads, n_layers, d_ff, max_len, **kwargs)
        self.pos_emb = nn.Embedding(max_len, d_model)


class ModelEncoderAlwaysPreNorm(Model):  # norm_first not passed on to the encoder
    def __init__(self, src_vocab, tgt_vocab, d_model, n_heads, n_layers, d_ff=None, max_len=512, dropout=0.0,
                 norm_first=True):
        super().__init__(src_vocab, tgt_vocab, d_model, n_heads, n_layers, d_ff, max_len, dropout, norm_first)
        self.encoder = reference.TransformerEncoder(src_vocab, d_model, n_heads, n_layers, d_ff, max_len, dropout)


class _OwnEncoder(nn.Module):  # a copy of the encoder rather than the course's TransformerEncoder
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, idx, padding_mask=None):
        return self.inner(idx, padding_mask)


class ModelOwnEncoderClass(Model):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.encoder = _OwnEncoder(self.encoder)


ENCODER_DECODER_MISTAKES = [
    (ModelNoCausalMask, "is not causal"),
    (ModelIgnoresEncoder, "ignores the encoder"),
    (ModelNoCrossPadding, "cross-attention looks at padded source positions"),
    (ModelNoEncoderPadding, "pass src_padding_mask to the encoder"),
    (ModelNoFinalNormApplied, "final norm is missing"),
    (ModelNoFinalNorm, "ends with a final LayerNorm"),
    (ModelAlwaysFinalNorm, "post-norm stack has no final norm"),
    (ModelNoTargetPositions, "the target has no positions"),
    (ModelScaledEmbedding, "sqrt(d_model)"),
    (ModelMemoryMaskWrongShape, "src_padding_mask[:, None, None, :]"),
    (ModelLmHeadBias, "lm_head has no bias"),
    (ModelLearnedTargetPositions, "not a parameter"),
    (ModelOwnEncoderClass, "use TransformerEncoder from utils.reference"),
    (ModelEncoderAlwaysPreNorm, "pass every argument on to the encoder"),
]

# ------------------------------------------------------------ greedy_decode


def _greedy(model, src, bos_id, eos_id, max_len, src_padding_mask=None, *, pick=None, mark_done=True,
            early_stop=True, keep_bos=True, steps=None, position=-1, pass_mask=True, source=None, dtype=torch.long):
    """The reference loop with knobs for the mistakes below."""
    mask = src_padding_mask if pass_mask else None
    with torch.no_grad():
        memory = model.encode(src if source is None else source(src), mask)
        ys = torch.full((src.size(0), 1), bos_id, dtype=torch.long)
        done = torch.zeros(src.size(0), dtype=torch.bool)
        limit = max_len if steps is None else steps
        while ys.size(1) < limit and not (early_stop and done.all()):
            logits = model.decode(ys, memory, mask)[:, position]
            next_id = logits.argmax(-1) if pick is None else pick(logits)
            if mark_done:
                next_id = next_id.masked_fill(done, eos_id)
            ys = torch.cat([ys, next_id[:, None]], dim=1)
            done = done | (next_id == eos_id)
    out = ys if keep_bos else ys[:, 1:]
    return out.to(dtype)


def greedy_no_bos(model, src, bos_id, eos_id, max_len, src_padding_mask=None):  # drops column 0
    return _greedy(model, src, bos_id, eos_id, max_len, src_padding_mask, keep_bos=False)


def greedy_samples(model, src, bos_id, eos_id, max_len, src_padding_mask=None):  # multinomial, not argmax
    return _greedy(model, src, bos_id, eos_id, max_len, src_padding_mask,
                   pick=lambda logits: torch.multinomial(F.softmax(logits, -1), 1)[:, 0])


def greedy_eos_does_not_stop(model, src, bos_id, eos_id, max_len, src_padding_mask=None):
    return _greedy(model, src, bos_id, eos_id, max_len, src_padding_mask, mark_done=False, early_stop=False)


def greedy_no_early_stop(model, src, bos_id, eos_id, max_len, src_padding_mask=None):  # pads, never stops
    return _greedy(model, src, bos_id, eos_id, max_len, src_padding_mask, early_stop=False)


def greedy_off_by_one(model, src, bos_id, eos_id, max_len, src_padding_mask=None):  # max_len new tokens
    return _greedy(model, src, bos_id, eos_id, max_len, src_padding_mask, steps=max_len + 1)


def greedy_first_position(model, src, bos_id, eos_id, max_len, src_padding_mask=None):  # logits[:, 0]
    return _greedy(model, src, bos_id, eos_id, max_len, src_padding_mask, position=0)


def greedy_drops_mask(model, src, bos_id, eos_id, max_len, src_padding_mask=None):  # never passes the mask
    return _greedy(model, src, bos_id, eos_id, max_len, src_padding_mask, pass_mask=False)


def greedy_ignores_source(model, src, bos_id, eos_id, max_len, src_padding_mask=None):  # encodes zeros
    return _greedy(model, src, bos_id, eos_id, max_len, src_padding_mask, source=torch.zeros_like)


def greedy_float_ids(model, src, bos_id, eos_id, max_len, src_padding_mask=None):  # torch.full's float default
    return _greedy(model, src, bos_id, eos_id, max_len, src_padding_mask, dtype=torch.float32)


GREEDY_MISTAKES = [
    (greedy_no_bos, "must start with bos_id"),
    (greedy_samples, "the decoding is random"),
    (greedy_eos_does_not_stop, "went on after eos_id"),
    (greedy_no_early_stop, "stop the loop once every sequence"),
    (greedy_off_by_one, "max_len counts bos too"),
    (greedy_first_position, "logits of the last position"),
    (greedy_drops_mask, "pass src_padding_mask on"),
    (greedy_ignores_source, "the output ignores src"),
    (greedy_float_ids, "torch.long"),
]

CASES = (
    [(checks.check_DecoderBlock, cls, hint) for cls, hint in DECODER_BLOCK_MISTAKES]
    + [(checks.check_EncoderDecoder, cls, hint) for cls, hint in ENCODER_DECODER_MISTAKES]
    + [(checks.check_greedy_decode, fn, hint) for fn, hint in GREEDY_MISTAKES]
)

REFERENCES = [
    (checks.check_DecoderBlock, reference.DecoderBlock),
    (checks.check_EncoderDecoder, reference.EncoderDecoder),
    (checks.check_greedy_decode, reference.greedy_decode),
]

(test_checker_accepts_reference,
 test_checker_rejects_mistake_with_targeted_message,
 test_every_checker_has_at_least_four_mistakes,
 test_checker_passes_not_implemented_through,
 test_checker_leaves_the_global_random_stream_alone) = checker_tests(REFERENCES, CASES)


@pytest.mark.parametrize("norm_first", [True, False])
def test_block_variant_without_knobs_is_pytorchs_layer(norm_first):
    # The known-mistake variants are built from the same pieces as the ground truth.
    g = rng(0)
    layer = _torch_decoder_layer(8, 2, 12, norm_first, g)
    x, memory = torch.randn(2, 3, 8, generator=g, dtype=torch.float64), torch.randn(2, 5, 8, generator=g, dtype=torch.float64)
    causal = torch.ones(3, 3, dtype=torch.bool).tril()
    pad = torch.tensor([[True] * 5, [True, True, False, False, False]])
    with torch.no_grad():
        expected = layer(x, memory, tgt_mask=~causal, memory_key_padding_mask=~pad)
        assert torch.allclose(_block_variant(layer, x, memory, causal, pad, norm_first), expected, atol=1e-12)


def test_torch_seq2seq_matches_the_reference_model():
    # The ground truth and utils.reference agree, so the reference passing is no accident.
    cfg = dict(src_vocab=7, tgt_vocab=5, d_model=8, n_heads=2, n_layers=2, d_ff=12, max_len=16)
    truth = _TorchSeq2Seq(cfg, True, rng(1))
    model = reference.EncoderDecoder(7, 5, 8, 2, 2, d_ff=12, max_len=16).double()
    truth.load_into(model, "model")
    src, tgt = torch.randint(0, 7, (2, 6)), torch.randint(0, 5, (2, 4))
    pad = torch.tensor([[True] * 6, [True] * 3 + [False] * 3])
    with torch.no_grad():
        assert torch.allclose(model(src, tgt, pad), truth(src, tgt, pad), atol=1e-6)


def test_copy_model_copies_then_says_eos():
    model = _CopyModel(10, eos_id=9)
    out = reference.greedy_decode(model, torch.tensor([[3, 5, 2]]), 8, 9, 10)
    assert out.tolist() == [[8, 3, 5, 2, 9]]

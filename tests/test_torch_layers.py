"""The weight loaders that layer checkers use, and cross-attention in the reference."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from utils.checks._core import rng
from utils.checks._torch_layers import load_attention, load_layer_norm, load_linear, randomise
from utils.reference import LayerNorm, MultiHeadAttention


def _torch_mha(d_model=8, n_heads=2, bias=True):
    return randomise(nn.MultiheadAttention(d_model, n_heads, bias=bias, batch_first=True,
                                           dtype=torch.float64), rng(0))


@pytest.mark.parametrize("bias", [True, False])
def test_loaded_attention_matches_torch_for_self_and_cross_attention(bias):
    theirs = _torch_mha(bias=bias)
    ours = MultiHeadAttention(8, 2, bias=bias).double()
    load_attention(ours, theirs, "self.attn", "test")
    g = rng(1)
    x = torch.randn(2, 5, 8, generator=g, dtype=torch.float64)
    context = torch.randn(2, 7, 8, generator=g, dtype=torch.float64)
    mask = torch.ones(5, 5, dtype=torch.bool).tril()
    out, w = ours(x, mask=mask)
    ref, ref_w = theirs(x, x, x, attn_mask=~mask, average_attn_weights=False)
    assert torch.allclose(out, ref) and torch.allclose(w, ref_w)
    out, w = ours(x, context=context)  # cross-attention: keys and values from the context
    ref, ref_w = theirs(x, context, context, average_attn_weights=False)
    assert w.shape == (2, 2, 5, 7)
    assert torch.allclose(out, ref) and torch.allclose(w, ref_w)


def test_loaders_name_the_missing_or_misshapen_submodule():
    theirs = _torch_mha()

    class NoKProj(nn.Module):
        def __init__(self):
            super().__init__()
            self.q_proj = self.v_proj = self.out_proj = nn.Linear(8, 8)

    with pytest.raises(AssertionError, match=r"nn.Linear at self.attn.k_proj"):
        load_attention(NoKProj(), theirs, "self.attn", "block")
    with pytest.raises(AssertionError, match=r"self.ffn.linear1 has the wrong size"):
        load_linear(nn.Linear(8, 16), torch.zeros(32, 8), torch.zeros(32), "self.ffn.linear1", "block")
    with pytest.raises(AssertionError, match=r"should not have a bias"):
        load_linear(nn.Linear(8, 8), torch.zeros(8, 8), None, "self.attn.q_proj", "block")
    with pytest.raises(AssertionError, match=r"self.norm1 should be a LayerNorm with a `bias`"):
        load_layer_norm(nn.RMSNorm(8), nn.LayerNorm(8), "self.norm1", "block")


def test_load_layer_norm_copies_both_parameters():
    theirs = randomise(nn.LayerNorm(6), rng(2))
    ours = LayerNorm(6)
    load_layer_norm(ours, theirs, "self.norm1", "test")
    x = torch.randn(3, 6, generator=rng(3))
    assert torch.allclose(ours(x), theirs(x), atol=1e-6)

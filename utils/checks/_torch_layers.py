"""Load the weights of PyTorch's built-in layers into the course's modules.

Checkers for whole layers (a transformer block, a decoder block...) take a
PyTorch layer with random weights as the ground truth, load its weights into
the learner's module, and compare the outputs. Each ``load_*`` checks that
the learner's module has the expected submodule, of the expected type and
size, and fails with a message naming it (``self.attn.q_proj``) when not.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from utils.checks._core import describe, fail


def load_linear(layer: object, weight: torch.Tensor, bias: torch.Tensor | None, where: str,
                label: str) -> None:
    """Copy ``weight`` (out, in) and ``bias`` into ``layer``, an nn.Linear named ``where``."""
    out_features, in_features = weight.shape
    if not isinstance(layer, nn.Linear):
        fail(label, f"should have an nn.Linear at {where}.", got=describe(layer))
    if (layer.in_features, layer.out_features) != (in_features, out_features):
        fail(label, f"{where} has the wrong size.", expected=f"nn.Linear({in_features}, {out_features})",
             got=f"nn.Linear({layer.in_features}, {layer.out_features})")
    if (layer.bias is None) != (bias is None):
        fail(label, f"{where} should {'have' if bias is not None else 'not have'} a bias.")
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)


def load_attention(ours: object, theirs: nn.MultiheadAttention, where: str, label: str) -> None:
    """Copy nn.MultiheadAttention's packed in_proj and its out_proj into q/k/v/out_proj.

    PyTorch stores the three input projections stacked in one
    (3·d_model, d_model) matrix: rows [0, d) are W_q, [d, 2d) W_k, [2d, 3d) W_v.
    """
    if not isinstance(ours, nn.Module):
        fail(label, f"should have a MultiHeadAttention module at {where}.", got=describe(ours))
    w_q, w_k, w_v = theirs.in_proj_weight.detach().chunk(3)
    biases = theirs.in_proj_bias.detach().chunk(3) if theirs.in_proj_bias is not None else (None,) * 3
    for name, w, b in zip(("q_proj", "k_proj", "v_proj"), (w_q, w_k, w_v), biases):
        load_linear(getattr(ours, name, None), w, b, f"{where}.{name}", label)
    out = theirs.out_proj
    load_linear(getattr(ours, "out_proj", None), out.weight.detach(),
                None if out.bias is None else out.bias.detach(), f"{where}.out_proj", label)


def load_feedforward(ffn: object, layer: nn.Module, where: str, label: str) -> None:
    """Copy a Transformer*Layer's linear1 and linear2 into ``ffn.linear1`` / ``ffn.linear2``."""
    for name in ("linear1", "linear2"):
        theirs = getattr(layer, name)
        load_linear(getattr(ffn, name, None), theirs.weight.detach(), theirs.bias.detach(),
                    f"{where}.{name}", label)


def load_layer_norm(ours: object, theirs: nn.LayerNorm, where: str, label: str) -> None:
    """Copy a LayerNorm's weight and bias into a module with parameters of the same names."""
    for name in ("weight", "bias"):
        param = getattr(ours, name, None)
        if not isinstance(param, torch.Tensor) or param.shape != getattr(theirs, name).shape:
            fail(label, f"{where} should be a LayerNorm with a `{name}` of shape "
                        f"{tuple(getattr(theirs, name).shape)}.", got=describe(param))
        with torch.no_grad():
            param.copy_(getattr(theirs, name).detach())


def randomise(module: nn.Module, generator: torch.Generator, scale: float = 0.5) -> nn.Module:
    """Give every parameter random values, so that no default (ones, zeros) hides a mistake."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=generator, dtype=p.dtype) * scale)
    return module

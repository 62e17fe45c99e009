"""Every notebook-04 checker accepts the reference and rejects plausible mistakes.

Each wrong implementation below is a mistake learners really make; the test
asserts the checker rejects it AND that its message points at that mistake.
Most are the reference with one thing changed.
"""

from __future__ import annotations

import functools

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils import checks, reference

from checker_harness import checker_tests

# ------------------------------------------------------------ LayerNorm


class _LN(reference.LayerNorm):
    """The reference LayerNorm with one knob turned; each subclass below turns one."""

    dims, unbiased, eps_outside, affine, centre = (-1,), False, False, "both", True

    def forward(self, x):
        mean = x.mean(dim=self.dims, keepdim=True)
        var = x.var(dim=self.dims, keepdim=True, unbiased=self.unbiased)
        num = x - mean if self.centre else x
        den = var.sqrt() + self.eps if self.eps_outside else torch.sqrt(var + self.eps)
        y = num / den
        if self.affine in ("both", "weight"):
            y = y * self.weight
        if self.affine in ("both", "bias"):
            y = y + self.bias
        return y


class LayerNormOverBatch(_LN):  # batch norm's axis
    dims = (0,)


class LayerNormUnbiasedVariance(_LN):  # torch.var's default, divides by d - 1
    unbiased = True


class LayerNormEpsOutsideSqrt(_LN):  # / (std + eps)
    eps_outside = True


class LayerNormNoAffine(_LN):  # forgets weight and bias
    affine = "none"


class LayerNormNoBias(_LN):  # forgets the bias only
    affine = "weight"


class LayerNormNoCentring(_LN):  # divides by the std without subtracting the mean
    centre = False


class LayerNormIgnoresEps(_LN):  # hard-codes the default eps
    def __init__(self, d_model, eps=1e-5):
        super().__init__(d_model)


class LayerNormGammaBeta(nn.Module):  # the paper's names, not PyTorch's
    def __init__(self, d_model, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(d_model))
        self.beta = nn.Parameter(torch.zeros(d_model))

    def forward(self, x):
        return F.layer_norm(x, x.shape[-1:], self.gamma, self.beta, self.eps)


class LayerNormPlainTensors(reference.LayerNorm):  # weight and bias not nn.Parameter
    def __init__(self, d_model, eps=1e-5):
        nn.Module.__init__(self)
        self.eps = eps
        self.register_buffer("weight", torch.ones(d_model))
        self.register_buffer("bias", torch.zeros(d_model))


class LayerNormRandomInit(reference.LayerNorm):  # starts from random weights
    def __init__(self, d_model, eps=1e-5):
        super().__init__(d_model, eps)
        self.weight = nn.Parameter(torch.randn(d_model))


LAYER_NORM_MISTAKES = [
    (LayerNormOverBatch, "batch axis"),
    (LayerNormUnbiasedVariance, "unbiased variance"),
    (LayerNormEpsOutsideSqrt, "eps goes inside the square root"),
    (LayerNormNoAffine, "forgot the affine parameters"),
    (LayerNormNoBias, "forgot to add self.bias"),
    (LayerNormNoCentring, "did not subtract the mean"),
    (LayerNormIgnoresEps, "default eps, not the one passed in"),
    (LayerNormGammaBeta, "named as in nn.LayerNorm"),
    (LayerNormPlainTensors, "as nn.Parameter"),
    (LayerNormRandomInit, "start as ones"),
]

# ------------------------------------------------------------ RMSNorm


class _RMS(reference.RMSNorm):
    """The reference RMSNorm with one knob turned."""

    centre, eps_outside, use_weight, root, mean, dims = False, False, True, True, True, (-1,)

    def forward(self, x):
        if self.centre:
            x = x - x.mean(dim=-1, keepdim=True)
        sq = x.pow(2).mean(self.dims, keepdim=True) if self.mean else x.pow(2).sum(self.dims, keepdim=True)
        if self.eps_outside:
            den = sq.sqrt() + self.eps
        else:
            den = (sq + self.eps).sqrt() if self.root else sq + self.eps
        y = x / den
        return y * self.weight if self.use_weight else y


class RMSNormSubtractsMean(_RMS):  # that is layer norm without a bias
    centre = True


class RMSNormEpsOutsideSqrt(_RMS):
    eps_outside = True


class RMSNormNoWeight(_RMS):
    use_weight = False


class RMSNormNoSqrt(_RMS):  # divides by the mean square
    root = False


class RMSNormL2(_RMS):  # sum instead of mean: the L2 norm
    mean = False


class RMSNormOverBatch(_RMS):
    dims = (0,)


class RMSNormIgnoresEps(_RMS):
    def __init__(self, d_model, eps=1e-6):
        super().__init__(d_model)


class RMSNormWithBias(reference.RMSNorm):  # carries layer norm's bias along
    def __init__(self, d_model, eps=1e-6):
        super().__init__(d_model, eps)
        self.bias = nn.Parameter(torch.zeros(d_model))


RMS_NORM_MISTAKES = [
    (RMSNormSubtractsMean, "does not subtract the mean"),
    (RMSNormEpsOutsideSqrt, "eps goes inside the square root"),
    (RMSNormNoWeight, "forgot the weight"),
    (RMSNormNoSqrt, "take its square root"),
    (RMSNormL2, "L2 norm"),
    (RMSNormOverBatch, "batch axis"),
    (RMSNormIgnoresEps, "default eps, not the one passed in"),
    (RMSNormWithBias, "and no bias"),
]

# ------------------------------------------------------------ FeedForward

_ACTS = {"relu": F.relu, "gelu": F.gelu, "gelu_tanh": functools.partial(F.gelu, approximate="tanh"),
         "silu": F.silu}


class _FF(reference.FeedForward):
    """The reference FeedForward with one knob turned."""

    where = "between"  # where the activation goes: "between", "after", "none"

    def forward(self, x):
        h = self.linear1(x)
        if self.where == "between":
            h = self.activation(h)
        y = self.linear2(h)
        if self.where == "after":
            y = self.activation(y)
        return self.dropout(y)


class FeedForwardNoActivation(_FF):  # two linear layers = one linear map
    where = "none"


class FeedForwardActivationAfterLinear2(_FF):
    where = "after"


class FeedForwardDffDefaultDModel(reference.FeedForward):  # forgets the 4x expansion
    def __init__(self, d_model, d_ff=None, activation="gelu", dropout=0.0):
        super().__init__(d_model, d_model if d_ff is None else d_ff, activation, dropout)


class FeedForwardGeluTanhIsExact(reference.FeedForward):  # "gelu_tanh" mapped to the exact GELU
    def __init__(self, d_model, d_ff=None, activation="gelu", dropout=0.0):
        super().__init__(d_model, d_ff, "gelu" if activation == "gelu_tanh" else activation, dropout)


class FeedForwardSiluIsSigmoid(reference.FeedForward):
    def __init__(self, d_model, d_ff=None, activation="gelu", dropout=0.0):
        super().__init__(d_model, d_ff, torch.sigmoid if activation == "silu" else activation, dropout)


class FeedForwardAlwaysGelu(reference.FeedForward):  # ignores the activation argument
    def __init__(self, d_model, d_ff=None, activation="gelu", dropout=0.0):
        super().__init__(d_model, d_ff, "gelu", dropout)


class FeedForwardNamesCallableIgnored(reference.FeedForward):  # a callable falls back to GELU
    def __init__(self, d_model, d_ff=None, activation="gelu", dropout=0.0):
        super().__init__(d_model, d_ff, "gelu" if callable(activation) else activation, dropout)


class FeedForwardKeyError(nn.Module):  # a bare dict lookup: KeyError for a typo
    def __init__(self, d_model, d_ff=None, activation="gelu", dropout=0.0):
        super().__init__()
        d_ff = d_ff or 4 * d_model
        self.activation = activation if callable(activation) else _ACTS[activation]
        self.linear1, self.linear2 = nn.Linear(d_model, d_ff), nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.dropout(self.linear2(self.activation(self.linear1(x))))


class FeedForwardSilentFallback(FeedForwardKeyError):  # a typo silently becomes ReLU
    def __init__(self, d_model, d_ff=None, activation="gelu", dropout=0.0):
        super().__init__(d_model, d_ff, activation if callable(activation) else "relu", dropout)
        if not callable(activation) and activation in _ACTS:
            self.activation = _ACTS[activation]


class FeedForwardVagueError(reference.FeedForward):  # ValueError that does not say what was wrong
    def __init__(self, d_model, d_ff=None, activation="gelu", dropout=0.0):
        if isinstance(activation, str) and activation not in _ACTS:
            raise ValueError("bad argument")
        super().__init__(d_model, d_ff, activation, dropout)


class FeedForwardOtherNames(nn.Module):  # nanoGPT's names instead of nn.TransformerEncoderLayer's
    def __init__(self, d_model, d_ff=None, activation="gelu", dropout=0.0):
        super().__init__()
        d_ff = d_ff or 4 * d_model
        self.c_fc, self.c_proj = nn.Linear(d_model, d_ff), nn.Linear(d_ff, d_model)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x)))


class FeedForwardDropoutAfterActivation(reference.FeedForward):
    def forward(self, x):
        return self.linear2(self.dropout(self.activation(self.linear1(x))))


class FeedForwardFunctionalDropout(reference.FeedForward):  # F.dropout is on even in eval mode
    def forward(self, x):
        return F.dropout(self.linear2(self.activation(self.linear1(x))), self.dropout.p)


class FeedForwardNoDropout(reference.FeedForward):  # ignores the dropout argument
    def forward(self, x):
        return self.linear2(self.activation(self.linear1(x)))


FEED_FORWARD_MISTAKES = [
    (FeedForwardNoActivation, "no activation between the two linear layers"),
    (FeedForwardActivationAfterLinear2, "not after linear2"),
    (FeedForwardDffDefaultDModel, "d_ff defaults to 4 * d_model"),
    (FeedForwardGeluTanhIsExact, "You used the exact GELU"),
    (FeedForwardSiluIsSigmoid, "not sigmoid(x)"),
    (FeedForwardAlwaysGelu, "a different activation than the one asked for"),
    (FeedForwardNamesCallableIgnored, "use it as it is"),
    (FeedForwardKeyError, "should raise ValueError, but raised KeyError"),
    (FeedForwardSilentFallback, "should raise ValueError for an unknown activation"),
    (FeedForwardVagueError, "does not name the bad activation"),
    (FeedForwardOtherNames, "name the layers linear1 and linear2"),
    (FeedForwardDropoutAfterActivation, "after linear2"),
    (FeedForwardFunctionalDropout, "in eval mode dropout must do nothing"),
    (FeedForwardNoDropout, "dropped nothing"),
]

# ------------------------------------------------------------ SwiGLU


class _SwiGLU(reference.SwiGLU):
    """The reference SwiGLU with one knob turned."""

    def h(self, a, b):  # a = w1 x (gate), b = w3 x (up)
        return F.silu(a) * b

    def forward(self, x):
        return self.w2(self.h(self.w1(x), self.w3(x)))


class SwiGLUSwapped(_SwiGLU):  # silu on the up projection
    def h(self, a, b):
        return a * F.silu(b)


class SwiGLUSigmoid(_SwiGLU):  # GLU's sigmoid gate
    def h(self, a, b):
        return torch.sigmoid(a) * b


class SwiGLUNoGate(_SwiGLU):  # w2(silu(w1 x)): w3 unused
    def h(self, a, b):
        return F.silu(a)


class SwiGLUSiluOfProduct(_SwiGLU):
    def h(self, a, b):
        return F.silu(a * b)


class SwiGLUGelu(_SwiGLU):  # GEGLU
    def h(self, a, b):
        return F.gelu(a) * b


class SwiGLUWithBiases(reference.SwiGLU):  # nn.Linear's default bias=True
    def __init__(self, d_model, d_ff):
        super().__init__(d_model, d_ff)
        self.w1, self.w3 = nn.Linear(d_model, d_ff), nn.Linear(d_model, d_ff)
        self.w2 = nn.Linear(d_ff, d_model)


class SwiGLUWrongShapes(reference.SwiGLU):  # w2 built d_model -> d_ff
    def __init__(self, d_model, d_ff):
        super().__init__(d_model, d_ff)
        self.w2 = nn.Linear(d_model, d_ff, bias=False)


SWIGLU_MISTAKES = [
    (SwiGLUSwapped, "gated the wrong branch"),
    (SwiGLUSigmoid, "original GLU"),
    (SwiGLUNoGate, "no gating"),
    (SwiGLUSiluOfProduct, "before the product"),
    (SwiGLUGelu, "GEGLU"),
    (SwiGLUWithBiases, "have none"),
    (SwiGLUWrongShapes, "w2 maps d_ff -> d_model"),
]

CASES = (
    [(checks.check_LayerNorm, cls, hint) for cls, hint in LAYER_NORM_MISTAKES]
    + [(checks.check_RMSNorm, cls, hint) for cls, hint in RMS_NORM_MISTAKES]
    + [(checks.check_FeedForward, cls, hint) for cls, hint in FEED_FORWARD_MISTAKES]
    + [(checks.check_SwiGLU, cls, hint) for cls, hint in SWIGLU_MISTAKES]
)


REFERENCES = [
    (checks.check_FeedForward, reference.FeedForward),
    (checks.check_SwiGLU, reference.SwiGLU),
    (checks.check_LayerNorm, reference.LayerNorm),
    (checks.check_RMSNorm, reference.RMSNorm),
]


(test_checker_accepts_reference,
 test_checker_rejects_mistake_with_targeted_message,
 test_every_checker_has_at_least_four_mistakes,
 test_checker_passes_not_implemented_through,
 test_checker_leaves_the_global_random_stream_alone) = checker_tests(REFERENCES, CASES)


def test_reference_weights_copy_to_and_from_pytorch_modules():
    # The attribute names are part of the exercise: notebook 05 relies on them.
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(8, 2, 32, dropout=0.0, activation="gelu", batch_first=True)
    ff = reference.FeedForward(8, 32)
    ff.load_state_dict({k: v for k, v in layer.state_dict().items() if k.startswith("linear")})
    x = torch.randn(2, 3, 8)
    assert torch.allclose(ff(x), layer.linear2(F.gelu(layer.linear1(x))))
    reference.LayerNorm(8).load_state_dict(nn.LayerNorm(8).state_dict())
    nn.LayerNorm(8).load_state_dict(reference.LayerNorm(8).state_dict())
    nn.RMSNorm(8).load_state_dict(reference.RMSNorm(8).state_dict())

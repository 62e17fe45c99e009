"""Every notebook-11 checker accepts the reference and rejects plausible mistakes.

Each wrong implementation below is the reference with one mistake learners
really make, the classic ones of a hand-written backward pass among them: the
softmax Jacobian's diagonal only, layer norm without its mean or variance
term, attention's backward without the 1/sqrt(d_k). The test asserts the
checker rejects it AND that its message points at that mistake.
"""

from __future__ import annotations

import numpy as np
import torch

from utils import checks, reference
from utils.reference.numpy_backprop import _merge_heads, _split_heads, _swap

from checker_harness import checker_tests

R = reference

# ------------------------------------------------------------ NpLinear


class NpLinearDxNoTranspose(R.NpLinear):  # dy @ W instead of dy @ W.T
    def backward(self, dy):
        super().backward(dy)
        return dy @ self.params["W"]


class NpLinearDWTransposed(R.NpLinear):  # dyᵀ @ x: the layout of nn.Linear's weight
    def backward(self, dy):
        dx = super().backward(dy)
        self.grads["W"] = dy.reshape(-1, dy.shape[-1]).T @ self.x.reshape(-1, self.x.shape[-1])
        return dx


class NpLinearAveragedGrads(R.NpLinear):  # divides by the number of rows
    def backward(self, dy):
        dx = super().backward(dy)
        n = dy.reshape(-1, dy.shape[-1]).shape[0]
        self.grads = {k: v / n for k, v in self.grads.items()}
        return dx


class NpLinearNoBias(R.NpLinear):  # forgets + b
    def forward(self, x):
        self.x = x
        return x @ self.params["W"]


class NpLinearAccumulates(R.NpLinear):  # grads += like PyTorch's .grad
    def backward(self, dy):
        old = dict(self.grads)
        dx = super().backward(dy)
        self.grads = {k: v + old.get(k, 0) for k, v in self.grads.items()}
        return dx


class NpLinearDWFirstExample(R.NpLinear):  # for (batch, seq, d_in) uses only x[0]
    def backward(self, dy):
        dx = super().backward(dy)
        if self.x.ndim == 3:
            self.grads["W"] = self.x[0].T @ dy[0]
        return dx


class NpLinearTransposeOf3D(R.NpLinear):  # x.T @ dy reverses every axis of a 3-D x
    def backward(self, dy):
        self.grads["W"] = self.x.T @ dy if self.x.ndim < 3 else np.matmul(self.x.T, dy)
        self.grads["b"] = dy.reshape(-1, dy.shape[-1]).sum(0)
        return dy @ self.params["W"].T


class NpLinearBiasGradAxis0(R.NpLinear):  # db = dy.sum(0): (seq, d_out) for 3-D input
    def backward(self, dy):
        dx = super().backward(dy)
        self.grads["b"] = dy.sum(0)
        return dx


class NpLinearTorchLayout(R.NpLinear):  # W stored as (d_out, d_in), like nn.Linear
    def __init__(self, d_in, d_out, rng):
        super().__init__(d_in, d_out, rng)
        self.params["W"] = np.zeros((d_out, d_in))

    def forward(self, x):
        self.x = x
        return x @ self.params["W"].T + self.params["b"]


class NpLinearReturnsTorch(R.NpLinear):  # reaches for torch
    def forward(self, x):
        return torch.from_numpy(super().forward(x))


LINEAR_MISTAKES = [
    (NpLinearDxNoTranspose, "dy @ Wᵀ (W.T)"),
    (NpLinearDWTransposed, "You computed its transpose"),
    (NpLinearAveragedGrads, "you averaged over the rows"),
    (NpLinearNoBias, "you forgot the bias"),
    (NpLinearAccumulates, "not add to it"),
    (NpLinearDWFirstExample, "sum over every leading axis"),
    (NpLinearTransposeOf3D, "flatten x to (N, d_in)"),
    (NpLinearBiasGradAxis0, "sum over every batch axis"),
    (NpLinearTorchLayout, "nn.Linear stores the transpose"),
    (NpLinearReturnsTorch, "NumPy only"),
]

# ------------------------------------------------------------ NpSoftmax


class NpSoftmaxDiagonalOnly(R.NpSoftmax):  # the classic: p(1 - p) dp
    def backward(self, dp):
        return self.p * (1 - self.p) * dp


class NpSoftmaxNoSumTerm(R.NpSoftmax):  # p * dp
    def backward(self, dp):
        return self.p * dp


class NpSoftmaxSumOverAxis0(R.NpSoftmax):
    def backward(self, dp):
        return self.p * (dp - (dp * self.p).sum(axis=0, keepdims=True))


class NpSoftmaxSignFlipped(R.NpSoftmax):
    def backward(self, dp):
        return self.p * (dp + (dp * self.p).sum(axis=-1, keepdims=True))


class NpSoftmaxNoLeadingP(R.NpSoftmax):
    def backward(self, dp):
        return dp - (dp * self.p).sum(axis=-1, keepdims=True)


class NpSoftmaxIdentityBackward(R.NpSoftmax):
    def backward(self, dp):
        return dp


class NpSoftmaxNoMax(R.NpSoftmax):  # overflows on large logits
    def forward(self, x):
        e = np.exp(x)
        self.p = e / e.sum(axis=-1, keepdims=True)
        return self.p


class NpSoftmaxInPlace(R.NpSoftmax):  # writes into the caller's dp
    def backward(self, dp):
        dp -= (dp * self.p).sum(axis=-1, keepdims=True)
        return self.p * dp


SOFTMAX_MISTAKES = [
    (NpSoftmaxDiagonalOnly, "only the diagonal of the softmax Jacobian"),
    (NpSoftmaxNoSumTerm, "missing the off-diagonal terms"),
    (NpSoftmaxSumOverAxis0, "sum over the last axis"),
    (NpSoftmaxSignFlipped, "wrong sign"),
    (NpSoftmaxNoLeadingP, "you left out the leading p"),
    (NpSoftmaxIdentityBackward, "returned dp unchanged"),
    (NpSoftmaxNoMax, "subtract each row's maximum"),
    (NpSoftmaxInPlace, "in place"),
]

# ------------------------------------------------------------ NpCrossEntropy


class NpCrossEntropySum(R.NpCrossEntropy):  # sums the per-row losses
    def forward(self, logits, targets):
        return super().forward(logits, targets) * len(targets)


class NpCrossEntropyNoMinus(R.NpCrossEntropy):
    def forward(self, logits, targets):
        return -super().forward(logits, targets)


class NpCrossEntropyNaive(R.NpCrossEntropy):  # log(softmax) without the max: overflows
    def forward(self, logits, targets):
        super().forward(logits, targets)
        p = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
        return float(-np.log(p[np.arange(len(targets)), targets]).mean())


class NpCrossEntropyColumnIndexing(R.NpCrossEntropy):  # log_p[:, targets]: an (N, N) block
    def forward(self, logits, targets):
        super().forward(logits, targets)
        return float(-np.log(self.p[:, targets]).mean())


class NpCrossEntropyPerRow(R.NpCrossEntropy):  # returns the N losses, not their mean
    def forward(self, logits, targets):
        super().forward(logits, targets)
        return -np.log(self.p[self.rows, targets])


class NpCrossEntropyNoDivideN(R.NpCrossEntropy):
    def backward(self, dloss=1.0):
        return super().backward(dloss) * len(self.targets)


class NpCrossEntropyYMinusP(R.NpCrossEntropy):
    def backward(self, dloss=1.0):
        return -super().backward(dloss)


class NpCrossEntropyLogitsMinusY(R.NpCrossEntropy):  # forgets the softmax in the gradient
    def forward(self, logits, targets):
        self.logits = logits
        return super().forward(logits, targets)

    def backward(self, dloss=1.0):
        d = self.logits.copy()
        d[self.rows, self.targets] -= 1
        return d * dloss / len(self.targets)


class NpCrossEntropyIgnoresDloss(R.NpCrossEntropy):
    def backward(self, dloss=1.0):
        return super().backward(1.0)


CROSS_ENTROPY_MISTAKES = [
    (NpCrossEntropySum, "mean over the N rows, not the sum"),
    (NpCrossEntropyNoMinus, "forgot the minus sign"),
    (NpCrossEntropyNaive, "exp overflowed"),
    (NpCrossEntropyColumnIndexing, "not log_p[:, targets]"),
    (NpCrossEntropyPerRow, "should return one number"),
    (NpCrossEntropyNoDivideN, "divide by N"),
    (NpCrossEntropyYMinusP, "the sign is flipped"),
    (NpCrossEntropyLogitsMinusY, "use the probabilities p = softmax(logits)"),
    (NpCrossEntropyIgnoresDloss, "multiply by the upstream gradient dloss"),
]

# ------------------------------------------------------------ NpLayerNorm


class _LN(R.NpLayerNorm):
    """The reference with the backward's terms switchable."""

    mean_term, var_term, use_weight, var_sign = True, True, True, 1.0

    def backward(self, dy):
        super().backward(dy)  # fills grads
        g = dy * self.params["weight"] if self.use_weight else dy
        out = g
        if self.mean_term:
            out = out - g.mean(-1, keepdims=True)
        if self.var_term:
            out = out - self.var_sign * self.x_hat * (g * self.x_hat).mean(-1, keepdims=True)
        return self.rstd * out


class NpLayerNormNoMeanTerm(_LN):  # treats the mean as a constant
    mean_term = False


class NpLayerNormNoVarianceTerm(_LN):  # treats the std as a constant
    var_term = False


class NpLayerNormConstantStats(_LN):  # dx = dx_hat / std
    mean_term = var_term = False


class NpLayerNormVarianceSign(_LN):
    var_sign = -1.0


class NpLayerNormNoWeightInBackward(_LN):
    use_weight = False


class NpLayerNormUnbiased(R.NpLayerNorm):  # divides by d - 1
    def forward(self, x):
        super().forward(x)  # fills the cache
        mean, var = x.mean(-1, keepdims=True), x.var(-1, ddof=1, keepdims=True)
        return (x - mean) / np.sqrt(var + self.eps) * self.params["weight"] + self.params["bias"]


class NpLayerNormIgnoresEps(R.NpLayerNorm):
    def __init__(self, d, eps=1e-5):
        super().__init__(d)


class NpLayerNormDweightNoXhat(R.NpLayerNorm):
    def backward(self, dy):
        dx = super().backward(dy)
        self.grads["weight"] = dy.reshape(-1, dy.shape[-1]).sum(0)
        return dx


class NpLayerNormGradsAxis0(R.NpLayerNorm):  # sums over the first axis only
    def backward(self, dy):
        dx = super().backward(dy)
        self.grads["weight"], self.grads["bias"] = (dy * self.x_hat).sum(0), dy.sum(0)
        return dx


LAYER_NORM_MISTAKES = [
    (NpLayerNormNoMeanTerm, "missing the mean term"),
    (NpLayerNormNoVarianceTerm, "missing the variance term"),
    (NpLayerNormConstantStats, "as constants"),
    (NpLayerNormVarianceSign, "the variance term has the wrong sign"),
    (NpLayerNormNoWeightInBackward, "dL/dx̂ is dy * weight"),
    (NpLayerNormUnbiased, "biased variance"),
    (NpLayerNormIgnoresEps, "self.eps"),
    (NpLayerNormDweightNoXhat, "needs x̂"),
    (NpLayerNormGradsAxis0, "sum over every batch axis"),
]

# ------------------------------------------------------------ NpAttention


class _Attn(R.NpAttention):
    """The reference with the backward written out, one knob per mistake."""

    backward_scale = 1.0  # multiplies the right scale: 0 means "none", 2 means "twice"
    diagonal = dk_no_t = dv_no_t = swap_order = False

    def backward(self, dout):
        P = self.weights
        dv = (P if self.dv_no_t else _swap(P)) @ dout
        dP = dout @ _swap(self.v)
        dS = P * (1 - P) * dP if self.diagonal else self.softmax.backward(dP)
        s = {0.0: 1.0, 1.0: self.scale, 2.0: self.scale ** 2}[self.backward_scale]
        dq = dS * s @ self.k
        dk = (dS if self.dk_no_t else _swap(dS)) * s @ self.q
        return (dk, dq, dv) if self.swap_order else (dq, dk, dv)


class NpAttentionNoScaleInBackward(_Attn):  # the classic
    backward_scale = 0.0


class NpAttentionScaleTwice(_Attn):
    backward_scale = 2.0


class NpAttentionDiagonalSoftmax(_Attn):
    diagonal = True


class NpAttentionDkNoTranspose(_Attn):
    dk_no_t = True


class NpAttentionDvNoTranspose(_Attn):
    dv_no_t = True


class NpAttentionSwappedOrder(_Attn):
    swap_order = True


class NpAttentionNoScale(R.NpAttention):  # forgets the scale in the forward pass too
    def forward(self, q, k, v, mask=None):
        return super().forward(q * np.sqrt(q.shape[-1]), k, v, mask)


class NpAttentionMaskInverted(R.NpAttention):
    def forward(self, q, k, v, mask=None):
        return super().forward(q, k, v, None if mask is None else ~mask)


ATTENTION_MISTAKES = [
    (NpAttentionNoScaleInBackward, "you forgot the 1/sqrt(d_k) in the backward pass"),
    (NpAttentionScaleTwice, "twice"),
    (NpAttentionDiagonalSoftmax, "only the diagonal"),
    (NpAttentionDkNoTranspose, "dk = dscoresᵀ @ q"),
    (NpAttentionDvNoTranspose, "dv = weightsᵀ @ dout"),
    (NpAttentionSwappedOrder, "return (dq, dk, dv) in that order"),
    (NpAttentionNoScale, "you did not scale the scores"),
    (NpAttentionMaskInverted, "True in the mask means 'may attend'"),
]

# ------------------------------------------------------------ NpMultiHeadAttention


class NpMHAQueryPathOnly(R.NpMultiHeadAttention):  # forgets that x also made k and v
    def backward(self, dout):
        dq, dk, dv = self.attn.backward(_split_heads(self.out_proj.backward(dout), self.n_heads))
        self.k_proj.backward(_merge_heads(dk))
        self.v_proj.backward(_merge_heads(dv))
        return self.q_proj.backward(_merge_heads(dq))


class NpMHALastPathWins(R.NpMultiHeadAttention):  # dx = ... overwritten three times
    def backward(self, dout):
        dq, dk, dv = self.attn.backward(_split_heads(self.out_proj.backward(dout), self.n_heads))
        for proj, d in ((self.q_proj, dq), (self.k_proj, dk), (self.v_proj, dv)):
            dx = proj.backward(_merge_heads(d))
        return dx


class NpMHAScaleByDModel(R.NpMultiHeadAttention):
    def forward(self, x, mask=None):
        d = x.shape[-1]
        q = _split_heads(self.q_proj.forward(x), self.n_heads) * np.sqrt(d // self.n_heads) / np.sqrt(d)
        k = _split_heads(self.k_proj.forward(x), self.n_heads)
        v = _split_heads(self.v_proj.forward(x), self.n_heads)
        out, weights = self.attn.forward(q, k, v, mask)
        return self.out_proj.forward(_merge_heads(out)), weights


class NpMHAPlainReshape(R.NpMultiHeadAttention):  # reshape straight to (b, h, t, d_head)
    def forward(self, x, mask=None):
        b, t, d = x.shape
        split = lambda y: y.reshape(b, self.n_heads, t, d // self.n_heads)  # noqa: E731
        q, k, v = (split(p.forward(x)) for p in (self.q_proj, self.k_proj, self.v_proj))
        out, weights = self.attn.forward(q, k, v, mask)
        return self.out_proj.forward(_merge_heads(out)), weights


class NpMHASkipsOutProj(R.NpMultiHeadAttention):  # backward starts after out_proj
    def backward(self, dout):
        self.out_proj.backward(dout)
        dq, dk, dv = self.attn.backward(_split_heads(dout, self.n_heads))
        return sum(p.backward(_merge_heads(d)) for p, d in
                   ((self.q_proj, dq), (self.k_proj, dk), (self.v_proj, dv)))


class NpMHABackwardPlainReshape(R.NpMultiHeadAttention):  # undoes the merge with a plain reshape
    def backward(self, dout):
        d_out = self.out_proj.backward(dout)
        b, t, d = d_out.shape
        dq, dk, dv = self.attn.backward(d_out.reshape(b, self.n_heads, t, d // self.n_heads))
        return sum(p.backward(_merge_heads(g)) for p, g in
                   ((self.q_proj, dq), (self.k_proj, dk), (self.v_proj, dv)))


MHA_MISTAKES = [
    (NpMHAQueryPathOnly, "the sum of the three"),
    (NpMHALastPathWins, "the sum of the three"),
    (NpMHAScaleByDModel, "sqrt(d_model)"),
    (NpMHAPlainReshape, "the heads are split wrongly"),
    (NpMHASkipsOutProj, "in reverse order"),
    (NpMHABackwardPlainReshape, "in reverse order"),
]

CASES = (
    [(checks.check_NpLinear, cls, hint) for cls, hint in LINEAR_MISTAKES]
    + [(checks.check_NpSoftmax, cls, hint) for cls, hint in SOFTMAX_MISTAKES]
    + [(checks.check_NpCrossEntropy, cls, hint) for cls, hint in CROSS_ENTROPY_MISTAKES]
    + [(checks.check_NpLayerNorm, cls, hint) for cls, hint in LAYER_NORM_MISTAKES]
    + [(checks.check_NpAttention, cls, hint) for cls, hint in ATTENTION_MISTAKES]
    + [(checks.check_NpMultiHeadAttention, cls, hint) for cls, hint in MHA_MISTAKES]
)

REFERENCES = [
    (checks.check_NpLinear, reference.NpLinear),
    (checks.check_NpSoftmax, reference.NpSoftmax),
    (checks.check_NpCrossEntropy, reference.NpCrossEntropy),
    (checks.check_NpLayerNorm, reference.NpLayerNorm),
    (checks.check_NpAttention, reference.NpAttention),
    (checks.check_NpMultiHeadAttention, reference.NpMultiHeadAttention),
]


(test_checker_accepts_reference,
 test_checker_rejects_mistake_with_targeted_message,
 test_every_checker_has_at_least_four_mistakes,
 test_checker_passes_not_implemented_through,
 test_checker_leaves_the_global_random_stream_alone) = checker_tests(REFERENCES, CASES)


def test_checkers_leave_numpy_global_random_stream_alone(capsys):
    np.random.seed(7)
    expected = np.random.rand(3)
    np.random.seed(7)
    for checker, solution in REFERENCES:
        checker(solution)
    assert np.array_equal(np.random.rand(3), expected)

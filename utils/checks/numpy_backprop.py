"""Checkers for notebook 11 · A transformer in NumPy, backward pass by hand.

Every exercise is a NumPy class with ``params``, ``grads``, ``forward`` and
``backward`` (see ``utils.reference.numpy_backprop`` for the API). Each checker:

* loads known random float64 parameters into the learner's layer;
* compares ``forward`` with PyTorch (``F.linear``, ``torch.softmax``,
  ``F.cross_entropy``, ``F.layer_norm``, ``F.scaled_dot_product_attention``,
  ``nn.MultiheadAttention``);
* compares ``backward`` (the input gradients and ``grads``) with PyTorch's
  autograd for a random upstream gradient, recognising the classic mistakes
  (the softmax Jacobian's off-diagonal terms, layer norm's mean and variance
  terms, the 1/sqrt(d_k) in attention's backward, ...);
* and checks ``backward`` once more against finite differences of the
  learner's own ``forward``, with ``utils.gradcheck``.

Data come from private generators, so the notebook's random streams (NumPy's
and PyTorch's) are left alone.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.checks._core import describe, expect_close, expect_shape, fail, passed
from utils.checks.attention import _attention_mistakes
from utils.checks.multihead import _mistake_outputs as _mha_forward_mistakes
from utils.gradcheck import gradcheck

__all__ = ["check_NpLinear", "check_NpSoftmax", "check_NpCrossEntropy", "check_NpLayerNorm",
           "check_NpAttention", "check_NpMultiHeadAttention"]

F64 = torch.float64
ATOL, RTOL = 1e-10, 1e-8
FD_TOL = 1e-6  # finite differences in float64 agree to about 1e-9; a wrong term gives > 1e-3


# ------------------------------------------------------------ shared helpers


def _data(seed: int):
    """A private NumPy generator for the inputs: the notebook's own random stream is untouched."""
    return np.random.default_rng(seed)


def _t(a: np.ndarray, grad: bool = False) -> torch.Tensor:
    """A float64 torch copy of a NumPy array, for the ground truth."""
    t = torch.tensor(np.asarray(a), dtype=F64)
    return t.requires_grad_(grad)


def _describe(x: object) -> str:
    if isinstance(x, np.ndarray):
        return f"NumPy array of shape {x.shape}, dtype {x.dtype}"
    return describe(x)


def _call(fn, label: str, *args, hint: str | None = None, **kwargs):
    """``call`` for NumPy code: a crash becomes an AssertionError that describes the arrays by
    shape (plus ``hint`` when given), and NotImplementedError passes through. Runs under
    ``np.errstate(all="ignore")``: an overflow shows up as inf or NaN in the result, which the
    comparison reports, rather than as a warning."""
    try:
        with np.errstate(all="ignore"):
            return fn(*args, **kwargs)
    except (NotImplementedError, AssertionError):
        raise
    except Exception as e:  # noqa: BLE001 - any crash in learner code is reported
        shapes = ", ".join(_describe(a) for a in args) or "no arguments"
        lines = [f"{label} raised {type(e).__name__}: {e}", f"  called with: {shapes}"]
        if hint:
            lines.append(f"Hint: {hint}")
        raise AssertionError("\n".join(lines)) from None


def _array(got: object, shape: tuple, label: str, hint: str | None = None) -> torch.Tensor:
    """The learner's result must be a float64 NumPy array of ``shape``; returns it as a tensor."""
    if isinstance(got, torch.Tensor):
        fail(label, "returned a torch.Tensor; this notebook is NumPy only.", got=_describe(got),
             hint="compute with NumPy arrays (np.exp, @, .sum(axis=-1, keepdims=True), ...).")
    if not isinstance(got, np.ndarray):
        fail(label, "should return a NumPy array.", expected=f"array of shape {tuple(shape)}",
             got=_describe(got), hint=hint)
    if got.dtype != np.float64:
        fail(label, "returned the wrong dtype.", expected="float64", got=str(got.dtype),
             hint="keep float64 all the way through: it is what makes a gradient check precise.")
    out = torch.from_numpy(np.array(got))
    expect_shape(out, shape, label, hint=hint)
    return out


def _unchanged(before: np.ndarray, after: np.ndarray, label: str, what: str) -> None:
    if not np.array_equal(before, after, equal_nan=True):
        fail(label, f"changed {what} in place.",
             hint="write a = a - ..., not a -= ...: the caller still needs its array.")


def _layer(cls, label: str, *args) -> object:
    """Instantiate the learner's layer; it must have the params and grads dicts of the API."""
    layer = _call(cls, label, *args)
    for name in ("params", "grads"):
        if not isinstance(getattr(layer, name, None), dict):
            fail(label, f"should have a dict `self.{name}`.", got=_describe(getattr(layer, name, None)),
                 hint="the API: self.params = {name: array} is set in __init__, and backward fills "
                      "self.grads = {name: dL/d params[name]}.")
    return layer


def _load(layer, values: dict[str, np.ndarray], label: str, where: str = "",
          hints: dict[str, str] | None = None) -> None:
    """Copy known values into ``layer.params`` in place, after checking names, shapes and dtype."""
    params = layer.params
    fmt = lambda d: ", ".join(f"{k} {tuple(np.shape(v))}" for k, v in d.items()) or "nothing"  # noqa: E731
    if set(params) != set(values):
        fail(label, f"{where}params has the wrong names.", expected=fmt(values), got=fmt(params))
    for name, value in values.items():
        p = params[name]
        if not isinstance(p, np.ndarray) or p.shape != value.shape:
            fail(label, f"{where}params[{name!r}] has the wrong shape.", expected=str(value.shape),
                 got=_describe(p), hint=(hints or {}).get(name))
        if p.dtype != np.float64:
            fail(label, f"{where}params[{name!r}] should be float64.", got=str(p.dtype))
        p[...] = value


def _grad(layer, name: str, shape: tuple, label: str, where: str = "") -> torch.Tensor:
    """The gradient backward stored in ``layer.grads[name]``, as a tensor."""
    grads = getattr(layer, "grads", {})
    if name not in grads:
        fail(label, f"after backward, {where}grads has no {name!r}.", got=f"keys {sorted(grads)}",
             hint=f"backward must set self.grads[{name!r}] = dL/d params[{name!r}], an array of "
                  "the parameter's shape.")
    return _array(grads[name], shape, f"{label}: {where}grads[{name!r}]",
                  hint="a parameter's gradient has the parameter's shape; sum over every batch axis.")


def _fd(label: str, what: str, f, x: np.ndarray, analytic: np.ndarray) -> None:
    """Finite differences of the learner's own forward must agree with its backward."""
    try:
        with np.errstate(all="ignore"):
            gradcheck(f, x, np.asarray(analytic, dtype=np.float64), tol=FD_TOL)
    except AssertionError as e:
        fail(label, f"{what} disagrees with finite differences of your forward pass.", got=str(e),
             hint="the backward pass must be the exact derivative of this forward pass.")


# The forward-pass hints reused from notebooks 01 and 02's checkers speak PyTorch; say it in NumPy.
_IN_NUMPY = [
    ("scores.masked_fill(~mask, float('-inf'))", "np.where(mask, scores, -np.inf)"),
    ("math.sqrt(q.size(-1))", "np.sqrt(q.shape[-1])"),
    ("q.size(-1)", "q.shape[-1]"),
    ("dim=-1", "axis=-1"),
    ("dim=-2", "axis=-2"),
    ("then transpose(1, 2) (use split_heads)", "then .transpose(0, 2, 1, 3) (np_split_heads does it)"),
    ("transpose(1, 2) first, then reshape (use merge_heads)",
     ".transpose(0, 2, 1, 3) first, then reshape (np_merge_heads does it)"),
    (" (scaled_dot_product_attention does this for you when it gets q and k of width d_head)",
     " (self.attn does this for you when it gets q and k of width d_head)"),
]


def _in_numpy(mistakes: dict) -> dict:
    def translate(hint: str) -> str:
        for torch_words, numpy_words in _IN_NUMPY:
            hint = hint.replace(torch_words, numpy_words)
        return hint

    return {translate(h): v for h, v in mistakes.items()}


_ACCUMULATED = ("backward should set self.grads[name] = ..., not add to it: these are the gradients of "
                "this one call (the optimiser reads them after each backward).")


# ------------------------------------------------------------ NpLinear


def check_NpLinear(NpLinear) -> None:
    """Check ``NpLinear(d_in, d_out, rng)``: y = x @ W + b and its backward."""
    g = _data(110)
    cases = [  # square first: there W and Wᵀ have the same shape, so the mistakes show as values
        ("x of shape (5, 4), d_out = 4", (5, 4), 4),
        ("x of shape (2, 3, 4) (batch, seq, d_in), d_out = 6", (2, 3, 4), 6),
        ("x of shape (1, 1, 5), batch 1 and seq 1, d_out = 2", (1, 1, 5), 2),
        ("a single vector x of shape (3,), d_out = 2", (3,), 2),
    ]
    dx_hint = "dx = dy @ Wᵀ has the shape of x, (..., d_in)."
    dw_hint = ("W is (d_in, d_out) and so is dW = xᵀ @ dy, summed over every leading axis: "
               "flatten x to (N, d_in) and dy to (N, d_out) first.")
    for what, x_shape, d_out in cases:
        d_in = x_shape[-1]
        label = f"NpLinear({d_in}, {d_out}) on {what}"
        layer = _layer(NpLinear, label, d_in, d_out, _data(0))
        W, b = g.normal(size=(d_in, d_out)), g.normal(size=d_out)
        _load(layer, {"W": W, "b": b}, label,
              hints={"W": "W is (d_in, d_out), so that y = x @ W (nn.Linear stores the transpose)."})
        x, dy = g.normal(size=x_shape), g.normal(size=x_shape[:-1] + (d_out,))
        xt, Wt, bt = _t(x, True), _t(W, True), _t(b, True)
        y_exp = F.linear(xt, Wt.T, bt)
        y_exp.backward(_t(dy))
        x_before, dy_before = x.copy(), dy.copy()

        y = _array(_call(layer.forward, label + ": forward", x), y_exp.shape, label + ": forward")
        _unchanged(x_before, x, label + ": forward", "its input x")
        forward_mistakes = {"you forgot the bias: y = x @ W + b.": _t(x @ W)}
        if d_in == d_out:
            forward_mistakes["W is (d_in, d_out), so y = x @ W with no transpose (nn.Linear stores "
                             "the transpose, (d_out, d_in), and computes x @ weight.T)."] = _t(x @ W.T + b)
        expect_close(y, y_exp.detach(), label + ": forward", atol=ATOL, rtol=RTOL, mistakes=forward_mistakes)

        dx = _array(_call(layer.backward, label + ": backward", dy, hint=dw_hint), x_shape,
                    label + ": backward (dx)", hint=dx_hint)
        _unchanged(dy_before, dy, label + ": backward", "its input dy")
        x2, dy2 = x.reshape(-1, d_in), dy.reshape(-1, d_out)
        mistakes = {"you multiplied by W; the input gradient is dy @ Wᵀ (W.T), since y = x @ W.":
                    _t(dy @ W)} if d_in == d_out else {}
        expect_close(dx, xt.grad, label + ": backward (dx)", atol=ATOL, rtol=RTOL, mistakes=mistakes)
        n = x2.shape[0]
        dW = _grad(layer, "W", W.shape, label + ": backward")
        mistakes = {"you averaged over the rows; sum them: dW = xᵀ @ dy (any 1/N is already in dy, "
                    "from the loss).": _t(x2.T @ dy2 / n)}
        if d_in == d_out:
            mistakes["dW has W's layout, (d_in, d_out): dW = xᵀ @ dy. You computed its transpose, "
                     "dyᵀ @ x."] = _t(dy2.T @ x2)
        if x.ndim == 3:
            mistakes["sum over every leading axis (batch and seq), not just the first example or "
                     "position: flatten x to (N, d_in) and dy to (N, d_out), then xᵀ @ dy."] = [
                _t(x[0].T @ dy[0]), _t(x[:, 0].T @ dy[:, 0]), _t(x[-1].T @ dy[-1])]
        expect_close(dW, Wt.grad, label + ": grads['W']", atol=ATOL, rtol=RTOL, mistakes=mistakes)
        db = _grad(layer, "b", b.shape, label + ": backward")
        expect_close(db, bt.grad, label + ": grads['b']", atol=ATOL, rtol=RTOL, mistakes={
            "you averaged over the rows; sum them: db = dy summed over every axis but the last.":
                _t(dy2.mean(0))})

        # A second call with new data: the gradients are replaced, not added to.
        x2nd, dy2nd = g.normal(size=x_shape), g.normal(size=dy.shape)
        _call(layer.forward, label + ": forward", x2nd)
        _call(layer.backward, label + ": backward", dy2nd)
        dW2 = _grad(layer, "W", W.shape, label + ": second backward")
        expected = x2nd.reshape(-1, d_in).T @ dy2nd.reshape(-1, d_out)
        expect_close(dW2, _t(expected), label + ": grads['W'] after a second forward and backward",
                     atol=ATOL, rtol=RTOL, mistakes={_ACCUMULATED: _t(expected) + Wt.grad},
                     hint="backward must use the input of the latest forward call.")

    # Finite differences: dx, dW and db of a small layer.
    label = "NpLinear(3, 2) against finite differences"
    layer = _layer(NpLinear, label, 3, 2, _data(0))
    _load(layer, {"W": g.normal(size=(3, 2)), "b": g.normal(size=2)}, label)
    x, dy = g.normal(size=(4, 3)), g.normal(size=(4, 2))
    _call(layer.forward, label, x)
    dx = _call(layer.backward, label, dy)
    loss = lambda: float((layer.forward(x) * dy).sum())  # noqa: E731 - dL/dy = dy
    _fd(label, "dx", loss, x, dx)
    for name in ("W", "b"):
        _fd(label, f"grads[{name!r}]", loss, layer.params[name], layer.grads[name])
    passed("NpLinear", f"{len(cases)} shapes vs torch autograd, and finite differences")


# ------------------------------------------------------------ NpSoftmax


def check_NpSoftmax(NpSoftmax) -> None:
    """Check ``NpSoftmax()``: softmax over the last axis and its Jacobian-vector product."""
    g = _data(111)
    cases = [
        ("x of shape (2, 3, 5)", g.normal(size=(2, 3, 5)) * 2),
        ("x of shape (4, 6)", g.normal(size=(4, 6))),
        ("a single vector of shape (4,)", g.normal(size=4)),
        ("a single entry, shape (1, 1)", np.array([[0.7]])),
        ("large logits [[1000, 1001, 1002], [-1000, -999, -1002]]",
         np.array([[1000.0, 1001.0, 1002.0], [-1000.0, -999.0, -1002.0]])),
        ("-inf entries (masked scores)", np.array([[0.5, -np.inf, 1.0, 2.0], [-np.inf, 0.0, 0.0, -1.0]])),
    ]
    for what, x in cases:
        label = f"NpSoftmax on {what}"
        layer = _layer(NpSoftmax, label)
        xt = _t(x, True)
        p_exp = torch.softmax(xt, dim=-1)
        dp = g.normal(size=x.shape)
        p_exp.backward(_t(dp))
        x_before, dp_before = x.copy(), dp.copy()

        p = _array(_call(layer.forward, label + ": forward", x), x.shape, label + ": forward")
        _unchanged(x_before, x, label + ": forward", "its input x")
        with np.errstate(all="ignore"):
            e = np.exp(x)
            forward_mistakes = {
                "exp overflowed (inf / inf = NaN): subtract each row's maximum before np.exp.":
                    _t(e / e.sum(-1, keepdims=True)),
            }
            if x.ndim > 1 and x.shape[0] > 1:
                forward_mistakes["the softmax runs over the last axis: use axis=-1 (with "
                                 "keepdims=True) in both the max and the sum."] = torch.softmax(_t(x), 0)
        expect_close(p, p_exp.detach(), label + ": forward", atol=ATOL, rtol=RTOL, mistakes=forward_mistakes)

        dx = _array(_call(layer.backward, label + ": backward", dp), x.shape, label + ": backward")
        _unchanged(dp_before, dp, label + ": backward", "its input dp")
        P, s = p_exp.detach().numpy(), (dp * p_exp.detach().numpy()).sum(-1, keepdims=True)
        mistakes = {
            "you kept only the diagonal of the softmax Jacobian, p_i (1 - p_i). Every p_i depends on "
            "every x_j (∂p_i/∂x_j = p_i (δ_ij - p_j)), so dx = p * (dp - sum(dp * p, axis=-1, "
            "keepdims=True)).": _t(P * (1 - P) * dp),
            "you are missing the off-diagonal terms: dx_i = p_i (dp_i - Σ_j p_j dp_j); you have "
            "p_i dp_i only.": _t(P * dp),
            "the sum term has the wrong sign: dx = p * (dp - Σ_j p_j dp_j).": _t(P * (dp + s)),
            "multiply by p: dx = p * (dp - sum(dp * p)); you left out the leading p.": _t(dp - s),
            "backward returned dp unchanged; it must multiply dp by the softmax's Jacobian.": _t(dp),
        }
        if x.ndim > 1 and x.shape[0] > 1:
            mistakes["sum over the last axis (the one the softmax normalised): "
                     "(dp * p).sum(axis=-1, keepdims=True)."] = _t(P * (dp - (dp * P).sum(0, keepdims=True)))
        expect_close(dx, xt.grad, label + ": backward", atol=ATOL, rtol=RTOL, mistakes=mistakes)

    label = "NpSoftmax against finite differences"
    layer = _layer(NpSoftmax, label)
    x, dp = g.normal(size=(3, 4)), g.normal(size=(3, 4))
    _call(layer.forward, label, x)
    dx = _call(layer.backward, label, dp)
    _fd(label, "dx", lambda: float((layer.forward(x) * dp).sum()), x, dx)
    passed("NpSoftmax", f"{len(cases)} inputs vs torch autograd, including large and -inf logits, "
                        "and finite differences")


# ------------------------------------------------------------ NpCrossEntropy


def _loss_value(got: object, label: str) -> float:
    if isinstance(got, torch.Tensor):
        fail(label, "returned a torch.Tensor; this notebook is NumPy only.", got=_describe(got))
    if np.ndim(got) != 0 or not isinstance(got, (float, np.floating, np.ndarray)):
        fail(label, "should return one number, the mean loss over the N rows.", got=_describe(got),
             hint="average the N per-row losses: -log_p[np.arange(N), targets].mean().")
    return float(got)


def check_NpCrossEntropy(NpCrossEntropy) -> None:
    """Check ``NpCrossEntropy()``: mean cross-entropy of logits and its gradient (p - y) / N."""
    g = _data(112)
    cases = [  # (what, logits, targets, dloss)
        ("logits (6, 5)", g.normal(size=(6, 5)) * 2, g.integers(0, 5, 6), 1.0),
        ("logits (4, 7), upstream gradient dloss = 2.5", g.normal(size=(4, 7)), g.integers(0, 7, 4), 2.5),
        ("a single row, logits (1, 3)", g.normal(size=(1, 3)), np.array([2]), 1.0),
        ("large logits [[1000, 0, -1000], [0, 1000, 2000]]",
         np.array([[1000.0, 0.0, -1000.0], [0.0, 1000.0, 2000.0]]), np.array([0, 1]), 1.0),
    ]
    for what, logits, targets, dloss in cases:
        label = f"NpCrossEntropy on {what}"
        n = len(targets)
        layer = _layer(NpCrossEntropy, label)
        lt = _t(logits, True)
        loss_exp = F.cross_entropy(lt, torch.from_numpy(targets))
        loss_exp.backward(torch.tensor(dloss, dtype=F64))
        before = logits.copy()

        loss = _loss_value(_call(layer.forward, label + ": forward", logits, targets), label + ": forward")
        _unchanged(before, logits, label + ": forward", "its input logits")
        with np.errstate(all="ignore"):
            naive = np.log(np.exp(logits) / np.exp(logits).sum(-1, keepdims=True))
            log_p = torch.log_softmax(_t(logits), -1).numpy()
            rows = np.arange(n)
            forward_mistakes = {} if np.isfinite(naive).all() else {
                "exp overflowed: compute log-softmax stably, z = logits - max, then "
                "log_p = z - log(sum(exp(z))).": [_t(-naive[rows, targets].mean()),
                                                  _t(-naive[rows, targets].sum())]}
            forward_mistakes |= {
                "the loss is the mean over the N rows, not the sum.": _t(-log_p[rows, targets].sum()),
                "the loss is -log p[target]: you forgot the minus sign.": _t(log_p[rows, targets].mean()),
                "take row i's log-probability at its own target: log_p[np.arange(N), targets], "
                "not log_p[:, targets].": _t(-log_p[:, targets].mean()),
                "average -log p over the target entries only, one per row; you averaged over every "
                "entry.": _t(-log_p.mean()),
            }
        expect_close(torch.tensor(loss, dtype=F64), loss_exp.detach(), label + ": forward",
                     atol=ATOL, rtol=RTOL, mistakes=forward_mistakes)

        dlogits = _array(_call(layer.backward, label + ": backward", dloss), logits.shape,
                         label + ": backward", hint="dlogits has the shape of the logits, (N, C).")
        P = torch.softmax(_t(logits), -1).numpy()
        Y = np.eye(logits.shape[1])[targets]
        mistakes = {
            "divide by N: the loss is a mean over N rows, so dlogits = (p - y) / N.":
                _t((P - Y) * dloss),
            "the sign is flipped: dlogits = (p - y) / N, not (y - p) / N.": _t((Y - P) / n * dloss),
            "use the probabilities p = softmax(logits), not the logits: dlogits = (p - y) / N.":
                _t((logits - Y) / n * dloss),
            "subtract the one-hot targets: dlogits = (p - y) / N, where y has a 1 at each row's "
            "target.": _t(P / n * dloss),
        }
        if dloss != 1.0:
            mistakes["multiply by the upstream gradient dloss: dlogits = dloss * (p - y) / N."] = \
                _t((P - Y) / n)
        expect_close(dlogits, lt.grad, label + ": backward", atol=ATOL, rtol=RTOL, mistakes=mistakes)

    label = "NpCrossEntropy against finite differences"
    layer = _layer(NpCrossEntropy, label)
    logits, targets = g.normal(size=(3, 4)), np.array([0, 3, 1])
    _call(layer.forward, label, logits, targets)
    dlogits = _call(layer.backward, label, 1.0)
    _fd(label, "dlogits", lambda: float(layer.forward(logits, targets)), logits, dlogits)
    passed("NpCrossEntropy", f"{len(cases)} cases vs torch's F.cross_entropy and autograd, "
                             "and finite differences")


# ------------------------------------------------------------ NpLayerNorm


def _ln_variants(x, w, dy, eps):
    """dx for the right backward and for the classic mistakes (NumPy)."""
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    rstd = 1 / np.sqrt(var + eps)
    xh = (x - mean) * rstd
    gh = dy * w

    def dx(g, mean_term=True, var_term=True, sign=1.0):
        out = g.copy()
        if mean_term:
            out = out - g.mean(-1, keepdims=True)
        if var_term:
            out = out - sign * xh * (g * xh).mean(-1, keepdims=True)
        return rstd * out

    return {
        "you are missing the mean term: every x_j moves the mean μ, which moves every x̂_i. "
        "Subtract the row mean of dx̂: dx = rstd * (dx̂ - mean(dx̂) - x̂ * mean(dx̂ * x̂)).":
            dx(gh, mean_term=False),
        "you are missing the variance term: every x_j moves σ², which rescales every x̂_i. "
        "Subtract x̂ * mean(dx̂ * x̂): dx = rstd * (dx̂ - mean(dx̂) - x̂ * mean(dx̂ * x̂)).":
            dx(gh, var_term=False),
        "you treated the mean and the standard deviation as constants (dx = dx̂ / σ); both depend "
        "on every x_j, which adds two terms: dx = rstd * (dx̂ - mean(dx̂) - x̂ * mean(dx̂ * x̂)).":
            dx(gh, mean_term=False, var_term=False),
        "the variance term has the wrong sign: dx = rstd * (dx̂ - mean(dx̂) - x̂ * mean(dx̂ * x̂)).":
            dx(gh, sign=-1.0),
        "dL/dx̂ is dy * weight: the weight scales x̂ in the forward pass, so it scales the "
        "gradient on the way back.": dx(dy),
    }, xh


def check_NpLayerNorm(NpLayerNorm) -> None:
    """Check ``NpLayerNorm(d, eps=1e-5)``: layer norm with params weight and bias, and its backward."""
    g = _data(113)
    cases = [  # (what, x, eps or None for the default)
        ("x of shape (4, 6), mean 3 and std 2", 3 + 2 * g.normal(size=(4, 6)), None),
        ("x of shape (2, 3, 8) (batch, seq, d)", g.normal(size=(2, 3, 8)), None),
        ("x of shape (1, 1, 5), batch 1 and seq 1", g.normal(size=(1, 1, 5)), None),
        ("small x of shape (3, 4) with eps = 0.1, where eps matters", 0.1 * g.normal(size=(3, 4)), 0.1),
    ]
    for what, x, eps in cases:
        d = x.shape[-1]
        label = f"NpLayerNorm({d}{'' if eps is None else f', eps={eps}'}) on {what}"
        layer = _layer(NpLayerNorm, label, d) if eps is None else _layer(NpLayerNorm, label, d, eps)
        eps = 1e-5 if eps is None else eps
        w, b = 1 + 0.5 * g.normal(size=d), 0.5 * g.normal(size=d)
        _load(layer, {"weight": w, "bias": b}, label)
        xt, wt, bt = _t(x, True), _t(w, True), _t(b, True)
        y_exp = F.layer_norm(xt, (d,), wt, bt, eps)
        dy = g.normal(size=x.shape)
        y_exp.backward(_t(dy))
        x_before, dy_before = x.copy(), dy.copy()

        y = _array(_call(layer.forward, label + ": forward", x), x.shape, label + ": forward")
        _unchanged(x_before, x, label + ": forward", "its input x")
        mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        forward_mistakes = {
            "use the biased variance (divide by d): x.var(axis=-1, keepdims=True), NumPy's default.":
                _t((x - mean) / np.sqrt(x.var(-1, ddof=1, keepdims=True) + eps) * w + b),
            "eps goes inside the square root: (x - mean) / sqrt(var + eps).":
                _t((x - mean) / (np.sqrt(var) + eps) * w + b),
            "scale by params['weight'] and shift by params['bias'] after normalising.":
                [_t((x - mean) / np.sqrt(var + eps)), _t((x - mean) / np.sqrt(var + eps) * w)],
            "use the eps passed to __init__ (self.eps), not a fixed 1e-5.":
                _t((x - mean) / np.sqrt(var + 1e-5) * w + b),
        }
        expect_close(y, y_exp.detach(), label + ": forward", atol=ATOL, rtol=RTOL, mistakes=forward_mistakes)

        sum_hint = "a parameter's gradient has its shape, (d,): sum over every axis but the last."
        dx = _array(_call(layer.backward, label + ": backward", dy, hint=sum_hint), x.shape,
                    label + ": backward (dx)")
        _unchanged(dy_before, dy, label + ": backward", "its input dy")
        dx_mistakes, xh = _ln_variants(x, w, dy, eps)
        expect_close(dx, xt.grad, label + ": backward (dx)", atol=ATOL, rtol=RTOL,
                     mistakes={k: _t(v) for k, v in dx_mistakes.items()})
        dw = _grad(layer, "weight", (d,), label + ": backward")
        expect_close(dw, wt.grad, label + ": grads['weight']", atol=ATOL, rtol=RTOL, mistakes={
            "dweight = Σ dy * x̂ over every axis but the last: the weight multiplies x̂, so its "
            "gradient needs x̂.": _t(dy.reshape(-1, d).sum(0)),
            "sum over the rows, don't average: dweight = Σ dy * x̂.": _t((dy * xh).reshape(-1, d).mean(0)),
        })
        db = _grad(layer, "bias", (d,), label + ": backward")
        expect_close(db, bt.grad, label + ": grads['bias']", atol=ATOL, rtol=RTOL, mistakes={
            "sum over the rows, don't average: dbias = Σ dy over every axis but the last.":
                _t(dy.reshape(-1, d).mean(0))})

    label = "NpLayerNorm(5) against finite differences"
    layer = _layer(NpLayerNorm, label, 5)
    _load(layer, {"weight": 1 + 0.5 * g.normal(size=5), "bias": g.normal(size=5)}, label)
    x, dy = g.normal(size=(3, 5)), g.normal(size=(3, 5))
    _call(layer.forward, label, x)
    dx = _call(layer.backward, label, dy)
    loss = lambda: float((layer.forward(x) * dy).sum())  # noqa: E731
    _fd(label, "dx", loss, x, dx)
    for name in ("weight", "bias"):
        _fd(label, f"grads[{name!r}]", loss, layer.params[name], layer.grads[name])
    passed("NpLayerNorm", f"{len(cases)} cases vs F.layer_norm and autograd, and finite differences")


# ------------------------------------------------------------ NpAttention


def _torch_attention(q, k, v, mask):
    """Output, weights and autograd-ready leaves from PyTorch's own kernel."""
    qt, kt, vt = _t(q, True), _t(k, True), _t(v, True)
    mt = None if mask is None else torch.from_numpy(mask)
    out = F.scaled_dot_product_attention(qt, kt, vt, attn_mask=mt)
    eye = torch.eye(k.shape[-2], dtype=F64).expand(*k.shape[:-1], k.shape[-2])
    weights = F.scaled_dot_product_attention(qt.detach(), kt.detach(), eye, attn_mask=mt)
    return out, weights, (qt, kt, vt)


def _attention_backward_mistakes(q, k, v, weights, dout) -> tuple[dict, dict, dict]:
    """dq, dk and dv for the classic mistakes of attention's backward pass (NumPy)."""
    swap = lambda a: np.swapaxes(a, -1, -2)  # noqa: E731
    P, s = weights, 1 / math.sqrt(q.shape[-1])
    dP = dout @ swap(v)
    dS = P * (dP - (dP * P).sum(-1, keepdims=True))  # before the scale
    dS_diag = P * (1 - P) * dP
    square = q.shape[-2] == k.shape[-2]
    no_scale = ("you forgot the 1/sqrt(d_k) in the backward pass: the scores were q kᵀ * scale, so "
                "dscores must be multiplied by the same scale before dq = dscores @ k and "
                "dk = dscoresᵀ @ q.")
    twice = "you applied the 1/sqrt(d_k) scale twice in the backward pass; once is enough."
    diag = ("the softmax backward kept only the diagonal of the Jacobian, p (1 - p) dp; use "
            "p * (dp - sum(dp * p, axis=-1, keepdims=True)) (your NpSoftmax.backward).")
    dq = {no_scale: dS @ k, twice: s * s * dS @ k, diag: s * dS_diag @ k}
    dk = {no_scale: swap(dS) @ q, twice: s * s * swap(dS) @ q, diag: s * swap(dS_diag) @ q}
    dv = {}
    if square:
        dk["dk = dscoresᵀ @ q: transpose dscores (keys are its columns)."] = s * dS @ q
        dv["dv = weightsᵀ @ dout: transpose the weights (keys are their columns)."] = P @ dout
        order = "return (dq, dk, dv) in that order: the gradients of q, k and v."
        dq[order], dk[order] = s * swap(dS) @ q, s * dS @ k  # (dk, dq, dv) returned
    return ({h: _t(a) for h, a in dq.items()}, {h: _t(a) for h, a in dk.items()},
            {h: _t(a) for h, a in dv.items()})


def check_NpAttention(NpAttention) -> None:
    """Check ``NpAttention()``: forward(q, k, v, mask) -> (out, weights); backward(dout) -> (dq, dk, dv)."""
    g = _data(114)
    causal = np.tril(np.ones((5, 5), dtype=bool))
    padding = np.ones((2, 1, 1, 6), dtype=bool)
    padding[1, ..., 4:] = False  # the second sequence ends in 2 padding tokens
    cases = [  # (what, q shape, k shape, v shape, mask)
        ("q, k of shape (2, 5, 4), v (2, 5, 3), causal mask (5, 5)", (2, 5, 4), (2, 5, 4), (2, 5, 3), causal),
        ("batch 2, 3 heads, seq_q 4, seq_k 6, d_k 8, d_v 5, no mask", (2, 3, 4, 8), (2, 3, 6, 8), (2, 3, 6, 5), None),
        ("padding mask (2, 1, 1, 6): the last 2 keys of the 2nd sequence are padding",
         (2, 2, 6, 4), (2, 2, 6, 4), (2, 2, 6, 7), padding),
        ("batch 1, seq_q 1, seq_k 7, no mask", (1, 1, 8), (1, 7, 8), (1, 7, 3), None),
    ]
    for what, qs, ks, vs, mask in cases:
        label = f"NpAttention on {what}"
        layer = _layer(NpAttention, label)
        q, k, v = g.normal(size=qs), g.normal(size=ks), g.normal(size=vs)
        out_exp, w_exp, leaves = _torch_attention(q, k, v, mask)
        dout = g.normal(size=out_exp.shape)
        out_exp.backward(_t(dout))
        before = [a.copy() for a in (q, k, v, dout)]

        result = _call(layer.forward, label + ": forward", q, k, v, mask)
        if not (isinstance(result, tuple) and len(result) == 2):
            fail(label + ": forward", "should return a tuple (output, weights).", got=_describe(result))
        w_mistakes, out_mistakes = (_in_numpy(m) for m in _attention_mistakes(
            _t(q), _t(k), _t(v), None if mask is None else torch.from_numpy(mask)))
        w = _array(result[1], w_exp.shape, label + ": forward (weights)",
                   hint="the weights are (..., seq_q, seq_k): one row per query.")
        expect_close(w, w_exp, label + ": forward (weights)", atol=ATOL, rtol=RTOL, mistakes=w_mistakes)
        out = _array(result[0], out_exp.shape, label + ": forward (output)")
        expect_close(out, out_exp.detach(), label + ": forward (output)", atol=ATOL, rtol=RTOL,
                     mistakes=out_mistakes, hint="the weights are right; the output is weights @ v.")
        for b, a, name in zip(before[:3], (q, k, v), "qkv"):
            _unchanged(b, a, label + ": forward", f"its input {name}")

        grads = _call(layer.backward, label + ": backward", dout)
        _unchanged(before[3], dout, label + ": backward", "its input dout")
        if not (isinstance(grads, tuple) and len(grads) == 3):
            fail(label + ": backward", "should return a tuple (dq, dk, dv).", got=_describe(grads))
        mistakes = _attention_backward_mistakes(q, k, v, w_exp.numpy(), dout)
        shapes = {"q": "(..., seq_q, d_k)", "k": "(..., seq_k, d_k)", "v": "(..., seq_k, d_v)"}
        for got, leaf, name, m in zip(grads, leaves, "qkv", mistakes):
            lbl = f"{label}: backward (d{name})"
            got = _array(got, leaf.shape, lbl, hint=f"d{name} has the shape of {name}, {shapes[name]}; "
                                                    "check the transposes.")
            expect_close(got, leaf.grad, lbl, atol=ATOL, rtol=RTOL, mistakes=m)

    label = "NpAttention against finite differences"
    layer = _layer(NpAttention, label)
    q, k, v, dout = (g.normal(size=s) for s in ((1, 3, 2), (1, 4, 2), (1, 4, 3), (1, 3, 3)))
    _call(layer.forward, label, q, k, v)
    grads = _call(layer.backward, label, dout)
    loss = lambda: float((layer.forward(q, k, v)[0] * dout).sum())  # noqa: E731
    for name, a, da in zip("qkv", (q, k, v), grads):
        _fd(label, f"d{name}", loss, a, da)
    passed("NpAttention", f"{len(cases)} cases vs F.scaled_dot_product_attention and autograd, "
                          "with causal and padding masks, and finite differences")


# ------------------------------------------------------------ NpMultiHeadAttention

_PROJ = {"q_proj": "q", "k_proj": "k", "v_proj": "v", "out_proj": "o"}


def _mha_layer(cls, d_model: int, n_heads: int, w: dict, label: str):
    """The learner's layer, with the weights ``w`` (nn.Linear layout, (out, in)) loaded."""
    mha = _layer(cls, label, d_model, n_heads, _data(0))
    for attr, key in _PROJ.items():
        proj = getattr(mha, attr, None)
        if not isinstance(getattr(proj, "params", None), dict):
            fail(label, f"should have an NpLinear at self.{attr}.", got=_describe(proj),
                 hint="build the four projections in __init__: self.q_proj = NpLinear(d_model, d_model, rng), ...")
        _load(proj, {"W": w[key].numpy().T.copy(), "b": w[key + "_b"].numpy().copy()}, label, f"self.{attr}.")
    return mha


def _torch_mha(x, w, n_heads, mask):
    """nn.MultiheadAttention with the weights ``w``; returns out, weights, the module and x."""
    b, t, d = x.shape
    with torch.random.fork_rng(devices=[]):  # its __init__ draws random numbers
        mha = nn.MultiheadAttention(d, n_heads, batch_first=True, dropout=0.0, dtype=F64)
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([w["q"], w["k"], w["v"]]))
        mha.in_proj_bias.copy_(torch.cat([w["q_b"], w["k_b"], w["v_b"]]))
        mha.out_proj.weight.copy_(w["o"])
        mha.out_proj.bias.copy_(w["o_b"])
    attn_mask = None
    if mask is not None:  # theirs: True = may NOT attend, one (t, t) mask per batch and head
        attn_mask = ~torch.from_numpy(np.broadcast_to(mask, (b, n_heads, t, t)).reshape(b * n_heads, t, t).copy())
    xt = _t(x, True)
    out, weights = mha(xt, xt, xt, attn_mask=attn_mask, need_weights=True, average_attn_weights=False)
    return out, weights.detach(), mha, xt


def _partial_paths(x, w, n_heads, mask, dout) -> list[torch.Tensor]:
    """dx through only some of the three projections: what forgetting to add the paths gives."""
    paths = {}
    for keep in ("q", "k", "v"):
        leaves = {n: _t(x, n == keep) for n in "qkv"}
        b, t, d = x.shape

        def proj(n):
            y = leaves[n] @ w[n].T + w[n + "_b"]
            return y.reshape(b, t, n_heads, d // n_heads).transpose(1, 2)

        m = None if mask is None else torch.from_numpy(mask)
        o = F.scaled_dot_product_attention(proj("q"), proj("k"), proj("v"), attn_mask=m)
        o = o.transpose(1, 2).reshape(b, t, d) @ w["o"].T + w["o_b"]
        o.backward(_t(dout))
        paths[keep] = leaves[keep].grad
    q, k, v = paths["q"], paths["k"], paths["v"]
    return [q, k, v, q + k, q + v, k + v]


def check_NpMultiHeadAttention(NpMultiHeadAttention) -> None:
    """Check ``NpMultiHeadAttention(d_model, n_heads, rng)`` against ``nn.MultiheadAttention``,
    forward and backward (dx and the four projections' grads)."""
    g, tg = _data(115), torch.Generator().manual_seed(115)
    causal = np.tril(np.ones((5, 5), dtype=bool))
    padding = np.ones((2, 1, 1, 5), dtype=bool)
    padding[0, ..., 3:] = False
    cases = [  # (what, batch, seq, d_model, n_heads, mask)
        ("d_model 8, 2 heads, x (2, 5, 8), causal mask (5, 5)", 2, 5, 8, 2, causal),
        ("d_model 8, 4 heads, x (2, 5, 8), padding mask (2, 1, 1, 5)", 2, 5, 8, 4, padding),
        ("d_model 6, 1 head, x (2, 4, 6), no mask", 2, 4, 6, 1, None),
        ("d_model 12, 3 heads, batch 1, seq 1, no mask", 1, 1, 12, 3, None),
    ]
    for what, b, t, d, h, mask in cases:
        label = f"NpMultiHeadAttention({d}, {h}) on {what}"
        w = {}
        for key in "qkvo":
            w[key] = torch.randn(d, d, generator=tg, dtype=F64) / math.sqrt(d)
            w[key + "_b"] = torch.randn(d, generator=tg, dtype=F64) * 0.5
        mha = _mha_layer(NpMultiHeadAttention, d, h, w, label)
        x = g.normal(size=(b, t, d))
        out_exp, w_exp, theirs, xt = _torch_mha(x, w, h, mask)
        dout = g.normal(size=(b, t, d))
        out_exp.backward(_t(dout))
        before = [x.copy(), dout.copy()]

        result = _call(mha.forward, label + ": forward", x, mask)
        if not (isinstance(result, tuple) and len(result) == 2):
            fail(label + ": forward", "should return a tuple (output, weights).", got=_describe(result),
                 hint="return the out_proj output and the attention weights, as self.attn.forward does.")
        _unchanged(before[0], x, label + ": forward", "its input x")
        w_mistakes, out_mistakes = (_in_numpy(m) for m in _mha_forward_mistakes(
            _t(x), w, h, None if mask is None else torch.from_numpy(mask)))
        weights = _array(result[1], w_exp.shape, label + ": forward (weights)",
                         hint="the weights are (batch, n_heads, seq, seq), from self.attn.forward.")
        expect_close(weights, w_exp, label + ": forward (weights)", atol=ATOL, rtol=RTOL, mistakes=w_mistakes)
        out = _array(result[0], out_exp.shape, label + ": forward (output)")
        expect_close(out, out_exp.detach(), label + ": forward (output)", atol=ATOL, rtol=RTOL,
                     mistakes=out_mistakes)

        dx = _array(_call(mha.backward, label + ": backward", dout), x.shape, label + ": backward (dx)")
        _unchanged(before[1], dout, label + ": backward", "its input dout")
        expect_close(dx, xt.grad, label + ": backward (dx)", atol=ATOL, rtol=RTOL, mistakes={
            "x feeds three projections (q_proj, k_proj and v_proj), so its gradient is the sum of "
            "the three: dx = q_proj.backward(...) + k_proj.backward(...) + v_proj.backward(...).":
                _partial_paths(x, w, h, mask, dout),
        }, hint="go back through the forward pass in reverse order: out_proj, merge (undone by a "
                "split), attention, split (undone by a merge), the projections.")
        packed_w, packed_b = theirs.in_proj_weight.grad.chunk(3), theirs.in_proj_bias.grad.chunk(3)
        expected = {"q_proj": (packed_w[0], packed_b[0]), "k_proj": (packed_w[1], packed_b[1]),
                    "v_proj": (packed_w[2], packed_b[2]),
                    "out_proj": (theirs.out_proj.weight.grad, theirs.out_proj.bias.grad)}
        for attr, (gw, gb) in expected.items():
            proj = getattr(mha, attr)
            for name, exp in (("W", gw.T), ("b", gb)):
                got = _grad(proj, name, tuple(exp.shape), label + ": backward", f"self.{attr}.")
                expect_close(got, exp, f"{label}: self.{attr}.grads[{name!r}]", atol=ATOL, rtol=RTOL,
                             hint=f"call self.{attr}.backward(...) with the gradient of its output "
                                  "(merge the heads of dq, dk, dv first).")

    label = "NpMultiHeadAttention(4, 2) against finite differences"
    w = {}
    for key in "qkvo":
        w[key], w[key + "_b"] = torch.randn(4, 4, generator=tg, dtype=F64) / 2, torch.randn(4, generator=tg, dtype=F64)
    mha = _mha_layer(NpMultiHeadAttention, 4, 2, w, label)
    x, dout = g.normal(size=(1, 3, 4)), g.normal(size=(1, 3, 4))
    _call(mha.forward, label, x)
    dx = _call(mha.backward, label, dout)
    loss = lambda: float((mha.forward(x)[0] * dout).sum())  # noqa: E731
    _fd(label, "dx", loss, x, dx)
    _fd(label, "self.q_proj.grads['W']", loss, mha.q_proj.params["W"], mha.q_proj.grads["W"])
    passed("NpMultiHeadAttention", f"{len(cases)} cases vs nn.MultiheadAttention and autograd, "
                                   "with causal and padding masks, and finite differences")

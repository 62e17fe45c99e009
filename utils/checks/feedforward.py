"""Checkers for notebook 04 · Feed-forward networks, normalization and residuals.

Ground truth: ``nn.LayerNorm`` and ``nn.RMSNorm`` with the same (random)
weights, and, for the feed-forward networks, the formula written out with
``F.linear`` and PyTorch's own activations. The learner's module is built
inside ``torch.random.fork_rng`` so checking leaves the notebook's random
stream alone, and known weights are copied in by parameter name: the names
are part of the exercise, since they let weights move to and from PyTorch's
modules with ``load_state_dict``.
"""

from __future__ import annotations

import functools

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.checks._core import (
    build_module,
    call,
    describe,
    expect_close,
    expect_dtype,
    expect_tensor,
    expect_unchanged,
    fail,
    passed,
    preview,
    rng,
)

__all__ = ["check_FeedForward", "check_SwiGLU", "check_LayerNorm", "check_RMSNorm"]

F64 = torch.float64




def _expect_state(module: nn.Module, expected: dict[str, tuple], label: str, hint: str) -> None:
    """The state_dict holds exactly these names, with these shapes."""
    got = {name: tuple(t.shape) for name, t in module.state_dict().items()}
    if got != expected:
        fmt = lambda d: ", ".join(f"{k} {v}" for k, v in d.items()) or "nothing"  # noqa: E731
        fail(label, "has the wrong parameters (its state_dict).", expected=fmt(expected), got=fmt(got),
             hint=hint)


def _load(module: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """Convert to float64 and copy known weights in (the names were checked already)."""
    module.double()
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            tensor.copy_(state[name])
    return module


def _run(module: nn.Module, x: torch.Tensor, label: str) -> torch.Tensor:
    x_before = x.clone()
    with torch.no_grad():
        got = expect_tensor(call(module, label, x), label)
    expect_unchanged(x_before, x, label, "its input x")
    return got


# ------------------------------------------------------------ normalisation


def _layer_norm_mistakes(x, w, b, eps, default_eps) -> dict:
    def norm(dims=(-1,), unbiased=False, eps_=eps, eps_outside=False, centre=True):
        mean = x.mean(dim=dims, keepdim=True)
        var = x.var(dim=dims, keepdim=True, unbiased=unbiased)
        num = x - mean if centre else x
        den = var.sqrt() + eps_ if eps_outside else (var + eps_).sqrt()
        return num / den

    n = norm()
    mistakes = {}
    if x.dim() > 1 and x.size(0) > 1:
        batch_dims = [(0,)] + ([(0, 1)] if x.dim() > 2 else [])
        mistakes["you normalised over the batch axis (that is batch norm). Layer norm takes the mean "
                 "and variance of each token's own features: dim=-1, keepdim=True."] = \
            [norm(dims=d) * w + b for d in batch_dims]
    mistakes |= {
        "you normalised over the whole tensor; each token (each row along the last dimension) "
        "gets its own mean and variance: dim=-1, keepdim=True.": norm(dims=tuple(range(x.dim()))) * w + b,
        "you used the unbiased variance (dividing by d - 1). Layer norm divides by d: "
        "x.var(dim=-1, keepdim=True, unbiased=False), or ((x - mean) ** 2).mean(-1, keepdim=True).":
            norm(unbiased=True) * w + b,
        "eps goes inside the square root: (x - mean) / sqrt(var + eps), not / (std + eps).":
            norm(eps_outside=True) * w + b,
        "you forgot the affine parameters: multiply by self.weight and add self.bias at the end.": n,
        "you multiplied by self.weight but forgot to add self.bias.": n * w,
        "you added self.bias but forgot to multiply by self.weight.": n + b,
        "you did not subtract the mean: layer norm centres each token first, (x - mean).":
            norm(centre=False) * w + b,
    }
    if eps != default_eps:
        mistakes["the result matches the default eps, not the one passed in: store the eps argument "
                 "(self.eps = eps) and use it."] = [norm(eps_=default_eps) * w + b, norm(eps_=0.0) * w + b]
    else:
        mistakes["the small-variance input shows eps is missing or wrong: add self.eps to the "
                 "variance, inside the square root."] = norm(eps_=0.0) * w + b
    return mistakes


def _rms_norm_mistakes(x, w, eps, default_eps) -> dict:
    def norm(dims=(-1,), eps_=eps, eps_outside=False, centre=False, sqrt=True, mean=True):
        if centre:
            x_ = x - x.mean(dim=dims, keepdim=True)
        else:
            x_ = x
        ms = x_.pow(2).mean(dim=dims, keepdim=True) if mean else x_.pow(2).sum(dim=dims, keepdim=True)
        if eps_outside:
            den = ms.sqrt() + eps_
        else:
            den = (ms + eps_).sqrt() if sqrt else ms + eps_
        return x_ / den

    mistakes = {
        "RMSNorm does not subtract the mean (that is layer norm): divide x itself by "
        "sqrt(mean(x²) + eps).": [norm(centre=True) * w,
                                   (x - x.mean(-1, keepdim=True)) /
                                   (x.var(-1, keepdim=True, unbiased=False) + eps).sqrt() * w],
        "eps goes inside the square root: x / sqrt(mean(x²) + eps), not / (rms + eps).":
            norm(eps_outside=True) * w,
        "you forgot the weight: multiply by self.weight at the end.": norm(),
        "you divided by the mean square; take its square root (the root mean square).": norm(sqrt=False) * w,
        "you divided by the L2 norm sqrt(sum(x²)); RMSNorm uses the mean, sqrt(mean(x²)), "
        "so the result does not shrink as d_model grows.": norm(mean=False) * w,
    }
    if x.dim() > 1 and x.size(0) > 1:
        mistakes["you normalised over the batch axis; each token is normalised over its own "
                 "features: dim=-1, keepdim=True."] = norm(dims=(0,)) * w
    if eps != default_eps:
        mistakes["the result matches the default eps, not the one passed in: store the eps argument "
                 "(self.eps = eps) and use it."] = [norm(eps_=default_eps) * w, norm(eps_=0.0) * w]
    else:
        mistakes["the small-value input shows eps is missing or wrong: add self.eps to the mean "
                 "square, inside the square root."] = norm(eps_=0.0) * w
    return mistakes


def _norm_cases(g: torch.Generator, d: int) -> list:
    """(what, input, eps or None for the default) triples shared by both norm checkers."""
    randn = functools.partial(torch.randn, generator=g, dtype=F64)
    return [
        ("x of shape (4, 5, d)", randn(4, 5, d) * 2 + 1, 1e-3),
        ("x of shape (1, 1, d): one token", randn(1, 1, d) + 0.5, 1e-3),
        ("x of shape (3, d)", randn(3, d), 1e-3),
        ("x of shape (2, 3, 2, d)", randn(2, 3, 2, d) - 0.3, 1e-3),
        ("x of shape (4, 5, d) with small values (std 0.3), where a large eps shows", randn(4, 5, d) * 0.3, 0.1),
        ("x of shape (2, 6, d) with tiny values (std 1e-3), where the default eps shows", randn(2, 6, d) * 1e-3, None),
        ("x of shape (3, 4, d) with a large mean offset (+5)", randn(3, 4, d) + 5.0, 1e-3),
    ]


def _check_norm(cls, name: str, torch_cls, default_eps: float, with_bias: bool) -> None:
    d = 16
    g = rng(40 if with_bias else 41)
    keys = {"weight": (d,), "bias": (d,)} if with_bias else {"weight": (d,)}
    names = "`weight` and `bias`" if with_bias else "`weight` (and no bias)"
    state_hint = (f"register {names} with nn.Parameter, shape (d_model,), named as in nn.{torch_cls.__name__} "
                  "so a state_dict copies both ways; keep eps a plain attribute.")

    label = f"{name}({d})"
    module = build_module(cls, label, d)
    _expect_state(module, keys, label, state_hint)
    params = dict(module.named_parameters())
    if set(params) != set(keys):
        fail(label, f"should register {names} as nn.Parameter (they must be learnable).",
             got=", ".join(params) or "no parameters", hint=state_hint)
    if not torch.equal(params["weight"].detach(), torch.ones(d)):
        fail(label, "weight should start as ones (the norm starts as a plain normalisation).",
             expected="torch.ones(d_model)", got=preview(params["weight"].detach()))
    if with_bias and not torch.equal(params["bias"].detach(), torch.zeros(d)):
        fail(label, "bias should start as zeros.", expected="torch.zeros(d_model)",
             got=preview(params["bias"].detach()))

    cases = _norm_cases(g, d)
    for what, x, eps in cases:
        label = f"{name}(d_model={d}{'' if eps is None else f', eps={eps:g}'}) on {what}"
        kwargs = {} if eps is None else {"eps": eps}
        eps = default_eps if eps is None else eps
        module = build_module(cls, label, d, **kwargs)
        ref = torch_cls(d, eps=eps, dtype=F64)
        with torch.no_grad():  # random affine parameters, so forgetting them shows
            for p in ref.parameters():
                p.copy_(torch.randn(d, generator=g, dtype=F64) * 0.5 + (1.0 if p is ref.weight else 0.0))
        _load(module, ref.state_dict())
        got = _run(module, x, label)
        with torch.no_grad():
            expected = ref(x)
        w = ref.weight.detach()
        mistakes = (_layer_norm_mistakes(x, w, ref.bias.detach(), eps, default_eps) if with_bias
                    else _rms_norm_mistakes(x, w, eps, default_eps))
        expect_close(got, expected, label, atol=1e-10, rtol=1e-8, mistakes=mistakes)

    label = f"{name}({d}) on float32 input"
    module = build_module(cls, label, d)
    x32 = torch.randn(2, 3, d, generator=g)
    got = _run(module, x32, label)
    expect_dtype(got, torch.float32, label, hint="return the input's dtype; don't convert.")
    expect_close(got, torch_cls(d, eps=default_eps)(x32).detach(), label, atol=1e-5, rtol=1e-5)
    passed(name, f"{len(cases) + 1} cases vs nn.{torch_cls.__name__} with copied random "
                 "weights, including eps=0.1 and shape (1, 1, d)")


def check_LayerNorm(LayerNorm) -> None:
    """Check ``LayerNorm(d_model, eps=1e-5)`` against ``nn.LayerNorm`` with the same weights."""
    _check_norm(LayerNorm, "LayerNorm", nn.LayerNorm, 1e-5, with_bias=True)


def check_RMSNorm(RMSNorm) -> None:
    """Check ``RMSNorm(d_model, eps=1e-6)`` against ``nn.RMSNorm`` with the same weight."""
    _check_norm(RMSNorm, "RMSNorm", nn.RMSNorm, 1e-6, with_bias=False)


# ------------------------------------------------------------ feed-forward


_ACTIVATIONS = {
    "relu": F.relu,
    "gelu": F.gelu,
    "gelu_tanh": functools.partial(F.gelu, approximate="tanh"),
    "silu": F.silu,
}


def _ffn(x, state, act):
    h = F.linear(x, state["linear1.weight"], state["linear1.bias"])
    return F.linear(act(h), state["linear2.weight"], state["linear2.bias"])


def _ffn_mistakes(x, state, name: str, default: bool = False) -> dict:
    """What common mistakes return; ``name`` is an activation name or "callable" (torch.tanh)."""
    act = _ACTIVATIONS.get(name, torch.tanh)
    lin1 = F.linear(x, state["linear1.weight"], state["linear1.bias"])
    lin2 = lambda h: F.linear(h, state["linear2.weight"], state["linear2.bias"])  # noqa: E731
    mistakes = {
        "there is no activation between the two linear layers: without it the two collapse "
        "into a single linear map. Apply the activation to linear1's output.": lin2(lin1),
        "the activation goes between the layers (linear1 -> activation -> linear2), not after "
        "linear2.": act(lin2(lin1)),
    }
    others = [lin2(a(lin1)) for n, a in _ACTIVATIONS.items() if n != name]
    if default:
        mistakes['the default activation is the exact GELU (activation="gelu").'] = others
    if name == "gelu_tanh":
        mistakes['"gelu_tanh" is the tanh approximation GPT-2 uses: F.gelu(x, approximate="tanh"). '
                 "You used the exact GELU."] = lin2(F.gelu(lin1))
    if name == "gelu":
        mistakes['"gelu" is the exact GELU, F.gelu(x); you used the tanh approximation.'] = \
            lin2(F.gelu(lin1, approximate="tanh"))
    if name == "silu":
        mistakes["SiLU is x * sigmoid(x) (F.silu), not sigmoid(x)."] = lin2(torch.sigmoid(lin1))
    if name == "callable":
        mistakes["when `activation` is a callable (here torch.tanh), use it as it is: "
                 "self.activation = activation."] = others
    else:
        mistakes[f"the output matches a different activation than the one asked for ({name!r}): "
                 "look the `activation` argument up instead of always using one function."] = others
    return mistakes


def _random_state(shapes: dict[str, tuple], g: torch.Generator) -> dict[str, torch.Tensor]:
    return {k: torch.randn(*s, generator=g, dtype=F64) / s[-1] ** 0.5 * 1.5 for k, s in shapes.items()}


def check_FeedForward(FeedForward) -> None:
    """Check ``FeedForward(d_model, d_ff=None, activation="gelu", dropout=0.0)`` against
    ``F.linear`` and PyTorch's activations with the same weights."""
    g = rng(42)
    d = 8

    # Structure: names as in nn.TransformerEncoderLayer, d_ff = 4 * d_model by default.
    for d_ff in (None, 20):
        label = f"FeedForward({d})" if d_ff is None else f"FeedForward({d}, d_ff={d_ff})"
        module = build_module(FeedForward, label, d) if d_ff is None else build_module(FeedForward, label, d, d_ff)
        want = 4 * d if d_ff is None else d_ff
        for attr, (n_in, n_out) in (("linear1", (d, want)), ("linear2", (want, d))):
            layer = getattr(module, attr, None)
            if not isinstance(layer, nn.Linear):
                fail(label, f"should have an nn.Linear named self.{attr}.", got=describe(layer),
                     hint="name the layers linear1 and linear2, as nn.TransformerEncoderLayer does, "
                          "so weights copy to and from it.")
            if (layer.in_features, layer.out_features) != (n_in, n_out):
                hint = ("d_ff defaults to 4 * d_model: `d_ff = 4 * d_model if d_ff is None else d_ff`."
                        if d_ff is None and d in (layer.in_features, layer.out_features)
                        else "linear1 maps d_model -> d_ff, linear2 maps d_ff -> d_model.")
                fail(label, f"self.{attr} has the wrong size.",
                     expected=f"nn.Linear({n_in}, {n_out})",
                     got=f"nn.Linear({layer.in_features}, {layer.out_features})", hint=hint)
        _expect_state(module, {"linear1.weight": (want, d), "linear1.bias": (want,),
                               "linear2.weight": (d, want), "linear2.bias": (d,)}, label,
                      "only linear1 and linear2 (with biases) hold weights; nn.Dropout has none.")

    # Values, one activation at a time, with known random weights.
    shapes = {"linear1.weight": (4 * d, d), "linear1.bias": (4 * d,),
              "linear2.weight": (d, 4 * d), "linear2.bias": (d,)}
    inputs = [("x of shape (2, 5, 8)", (2, 5, d)), ("x of shape (1, 1, 8)", (1, 1, d)),
              ("x of shape (3, 7, 8)", (3, 7, d))]
    activations = [("default", None), ("relu", "relu"), ("gelu", "gelu"), ("gelu_tanh", "gelu_tanh"),
                   ("silu", "silu"), ("a callable, torch.tanh", torch.tanh)]
    n_cases = 0
    for what_act, act in activations:
        name = "gelu" if act is None else ("callable" if callable(act) else act)
        fn = torch.tanh if name == "callable" else _ACTIVATIONS[name]
        for what_x, shape in inputs:
            args = "" if act is None else (', activation=torch.tanh' if callable(act) else f', activation="{act}"')
            label = f"FeedForward({d}{args}) on {what_x}"
            module = build_module(FeedForward, label, d) if act is None else build_module(FeedForward, label, d, activation=act)
            state = _random_state(shapes, g)
            _load(module, state)  # left in training mode: the default dropout must be 0
            x = torch.randn(*shape, generator=g, dtype=F64) * 2
            got = _run(module, x, label)
            mistakes = _ffn_mistakes(x, state, name, default=act is None)
            expect_close(got, _ffn(x, state, fn), label, atol=1e-10, rtol=1e-8, mistakes=mistakes)
            n_cases += 1

    # An unknown activation name is an error, and says what went wrong.
    label = f'FeedForward({d}, activation="gleu")'
    try:
        with torch.random.fork_rng(devices=[]):
            FeedForward(d, activation="gleu")
    except NotImplementedError:
        raise
    except ValueError as e:
        if "gleu" not in str(e):
            fail(label, "raised ValueError, but its message does not name the bad activation.",
                 got=f"ValueError: {e}", hint="say what was asked for and what is allowed, e.g. "
                 "f\"unknown activation {activation!r}; use one of ...\".")
    except Exception as e:  # noqa: BLE001
        fail(label, f"should raise ValueError, but raised {type(e).__name__}: {e}",
             hint="check the name yourself and `raise ValueError(...)` with a clear message.")
    else:
        fail(label, "should raise ValueError for an unknown activation name (a typo), but it did not.",
             hint="if `activation` is a string that is not one of the known names, "
                  "`raise ValueError(...)`.")

    # Dropout on the output (after linear2): in training each output is 0 or scaled by 1/(1-p).
    label = f"FeedForward({d}, dropout=0.5)"
    module = build_module(FeedForward, label, d, dropout=0.5)
    state = _random_state(shapes, g)
    _load(module, state)
    x = torch.randn(4, 6, d, generator=g, dtype=F64)
    expected = _ffn(x, state, F.gelu)
    got = _run(module.eval(), x, label + " in eval mode")
    expect_close(got, expected, label + " in eval mode", atol=1e-10, rtol=1e-8,
                 hint="in eval mode dropout must do nothing: use nn.Dropout (a module follows "
                      "model.eval()), or F.dropout(..., training=self.training).")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        got = _run(module.train(), x, label + " in training mode")
    dropped, kept = got == 0, torch.isclose(got, 2 * expected, atol=1e-10, rtol=1e-8)
    if not torch.all(dropped | kept) or not dropped.any():
        if torch.allclose(got, expected, atol=1e-10, rtol=1e-8):
            fail(label + " in training mode", "dropped nothing: with p=0.5 about half the outputs should be 0.",
                 hint="store nn.Dropout(dropout) in __init__ and apply it in forward.")
        fail(label + " in training mode",
             "each output should be either 0 (dropped) or the FFN's output times 1/(1-p) = 2.",
             hint="in this notebook dropout goes on the FFN's output, after linear2 "
                  "(self.dropout(self.linear2(h))), not after the activation.")
    passed("FeedForward", f"{n_cases} cases: the default, 4 named activations and a callable; d_ff, "
                          "the ValueError and dropout")


def _swiglu(x, state, gate=F.silu, swap=False, gated=True, outer=False):
    a = F.linear(x, state["w1.weight"])
    b = F.linear(x, state["w3.weight"])
    if swap:
        a, b = b, a
    if outer:
        h = gate(a * b)
    else:
        h = gate(a) * b if gated else gate(a)
    return F.linear(h, state["w2.weight"])


def check_SwiGLU(SwiGLU) -> None:
    """Check ``SwiGLU(d_model, d_ff)``: w2(silu(w1 x) * w3 x), no biases."""
    g = rng(43)
    d, d_ff = 8, 12
    label = f"SwiGLU({d}, {d_ff})"
    module = build_module(SwiGLU, label, d, d_ff)
    for attr, (n_in, n_out) in (("w1", (d, d_ff)), ("w3", (d, d_ff)), ("w2", (d_ff, d))):
        layer = getattr(module, attr, None)
        if not isinstance(layer, nn.Linear):
            fail(label, f"should have an nn.Linear named self.{attr}.", got=describe(layer),
                 hint="LLaMA's names: w1 = gate (d_model -> d_ff), w3 = up (d_model -> d_ff), "
                      "w2 = down (d_ff -> d_model).")
        if (layer.in_features, layer.out_features) != (n_in, n_out):
            fail(label, f"self.{attr} has the wrong size.", expected=f"nn.Linear({n_in}, {n_out})",
                 got=f"nn.Linear({layer.in_features}, {layer.out_features})",
                 hint="w1 and w3 map d_model -> d_ff; w2 maps d_ff -> d_model.")
        if layer.bias is not None:
            fail(label, f"self.{attr} has a bias; LLaMA's feed-forward layers have none.",
                 hint="nn.Linear(..., bias=False) for all three.")
    shapes = {"w1.weight": (d_ff, d), "w2.weight": (d, d_ff), "w3.weight": (d_ff, d)}
    _expect_state(module, shapes, label, "only w1, w2 and w3 hold weights, with no biases.")

    cases = [("x of shape (2, 5, 8)", (2, 5, d)), ("x of shape (1, 1, 8)", (1, 1, d)),
             ("x of shape (3, 4, 8)", (3, 4, d))]
    for what, shape in cases:
        label = f"SwiGLU({d}, {d_ff}) on {what}"
        module = build_module(SwiGLU, label, d, d_ff)
        state = _random_state(shapes, g)
        _load(module, state)
        x = torch.randn(*shape, generator=g, dtype=F64) * 2
        got = _run(module, x, label)
        mistakes = {
            "you gated the wrong branch: silu goes on w1 x (the gate), which then multiplies w3 x "
            "(the up projection): w2(silu(w1 x) * w3 x).": _swiglu(x, state, swap=True),
            "there is no gating: the silu branch must be multiplied elementwise by w3 x.":
                [_swiglu(x, state, gated=False), _swiglu(x, state, gated=False, swap=True)],
            "you used sigmoid as the gate (that is the original GLU); SwiGLU uses silu, "
            "x * sigmoid(x) (F.silu).": [_swiglu(x, state, gate=torch.sigmoid),
                                         _swiglu(x, state, gate=torch.sigmoid, swap=True)],
            "you used GELU as the gate (that is GEGLU); SwiGLU uses silu (F.silu).":
                [_swiglu(x, state, gate=F.gelu), _swiglu(x, state, gate=F.gelu, swap=True)],
            "silu applies to w1 x alone, before the product: silu(w1 x) * w3 x, not silu(w1 x * w3 x).":
                _swiglu(x, state, outer=True),
            "there is no activation: the gate is silu(w1 x).": _swiglu(x, state, gate=lambda t: t),
        }
        expect_close(got, _swiglu(x, state), label, atol=1e-10, rtol=1e-8, mistakes=mistakes)
    passed("SwiGLU", f"{len(cases)} cases with copied random weights, names w1/w2/w3, no biases")

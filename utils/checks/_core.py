"""The small toolkit every checker is written with.

A checker calls the learner's code on several inputs, compares with an
independent ground truth, and either prints one success line or raises
``AssertionError`` whose message says what was expected, what came back, and,
when the wrong answer matches a mistake we know, what that mistake probably is.
It never prints the solution.
"""

from __future__ import annotations

from typing import Callable, Mapping

import torch

# How many leading values of a tensor a failure message shows.
_SHOW = 6


def rng(seed: int = 0) -> torch.Generator:
    """A private random generator: checking must not change the notebook's random stream."""
    return torch.Generator().manual_seed(seed)


def tril_mask(n: int) -> torch.Tensor:
    """(n, n) bool, True on and below the diagonal: query i may attend to keys 0..i.

    The checkers' own ground truth, written out rather than taken from
    utils.reference, which the learner's code may share.
    """
    return torch.ones(n, n, dtype=torch.bool).tril()


def passed(name: str, detail: str) -> None:
    """The one line a checker prints when everything holds."""
    print(f"✔ {name}: all checks passed ({detail}).")


def describe(x: object) -> str:
    """A short description of a value: shape and dtype for tensors."""
    if isinstance(x, torch.Tensor):
        return f"tensor of shape {tuple(x.shape)}, dtype {x.dtype}"
    if isinstance(x, tuple):
        return f"tuple of {len(x)}: (" + ", ".join(describe(e) for e in x) + ")"
    return f"{type(x).__name__} {x!r}"[:120]


def preview(x: torch.Tensor) -> str:
    """The first few values of a tensor, flattened, at 4 decimals."""
    flat = x.detach().reshape(-1)[:_SHOW].tolist()
    body = ", ".join(f"{v:.4f}" if isinstance(v, float) else str(v) for v in flat)
    more = ", ..." if x.numel() > _SHOW else ""
    return f"[{body}{more}]"


def call(fn: Callable, label: str, *args, **kwargs):
    """Call the learner's ``fn``; turn a crash into a clear AssertionError.

    NotImplementedError passes through untouched: it means "not attempted yet",
    and the self-check reports it that way.
    """
    try:
        return fn(*args, **kwargs)
    except (NotImplementedError, AssertionError):
        raise
    except Exception as e:  # noqa: BLE001 - any crash in learner code is reported
        shapes = ", ".join(describe(a) for a in args)
        raise AssertionError(
            f"{label} raised {type(e).__name__}: {e}\n"
            f"  called with: {shapes}"
        ) from None


def build_module(cls, label: str, *args, **kwargs):
    """Instantiate the learner's nn.Module class without touching the global random stream.

    Building a module draws random initial weights; doing that inside
    ``fork_rng`` leaves the notebook's own random numbers as they were.
    """
    import torch.nn as nn

    with torch.random.fork_rng(devices=[]):
        module = call(cls, label, *args, **kwargs)
    if not isinstance(module, nn.Module):
        fail(label, "should build an nn.Module.", got=describe(module),
             hint="subclass nn.Module and call super().__init__() first.")
    return module


def fail(label: str, problem: str, expected: str | None = None, got: str | None = None,
         hint: str | None = None) -> None:
    """Raise the AssertionError every checker raises, in one format."""
    lines = [f"{label}: {problem}"]
    # A multi-line value (a grid) starts on its own line, after no trailing space.
    if expected is not None:
        lines.append("  expected:" + ("" if expected.startswith("\n") else " ") + expected)
    if got is not None:
        lines.append("  got:" + ("" if got.startswith("\n") else "      ") + got)
    if hint:
        lines.append(f"Hint: {hint}")
    raise AssertionError("\n".join(lines))


def expect_unchanged(before: torch.Tensor, after: torch.Tensor, label: str, what: str = "its input",
                     hint: str | None = None) -> None:
    """Fail when the learner's code wrote into a tensor the caller passed in."""
    if not torch.equal(before, after):
        fail(label, f"changed {what} in place.",
             hint=hint or "write x = x + ..., not x += ...: += writes into the caller's tensor, "
                          "which the caller still needs.")


def expect_tensor(got: object, label: str) -> torch.Tensor:
    if not isinstance(got, torch.Tensor):
        fail(label, "should return a torch.Tensor.", got=describe(got))
    return got


def expect_shape(got: torch.Tensor, shape: tuple, label: str, hint: str | None = None) -> None:
    if tuple(got.shape) != tuple(shape):
        fail(label, "returned the wrong shape.", expected=str(tuple(shape)),
             got=str(tuple(got.shape)), hint=hint)


def expect_dtype(got: torch.Tensor, dtype: torch.dtype, label: str, hint: str | None = None) -> None:
    if got.dtype != dtype:
        fail(label, "returned the wrong dtype.", expected=str(dtype), got=str(got.dtype), hint=hint)


def is_close(a: torch.Tensor, b: torch.Tensor, atol: float, rtol: float, equal_nan: bool = False) -> bool:
    """allclose that returns False (rather than raising) when the shapes differ."""
    if a.shape != b.shape:
        return False
    return bool(torch.allclose(a.detach().to(b.dtype), b, atol=atol, rtol=rtol, equal_nan=equal_nan))


def expect_close(
    got: torch.Tensor,
    expected: torch.Tensor,
    label: str,
    *,
    atol: float,
    rtol: float = 0.0,
    mistakes: Mapping[str, torch.Tensor | list[torch.Tensor]] | None = None,
    hint: str | None = None,
) -> None:
    """Assert ``got`` matches ``expected``; name a known mistake if ``got`` matches one.

    ``mistakes`` maps a hint to the output that mistake would produce (or a list
    of the outputs its variants would produce): when the learner's answer equals
    one of them, that hint is the one we show. NaN matches NaN there, because
    some mistakes are recognised by where they overflow.
    """
    expect_shape(got, expected.shape, label)
    if is_close(got, expected, atol, rtol):
        return
    problem = "values are wrong."
    if torch.isnan(got).any():
        problem = f"returned NaN in {int(torch.isnan(got).sum())} of {got.numel()} entries."
    elif torch.isinf(got).any():
        problem = f"returned inf in {int(torch.isinf(got).sum())} of {got.numel()} entries."
    else:
        diff = (got.detach().to(expected.dtype) - expected).abs()
        idx = tuple(int(i) for i in torch.unravel_index(diff.argmax(), diff.shape))
        problem = (f"values are wrong (largest difference {diff.max().item():.3g} "
                   f"at index {idx}, tolerance {atol:g}).")
    for mistake_hint, wrong in (mistakes or {}).items():
        candidates = wrong if isinstance(wrong, (list, tuple)) else [wrong]
        if any(is_close(got, w, atol=max(atol, 1e-6), rtol=max(rtol, 1e-5), equal_nan=True)
               for w in candidates):
            hint = mistake_hint
            break
    fail(label, problem, expected=preview(expected), got=preview(got), hint=hint)

"""Finite-difference gradient checking, for backward passes written by hand (notebook 11).

A backward pass claims to know how the loss changes when each input entry moves.
The loss itself can be asked: nudge one entry by ``±eps`` and watch it move.
Central differences,

    df/dx_i ≈ (f(x + eps·e_i) - f(x - eps·e_i)) / (2·eps),

are accurate to O(eps²), so in float64 with ``eps = 1e-6`` a correct gradient
agrees to a relative error of about 1e-10, and a wrong one (a missing term, a
factor, a sign) is off by 1e-3 or much more::

    from utils.gradcheck import gradcheck

    y = layer.forward(x)
    dy = rng.normal(size=y.shape)                  # any fixed upstream gradient
    dx = layer.backward(dy)
    loss = lambda: float((layer.forward(x) * dy).sum())   # then dL/dx is exactly dx
    gradcheck(loss, x, dx)                          # raises AssertionError if they disagree

``f`` takes no argument and reads ``x`` itself: ``x`` is changed in place,
one entry at a time, and restored. That is what lets the same function check
a layer's parameters (pass ``layer.params["W"]``) as well as its input.

It costs two evaluations of ``f`` per entry of ``x``, so check small inputs.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["numerical_gradient", "relative_error", "gradcheck"]


def _check_array(x: object, name: str) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array, got {type(x).__name__}")
    if x.dtype != np.float64:
        raise TypeError(f"{name} must be float64, got {x.dtype}: in lower precision, rounding "
                        "swamps a finite difference; convert with .astype(np.float64)")
    return x


def numerical_gradient(f: Callable[[], float], x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """The gradient of the scalar ``f()`` with respect to ``x``, by central differences.

    f:   a function of no arguments returning a real number; it must read ``x``
    x:   float64 array, perturbed in place one entry at a time and restored exactly
    eps: the step; 1e-6 suits float64 values of order 1
    returns: an array of the shape of ``x``
    """
    _check_array(x, "x")
    if not x.flags.writeable:
        raise ValueError("x must be writeable: numerical_gradient nudges its entries in place")
    if not (np.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a positive number, got {eps!r}")

    def value() -> float:
        out = f()
        if isinstance(out, np.ndarray) and out.shape == ():
            out = out[()]  # a 0-d array holds one number
        if isinstance(out, (bool, np.bool_)) or not isinstance(out, (int, float, np.integer, np.floating)):
            shape = getattr(out, "shape", None)
            raise TypeError("f must return a real scalar (the loss), got "
                            + (f"an array of shape {shape}" if shape else type(out).__name__))
        return float(out)

    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        try:
            x[i] = old + eps
            plus = value()
            x[i] = old - eps
            minus = value()
        finally:
            x[i] = old  # restored even if f raises
        grad[i] = (plus - minus) / (2 * eps)
    return grad


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """``‖a - b‖ / (‖a‖ + ‖b‖)`` over all entries: 0 when equal, 1 when one is 0 and the other is not.

    Scale-free, so the same threshold works for tiny and for large gradients.
    Two all-zero arrays have relative error 0.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"cannot compare arrays of shapes {a.shape} and {b.shape}")
    scale = np.linalg.norm(a) + np.linalg.norm(b)
    return 0.0 if scale == 0 else float(np.linalg.norm(a - b) / scale)


def gradcheck(f: Callable[[], float], x: np.ndarray, analytic: np.ndarray, *, eps: float = 1e-6,
              tol: float = 1e-6, atol: float = 1e-8) -> float:
    """Compare a hand-written gradient ``analytic`` (dL/dx) with finite differences of ``f``.

    Passes when the relative error is at most ``tol``, or when every entry is
    within ``atol`` of its finite difference. The second test is for gradients
    that are zero (some are, exactly: attention's key bias): there the
    relative error compares two kinds of rounding noise and means nothing.
    Returns the relative error; otherwise raises AssertionError saying how
    large it is and where the two disagree most.
    """
    _check_array(x, "x")
    if not isinstance(analytic, np.ndarray):
        raise TypeError(f"analytic must be a NumPy array, got {type(analytic).__name__}")
    if analytic.shape != x.shape:
        raise ValueError(f"the gradient must have the shape of x: x is {x.shape}, "
                         f"the gradient is {analytic.shape}")
    numeric = numerical_gradient(f, x, eps)
    err = relative_error(analytic, numeric)
    diff = np.abs(analytic - numeric)
    diff[np.isnan(diff)] = np.inf  # a NaN is the worst disagreement there is
    if not (err <= tol or diff.max(initial=0.0) <= atol):  # NaN fails both
        worst = tuple(int(i) for i in np.unravel_index(np.argmax(diff), x.shape))
        raise AssertionError(
            f"gradient check failed: relative error {err:.2e} > tolerance {tol:.0e}; largest "
            f"difference {diff[worst]:.2e} (> atol {atol:.0e}) at index {worst}: "
            f"analytic {analytic[worst]:.6g}, numerical {numeric[worst]:.6g}")
    return err

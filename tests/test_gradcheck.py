"""utils.gradcheck accepts right gradients, rejects wrong ones, and says clearly what is wrong with its input."""

from __future__ import annotations

import numpy as np
import pytest

from utils.gradcheck import gradcheck, numerical_gradient, relative_error


@pytest.fixture
def problem():
    """L = sum(sin(x) * dy) and L = sum((x @ W) * dy), with their exact gradients."""
    rng = np.random.default_rng(0)
    x, dy = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    W, dz = rng.normal(size=(4, 2)), rng.normal(size=(3, 2))
    return x, dy, W, dz


def test_numerical_gradient_matches_a_known_gradient_and_restores_x(problem):
    x, dy, _, _ = problem
    before = x.copy()
    numeric = numerical_gradient(lambda: float((np.sin(x) * dy).sum()), x)
    assert np.allclose(numeric, np.cos(x) * dy, rtol=1e-8, atol=1e-10)
    assert np.array_equal(x, before)  # every entry put back exactly


def test_gradcheck_accepts_right_gradients_of_inputs_and_parameters(problem):
    x, dy, W, dz = problem
    assert gradcheck(lambda: float((np.sin(x) * dy).sum()), x, np.cos(x) * dy) < 1e-8

    def loss():
        return float(((x @ W) * dz).sum())

    assert gradcheck(loss, W, x.T @ dz) < 1e-8  # a parameter, nudged in place
    assert gradcheck(loss, x, dz @ W.T) < 1e-8


@pytest.mark.parametrize("mistake", ["sign", "factor", "reordered", "one entry", "nan"])
def test_gradcheck_rejects_wrong_gradients(problem, mistake):
    x, dy, W, dz = problem
    right = dz @ W.T
    wrong = {"sign": -right, "factor": 2 * right, "reordered": right[::-1].copy()}.get(mistake, right.copy())
    if mistake == "one entry":  # off by 1e-2 in a single place
        wrong[0, 0] += 1e-2
    if mistake == "nan":
        wrong[1, 2] = np.nan
    with pytest.raises(AssertionError, match="gradient check failed: relative error"):
        gradcheck(lambda: float(((x @ W) * dz).sum()), x, wrong)


def test_gradcheck_failure_names_the_worst_entry(problem):
    x, dy, _, _ = problem
    wrong = np.cos(x) * dy
    wrong[2, 1] += 1.0
    with pytest.raises(AssertionError, match=r"at index \(2, 1\)"):
        gradcheck(lambda: float((np.sin(x) * dy).sum()), x, wrong)


def test_gradcheck_accepts_a_gradient_that_is_exactly_zero():
    # L does not depend on b at all (like attention's key bias): relative error is noise/noise.
    rng = np.random.default_rng(1)
    x, b = rng.normal(size=5), rng.normal(size=5)

    def loss():
        z = x + b.sum()  # shifts every entry equally...
        e = np.exp(z - z.max())
        return float((e / e.sum()) @ np.arange(5.0))  # ...which a softmax ignores

    gradcheck(loss, b, np.zeros(5))
    with pytest.raises(AssertionError):
        gradcheck(loss, b, np.full(5, 1e-3))  # a small but real gradient is not noise


def test_relative_error_properties():
    a = np.array([1.0, 2.0, 3.0])
    assert relative_error(a, a) == 0.0
    assert relative_error(a, np.zeros(3)) == 1.0
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert relative_error(1e-9 * a, 1.1e-9 * a) == pytest.approx(relative_error(a, 1.1 * a))  # scale-free
    with pytest.raises(ValueError, match=r"shapes \(3,\) and \(2,\)"):
        relative_error(a, np.ones(2))


@pytest.mark.parametrize(
    "x, error, words",
    [
        (np.ones(3, dtype=np.float32), TypeError, "must be float64"),
        (np.ones(3, dtype=np.int64), TypeError, "must be float64"),
        ([1.0, 2.0], TypeError, "must be a NumPy array"),
    ],
    ids=["float32", "int", "list"],
)
def test_bad_x_gives_a_clear_error(x, error, words):
    with pytest.raises(error, match=words):
        numerical_gradient(lambda: 0.0, x)


def test_bad_f_eps_and_analytic_give_clear_errors():
    x = np.ones((2, 3))
    with pytest.raises(TypeError, match=r"f must return a real scalar \(the loss\), got an array of shape \(2, 3\)"):
        numerical_gradient(lambda: x * 2, x)
    with pytest.raises(TypeError, match="f must return a real scalar"):
        numerical_gradient(lambda: "loss", x)
    with pytest.raises(ValueError, match="eps must be a positive number"):
        numerical_gradient(lambda: float(x.sum()), x, eps=0.0)
    with pytest.raises(ValueError, match=r"shape of x: x is \(2, 3\), the gradient is \(3, 2\)"):
        gradcheck(lambda: float(x.sum()), x, np.ones((3, 2)))
    with pytest.raises(TypeError, match="analytic must be a NumPy array"):
        gradcheck(lambda: float(x.sum()), x, [[1.0] * 3] * 2)
    readonly = np.ones(3)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="must be writeable"):
        numerical_gradient(lambda: float(readonly.sum()), readonly)


def test_x_is_restored_even_when_f_raises():
    x = np.arange(3.0)
    calls = []

    def f():
        calls.append(x.copy())
        if len(calls) == 2:
            raise RuntimeError("boom")
        return float(x.sum())

    with pytest.raises(RuntimeError, match="boom"):
        numerical_gradient(f, x)
    assert np.array_equal(x, np.arange(3.0))

"""The tests every checker gets, written once.

Each tests/test_checks_<module>.py lists its checkers with their reference
implementations, and its plausible wrong implementations with the hint each
must trigger, then binds the tests made here at module level::

    (test_checker_accepts_reference,
     test_checker_rejects_mistake_with_targeted_message,
     test_every_checker_has_at_least_four_mistakes,
     test_checker_passes_not_implemented_through,
     test_checker_leaves_the_global_random_stream_alone) = checker_tests(REFERENCES, CASES)
"""

from __future__ import annotations

import inspect
from collections import Counter

import pytest
import torch
import torch.nn as nn


def _name(x) -> str:
    return getattr(x, "__name__", "lambda")


def _unfinished(solution) -> list:
    """Versions of an exercise a learner has not finished: each raises NotImplementedError.

    A function: one that raises. A class: one whose ``__init__`` raises, and,
    for each public method the solution defines (forward, encode, decode...),
    a subclass whose method raises while the rest works.
    """
    def not_done(*args, **kwargs):
        raise NotImplementedError("Exercise: replace this line with your code.")

    if not inspect.isclass(solution):
        return [not_done]

    class InitNotDone(nn.Module):
        def __init__(self, *args, **kwargs):
            super().__init__()
            not_done()

    versions = [InitNotDone]
    for name, member in vars(solution).items():
        if inspect.isfunction(member) and not name.startswith("_"):
            versions.append(type(f"{name}_not_done", (solution,), {name: not_done}))
    return versions


def checker_tests(references, cases):
    """references: [(checker, reference)]; cases: [(checker, wrong, hint fragment)]."""

    @pytest.mark.parametrize("checker, solution", references, ids=[_name(c) for c, _ in references])
    def test_checker_accepts_reference(checker, solution, capsys):
        checker(solution)
        out = capsys.readouterr().out.strip().splitlines()
        assert len(out) == 1 and "all checks passed" in out[0], out

    @pytest.mark.parametrize(
        "checker, wrong, hint", cases,
        ids=[f"{_name(c)}-{_name(w)}-{i}" for i, (c, w, _) in enumerate(cases)],
    )
    def test_checker_rejects_mistake_with_targeted_message(checker, wrong, hint):
        with pytest.raises(AssertionError) as info:
            checker(wrong)
        message = str(info.value)
        assert hint in message, f"expected the hint {hint!r} in:\n{message}"
        # The message is for a person: what was expected or what went wrong, briefly.
        assert len(message.splitlines()) < 20

    def test_every_checker_has_at_least_four_mistakes():
        counts = Counter(_name(c) for c, _, _ in cases)
        too_few = {_name(c): counts[_name(c)] for c, _ in references if counts[_name(c)] < 4}
        assert not too_few, f"checkers tested against fewer than four wrong implementations: {too_few}"

    @pytest.mark.parametrize("checker, solution", references, ids=[_name(c) for c, _ in references])
    def test_checker_passes_not_implemented_through(checker, solution):
        # The self-check reports an exercise still raising NotImplementedError as "not attempted".
        for unfinished in _unfinished(solution):
            with pytest.raises(NotImplementedError):
                checker(unfinished)

    @pytest.mark.parametrize("checker, solution", references, ids=[_name(c) for c, _ in references])
    def test_checker_leaves_the_global_random_stream_alone(checker, solution, capsys):
        torch.manual_seed(123)
        expected = torch.rand(3)
        torch.manual_seed(123)
        checker(solution)
        assert torch.equal(torch.rand(3), expected), "the checker changed the notebook's random stream"

    return (test_checker_accepts_reference, test_checker_rejects_mistake_with_targeted_message,
            test_every_checker_has_at_least_four_mistakes, test_checker_passes_not_implemented_through,
            test_checker_leaves_the_global_random_stream_alone)

"""The harness that fills student notebooks as a learner would (tests/learner_code.py)."""

from __future__ import annotations

import pytest

from learner_code import exercise_keys, fill_student_notebook, reference_bodies
from utils.build import BEGIN, END, NOTEBOOKS_DIR, SOLUTION_ONLY_TAG, SOLUTIONS_DIR, read_notebook

STEMS = sorted(p.stem for p in SOLUTIONS_DIR.glob("*.ipynb"))


def _without_markers(source: str) -> str:
    return "\n".join(line for line in source.split("\n") if line.strip() not in (BEGIN, END))


@pytest.mark.parametrize("stem", STEMS)
def test_filling_with_the_reference_gives_the_solution_code(stem):
    filled = fill_student_notebook(stem)
    solution = [c for c in read_notebook(SOLUTIONS_DIR / f"{stem}.ipynb").cells
                if SOLUTION_ONLY_TAG not in c.metadata.get("tags", [])]
    assert [c.cell_type for c in filled.cells] == [c.cell_type for c in solution]
    for got, want in zip(filled.cells, solution):
        if got.cell_type == "code":
            assert [l.rstrip() for l in got.source.split("\n")] == [
                l.rstrip() for l in _without_markers(want.source).split("\n")]
    assert list(reference_bodies(SOLUTIONS_DIR / f"{stem}.ipynb")) == exercise_keys(NOTEBOOKS_DIR / f"{stem}.ipynb")


def test_a_body_replaces_only_its_exercise():
    filled = fill_student_notebook("01_attention", {"softmax": "return torch.softmax(x, dim=dim)"})
    code = "\n".join(c.source for c in filled.cells if c.cell_type == "code")
    assert "    return torch.softmax(x, dim=dim)" in code and "NotImplementedError(\"Exercise" not in code


def test_an_unknown_exercise_is_an_error():
    with pytest.raises(KeyError, match="no exercise named"):
        fill_student_notebook("01_attention", {"softmaxx": "pass"})

"""Correct learner code in other styles: it passes its check cell and no later cell fails.

For each notebook, ``variants/nbNN.py`` holds sets of exercise bodies written
as learners write them, from the student notebook's docstrings alone, in
styles other than the reference's (einsum for matmul, another order of
creating layers, so another use of the random stream, torch.where for
masked_fill...). Each set fills the student notebook (exercises it does not
name get the reference body) and the self-check runs it top to bottom: every
exercise must pass and no other cell may fail. That is the promise the course
makes a learner: a correct answer is never rejected and never breaks a later
experiment, whatever CPU and whatever random numbers it draws.

    make test-variants                               # every notebook
    .venv/bin/python -m pytest tests_variants -k nb04   # one notebook
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from learner_code import exercise_keys, fill_student_notebook  # noqa: E402

from utils.build import NOTEBOOKS_DIR, write_notebook  # noqa: E402
from utils.check import FAILED, NOT_ATTEMPTED, format_report, check_notebook  # noqa: E402

STEMS = sorted(p.stem for p in NOTEBOOKS_DIR.glob("*.ipynb"))


def _variants(stem: str) -> dict[str, dict[str, str]]:
    """The variant sets of one notebook ({} when its file is missing: a test below says so)."""
    try:
        module = importlib.import_module(f"variants.nb{stem[:2]}")
    except ModuleNotFoundError:
        return {}
    return module.VARIANTS


CASES = [pytest.param(stem, name, id=f"nb{stem[:2]}-{name}")
         for stem in STEMS for name in _variants(stem)]


@pytest.mark.parametrize("stem", STEMS)
def test_every_exercise_has_a_correct_variant_in_another_style(stem):
    written = {key for bodies in _variants(stem).values() for key in bodies}
    missing = [key for key in exercise_keys(NOTEBOOKS_DIR / f"{stem}.ipynb") if key not in written]
    assert not missing, f"{stem}: no variant written for {missing}"


@pytest.mark.parametrize("stem, name", CASES)
def test_variant_passes_and_breaks_no_later_cell(stem, name, tmp_path):
    nb = fill_student_notebook(stem, _variants(stem)[name])
    path = tmp_path / f"{stem}.ipynb"
    write_notebook(nb, path)
    report = check_notebook(path)
    bad = [r for r in report.results if r.status in (FAILED, NOT_ATTEMPTED)]
    assert not bad and not report.cell_errors, f"variant {name!r}:\n{format_report(report)}"

"""Every checker has a reference implementation, a test file, and a notebook that uses it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from utils import checks, reference
from utils._registry import export_all

ROOT = Path(__file__).resolve().parents[1]
CHECKERS = sorted(n for n in checks.__all__ if n.startswith("check_"))


def test_there_are_checkers():
    assert "check_softmax" in CHECKERS


@pytest.mark.parametrize("name", CHECKERS)
def test_checker_has_a_reference_implementation(name):
    exercise = name.removeprefix("check_")
    assert exercise in reference.__all__, f"{name} has no utils.reference.{exercise} to test it against"


@pytest.mark.parametrize("name", CHECKERS)
def test_checker_is_tested_against_wrong_implementations(name):
    sources = "".join(p.read_text() for p in (ROOT / "tests").glob("test_checks_*.py")
                      if p.name != "test_checks_registry.py")
    assert re.search(rf"\b{name}\b", sources), f"no tests/test_checks_*.py exercises {name}"


@pytest.mark.parametrize("name", CHECKERS)
def test_checker_is_used_by_a_solution_notebook(name):
    notebooks = "".join(p.read_text() for p in (ROOT / "solutions").glob("*.ipynb"))
    assert re.search(rf"\b{name}\(", notebooks), f"no solution notebook calls {name}(...)"


def test_two_modules_exporting_one_name_is_an_error(tmp_path, monkeypatch):
    package = tmp_path / "dup_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for module in ("a", "b"):
        (package / f"{module}.py").write_text("__all__ = ['f']\ndef f(): pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportError, match="'f' is exported by both a and b"):
        export_all("dup_pkg", [str(package)], {})

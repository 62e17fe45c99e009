"""Tests of the learner's self-check (utils/check.py).

First on a small fixture notebook with its own tiny checkers, then on the
real notebook 01: its solution passes, its student version is "not attempted"
everywhere, and a planted mistake in softmax is reported with the checker's
own message.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat import v4

from utils import build, check
from utils.check import FAILED, NOT_ATTEMPTED, PASSED

CHECKERS = '''\
import types

def _check(name, fn, x, want):
    got = fn(x)
    if got != want:
        raise AssertionError(f"{name}({x}) returned {got!r}\\n  expected: {want!r}\\nHint: read the docstring again.")
    print(f"{name}: all checks passed.")

def check_double(fn): _check("double", fn, 3, 6)
def check_triple(fn): _check("triple", fn, 3, 9)
def check_square(fn): _check("square", fn, 3, 9)
def check_negate(fn): _check("negate", fn, 3, -3)
def check_halve(x): _check("halve", lambda _: x, 3, 1.5)

checks = types.SimpleNamespace(check_triple=check_triple)'''

FIXTURE_CELLS = [
    ("markdown", "# A notebook with five exercises"),
    ("code", CHECKERS),
    ("code", "def double(x):\n    return 2 * x"),                              # passes
    ("code", "check_double(double)"),
    ("code", "def triple(x):\n    return x + 3"),                              # wrong answer
    ("code", "checks.check_triple(triple)"),
    ("code", 'def square(x):\n    # YOUR CODE HERE\n    raise NotImplementedError("Exercise square: replace this line with your code.")'),
    ("code", "check_square(square)"),
    ("code", "1 / 0  # an unrelated error"),
    ("code", "def negate(x):\n    return -x.real_part"),                       # crashes
    ("code", "check_negate(negate)"),
    ("code", '# YOUR CODE HERE\nraise NotImplementedError("Exercise: replace this line with your code.")'),
    ("code", "check_halve(half)"),                                             # NameError: not attempted
]

EXPECTED = [
    ("double", PASSED),
    ("triple", FAILED),
    ("square", NOT_ATTEMPTED),
    ("negate", FAILED),
    ("halve", NOT_ATTEMPTED),
]


def write_notebook(path, cells):
    nb = v4.new_notebook()
    nb.cells = [v4.new_code_cell(s) if kind == "code" else v4.new_markdown_cell(s) for kind, s in cells]
    path.write_text(nbformat.writes(nb), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def fixture_notebook(tmp_path_factory):
    return write_notebook(tmp_path_factory.mktemp("selfcheck") / "05_fixture.ipynb", FIXTURE_CELLS)


@pytest.fixture(scope="module")
def fixture_report(fixture_notebook):
    before = fixture_notebook.read_bytes()
    report = check.check_notebook(fixture_notebook)
    assert fixture_notebook.read_bytes() == before, "the self-check must not modify the learner's file"
    return report


# ---------------------------------------------------------------- fixture notebook


def test_each_exercise_gets_its_status(fixture_report):
    assert [(r.name, r.status) for r in fixture_report.results] == EXPECTED
    assert fixture_report.exit_status == 1


def test_failure_messages(fixture_report):
    results = {r.name: r for r in fixture_report.results}
    assert results["triple"].message == "triple(3) returned 6\n  expected: 9\nHint: read the docstring again."
    assert results["negate"].message == "AttributeError: 'int' object has no attribute 'real_part'"
    assert results["square"].message == "Exercise square: replace this line with your code."
    assert results["halve"].message == "Exercise: replace this line with your code."
    assert results["double"].message == ""


def test_errors_in_other_cells_are_listed_without_unfinished_exercises(fixture_report):
    assert [(e.number, e.ename) for e in fixture_report.cell_errors] == [(9, "ZeroDivisionError")]


def test_report_text(fixture_report):
    text = check.format_report(fixture_report)
    table = [line.split(None, 1) for line in text.splitlines()[4:9]]
    assert [tuple(row) for row in table] == EXPECTED
    assert "\ntriple: FAILED\n    triple(3) returned 6\n      expected: 9\n    Hint: read the docstring again.\n" in text
    assert "  cell 9 (1 / 0  # an unrelated error) raised ZeroDivisionError: division by zero" in text
    assert text.endswith("\n5 exercises: 1 passed, 2 failed, 2 not attempted")


def test_at_most_five_cell_errors_are_listed():
    errors = [check.CellError(n, "ValueError", f"bad {n}\nmore detail") for n in range(1, 9)]
    report = check.Report(Path("x.ipynb"), [check.Result("a", PASSED)], errors)
    text = check.format_report(report)
    assert "  cell 5 raised ValueError: bad 5" in text
    assert "cell 6" not in text and "  ... and 3 more" in text
    assert text.endswith("1 exercise: 1 passed, 0 failed, 0 not attempted")


def test_command_line_exit_status_and_output(fixture_notebook):
    done = subprocess.run(
        [sys.executable, "-m", "utils.check", str(fixture_notebook)],
        capture_output=True, text=True, encoding="utf-8", cwd=build.ROOT, timeout=600,
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout.rstrip().endswith("5 exercises: 1 passed, 2 failed, 2 not attempted")


def test_not_attempted_is_not_a_failure(tmp_path, capsys):
    path = write_notebook(tmp_path / "nb.ipynb", FIXTURE_CELLS[:4] + FIXTURE_CELLS[6:8])
    assert check.main([str(path)]) == 0
    assert "2 exercises: 1 passed, 0 failed, 1 not attempted" in capsys.readouterr().out


def test_notebooks_that_cannot_be_checked_exit_2(tmp_path, capsys):
    assert check.main([str(tmp_path / "missing.ipynb")]) == 2
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("hello")
    assert check.main([str(tmp_path / "notes.txt")]) == 2
    assert "not a notebook" in capsys.readouterr().err
    path = write_notebook(tmp_path / "nb.ipynb", FIXTURE_CELLS[:3])
    assert check.main([str(path)]) == 2
    assert "no check cells" in capsys.readouterr().err


def test_number_shorthand(tmp_path):
    for folder, name in [("notebooks", "01_a"), ("notebooks", "02_b"), ("notebooks", "02_c"),
                         ("solutions", "01_a")]:
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / f"{name}.ipynb").write_text("{}")
    assert check.resolve_notebook("01", root=tmp_path) == tmp_path / "notebooks" / "01_a.ipynb"
    assert check.resolve_notebook("1", root=tmp_path) == tmp_path / "notebooks" / "01_a.ipynb"
    assert check.resolve_notebook("01", solution=True, root=tmp_path) == tmp_path / "solutions" / "01_a.ipynb"
    with pytest.raises(check.SelfCheckError, match="found 02_b.ipynb, 02_c.ipynb"):
        check.resolve_notebook("02", root=tmp_path)
    with pytest.raises(check.SelfCheckError, match="found none"):
        check.resolve_notebook("03", root=tmp_path)
    assert check.resolve_notebook("my.ipynb", root=tmp_path) == Path("my.ipynb")


# ---------------------------------------------------------------- the real notebook 01

SOLUTION_01 = build.SOLUTIONS_DIR / "01_attention.ipynb"
STUDENT_01 = build.NOTEBOOKS_DIR / "01_attention.ipynb"
EXERCISES_01 = ["softmax", "scaled_dot_product_attention", "causal_mask"]


def statuses(results):
    return {r.name: r.status for r in results}


def test_solution_01_passes_every_exercise():
    report = check.check_notebook(SOLUTION_01)
    assert [r.name for r in report.results] == EXERCISES_01
    assert all(r.status == PASSED for r in report.results), check.format_report(report)
    assert report.cell_errors == [], check.format_report(report)
    assert report.exit_status == 0


def test_student_01_is_not_attempted_everywhere():
    results = check.self_check(STUDENT_01)
    assert statuses(results) == {name: NOT_ATTEMPTED for name in EXERCISES_01}


def plant_softmax_mistake(nb) -> str:
    """Replace the softmax solution with one that skips the max and sums over dim 0.

    Edits the text between the markers of the cell that defines ``softmax``.
    Returns the wrong function's source (its ``def`` block only), so the test
    can run the checker on it too.
    """
    cell = next(c for c in nb.cells if c.cell_type == "code" and re.search(r"^def softmax\(", c.source, re.M))
    x = re.search(r"^def softmax\(\s*(\w+)", cell.source, re.M)[1]  # the first parameter's name
    begin, end = re.search(r"^([ \t]*)### BEGIN SOLUTION\n.*?^[ \t]*### END SOLUTION$", cell.source, re.M | re.S).span()
    indent = re.match(r"[ \t]*", cell.source[begin:])[0]
    wrong = f"{indent}e = {x}.exp()\n{indent}return e / e.sum(dim=0, keepdim=True)"
    cell.source = cell.source[:begin] + wrong + cell.source[end:]
    # The def block: from `def softmax(` to the next line that starts at column 0.
    block = re.search(r"^def softmax\(.*?(?=^\S|\Z)", cell.source, re.M | re.S)[0]
    return block


def test_a_planted_softmax_mistake_fails_with_the_checkers_message(tmp_path):
    nb = build.read_notebook(SOLUTION_01)
    wrong_source = plant_softmax_mistake(nb)
    path = tmp_path / SOLUTION_01.name
    path.write_text(build.dumps(nb), encoding="utf-8")

    report = check.check_notebook(path)
    results = {r.name: r for r in report.results}
    assert results["softmax"].status == FAILED, check.format_report(report)
    assert report.exit_status == 1

    # The message is the checker's own: run the checker here on the same wrong function.
    from utils.checks import check_softmax

    namespace: dict = {}
    exec("import math\nimport torch\n" + wrong_source, namespace)
    with pytest.raises(AssertionError) as expected:
        check_softmax(namespace["softmax"])
    assert results["softmax"].message.splitlines()[0] == str(expected.value).splitlines()[0]

    # The other exercises pass, unless their solution calls the learner's softmax.
    for name in EXERCISES_01[1:]:
        defining = next(c.source for c in nb.cells if c.cell_type == "code" and f"def {name}(" in c.source)
        if "softmax(" not in defining:
            assert results[name].status == PASSED, check.format_report(report)
        else:
            assert results[name].status in (PASSED, FAILED), check.format_report(report)

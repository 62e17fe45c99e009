"""Tests of the solution -> student builder (utils/build.py).

The first half builds small notebooks in memory. The second half runs over
the real course: every solutions/*.ipynb must have its student notebook in
notebooks/, byte for byte what the builder makes, and that notebook must run
up to its first exercise and stop there.
"""

from __future__ import annotations

import sys
from collections import Counter

import nbformat
import pytest
from nbclient.exceptions import CellExecutionError
from nbformat import v4

from utils import build

# ---------------------------------------------------------------- helpers


def notebook(*cells) -> nbformat.NotebookNode:
    nb = v4.new_notebook()
    nb.cells = list(cells)
    return nb


def code(source: str, **kw) -> nbformat.NotebookNode:
    return v4.new_code_cell(source, **kw)


def source_lines(cell) -> list[str]:
    return cell.source.split("\n")


RAISE_LINE = 'raise NotImplementedError("Exercise {}: replace this line with your code.")'

METHOD = '''\
class MultiHeadAttention(nn.Module):
    def __init__(self, d_model):
        super().__init__()

    def forward(self, x):
        """x: (batch, seq, d_model)."""
        ### BEGIN SOLUTION
        y = self.proj(x)
        ### END SOLUTION
        return y'''


# ---------------------------------------------------------------- marker replacement


def test_region_in_a_method_keeps_its_indentation_and_names_class_dot_method():
    student = build.make_student(notebook(code(METHOD)))
    assert source_lines(student.cells[0]) == [
        "class MultiHeadAttention(nn.Module):",
        "    def __init__(self, d_model):",
        "        super().__init__()",
        "",
        "    def forward(self, x):",
        '        """x: (batch, seq, d_model)."""',
        "        # YOUR CODE HERE",
        "        " + RAISE_LINE.format("MultiHeadAttention.forward"),
        "        return y",
    ]


def test_exercise_name_is_the_innermost_enclosing_function():
    source = (
        "def helper():\n"
        "    return 1\n"
        "\n"
        "def softmax(x, dim=-1):\n"
        '    """Softmax along dim."""\n'
        "    for _ in range(1):\n"
        "        ### BEGIN SOLUTION\n"
        "        x = x.exp()\n"
        "        ### END SOLUTION\n"
        "    return x\n"
    )
    lines = source_lines(build.make_student(notebook(code(source))).cells[0])
    assert "        " + RAISE_LINE.format("softmax") in lines
    assert "### BEGIN SOLUTION" not in "\n".join(lines)


def test_exercise_name_with_a_multi_line_signature_and_a_magic_cell():
    source = (
        "def attention(\n"
        "    q, k, v, mask=None\n"
        ") -> tuple:\n"
        '    """Docstring."""\n'
        "    ### BEGIN SOLUTION\n"
        "    return q, k\n"
        "    ### END SOLUTION\n"
    )
    lines = source_lines(build.make_student(notebook(code(source))).cells[0])
    assert "    " + RAISE_LINE.format("attention") in lines
    # Not plain Python (an IPython magic): the indentation walk still finds the name.
    magic = "%matplotlib inline\ndef f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n"
    lines = source_lines(build.make_student(notebook(code(magic))).cells[0])
    assert "    " + RAISE_LINE.format("f") in lines


def test_top_level_region_has_no_name_and_two_regions_in_one_cell():
    source = (
        "### BEGIN SOLUTION\n"
        "answer = 42\n"
        "### END SOLUTION\n"
        "def f(x):\n"
        "  ### BEGIN SOLUTION\n"
        "  return x\n"
        "  ### END SOLUTION\n"
    )
    lines = source_lines(build.make_student(notebook(code(source))).cells[0])
    assert lines == [
        "# YOUR CODE HERE",
        'raise NotImplementedError("Exercise: replace this line with your code.")',
        "def f(x):",
        "  # YOUR CODE HERE",
        "  " + RAISE_LINE.format("f"),
        "",
    ]


def test_a_function_after_a_block_at_lower_indentation_is_not_the_enclosing_one():
    source = "def f():\n    pass\nfor i in range(2):\n    ### BEGIN SOLUTION\n    i\n    ### END SOLUTION"
    lines = source_lines(build.make_student(notebook(code(source))).cells[0])
    assert lines[-1] == '    raise NotImplementedError("Exercise: replace this line with your code.")'


@pytest.mark.parametrize(
    "source, line, words",
    [
        ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n### END SOLUTION", 2, "cannot nest"),
        ("x = 1\n### BEGIN SOLUTION\nx = 2", 2, "never closed"),
        ("x = 1\n### END SOLUTION", 2, "without"),
        ("def f():\n    ## BEGIN SOLUTION\n    pass", 2, "looks like a solution marker"),
    ],
    ids=["nested", "unclosed", "end-without-begin", "misspelt"],
)
def test_malformed_markers_name_file_cell_and_line(source, line, words):
    nb = notebook(v4.new_markdown_cell("# Title"), code(source))
    with pytest.raises(ValueError, match=rf"^solutions/x\.ipynb, cell 2, line {line}: .*{words}"):
        build.make_student(nb, "solutions/x.ipynb")


def test_marker_in_a_markdown_cell_is_an_error():
    nb = notebook(code("x = 1"), v4.new_markdown_cell("Some text\n  ### END SOLUTION\n"))
    with pytest.raises(ValueError, match=r"x\.ipynb, cell 2, line 2: .*non-code cell"):
        build.make_student(nb, "x.ipynb")


# ---------------------------------------------------------------- cells and metadata


def messy_solution() -> nbformat.NotebookNode:
    """A solution notebook with everything a live Jupyter session leaves behind."""
    first = code("print('hi')", execution_count=3,
                 outputs=[v4.new_output("stream", text="hi\n")])
    first.metadata = {"collapsed": True, "scrolled": True, "ExecuteTime": {"end": "x"},
                      "execution": {"iopub.status.busy": "2024"}, "tags": []}
    tagged = code("x = 1", execution_count=4,
                  outputs=[v4.new_output("execute_result", {"text/plain": "1"}, execution_count=4)])
    tagged.metadata = {"tags": ["nbval-ignore-output"], "jupyter": {"outputs_hidden": True}}
    hidden = code("print('answer')", execution_count=5)
    hidden.metadata = {"tags": ["solution-only"]}
    nb = notebook(v4.new_markdown_cell("# 01 · Attention — ünïcode"), first, tagged, hidden)
    nb.metadata = {
        "kernelspec": {"name": "conda-env-py", "display_name": "Py (conda)", "language": "python"},
        "language_info": {"name": "python", "version": "3.11.4", "mimetype": "text/x-python"},
        "widgets": {"state": {}},
        "colab": {"provenance": []},
    }
    return nb


def test_student_notebook_has_no_outputs_clean_metadata_and_the_solution_ids():
    solution = messy_solution()
    student = build.make_student(solution)
    assert student.nbformat == 4 and student.nbformat_minor == 5
    assert student.metadata == {"kernelspec": build.KERNELSPEC, "language_info": {"name": "python"}}
    assert [c.id for c in student.cells] == [c.id for c in solution.cells[:3]]
    for cell in student.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
    assert [c.metadata for c in student.cells] == [{}, {}, {"tags": ["nbval-ignore-output"]}]


def test_solution_only_cells_are_dropped():
    student = build.make_student(messy_solution())
    assert len(student.cells) == 3
    assert all("answer" not in c.source for c in student.cells)


def test_normalise_keeps_outputs_and_cleans_metadata():
    solution = messy_solution()
    clean = build.normalise(solution)
    assert clean.metadata == {"kernelspec": build.KERNELSPEC, "language_info": {"name": "python"}}
    assert clean.cells[1].outputs == solution.cells[1].outputs
    assert clean.cells[1].execution_count == 3
    assert clean.cells[1].metadata == {}
    assert clean.cells[3].metadata == {"tags": ["solution-only"]}
    assert build.normalise(clean) == clean
    assert solution.metadata["widgets"] == {"state": {}}, "normalise must not modify its argument"


def test_normalise_gives_missing_invalid_and_duplicate_ids_stable_unique_ones():
    nb = notebook(code("a"), code("b"), code("c"), code("d"), code("e"))
    nb.cells[0].id = "cell-2"
    del nb.cells[1]["id"]  # would become cell-2: taken, so cell-2-1
    nb.cells[2].id = "cell-2"  # duplicate of the first cell's id
    nb.cells[3].id = "not a valid id!"
    nb.cells[4].id = "keep-me"
    ids = [c.id for c in build.normalise(nb).cells]
    assert ids == ["cell-2", "cell-2-1", "cell-3", "cell-4", "keep-me"]
    assert ids == [c.id for c in build.normalise(nb).cells]  # deterministic


def test_dumps_is_nbformat_text_with_a_final_newline_and_unescaped_unicode():
    text = build.dumps(build.make_student(messy_solution()))
    assert text.endswith("}\n") and not text.endswith("\n\n")
    assert "ünïcode" in text
    assert text.startswith('{\n "cells": [\n  {\n')  # indent=1, sorted keys


# ---------------------------------------------------------------- files


def write_solution(tmp_path, nb, name="01_demo.ipynb"):
    solutions = tmp_path / "solutions"
    solutions.mkdir(exist_ok=True)
    path = solutions / name
    path.write_text(nbformat.writes(nb), encoding="utf-8")
    return path


def test_building_twice_changes_nothing(tmp_path):
    solution = write_solution(tmp_path, notebook(code(METHOD), messy_solution().cells[1]))
    target, changed = build.build(solution, tmp_path / "notebooks")
    first = target.read_bytes()
    mtime = target.stat().st_mtime_ns
    assert changed
    assert build.build(solution, tmp_path / "notebooks") == (target, False)
    assert target.read_bytes() == first and target.stat().st_mtime_ns == mtime
    # Rebuilding from the student notebook's own normalised form is stable too.
    assert build.dumps(build.normalise(build.read_notebook(target))).encode() == first


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path, monkeypatch):
    target = tmp_path / "nb.ipynb"
    target.write_text("old", encoding="utf-8")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(build.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        build.write_notebook(build.make_student(notebook(code("x"))), target)
    assert target.read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nb.ipynb"]


def test_read_notebook_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        build.read_notebook(tmp_path / "missing.ipynb")
    (tmp_path / "notes.txt").write_text("{}")
    with pytest.raises(ValueError, match="not a notebook"):
        build.read_notebook(tmp_path / "notes.txt")
    (tmp_path / "broken.ipynb").write_text("{ not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        build.read_notebook(tmp_path / "broken.ipynb")
    (tmp_path / "list.ipynb").write_text("[]")
    with pytest.raises(ValueError, match="no list of cells"):
        build.read_notebook(tmp_path / "list.ipynb")


def test_cli_builds_checks_and_reports_stale_missing_and_orphan_notebooks(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(build, "ROOT", tmp_path)
    monkeypatch.setattr(build, "SOLUTIONS_DIR", tmp_path / "solutions")
    monkeypatch.setattr(build, "NOTEBOOKS_DIR", tmp_path / "notebooks")
    solution = write_solution(tmp_path, notebook(code(METHOD, id="demo")))
    write_solution(tmp_path, notebook(code("x = 1", id="other")), "02_other.ipynb")

    assert build.main(["--check"]) == 1
    assert "notebooks/01_demo.ipynb: missing" in capsys.readouterr().out

    assert build.main([]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == ["wrote notebooks/01_demo.ipynb", "wrote notebooks/02_other.ipynb"]
    assert build.main(["--check"]) == 0
    assert build.main([str(solution)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "unchanged notebooks/01_demo.ipynb"

    # A change inside the markers leaves the student notebook as it is; one outside does not.
    write_solution(tmp_path, notebook(code(METHOD.replace("self.proj", "self.w"), id="demo")))
    write_solution(tmp_path, notebook(code("x = 2", id="other")), "02_other.ipynb")
    (tmp_path / "notebooks" / "03_orphan.ipynb").write_text("{}")
    assert build.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert "01_demo" not in out
    assert "notebooks/02_other.ipynb: out of date" in out
    assert "notebooks/03_orphan.ipynb: has no solution" in out

    assert build.main(["solutions/nope.ipynb"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_execute_notebook_uses_this_python_even_with_a_stray_python3_kernelspec(tmp_path, monkeypatch):
    # A user-level "python3" kernelspec pointing at an interpreter that does not exist.
    spec = tmp_path / "data" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        '{"argv": ["/nonexistent/python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],'
        ' "display_name": "stray", "language": "python"}'
    )
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("JUPYTER_PREFER_ENV_PATH", "0")  # the user's folder wins, as outside a venv

    nb = notebook(code("import os, sys\nprint(sys.executable)\nprint(os.getcwd())"), code("1 / 0"))
    build.execute_notebook(nb, cwd=tmp_path, allow_errors=True)
    assert nb.cells[0].outputs[0].text.split("\n")[:2] == [sys.executable, str(tmp_path)]
    assert nb.cells[1].outputs[0].ename == "ZeroDivisionError"


# ---------------------------------------------------------------- the real course

SOLUTIONS = sorted(build.SOLUTIONS_DIR.glob("*.ipynb"))
# An empty solutions/ must fail, not skip: a single placeholder parameter that fails.
SOLUTION_PARAMS = SOLUTIONS or [pytest.param(None, id="no-solutions")]
REBUILD = "Run `make notebooks` (or `python -m utils.build`) and commit notebooks/."


@pytest.fixture(params=SOLUTION_PARAMS, ids=lambda p: getattr(p, "stem", p))
def solution_path(request):
    assert request.param is not None, f"no solution notebooks in {build.SOLUTIONS_DIR}"
    return request.param


def test_notebooks_folder_holds_exactly_one_student_notebook_per_solution():
    solutions = {p.name for p in SOLUTIONS}
    students = {p.name for p in build.NOTEBOOKS_DIR.glob("*.ipynb")}
    assert solutions, f"no solution notebooks in {build.SOLUTIONS_DIR}"
    assert students == solutions, (
        f"missing from notebooks/: {sorted(solutions - students)}; "
        f"without a solution: {sorted(students - solutions)}. {REBUILD}"
    )


def test_student_notebook_is_what_the_builder_makes(solution_path):
    student = build.NOTEBOOKS_DIR / solution_path.name
    assert student.is_file(), f"{student} is missing. {REBUILD}"
    assert student.read_bytes() == build.student_text(solution_path).encode("utf-8"), (
        f"notebooks/{solution_path.name} is not what the builder makes from "
        f"solutions/{solution_path.name} (never edit notebooks/ by hand). {REBUILD}"
    )


def test_solution_notebook_is_normalised(solution_path):
    solution = build.read_notebook(solution_path)
    assert solution.metadata.get("kernelspec", {}).get("name") == "python3"
    assert solution_path.read_text(encoding="utf-8") == build.dumps(build.normalise(solution)), (
        f"{solution_path.name} has volatile metadata (or missing cell ids) that the builder would "
        "remove. Run `make notebooks` or `python -m utils.build --execute` to re-run and normalise it."
    )


def significant(line: str) -> bool:
    """Lines worth comparing: not blank, and at least three letters or digits (not `)` or `x`)."""
    return sum(ch.isalnum() for ch in line) >= 3


def code_lines(nb) -> tuple[list[str], Counter]:
    """Stripped significant lines of the code cells a learner can see in a solution notebook.

    Returns (lines strictly between BEGIN and END markers, a count of those outside them).
    Cells tagged solution-only are skipped: a learner never sees them.
    """
    inside, outside, in_region = [], Counter(), False
    for cell in nb.cells:
        if cell.cell_type != "code" or build.SOLUTION_ONLY_TAG in cell.metadata.get("tags", []):
            continue
        for line in cell.source.split("\n"):
            line = line.strip()
            if line in (build.BEGIN, build.END):
                in_region = line == build.BEGIN
            elif significant(line) and in_region:
                inside.append(line)
            elif significant(line):
                outside[line] += 1
    return inside, outside


def leaked_lines(solution, student) -> list[str]:
    """Solution lines seen in the student's code cells more often than the solution shows them."""
    secret, shown = code_lines(solution)
    student_lines = Counter(
        line.strip()
        for cell in student.cells
        if cell.cell_type == "code"
        for line in cell.source.split("\n")
    )
    return sorted(line for line in set(secret) if student_lines[line] > shown[line])


def test_leak_detection_itself():
    solution = notebook(
        code("def naive(x):\n    e = x.exp()\n    return e / e.sum()"),
        code("def f(x):\n    ### BEGIN SOLUTION\n    e = x.exp()\n    y = e / e.sum(-1)\n    )\n    ### END SOLUTION"),
    )
    student = build.make_student(solution)
    assert leaked_lines(solution, student) == []
    student.cells[1].source += "\n    y = e / e.sum(-1)\n    )"
    assert leaked_lines(solution, student) == ["y = e / e.sum(-1)"]
    student.cells[0].source += "\ne = x.exp()"  # shown once in the solution, now twice
    assert leaked_lines(solution, student) == ["e = x.exp()", "y = e / e.sum(-1)"]


def test_no_solution_line_reaches_the_student_notebook(solution_path):
    """No line from between the markers shows up in the student notebook's code.

    Lines are compared stripped; blank lines and lines with fewer than three
    letters or digits (``)``, ``x``, ``else:``...) are ignored. A line the
    solution also shows outside the markers (like the naive softmax demo
    before the softmax exercise) was shown on purpose, so a solution line may
    appear in the student notebook as often as it appears outside the
    markers, and no more.
    """
    solution = build.read_notebook(solution_path)
    student = build.read_notebook(build.NOTEBOOKS_DIR / solution_path.name)
    leaks = leaked_lines(solution, student)
    assert not leaks, (
        f"solution lines (from between the markers) appear in notebooks/{solution_path.name}: {leaks}. "
        "Check the markers in the solution, then run `make notebooks`."
    )


def first_exercise_cell(nb) -> int:
    """Index of the first code cell that raises NotImplementedError (the first exercise)."""
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and "raise NotImplementedError" in cell.source:
            return index
    raise AssertionError("the student notebook has no exercise (no `raise NotImplementedError`)")


def test_student_notebook_runs_until_its_first_exercise(solution_path):
    path = build.NOTEBOOKS_DIR / solution_path.name
    nb = build.read_notebook(path)
    exercise = first_exercise_cell(nb)
    with pytest.raises(CellExecutionError) as stopped:
        build.execute_notebook(nb, cwd=path.parent, allow_errors=False)
    failed = [i for i, c in enumerate(nb.cells)
              if c.cell_type == "code" and any(o.output_type == "error" for o in c.outputs)]
    assert stopped.value.ename == "NotImplementedError", (
        f"the student notebook should stop at its first exercise, but it raised "
        f"{stopped.value.ename}: {stopped.value.evalue}"
    )
    assert failed and failed[0] >= exercise, (
        f"cell {failed[0] + 1} failed before the first exercise (cell {exercise + 1})"
    )
    next_code = next((i for i in range(exercise + 1, len(nb.cells)) if nb.cells[i].cell_type == "code"), None)
    assert failed[0] in (exercise, next_code), (
        f"the notebook stopped at cell {failed[0] + 1}; expected the first exercise (cell {exercise + 1}) "
        f"or the check cell right after it (cell {next_code and next_code + 1})"
    )


if __name__ == "__main__":  # pragma: no cover - convenience
    sys.exit(pytest.main([__file__, *sys.argv[1:]]))

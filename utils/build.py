"""Build the student notebooks from the solution notebooks.

``solutions/NN_name.ipynb`` is the only notebook a maintainer edits. This
module writes ``notebooks/NN_name.ipynb``, the version a learner works in::

    python -m utils.build                    # every solutions/*.ipynb
    python -m utils.build solutions/01_attention.ipynb
    python -m utils.build --check            # write nothing; exit 1 if notebooks/ is stale
    python -m utils.build --execute          # re-run the solutions first, then build

How a solution notebook becomes a student notebook
--------------------------------------------------
* In a code cell, every region from a ``### BEGIN SOLUTION`` line to the next
  ``### END SOLUTION`` line (markers included; whitespace before a marker is
  fine) becomes two lines at the indentation of the BEGIN marker::

      # YOUR CODE HERE
      raise NotImplementedError("Exercise softmax: replace this line with your code.")

  The exercise name is the innermost ``def`` or ``class`` enclosing the marker
  in the same cell (``MultiHeadAttention.forward`` for a method). A region
  outside any ``def`` or ``class`` gets no name. Keep the signature and the
  docstring outside the markers: the learner needs them.
* Cells tagged ``solution-only`` are left out of the student notebook (use it
  for a cell that only makes sense once the exercises are solved).
* Outputs and execution counts are cleared, cell metadata keeps only
  non-empty ``tags`` (nbval's markers such as ``nbval-ignore-output`` live
  there), and the notebook metadata is reset to the plain ``python3`` kernel.
  Cell ids are copied from the solution, so they stay stable.

Markers that nest, a BEGIN that is never closed, an END without a BEGIN, a
marker in a Markdown or raw cell, or a comment that looks like a marker but is
not spelled exactly like one stop the build with a ``ValueError`` that names
the file, the cell and the line (both counted from 1).

``normalise`` applies the same metadata clean-up to a solution notebook but
keeps its outputs; ``--execute`` uses it before writing the solutions back.

Writing is deterministic (``nbformat.writes`` plus a final newline; a second
build changes no byte) and atomic (a temporary file in the same folder, then
``os.replace``), so an interrupted build never leaves half a notebook.

Exit status of the command line: 0 on success, 1 when ``--check`` finds
notebooks out of date or a solution fails to execute, 2 for bad input
(a missing file, not a notebook, malformed markers).
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import ipykernel.kernelspec
import nbformat
from jupyter_client import AsyncKernelManager
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from traitlets import default

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS_DIR = ROOT / "solutions"
NOTEBOOKS_DIR = ROOT / "notebooks"

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
SOLUTION_ONLY_TAG = "solution-only"

# The notebook metadata every notebook of the course carries, and nothing else.
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
LANGUAGE_INFO = {"name": "python"}

_MARKER = re.compile(r"^(?P<indent>[ \t]*)### (?P<kind>BEGIN|END) SOLUTION[ \t]*\r?$")
# A comment that was meant to be a marker but is misspelt ("## BEGIN SOLUTION").
_LOOKALIKE = re.compile(r"^[ \t]*#+[ \t]*(BEGIN|END)[ \t]+SOLUTION", re.IGNORECASE)
_HEADER = re.compile(r"^[ \t]*(?P<kind>class|def|async[ \t]+def)[ \t]+(?P<name>\w+)")
# What nbformat 4.5 accepts as a cell id.
_VALID_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


# ---------------------------------------------------------------- reading and writing


def read_notebook(path: str | os.PathLike) -> nbformat.NotebookNode:
    """Read an nbformat-4 notebook without changing it.

    Unlike ``nbformat.read``, this never invents random ids for cells that
    lack one (``normalise`` gives them stable ids instead). Raises
    ``FileNotFoundError`` or ``ValueError`` with a message a person can act on.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix != ".ipynb":
        raise ValueError(f"{path}: not a notebook (expected a .ipynb file)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a Jupyter notebook (not valid JSON: {e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise ValueError(f"{path}: not a Jupyter notebook (no list of cells)")
    if data.get("nbformat") != 4:
        raise ValueError(f"{path}: nbformat {data.get('nbformat')!r} is not supported (expected 4)")
    return nbformat.v4.to_notebook_json(data)  # joins the on-disk lists of lines


def dumps(nb: nbformat.NotebookNode) -> str:
    """The exact text the course stores for a notebook.

    ``nbformat.writes`` always uses indent=1, sorted keys and keeps non-ASCII
    characters as they are; we add the final newline editors expect.
    """
    errors: dict = {}
    text = nbformat.writes(nb, capture_validation_error=errors)
    if errors:
        raise ValueError(f"refusing to write an invalid notebook: {errors['ValidationError'].message}")
    return text + "\n"


def write_notebook(nb: nbformat.NotebookNode, path: str | os.PathLike) -> bool:
    """Write ``nb`` to ``path`` atomically; return False if the file was already identical.

    An identical file is left alone (its modification time too). Otherwise the
    text goes to a temporary file beside ``path`` that then replaces it in one
    step; on any error the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    data = dumps(nb).encode("utf-8")
    if path.is_file() and path.read_bytes() == data:
        return False
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "xb") as f:  # "x": never clobber a file we did not create
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return True


# ---------------------------------------------------------------- normalisation


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return source if isinstance(source, str) else "".join(source)


def _clean_metadata(cell: dict) -> dict:
    """Keep only what matters to the course: non-empty ``tags``."""
    tags = cell.get("metadata", {}).get("tags") or []
    return {"tags": list(tags)} if tags else {}


def _stable_ids(cells: list) -> list[str]:
    """Each cell's id: its own when valid and unique, else ``cell-<n>`` (n counts from 1).

    The first cell to use an id keeps it; later duplicates and missing or
    invalid ids get ``cell-<n>``, or ``cell-<n>-<k>`` if that is taken.
    """
    ids: list[str | None] = []
    taken: set[str] = set()
    for cell in cells:
        cell_id = cell.get("id")
        if isinstance(cell_id, str) and _VALID_ID.match(cell_id) and cell_id not in taken:
            taken.add(cell_id)
            ids.append(cell_id)
        else:
            ids.append(None)
    for n, cell_id in enumerate(ids, start=1):
        if cell_id is None:
            new_id, k = f"cell-{n}", 0
            while new_id in taken:
                k += 1
                new_id = f"cell-{n}-{k}"
            taken.add(new_id)
            ids[n - 1] = new_id
    return ids


def _notebook(cells: list) -> nbformat.NotebookNode:
    return nbformat.from_dict(
        {
            "nbformat": 4,
            "nbformat_minor": 5,
            "metadata": {"kernelspec": dict(KERNELSPEC), "language_info": dict(LANGUAGE_INFO)},
            "cells": cells,
        }
    )


def normalise(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A clean copy of a solution notebook: outputs kept, volatile metadata gone.

    Notebook metadata becomes exactly the course's kernelspec and
    language_info; cell metadata keeps only non-empty ``tags`` (so nbclient's
    ``execution`` timings, ``collapsed``, ``scrolled``, ``ExecuteTime``... go);
    every cell gets a stable id. Outputs and execution counts are kept as they
    are. ``nb`` itself is not modified; normalising twice changes nothing.
    """
    if nb.get("nbformat") != 4:
        raise ValueError(f"nbformat {nb.get('nbformat')!r} is not supported (expected 4)")
    cells = []
    for cell, cell_id in zip(nb.cells, _stable_ids(nb.cells)):
        clean = {"cell_type": cell.cell_type, "id": cell_id,
                 "metadata": _clean_metadata(cell), "source": _source(cell)}
        if cell.cell_type == "code":
            clean["outputs"] = copy.deepcopy(cell.get("outputs", []))
            clean["execution_count"] = cell.get("execution_count")
        elif cell.cell_type in ("markdown", "raw"):
            if cell.get("attachments"):
                clean["attachments"] = copy.deepcopy(cell.attachments)
        else:
            raise ValueError(f"cell {cell_id}: unknown cell type {cell.cell_type!r}")
        cells.append(clean)
    return _notebook(cells)


# ---------------------------------------------------------------- solution -> student


def _exercise_name_from_ast(source: str, line: int) -> str | None:
    """Name of the innermost def/class whose body holds ``line`` (from 1), from the syntax tree.

    Handles multi-line signatures. Nested classes give ``Outer.Inner.method``;
    a def inside a def is named by the inner one alone. Raises SyntaxError
    when the cell is not plain Python (an IPython magic, say).
    """
    names: list[str] = []
    inside_def = False
    nodes = ast.parse(source).body
    while True:
        node = next((n for n in nodes
                     if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                     and n.lineno < line <= n.end_lineno), None)
        if node is None:
            return ".".join(names) or None
        if inside_def:
            names = []
        names.append(node.name)
        inside_def = not isinstance(node, ast.ClassDef)
        nodes = [child for stmt in node.body for child in ast.walk(stmt)
                 if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]


def _exercise_name(lines_above: list[str], indent: int) -> str | None:
    """Name of the innermost def/class enclosing a marker, or None.

    Used when the cell cannot be parsed as Python (``_exercise_name_from_ast``
    is tried first). Walk up from the marker: the first code line indented less than the
    current level is the header of the enclosing block. The innermost def or
    class among those headers names the exercise, prefixed by the classes
    that directly enclose it (``Class.method``).
    """
    enclosing: list[tuple[str, str]] = []  # (kind, name), innermost first
    for line in reversed(lines_above):
        if indent == 0:
            break
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        line_indent = len(line) - len(line.lstrip(" \t"))
        if line_indent >= indent:
            continue
        indent = line_indent
        header = _HEADER.match(line)
        if header:
            kind = "class" if header["kind"] == "class" else "def"
            enclosing.append((kind, header["name"]))
    if not enclosing:
        return None
    names = [enclosing[0][1]]
    for kind, name in enclosing[1:]:
        if kind != "class":
            break
        names.insert(0, name)
    return ".".join(names)


def _placeholder(indent: str, name: str | None) -> list[str]:
    exercise = f"Exercise {name}" if name else "Exercise"
    return [
        f"{indent}# YOUR CODE HERE",
        f'{indent}raise NotImplementedError("{exercise}: replace this line with your code.")',
    ]


def strip_solutions(source: str, where: str = "cell") -> str:
    """Replace every solution region of one code cell's source by the placeholder.

    ``where`` (e.g. ``"solutions/01_attention.ipynb, cell 4"``) starts every
    error message.
    """
    lines = source.split("\n")
    out: list[str] = []
    open_at: int | None = None  # line number of the BEGIN of the open region
    for number, line in enumerate(lines, start=1):
        marker = _MARKER.match(line)
        if marker is None:
            if _LOOKALIKE.match(line):
                raise ValueError(
                    f"{where}, line {number}: {line.strip()!r} looks like a solution marker; "
                    f"write exactly {BEGIN!r} or {END!r}"
                )
            if open_at is None:
                out.append(line)
        elif marker["kind"] == "BEGIN":
            if open_at is not None:
                raise ValueError(
                    f"{where}, line {number}: {BEGIN!r} inside the region opened on line "
                    f"{open_at}; solution regions cannot nest"
                )
            open_at = number
            try:
                name = _exercise_name_from_ast(source, number)
            except SyntaxError:
                name = _exercise_name(lines[: number - 1], len(marker["indent"]))
            out.extend(_placeholder(marker["indent"], name))
        else:
            if open_at is None:
                raise ValueError(f"{where}, line {number}: {END!r} without a {BEGIN!r} above it")
            open_at = None
    if open_at is not None:
        raise ValueError(f"{where}, line {open_at}: {BEGIN!r} is never closed by {END!r}")
    return "\n".join(out)


def _reject_markers(source: str, where: str) -> None:
    for number, line in enumerate(source.split("\n"), start=1):
        if _MARKER.match(line):
            raise ValueError(
                f"{where}, line {number}: solution marker {line.strip()!r} in a non-code cell; "
                "markers belong in code cells"
            )


def make_student(nb: nbformat.NotebookNode, name: str = "notebook") -> nbformat.NotebookNode:
    """The student version of solution notebook ``nb`` (``name`` is used in errors)."""
    solution = normalise(nb)
    cells = []
    for number, cell in enumerate(solution.cells, start=1):
        where = f"{name}, cell {number}"
        if cell.cell_type == "code":
            cell.source = strip_solutions(cell.source, where)
            cell.outputs = []
            cell.execution_count = None
        else:
            _reject_markers(cell.source, where)
        if SOLUTION_ONLY_TAG not in cell.metadata.get("tags", []):
            cells.append(cell)
    solution.cells = cells
    return solution


def _display(path: Path) -> str:
    """``path`` relative to the repository when it is inside it, for messages."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def student_text(solution_path: str | os.PathLike) -> str:
    """The exact text of the student notebook built from ``solution_path``."""
    solution_path = Path(solution_path)
    return dumps(make_student(read_notebook(solution_path), _display(solution_path)))


def build(solution_path: str | os.PathLike, notebooks_dir: str | os.PathLike | None = None) -> tuple[Path, bool]:
    """Write the student notebook for one solution; return (its path, whether it changed)."""
    solution_path = Path(solution_path)
    target = Path(notebooks_dir or NOTEBOOKS_DIR) / solution_path.name
    student = make_student(read_notebook(solution_path), _display(solution_path))
    target.parent.mkdir(parents=True, exist_ok=True)
    return target, write_notebook(student, target)


def out_of_date(solution_paths: list[Path], notebooks_dir: Path, orphans: bool = True) -> list[str]:
    """One line per student notebook that a build would change (writes nothing).

    With ``orphans``, a notebook in ``notebooks_dir`` without a solution of the
    same name is listed too (the builder never deletes files: remove it by hand).
    """
    problems = []
    for solution_path in solution_paths:
        target = notebooks_dir / solution_path.name
        if not target.is_file():
            problems.append(f"{_display(target)}: missing")
        elif target.read_bytes() != student_text(solution_path).encode("utf-8"):
            problems.append(f"{_display(target)}: out of date")
    if orphans:
        names = {p.name for p in solution_paths}
        for path in sorted(notebooks_dir.glob("*.ipynb")):
            if path.name not in names:
                problems.append(f"{_display(path)}: has no solution (solutions/{path.name})")
    return problems


# ---------------------------------------------------------------- execution


class _CurrentEnvKernelSpecManager(KernelSpecManager):
    """Answers every kernel name with an ipykernel on *this* Python.

    The same trick as nbval's ``--nbval-current-env``: a stray user-level
    ``python3`` kernelspec pointing at another interpreter is never used.
    """

    def get_kernel_spec(self, kernel_name):
        return self.kernel_spec_class(
            resource_dir=ipykernel.kernelspec.RESOURCES,
            **ipykernel.kernelspec.get_kernel_dict(),  # argv: sys.executable -m ipykernel_launcher -f {connection_file}
        )


class _CurrentEnvKernelManager(AsyncKernelManager):
    @default("kernel_spec_manager")
    def _current_env_kernel_spec_manager(self):
        return _CurrentEnvKernelSpecManager(data_dir=self.data_dir)


def execute_notebook(
    nb: nbformat.NotebookNode,
    cwd: str | os.PathLike,
    allow_errors: bool = False,
    timeout: int = 900,
) -> nbformat.NotebookNode:
    """Run every code cell of ``nb`` in place, in a fresh kernel of this Python; return ``nb``.

    The kernel is ``sys.executable -m ipykernel_launcher``, started in ``cwd``,
    whatever kernelspec the notebook names; its own stderr (start-up chatter,
    not cell output) is discarded, as nbval does. ``timeout`` is per cell, in
    seconds. With ``allow_errors=False`` the first error raises nbclient's
    ``CellExecutionError`` (cells tagged ``raises-exception`` may fail, as in
    nbval), and the cells run so far keep their outputs; with
    ``allow_errors=True`` every cell runs and errors are left in the outputs.
    """
    client = NotebookClient(
        nb,
        timeout=timeout,
        allow_errors=allow_errors,
        kernel_name=KERNELSPEC["name"],
        kernel_manager_class=_CurrentEnvKernelManager,
        resources={"metadata": {"path": str(cwd)}},
    )
    client.execute(stderr=subprocess.DEVNULL)  # passed on to the kernel's Popen
    return nb


# ---------------------------------------------------------------- command line


def _solution_arg(arg: str) -> Path:
    """A solution path from the command line: relative to the cwd, else to the repository."""
    path = Path(arg)
    if not path.exists() and not path.is_absolute() and (ROOT / path).exists():
        path = ROOT / path
    if not path.is_file():
        raise FileNotFoundError(f"{arg}: no such file")
    if path.suffix != ".ipynb":
        raise ValueError(f"{arg}: not a notebook (expected a .ipynb file)")
    if path.resolve().parent != SOLUTIONS_DIR.resolve():
        raise ValueError(f"{arg}: not in {_display(SOLUTIONS_DIR)}/; the builder reads solution notebooks only")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m utils.build",
        description="Write notebooks/ (student notebooks) from solutions/ (the source of truth).",
    )
    parser.add_argument("solutions", nargs="*", metavar="SOLUTION",
                        help="solution notebooks to build (default: every solutions/*.ipynb)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true",
                      help="write nothing; exit 1 listing the student notebooks that are out of date")
    mode.add_argument("--execute", action="store_true",
                      help="first re-run the solution notebooks and store their outputs, then build")
    args = parser.parse_args(argv)

    try:
        paths = [_solution_arg(a) for a in args.solutions] or sorted(SOLUTIONS_DIR.glob("*.ipynb"))
        if not paths:
            raise FileNotFoundError(f"no solution notebooks in {_display(SOLUTIONS_DIR)}/")
        if args.check:
            problems = out_of_date(paths, NOTEBOOKS_DIR, orphans=not args.solutions)
            for problem in problems:
                print(problem)
            if problems:
                print("Run `python -m utils.build` (or `make notebooks`) to rebuild notebooks/.")
                return 1
            print(f"{len(paths)} student notebook(s) up to date.")
            return 0
        if args.execute:
            for path in paths:
                print(f"executing {_display(path)} ...", flush=True)
                executed = execute_notebook(read_notebook(path), cwd=path.parent)
                changed = write_notebook(normalise(executed), path)
                print(f"{'wrote' if changed else 'unchanged'} {_display(path)}")
        for path in paths:
            target, changed = build(path)
            print(f"{'wrote' if changed else 'unchanged'} {_display(target)}")
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as e:
        print(f"error: a solution notebook failed to run:\n{e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Self-check: run your notebook and see which exercises pass.

    python -m utils.check notebooks/01_attention.ipynb
    python -m utils.check 01                # the same: the one notebooks/01_*.ipynb
    python -m utils.check 01 --solution     # solutions/01_*.ipynb instead

Save the notebook in JupyterLab first: the self-check reads the file on disk.
It runs a copy of it top to bottom in a fresh kernel of the Python that runs
this command, starting in the notebook's folder, and keeps going after a cell
fails. Your file is never modified.

An exercise is found from its check cell: a code cell with a line that starts
with ``check_<name>(`` (or ``checks.check_<name>(``). Its status comes from
what that cell did:

* passed        the checker printed its success line;
* FAILED        the checker raised AssertionError (its message is shown in
                full), or the cell raised something else (shown as
                ``ename: message``);
* not attempted the exercise still raises NotImplementedError, i.e. the
                ``raise NotImplementedError(...)`` line is still there.

Errors in other cells are listed after the table (at most five).

Exit status: 0 when no exercise failed ("not attempted" is not a failure, so
a half-finished notebook exits 0), 1 when at least one FAILED, 2 when the
notebook cannot be checked (no such file, not a notebook, no check cells, or
the kernel died or timed out).
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from nbclient.exceptions import CellTimeoutError, DeadKernelError

from utils.build import ROOT, execute_notebook, read_notebook

PASSED = "passed"
FAILED = "FAILED"
NOT_ATTEMPTED = "not attempted"

# How many errors in non-check cells the report lists before it just counts.
MAX_CELL_ERRORS = 5

_CHECK_CALL = re.compile(r"^[ \t]*(?:(?:utils\.)?checks\.)?check_(?P<name>\w+)[ \t]*\(", re.MULTILINE)


@dataclass
class Result:
    """The outcome of one exercise: ``status`` is PASSED, FAILED or NOT_ATTEMPTED."""

    name: str
    status: str
    message: str = ""


@dataclass
class CellError:
    """An error in a cell that is not a check cell (``number`` counts cells from 1)."""

    number: int
    ename: str
    evalue: str
    first_line: str = ""


@dataclass
class Report:
    path: Path
    results: list[Result]
    cell_errors: list[CellError] = field(default_factory=list)

    @property
    def exit_status(self) -> int:
        return 1 if any(r.status == FAILED for r in self.results) else 0


class SelfCheckError(Exception):
    """The notebook cannot be checked; the message says why."""


def check_names(cell) -> list[str]:
    """Exercise names whose checker this code cell calls, in order (usually one)."""
    if cell.cell_type != "code":
        return []
    return [m["name"] for m in _CHECK_CALL.finditer(cell.source)]


def _error(cell):
    """The first error output of a code cell, or None."""
    return next((o for o in cell.get("outputs", []) if o.output_type == "error"), None)


def _first_line(source: str) -> str:
    """The first line of code in a cell, shortened, to help find the cell."""
    for line in source.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            line = line.strip()
            return line if len(line) <= 40 else line[:37] + "..."
    return ""


def _status(cell, cells_since_last_check) -> tuple[str, str]:
    """Status and message of one executed check cell.

    A check cell that fails with anything but AssertionError because an
    earlier cell of the same exercise still raises NotImplementedError (a
    region outside any function, so the name was never defined) counts as
    "not attempted" too.
    """
    error = _error(cell)
    if error is None:
        return PASSED, ""
    if error.ename == "NotImplementedError":
        return NOT_ATTEMPTED, error.evalue
    if error.ename == "AssertionError":
        return FAILED, error.evalue
    for earlier in cells_since_last_check:
        earlier_error = _error(earlier)
        if earlier_error is not None and earlier_error.ename == "NotImplementedError":
            return NOT_ATTEMPTED, earlier_error.evalue
    return FAILED, f"{error.ename}: {error.evalue}"


def resolve_notebook(arg: str, solution: bool = False, root: Path = ROOT) -> Path:
    """The notebook a command-line argument names: a path, or a number such as ``01``.

    A number picks the single ``NN_*.ipynb`` in notebooks/ (solutions/ with
    ``solution=True``) under ``root``.
    """
    if re.fullmatch(r"\d{1,3}", arg):
        folder = root / ("solutions" if solution else "notebooks")
        matches = sorted(folder.glob(f"{int(arg):02d}_*.ipynb"))
        if len(matches) != 1:
            found = ", ".join(p.name for p in matches) or "none"
            raise SelfCheckError(
                f"{arg!r} should match exactly one {folder.name}/{int(arg):02d}_*.ipynb; found {found}"
            )
        return matches[0]
    return Path(arg)


def check_notebook(path: str | Path) -> Report:
    """Run a copy of the notebook at ``path``; report every exercise and other errors."""
    path = Path(path)
    try:
        nb = read_notebook(path)
    except (FileNotFoundError, ValueError) as e:
        raise SelfCheckError(str(e)) from None
    if not any(check_names(cell) for cell in nb.cells):
        raise SelfCheckError(f"{path}: no check cells found (a check cell calls check_<exercise>(...))")
    try:
        execute_notebook(nb, cwd=path.resolve().parent, allow_errors=True)
    except CellTimeoutError as e:
        raise SelfCheckError(f"{path}: a cell ran for too long and was stopped.\n{e}") from None
    except DeadKernelError as e:
        raise SelfCheckError(f"{path}: the kernel died while running the notebook "
                             f"(out of memory?).\n{e}") from None

    results: list[Result] = []
    cell_errors: list[CellError] = []
    since_last_check = []
    for number, cell in enumerate(nb.cells, start=1):
        if cell.cell_type != "code":
            continue
        names = check_names(cell)
        if names:
            status, message = _status(cell, since_last_check)
            results.extend(Result(name, status, message) for name in names)
            since_last_check = []
            continue
        since_last_check.append(cell)
        error = _error(cell)
        # Cells that stop at an unfinished exercise are expected; the table says so already.
        if error is not None and error.ename != "NotImplementedError":
            cell_errors.append(CellError(number, error.ename, error.evalue, _first_line(cell.source)))
    return Report(path, results, cell_errors)


def self_check(path: str | Path) -> list[Result]:
    """The result of every exercise of the notebook at ``path``, in notebook order."""
    return check_notebook(path).results


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line if line.strip() else line for line in text.splitlines())


def _shown(path: Path) -> str:
    """``path`` relative to the current folder when it is inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def format_report(report: Report) -> str:
    """The text the command prints: table, failure messages, other errors, summary."""
    results = report.results
    width = max([len("exercise")] + [len(r.name) for r in results])
    lines = [f"Self-check of {_shown(report.path)}", ""]
    lines.append(f"  {'exercise':<{width}}  status")
    lines.append(f"  {'-' * width}  {'-' * len(NOT_ATTEMPTED)}")
    lines.extend(f"  {r.name:<{width}}  {r.status}" for r in results)

    failures = [r for r in results if r.status == FAILED]
    for r in failures:
        lines += ["", f"{r.name}: {FAILED}", _indent(r.message or "(no message)")]

    if report.cell_errors:
        lines += ["", "Errors in other cells (cells counted from 1):"]
        for e in report.cell_errors[:MAX_CELL_ERRORS]:
            where = f"cell {e.number}" + (f" ({e.first_line})" if e.first_line else "")
            evalue = e.evalue.strip().splitlines()[0] if e.evalue.strip() else ""
            lines.append(f"  {where} raised {e.ename}" + (f": {evalue}" if evalue else ""))
        hidden = len(report.cell_errors) - MAX_CELL_ERRORS
        if hidden > 0:
            lines.append(f"  ... and {hidden} more")

    counts = {s: sum(r.status == s for r in results) for s in (PASSED, FAILED, NOT_ATTEMPTED)}
    noun = "exercise" if len(results) == 1 else "exercises"
    lines += ["", f"{len(results)} {noun}: {counts[PASSED]} passed, {counts[FAILED]} failed, "
                  f"{counts[NOT_ATTEMPTED]} not attempted"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m utils.check",
        description="Run a notebook and report, per exercise, passed / FAILED / not attempted.",
    )
    parser.add_argument("notebook", help="a notebook path, or its number (e.g. 01)")
    parser.add_argument("--solution", action="store_true",
                        help="with a number: check solutions/NN_*.ipynb instead of notebooks/")
    args = parser.parse_args(argv)
    if hasattr(sys.stdout, "reconfigure"):  # a checker's message may not fit a Windows console
        sys.stdout.reconfigure(errors="replace")
    try:
        path = resolve_notebook(args.notebook, solution=args.solution)
        print(f"Running {_shown(path)} in a fresh kernel (save it first; this may take a minute)...",
              file=sys.stderr, flush=True)
        report = check_notebook(path)
    except SelfCheckError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_report(report))
    return report.exit_status


if __name__ == "__main__":
    sys.exit(main())

"""Fill a student notebook's exercises the way a learner would, with code of our choosing.

A student notebook has, for each solution region of its solution notebook,
the two placeholder lines the builder writes::

    # YOUR CODE HERE
    raise NotImplementedError("Exercise FeedForward.__init__: replace this line with your code.")

``fill_student_notebook`` replaces each placeholder with a body given by
exercise name (a learner's own, correct code in another style) or, when none
is given, with the reference body from the solution notebook. The k-th region
with the same name is ``"name#k"`` (from 2), e.g. ``"GPT.__init__#2"``.

``tests_variants/`` runs the filled notebooks through the self-check: a
correct answer must pass its check cell and must not make any later cell fail.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import nbformat

from utils.build import BEGIN, END, NOTEBOOKS_DIR, SOLUTION_ONLY_TAG, SOLUTIONS_DIR, read_notebook, strip_solutions

_PLACEHOLDER = re.compile(
    r'^(?P<indent>[ \t]*)# YOUR CODE HERE\n[ \t]*raise NotImplementedError\("Exercise (?P<name>[\w.]+): '
    r'replace this line with your code\."\)$',
    re.MULTILINE,
)


def _keys(names: list[str]) -> list[str]:
    """Exercise names made unique: the second region of ``f`` is ``f#2``."""
    seen: dict[str, int] = {}
    keys = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        keys.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return keys


def reference_bodies(solution: str | Path) -> dict[str, str]:
    """Every solution region of a solution notebook, by key, dedented (markers excluded)."""
    nb = read_notebook(solution)
    names, bodies = [], []
    for cell in nb.cells:
        if cell.cell_type != "code" or SOLUTION_ONLY_TAG in cell.metadata.get("tags", []):
            continue
        # The builder names each region; read the names back from its placeholders.
        names += [m["name"] for m in _PLACEHOLDER.finditer(strip_solutions(cell.source))]
        lines = cell.source.split("\n")
        starts = [i for i, line in enumerate(lines) if line.strip() == BEGIN]
        for start in starts:
            end = next(i for i in range(start + 1, len(lines)) if lines[i].strip() == END)
            bodies.append(textwrap.dedent("\n".join(lines[start + 1:end])))
    assert len(names) == len(bodies), f"{solution}: every solution region must be inside a def or class"
    return dict(zip(_keys(names), bodies))


def exercise_keys(student: str | Path) -> list[str]:
    """The keys of the exercises a student notebook asks for, in order."""
    names = [m["name"] for cell in read_notebook(student).cells if cell.cell_type == "code"
             for m in _PLACEHOLDER.finditer(cell.source)]
    return _keys(names)


def fill_student_notebook(stem: str, bodies: dict[str, str] | None = None) -> nbformat.NotebookNode:
    """``notebooks/<stem>.ipynb`` with every exercise filled in: from ``bodies``, else the reference."""
    student, solution = NOTEBOOKS_DIR / f"{stem}.ipynb", SOLUTIONS_DIR / f"{stem}.ipynb"
    bodies = dict(bodies or {})
    reference = reference_bodies(solution)
    unknown = set(bodies) - set(reference)
    if unknown:
        raise KeyError(f"{stem}: no exercise named {sorted(unknown)}; the exercises are {list(reference)}")
    nb = read_notebook(student)
    seen: dict[str, int] = {}

    def replace(match: re.Match) -> str:
        name = match["name"]
        seen[name] = seen.get(name, 0) + 1
        key = name if seen[name] == 1 else f"{name}#{seen[name]}"
        body = textwrap.dedent(bodies.get(key, reference[key])).strip("\n")
        return textwrap.indent(body, match["indent"], lambda line: True)

    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.source = _PLACEHOLDER.sub(replace, cell.source)
    return nb

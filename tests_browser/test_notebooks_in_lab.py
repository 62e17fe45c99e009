"""Every notebook as a learner sees it: JupyterLab in a real browser.

For each student notebook (notebooks/) and solution notebook (solutions/):

- it opens with its kernel, "Python 3 (ipykernel)" of this environment, idle;
- every Markdown cell is rendered: no `$` left over from math that did not
  typeset, no MathJax error or undefined macro, and every folded `<details>`
  hint is closed and opens on a click;
- solution notebooks: every stored figure (image/png output) shows as a loaded,
  visible image inside the output area, at most ~11 inches wide;
- student notebooks: Run > Run All Cells, through the menu, stops with the
  first exercise's NotImplementedError, in the exercise cell or its check cell;
- a full-page screenshot, in a 1280-pixel-wide window with the file browser
  open (a laptop screen), goes to screenshots/{notebooks,solutions}/NN_name.png.

Run with `make test-browser` (it installs Chromium and Playwright first).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import TimeoutError as PlaywrightTimeout

ROOT = Path(__file__).resolve().parents[1]

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "solutions").glob("*.ipynb"))
SCREENSHOTS = ROOT / "screenshots"
KERNEL = "Python 3 (ipykernel)"
MAX_FIGURE_WIDTH = 1150  # px: figures are at most ~11 inches at the course's 100 dpi

# One pass over the open notebook's cells: what a learner would see in each.
READ_CELLS = r"""() => {
  const notebook = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook');
  const visible = (el) => { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
  return [...notebook.querySelectorAll('.jp-Notebook-cell')].map((cell) => {
    const markdown = cell.querySelector('.jp-RenderedMarkdown');
    let text = '';
    if (markdown) {  // the text left once math and code are taken out: a `$` here is math that did not render
      const copy = markdown.cloneNode(true);
      copy.querySelectorAll('mjx-container, code, pre').forEach((el) => el.remove());
      text = copy.textContent;
    }
    const area = cell.querySelector('.jp-Cell-outputArea');
    const areaRight = area ? area.getBoundingClientRect().right : 0;
    return {
      type: cell.classList.contains('jp-MarkdownCell') ? 'markdown'
          : cell.classList.contains('jp-CodeCell') ? 'code' : 'raw',
      rendered: cell.classList.contains('jp-mod-rendered'),
      text,
      mathErrors: [  // a TeX error, or an undefined macro (MathJax shows it as red text)
        ...[...cell.querySelectorAll('mjx-merror')].map((el) => el.getAttribute('data-mjx-error')),
        ...[...cell.querySelectorAll('mjx-assistive-mml mtext[mathcolor="red"]')]
          .filter((el) => el.textContent.startsWith('\\')).map((el) => `undefined macro ${el.textContent}`),
      ],
      details: cell.querySelectorAll('details').length,
      prompt: (cell.querySelector('.jp-InputPrompt') || {}).textContent || '',
      errors: [...cell.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
        .map((el) => el.textContent).filter((t) => t.includes('Traceback')),
      images: [...cell.querySelectorAll('.jp-OutputArea-output img')].map((img) => ({
        loaded: img.complete && img.naturalWidth > 0, visible: visible(img), natural: img.naturalWidth,
        overflow: Math.round(img.getBoundingClientRect().right - areaRight),
      })),
    };
  });
}"""


def label(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def open_notebook(page, lab, path: Path) -> None:
    page.goto(lab.open_url(path))
    page.locator(".jp-Notebook .jp-Cell").first.wait_for()
    status = page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\| Idle$"))
    status.first.wait_for(timeout=90_000)
    kernel = page.locator(".jp-NotebookPanel .jp-KernelName").first.text_content()
    assert kernel == KERNEL, f"{label(path)}: opened with kernel {kernel!r}, not {KERNEL!r}"


def wait_for_math(page, timeout_s: float = 30) -> list[dict]:
    """Read the cells once MathJax has typeset every Markdown cell (or the time is up)."""
    deadline = time.monotonic() + timeout_s
    while True:
        cells = page.evaluate(READ_CELLS)
        if not any("$" in c["text"] for c in cells) or time.monotonic() > deadline:
            return cells
        page.wait_for_timeout(500)


def markdown_problems(cells: list[dict], nb: dict) -> list[str]:
    problems = []
    if len(cells) != len(nb["cells"]):
        problems.append(f"{len(cells)} cells on screen, {len(nb['cells'])} in the file")
    for number, (cell, stored) in enumerate(zip(cells, nb["cells"]), start=1):
        if stored["cell_type"] != "markdown":
            continue
        if not cell["rendered"]:
            problems.append(f"cell {number}: Markdown not rendered")
        for line in cell["text"].splitlines():
            if "$" in line:
                problems.append(f"cell {number}: math did not render: {line.strip()[:120]!r}")
        for error in cell["mathErrors"]:
            problems.append(f"cell {number}: LaTeX error: {error[:120]}")
        expected = "".join(stored["source"]).count("<details")
        if cell["details"] != expected:
            problems.append(f"cell {number}: {cell['details']} folded hints shown, {expected} in the source")
    return problems


TOGGLE_HINTS = """(hints) => hints.map((hint) => {
  const cells = [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-cell')];
  const cell = cells.indexOf(hint.closest('.jp-Notebook-cell')) + 1;
  const summary = hint.querySelector('summary');
  const state = () => [hint.open, hint.getBoundingClientRect().height];
  const folded = state();
  summary.click();
  const unfolded = state();
  summary.click();
  return {title: `cell ${cell}: hint ${JSON.stringify(summary.textContent.trim())}`, folded, unfolded, refolded: state()};
})"""


def hint_problems(page) -> list[str]:
    """Every <details> hint is closed, opens on a click on its summary, and closes again."""
    hints = page.locator(".jp-MarkdownCell details")
    problems = []
    if hints.count() and not hints.first.evaluate("el => el.open"):
        # One click with the mouse, as a learner would; the rest by script, for speed.
        summary = hints.first.locator("summary")
        summary.click()
        if not hints.first.evaluate("el => el.open"):
            problems.append(f"hint {summary.text_content().strip()!r} does not open on a mouse click")
        summary.click()
    for hint in hints.evaluate_all(TOGGLE_HINTS):
        if hint["folded"][0]:
            problems.append(f"{hint['title']} is open before any click")
        elif not hint["unfolded"][0] or hint["unfolded"][1] <= hint["folded"][1]:
            problems.append(f"{hint['title']} does not open on a click")
        elif hint["refolded"][0]:
            problems.append(f"{hint['title']} does not fold again on a second click")
    return problems


def figure_problems(cells: list[dict], nb: dict) -> list[str]:
    problems = []
    for number, (cell, stored) in enumerate(zip(cells, nb["cells"]), start=1):
        expected = sum("image/png" in o.get("data", {}) for o in stored.get("outputs", []))
        shown = [img for img in cell["images"] if img["loaded"] and img["visible"]]
        if len(shown) != expected:
            problems.append(f"cell {number}: {len(shown)} of {expected} figures visible")
        for img in cell["images"]:
            if img["overflow"] > 1:
                problems.append(f"cell {number}: a figure sticks out of the output area by {img['overflow']} px")
            if img["natural"] > MAX_FIGURE_WIDTH:
                problems.append(f"cell {number}: a figure is {img['natural']} px wide (at most {MAX_FIGURE_WIDTH})")
    return problems


def run_to_first_exercise(page, nb: dict) -> list[str]:
    """Run > Run All Cells stops at the first exercise (its cell or its check cell)."""
    sources = ["".join(c["source"]) for c in nb["cells"]]
    exercise = next((i for i, s in enumerate(sources) if "raise NotImplementedError" in s), None)
    if exercise is None:
        return ["no exercise (no `raise NotImplementedError`) in the student notebook"]
    check = next((i for i in range(exercise + 1, len(sources)) if nb["cells"][i]["cell_type"] == "code"), exercise)
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    try:
        page.locator(".jp-OutputArea-output", has_text="Traceback").first.wait_for(timeout=180_000)
    except PlaywrightTimeout:
        return ["Run > Run All Cells did not stop with an error within 180 s (no exercise reached?)"]
    cells = page.evaluate(READ_CELLS)
    failed = next(i for i, c in enumerate(cells) if c["errors"])
    error = cells[failed]["errors"][0].strip().splitlines()[-1]  # "NotImplementedError: Exercise softmax: ..."
    name = re.search(r'NotImplementedError\("(Exercise[^:"]*)', sources[exercise]).group(1)
    problems = []
    if failed not in (exercise, check):
        problems.append(f"Run All stopped at cell {failed + 1}, not at the first exercise (cell {exercise + 1}) "
                        f"or its check (cell {check + 1}): {error}")
    elif "NotImplementedError" not in error or name not in error:
        problems.append(f"cell {failed + 1} should raise NotImplementedError({name}: ...), got: {error}")
    not_run = [i + 1 for i, c in enumerate(cells[:failed]) if c["type"] == "code" and not re.search(r"\[\d+\]", c["prompt"])]
    if not_run:
        problems.append(f"code cells {not_run} before the exercise did not run")
    return problems


def full_page_screenshot(page, target: Path) -> None:
    """Make the window as tall as the notebook, so that one screenshot holds every cell."""
    target.parent.mkdir(parents=True, exist_ok=True)
    scroller = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-WindowedPanel-outer").first
    if scroller.count():
        content, visible = scroller.evaluate("el => { el.scrollTop = 0; return [el.scrollHeight, el.clientHeight]; }")
        size = page.viewport_size
        page.set_viewport_size({"width": size["width"], "height": int(size["height"] + content - visible)})
        page.wait_for_timeout(500)
    page.screenshot(path=str(target), full_page=True)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=label)
def test_notebook_as_a_learner_sees_it(page, lab, path):
    nb = load(path)
    try:
        open_notebook(page, lab, path)
        cells = wait_for_math(page)
        problems = markdown_problems(cells, nb) + hint_problems(page)
        if path.parent.name == "notebooks":
            problems += run_to_first_exercise(page, nb)
        else:
            problems += figure_problems(cells, nb)
    finally:  # a screenshot also when something above failed: it shows what went wrong
        try:
            full_page_screenshot(page, SCREENSHOTS / path.parent.name / f"{path.stem}.png")
        except PlaywrightError as error:
            print(f"no screenshot of {label(path)}: {error}")
    if problems:
        pytest.fail(f"{label(path)} in JupyterLab:\n  " + "\n  ".join(problems), pytrace=False)

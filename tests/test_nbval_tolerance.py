"""The comparison policy: cells tagged nbval-approx compare numbers with a tolerance, all else exactly."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import nbformat
import pytest

from utils.nbval_tolerance import RTOL, TAG, numbers_close, snap, snap_outputs

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    "ref, new",
    [
        ("1.775", "1.769"),       # a final loss on AVX-512 vs AVX2 (issue 12's measurement)
        ("2.02", "2.05"),
        ("65.5", "66.0"),
        ("0.00", "0.01"),          # one unit of the last printed digit
        ("2.2e-25", "2.25e-25"),
        ("1.0e3", "1.04e3"),
        ("nan", "nan"),
        ("inf", "inf"),
    ],
)
def test_cross_cpu_sized_differences_are_close(ref, new):
    assert numbers_close(ref, new)


@pytest.mark.parametrize(
    "ref, new",
    [
        ("1.775", "1.95"),         # a real change in a loss
        ("21.0", "29.0"),
        ("0.00", "0.05"),
        ("1", "2"),                # integers (shapes, counts, steps) stay exact
        ("65", "66"),
        ("2000", "2001"),
        ("1.5e-3", "3e-3"),
        ("1.0", "nan"),
        ("nan", "1.0"),
        ("inf", "-inf"),
    ],
)
def test_real_differences_are_not_close(ref, new):
    assert not numbers_close(ref, new)


def test_rtol_is_five_percent():
    assert RTOL == 0.05
    assert numbers_close("1000.0", "1049.0") and not numbers_close("1000.0", "1051.0")


def test_snap_replaces_close_numbers_only():
    ref = "step 2000 | train 1.702 | val 1.775"
    assert snap(ref, "step 2000 | train 1.698 | val 1.769") == ref
    assert snap(ref, "step 2000 | train 1.698 | val 1.950") == "step 2000 | train 1.702 | val 1.950"


@pytest.mark.parametrize(
    "new",
    [
        "step 2000 | train 1.702 | loss 1.775",       # a word changed
        "step 2000 | train 1.702 | val 1.775 | 0.1",  # a number more
        "step 2000 | train 1.702",                     # a number less
        "check_GPT failed",                            # a check line changed
    ],
)
def test_snap_leaves_changed_text_alone(new):
    assert snap("step 2000 | train 1.702 | val 1.775", new) == new


def test_words_and_versions_are_not_numbers():
    ref = "torch 2.13.0+cpu on avx512, x86, (4, 6, 1), 1.84x faster."
    assert snap(ref, ref.replace("1.84x", "1.80x")) == ref  # a unit may follow a number
    for changed in ("2.13.1+cpu", "avx2", "x64", "(4, 6, 2)"):  # not numbers, or integers: exact
        old = {"2.13.1+cpu": "2.13.0+cpu", "avx2": "avx512", "x64": "x86", "(4, 6, 2)": "(4, 6, 1)"}[changed]
        new = ref.replace(old, changed)
        assert snap(ref, new) == new


def test_snap_outputs_pairs_streams_and_mime_types():
    ref = [nbformat.v4.new_output("stream", name="stdout", text="loss 1.775\n"),
           nbformat.v4.new_output("execute_result", data={"text/plain": "0.500"}, execution_count=1)]
    new = [nbformat.v4.new_output("stream", name="stdout", text="loss 1.769\n"),
           nbformat.v4.new_output("execute_result", data={"text/plain": "0.503"}, execution_count=3)]
    snapped = snap_outputs(new, ref)
    assert snapped[0]["text"] == "loss 1.775\n" and snapped[1]["data"]["text/plain"] == "0.500"
    assert new[0]["text"] == "loss 1.769\n"  # the input is not modified


# ---------------------------------------------------------------- through nbval itself


def _cell(stored: str, printed: str, tags=()):
    cell = nbformat.v4.new_code_cell(f"print({printed!r})")
    cell.execution_count = 1
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=stored + "\n")]
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


CASES = {  # name: (stored output, what the cell prints now, tags, should pass)
    "approx_cross_cpu": ("step 2000 | val 1.775", "step 2000 | val 1.769", [TAG], True),
    "approx_real_change": ("step 2000 | val 1.775", "step 2000 | val 1.950", [TAG], False),
    "approx_shape_changed": ("logits (2, 8, 65) loss 4.17", "logits (2, 8, 66) loss 4.17", [TAG], False),
    "approx_check_line_changed": ("check_GPT passed", "check_GPT FAILED", [TAG], False),
    "exact_cross_cpu": ("step 2000 | val 1.775", "step 2000 | val 1.769", [], False),
    "exact_same": ("step 2000 | val 1.775", "step 2000 | val 1.775", [], True),
    "ignored": ("sampled: To be or not", "sampled: Thou art", ["nbval-ignore-output"], True),
}


def test_nbval_applies_the_policy_cell_by_cell(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [_cell(stored, printed, tags) for stored, printed, tags, _ in CASES.values()]
    path = tmp_path / "policy.ipynb"
    nbformat.write(nb, path)
    report = tmp_path / "report.xml"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "utils.nbval_tolerance", "--nbval", "--nbval-current-env",
         "-p", "no:cacheprovider", f"--junitxml={report}", str(path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    outcomes = []
    for case in ET.parse(report).getroot().iter("testcase"):
        outcomes.append(not any(child.tag in ("failure", "error") for child in case))
    assert outcomes == [should_pass for *_, should_pass in CASES.values()], dict(zip(CASES, outcomes))


def test_repository_conftest_loads_the_plugin():
    text = (ROOT / "conftest.py").read_text()
    assert '"utils.nbval_tolerance"' in text and "pytest_plugins" in text


def test_solution_notebooks_use_the_policy_tags_only():
    """One mechanism: cell tags. No cell is skipped, none is both approximate and ignored."""
    for path in sorted((ROOT / "solutions").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for number, cell in enumerate(nb.cells, start=1):
            tags = set(cell.metadata.get("tags", []))
            where = f"{path.name}, cell {number}"
            assert "nbval-skip" not in tags, f"{where}: run every cell; tag nbval-ignore-output instead"
            assert not {TAG, "nbval-ignore-output"} <= tags, f"{where}: {TAG} or nbval-ignore-output, not both"
            if cell.cell_type == "code":
                assert "NBVAL_" not in cell.source, f"{where}: use cell tags, not NBVAL_ comments"
            elif TAG in tags:
                raise AssertionError(f"{where}: {TAG} on a {cell.cell_type} cell")

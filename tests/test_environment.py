"""The project's set-up files agree with each other."""

from __future__ import annotations

import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def _pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]]
    # environment.yml pins Python 3.11, so compare what applies there (tomli is for 3.10 only).
    reqs = [r for r in reqs if r.marker is None or r.marker.evaluate({"python_version": "3.11"})]
    return {r.name.lower(): str(r.specifier) for r in reqs}


def _conda_requirements() -> tuple[dict[str, str], dict]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    found, pip_section = {}, None
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip_section = dep["pip"]
            continue
        name, spec = re.match(r"([A-Za-z0-9_.\-]+)\s*(.*)", dep).groups()
        found[name.lower()] = spec.replace("=", "==", 1) if re.fullmatch(r"=[^=].*", spec) else spec
    for line in pip_section or []:
        if not line.startswith("-e"):
            req = Requirement(line)
            found[req.name.lower()] = str(req.specifier)
    return found, {"env": env, "pip": pip_section or []}


def test_environment_yml_parses_and_uses_conda_forge_and_python_311():
    _, info = _conda_requirements()
    env = info["env"]
    assert env["channels"] == ["conda-forge"]
    assert "python=3.11" in env["dependencies"]
    assert "-e .[dev]" in info["pip"], "environment.yml must install this project with pip"


def test_environment_yml_names_the_same_dependencies_as_pyproject():
    conda, _ = _conda_requirements()
    conda.pop("python"), conda.pop("pip")
    assert conda == _pyproject_requirements()


def test_torch_is_pinned_to_the_cpu_wheel_and_nothing_else_is_pinned():
    reqs = _pyproject_requirements()
    assert reqs.pop("torch") == "==2.13.0"
    pinned = {name: spec for name, spec in reqs.items() if "==" in spec}
    assert not pinned, f"give these lower bounds, not exact pins: {pinned}"


def test_ci_runs_the_readme_test_command_then_another_cpu_then_the_browser_test():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make test-other-cpu" in readme and "make test-browser" in readme
    commands = [l.strip() for l in ci.splitlines() if l.strip() and not l.startswith("#")]
    assert commands[-3:] == ["make test", "make test-other-cpu", "make test-browser"], commands


def test_other_cpu_run_covers_the_notebooks_that_train():
    """`make test-other-cpu` runs the notebooks that train GPTs (07, 08, 10), each with nbval-approx cells."""
    makefile = (ROOT / "Makefile").read_text()
    assert "ATEN_CPU_CAPABILITY=$(OTHER_CPU)" in makefile and "OTHER_CPU ?= default" in makefile
    line = next(l for l in makefile.splitlines() if l.startswith("OTHER_CPU_NOTEBOOKS ?="))
    listed = line.split("?=", 1)[1].split()
    assert {"07", "08", "10"} <= {Path(p).name[:2] for p in listed}, listed
    for p in listed:
        assert (ROOT / p).is_file(), f"the Makefile lists {p}, which does not exist"
        assert '"nbval-approx"' in (ROOT / p).read_text(), f"{p} has no cell tagged nbval-approx"

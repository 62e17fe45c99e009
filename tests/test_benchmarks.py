"""The benchmark script runs end to end (a smoke test with a 1-second budget, not a timing)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_cpu_recipe_benchmark_runs_and_reports_both_recipes():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "cpu_recipe.py"), "--runs", "1", "--budget", "1"],
                         check=True, capture_output=True, text=True, timeout=300).stdout
    assert "run 1/1 baseline" in out and "run 1/1 course" in out
    assert "course / baseline val loss" in out and "tokens/s" in out

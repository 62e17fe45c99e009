"""utils.measure: peak memory on the CPU and median times."""

import pytest
import torch

from utils.measure import median_range, median_time, peak_memory_mib


def test_peak_memory_counts_what_is_alive_at_once():
    def two_at_once():
        a = torch.ones(1024, 1024)          # 4 MiB
        b = torch.ones(1024, 1024)          # 4 MiB more, while a is alive
        return (a + b).sum()                # and 4 MiB for a + b

    def one_at_a_time():
        for _ in range(3):
            torch.ones(1024, 1024).sum()    # each freed before the next

    assert peak_memory_mib(two_at_once) == pytest.approx(12.0, abs=0.1)
    assert peak_memory_mib(one_at_a_time) == pytest.approx(4.0, abs=0.1)


def test_peak_memory_rejects_an_unknown_device():
    with pytest.raises(ValueError, match="'cpu' or 'cuda'"):
        peak_memory_mib(lambda: None, device="meta")


def test_median_time_is_the_middle_run():
    calls = []
    assert median_time(lambda: calls.append(1), repeats=3) >= 0
    assert len(calls) == 4                  # one warm-up, three timed
    with pytest.raises(ValueError, match="at least 1"):
        median_time(lambda: None, repeats=0)


def test_median_range_reports_median_and_extremes():
    assert median_range([0.92, 1.01, 0.97]) == "0.97 (0.92 to 1.01)"
    assert median_range([1, 2, 3, 10], fmt=".1f") == "2.5 (1.0 to 10.0)"
    assert median_range(torch.tensor([0.5])) == "0.50 (0.50 to 0.50)"
    with pytest.raises(ValueError, match="at least one"):
        median_range([])

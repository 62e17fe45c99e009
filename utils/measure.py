"""Measuring what code costs (peak memory, wall-clock time), and reporting a result over seeds.

Used by the notebooks that measure (09 efficient attention, 08 training
dynamics). Memory on CUDA comes from the caching allocator's counters. A CPU
has no such counters, so on the CPU the profiler records every allocation and
release (``profile_memory=True``) and the peak is the maximum of their running
sum: the most memory ``fn`` had allocated at once, beyond what was in use
before it started.
"""

from __future__ import annotations

import os
import time
from typing import Callable

import torch
from torch.profiler import ProfilerActivity, profile

__all__ = ["peak_memory_mib", "median_time", "median_range"]


def peak_memory_mib(fn: Callable[[], object], device: torch.device | str = "cpu") -> float:
    """Peak memory (MiB) that fn() allocates while it runs, beyond what was in use before."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    if device.type != "cpu":
        raise ValueError(f"peak_memory_mib measures 'cpu' or 'cuda', not {device.type!r}")
    os.environ.setdefault("KINETO_LOG_LEVEL", "6")  # the profiler's start/stop lines would reach stderr
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    in_use = peak = 0
    for e in sorted(events, key=lambda e: e.start_ns()):
        in_use += e.nbytes()          # + on allocation, - on release
        peak = max(peak, in_use)
    return peak / 2**20


def median_time(fn: Callable[[], object], repeats: int = 3, device: torch.device | str = "cpu") -> float:
    """Median wall-clock seconds of fn() over `repeats` runs, after one warm-up run."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    cuda = torch.device(device).type == "cuda"
    fn()
    times = []
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def median_range(values, fmt: str = ".2f") -> str:
    """``"median (min to max)"`` of numbers: how a notebook reports a result over several seeds.

    >>> median_range([0.92, 1.01, 0.97])
    '0.97 (0.92 to 1.01)'
    """
    values = sorted(float(v) for v in values)
    if not values:
        raise ValueError("median_range needs at least one value")
    n = len(values)
    median = values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2
    return f"{median:{fmt}} ({values[0]:{fmt}} to {values[-1]:{fmt}})"

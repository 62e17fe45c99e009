"""Shared helpers for the transformer course.

Kept small on purpose. What lives here:

- ``setup_notebook``: the one call at the top of every notebook (seeds,
  print precision, plot style, device).
- ``set_seed`` and ``get_device``: the two pieces of it, for scripts.
- ``utils.checks``: one checker per exercise, ``check_<exercise name>``.
- ``utils.reference``: reference implementations that later notebooks import,
  so each notebook stands alone.
- ``utils.plotting``: the figures the notebooks share (attention heatmaps...).
- ``python -m utils.build``: writes notebooks/ from solutions/.
- ``python -m utils.check``: runs a learner's notebook and reports each exercise.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["setup_notebook", "set_seed", "get_device", "default_threads"]


def set_seed(seed: int = 0) -> None:
    """Seed Python, NumPy and PyTorch (CPU and, when present, CUDA)."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def get_device() -> torch.device:
    """CUDA if present, else Apple MPS if present, else CPU.

    The course never needs an accelerator. Set ``COURSE_DEVICE=cpu`` (or
    ``cuda``, ``mps``) in the environment to choose one yourself.
    """
    wanted = os.environ.get("COURSE_DEVICE", "").strip().lower()
    if wanted:
        if wanted not in ("cpu", "cuda", "mps"):
            raise ValueError(f"COURSE_DEVICE must be cpu, cuda or mps, got {wanted!r}")
        if wanted == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("COURSE_DEVICE=cuda but PyTorch sees no CUDA device")
        if wanted == "mps" and not torch.backends.mps.is_available():
            raise RuntimeError("COURSE_DEVICE=mps but PyTorch sees no Apple MPS device")
        return torch.device(wanted)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def default_threads() -> int:
    """PyTorch's CPU threads for the course: ``COURSE_THREADS`` if set, else up to 4 cores.

    The course's models are small: a second thread trains notebook 07's model
    about 1.4x as fast as one (``benchmarks/threads.py``), and past a few
    threads each matrix is too small to split further, so more than 4 would
    mostly add waiting.
    """
    wanted = os.environ.get("COURSE_THREADS", "").strip()
    if wanted:
        if not wanted.isdigit() or int(wanted) < 1:
            raise ValueError(f"COURSE_THREADS must be a positive integer, got {wanted!r}")
        return int(wanted)
    return max(1, min(4, os.cpu_count() or 1))


def setup_notebook(seed: int = 0, threads: int | None = None) -> torch.device:
    """Seed everything, set CPU threads, print precision and plot style; return the device.

    - ``seed``: seeds Python, NumPy and PyTorch, so a notebook run from the top
      draws the same random numbers every time.
    - ``threads``: PyTorch's CPU threads; by default ``default_threads()``: up
      to 4 of the machine's cores, or ``COURSE_THREADS`` from the environment.
      Another thread count (or another CPU) can round a sum differently in
      the last bits, and training amplifies that, so numbers that come out of
      training differ a little from machine to machine: the notebooks print
      them at a sensible precision and the tests compare them with a
      tolerance (see the README's maintainer section).
    - printing at a fixed precision, without scientific notation for tiny
      values.
    """
    import matplotlib.pyplot as plt

    if threads is None:
        threads = default_threads()
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ValueError(f"threads must be a positive int, got {threads!r}")
    set_seed(seed)
    torch.set_num_threads(threads)
    torch.set_printoptions(precision=4, sci_mode=False)
    np.set_printoptions(precision=4, suppress=True)
    plt.rcParams.update(
        {
            "figure.figsize": (6.0, 4.0),
            "figure.dpi": 100,
            "axes.grid": False,
            "axes.titlesize": 11,
            "axes.labelsize": 10,
        }
    )
    device = get_device()
    print(f"torch {torch.__version__} | device: {device} | seed: {seed} | CPU threads: {threads}")
    return device

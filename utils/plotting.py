"""The figures the notebooks share.

Every figure has a title and labelled axes; every heatmap has a colorbar.
Each function draws on ``ax`` when given one (so notebooks can build grids of
panels) and returns the axes it drew on; call ``plt.show()`` afterwards.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch

__all__ = ["heatmap", "plot_attention", "plot_attention_heads"]


def _as_array(x, ndim: int, expected: str, hint: str) -> np.ndarray:
    """A float64 NumPy copy of a tensor or array, or a ValueError naming the shape wanted."""
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != ndim:
        raise ValueError(f"expected {expected}, got shape {x.shape}; {hint}")
    return x


def _as_matrix(x) -> np.ndarray:
    return _as_array(x, 2, "a 2-D matrix",
                     "select one example and one head first, for example weights[0] or weights[0, head]")


def _check_labels(labels, n: int, axis: str) -> list[str] | None:
    if labels is None:
        return None
    labels = [str(t) for t in labels]
    if len(labels) != n:
        raise ValueError(f"{len(labels)} {axis} labels for a matrix with {n} {axis}s")
    return labels


def heatmap(
    matrix,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    cbar_label: str,
    xticklabels: Sequence | None = None,
    yticklabels: Sequence | None = None,
    annotate: bool | None = None,
    fmt: str | None = None,
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    ax: plt.Axes | None = None,
) -> plt.Axes:
    """Draw a 2-D matrix as a heatmap with a colorbar.

    ``annotate`` writes each value in its cell; by default it does so when the
    matrix is at most 10 x 10, small enough to read. ``fmt`` defaults to whole
    numbers for an integer-valued matrix (a mask) and two decimals otherwise.
    """
    m = _as_matrix(matrix)
    rows, cols = m.shape
    yticklabels = _check_labels(yticklabels, rows, "row")
    xticklabels = _check_labels(xticklabels, cols, "column")
    if annotate is None:
        annotate = rows <= 10 and cols <= 10
    if fmt is None:
        fmt = ".0f" if np.all(m == np.round(m)) else ".2f"
    if ax is None:
        width = min(10.0, max(4.0, 0.55 * cols + 2.0))
        height = min(9.0, max(3.0, 0.5 * rows + 1.5))
        _, ax = plt.subplots(figsize=(width, height))
    sns.heatmap(
        m,
        ax=ax,
        cmap=cmap,
        vmin=vmin,
        vmax=vmax,
        annot=annotate,
        fmt=fmt,
        annot_kws={"fontsize": 8},
        square=rows == cols and rows <= 40,
        xticklabels=xticklabels if xticklabels is not None else "auto",
        yticklabels=yticklabels if yticklabels is not None else "auto",
        cbar_kws={"label": cbar_label},
    )
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.tick_params(axis="x", labelrotation=90 if xticklabels and max(map(len, xticklabels)) > 3 else 0)
    ax.tick_params(axis="y", labelrotation=0)
    return ax


def plot_attention(
    weights,
    queries: Sequence | None = None,
    keys: Sequence | None = None,
    *,
    title: str = "Attention weights",
    annotate: bool | None = None,
    ax: plt.Axes | None = None,
) -> plt.Axes:
    """Heatmap of one attention matrix: a row per query token, a column per key token.

    ``weights`` is (seq_q, seq_k); ``queries`` and ``keys`` are the tokens
    (``keys`` defaults to ``queries``, as in self-attention). Each row sums to
    one, so the colour scale runs from 0 to 1.
    """
    m = _as_matrix(weights)
    if keys is None and queries is not None and m.shape[0] == m.shape[1]:
        keys = queries
    return heatmap(
        m,
        title=title,
        xlabel="key (attended to)",
        ylabel="query (attending)",
        cbar_label="attention weight",
        xticklabels=keys,
        yticklabels=queries,
        annotate=annotate,
        vmin=0.0,
        vmax=1.0,
        ax=ax,
    )


def plot_attention_heads(
    weights,
    tokens: Sequence | None = None,
    *,
    title: str,
    ncols: int = 4,
    keys: Sequence | None = None,
    head_titles: Sequence[str] | None = None,
    annotate: bool = False,
    panel_width: float | None = None,
) -> np.ndarray:
    """A grid of attention heatmaps, one panel per head, each with its colorbar.

    ``weights`` is (heads, seq_q, seq_k): select one example first, for
    example ``weights[0]`` of a (batch, heads, seq_q, seq_k) tensor.
    ``tokens`` label the queries (and the keys, unless ``keys`` is given).
    Panels are titled "head 0", "head 1", ... unless ``head_titles`` says
    otherwise; ``title`` goes above the whole grid. The figure is at most
    11 inches wide. Returns the 2-D array of axes (unused panels hidden).
    """
    weights = _as_array(weights, 3, "weights of shape (heads, seq_q, seq_k)",
                        "for a batch of shape (batch, heads, seq_q, seq_k) select one example, e.g. weights[0]")
    n_heads = weights.shape[0]
    if head_titles is None:
        head_titles = [f"head {h}" for h in range(n_heads)]
    head_titles = [str(t) for t in head_titles]
    if len(head_titles) != n_heads:
        raise ValueError(f"{len(head_titles)} head titles for {n_heads} heads")
    if ncols < 1:
        raise ValueError(f"ncols must be at least 1, got {ncols}")
    ncols = min(ncols, n_heads)
    nrows = -(-n_heads // ncols)  # ceiling division
    if panel_width is None:
        panel_width = min(4.0, 11.0 / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(panel_width * ncols, 0.85 * panel_width * nrows + 0.6), squeeze=False
    )
    for h, ax in enumerate(axes.flat):
        if h >= n_heads:
            ax.set_visible(False)
            continue
        plot_attention(weights[h], tokens, keys, title=head_titles[h], annotate=annotate, ax=ax)
        key_labels = keys if keys is not None else tokens
        if key_labels is not None and max(len(str(t)) for t in key_labels) > 1:
            ax.tick_params(axis="x", labelrotation=90)  # word labels would overlap in small panels
    fig.suptitle(title)
    fig.tight_layout()
    return axes

"""The shared figures carry a title, axis labels and a colorbar, and reject bad input clearly."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display in tests

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from utils.plotting import heatmap, plot_attention, plot_attention_heads  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _colorbars(fig) -> list:
    return [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]


def test_heatmap_has_title_labels_and_colorbar():
    ax = heatmap(torch.rand(3, 4), title="T", xlabel="x", ylabel="y", cbar_label="value")
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("T", "x", "y")
    bars = _colorbars(ax.figure)
    assert len(bars) == 1 and bars[0].get_ylabel() == "value"


def test_heatmap_annotates_small_integer_matrices_as_whole_numbers():
    ax = heatmap(torch.ones(2, 2, dtype=torch.int64), title="mask", xlabel="k", ylabel="q", cbar_label="1 = may attend")
    assert [t.get_text() for t in ax.texts] == ["1", "1", "1", "1"]


def test_plot_attention_puts_tokens_on_both_axes():
    tokens = ["the", "cat", "sat"]
    ax = plot_attention(torch.softmax(torch.randn(3, 3), -1), tokens, title="w")
    assert [t.get_text() for t in ax.get_xticklabels()] == tokens
    assert [t.get_text() for t in ax.get_yticklabels()] == tokens
    assert ax.get_xlabel() == "key (attended to)" and ax.get_ylabel() == "query (attending)"


@pytest.mark.parametrize("bad, message", [
    (torch.rand(2, 3, 3), "expected a 2-D matrix, got shape (2, 3, 3)"),
    (torch.rand(3), "expected a 2-D matrix"),
])
def test_plot_attention_rejects_non_matrices(bad, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        plot_attention(bad)


def test_plot_attention_rejects_the_wrong_number_of_tokens():
    with pytest.raises(ValueError, match="2 row labels for a matrix with 3 rows"):
        plot_attention(torch.rand(3, 3), ["a", "b"])


def test_plot_attention_heads_draws_one_titled_panel_per_head_and_hides_the_rest():
    axes = plot_attention_heads(torch.rand(3, 4, 4), list("abcd"), title="heads", ncols=2)
    assert axes.shape == (2, 2)
    visible = [ax for ax in axes.flat if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["head 0", "head 1", "head 2"]
    assert not axes.flat[3].get_visible()
    assert axes.flat[0].figure._suptitle.get_text() == "heads"
    assert len(_colorbars(axes.flat[0].figure)) == 3


def test_plot_attention_heads_rejects_bad_input():
    with pytest.raises(ValueError, match="select one example"):
        plot_attention_heads(torch.rand(2, 2, 3, 3), title="t")
    with pytest.raises(ValueError, match="1 head titles for 2 heads"):
        plot_attention_heads(torch.rand(2, 3, 3), title="t", head_titles=["only one"])

"""Tests for hw2lib.plots: what the figures show (lines, panels, labels), not only that they draw."""

from __future__ import annotations

import math
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from hw2lib.kmnist import CLASS_CHARACTERS  # noqa: E402
from hw2lib.plots import (class_label, japanese_font, plot_accuracy_bars, plot_activation_maps,  # noqa: E402
                          plot_confusion_matrix, plot_filters, plot_learning_curves, plot_misclassified)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_learning_curves_draw_one_line_per_run_and_highlight_the_best():
    histories = {"a": [{"epoch": 1, "train_loss": 1.0, "dev_accuracy": 0.5}, {"epoch": 2, "train_loss": 0.5, "dev_accuracy": 0.7}],
                 "b": [{"epoch": 1, "train_loss": 2.0, "dev_accuracy": None}, {"epoch": 2, "train_loss": 2.0, "dev_accuracy": 0.1}]}
    figure = plot_learning_curves(histories, highlight="a")
    loss_axis, accuracy_axis = figure.axes[:2]
    assert len(loss_axis.lines) == 2 and len(accuracy_axis.lines) == 2
    widths = {line.get_label(): line.get_linewidth() for line in accuracy_axis.lines}
    assert widths["a (best)"] > widths["b"]
    assert math.isnan(accuracy_axis.lines[1].get_ydata()[0])  # a missing value is a gap, not a zero
    assert loss_axis.get_yscale() == "log"


def test_japanese_font_really_has_the_glyphs():
    font = japanese_font()
    assert font is None or "last resort" not in font.lower()  # a placeholder-box font does not count
    if font is None:
        assert class_label(0) == "o" and class_label(9, None) == "wo"
        return
    assert class_label(1, font) == f"{CLASS_CHARACTERS[1]} (ki)"
    figure, axis = plt.subplots()
    axis.set_title(" ".join(CLASS_CHARACTERS), fontfamily=font)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Glyph ... missing" would fail here
        figure.canvas.draw()


def test_misclassified_grid_titles_and_no_missing_glyphs():
    images = torch.rand(5, 1, 28, 28)
    labels, predictions = torch.tensor([0, 1, 2, 3, 4]), torch.tensor([0, 2, 2, 5, 4])
    figure = plot_misclassified(images, labels, predictions, [1, 3], font=japanese_font())
    titles = [axis.get_title() for axis in figure.axes if axis.get_title()]
    assert len(titles) == 2 and titles[0].startswith(class_label(1, japanese_font()))
    assert class_label(5, japanese_font()) in titles[1]


def test_activation_maps_and_filters_panels():
    maps = torch.randn(8, 28, 28)
    figure = plot_activation_maps(torch.rand(28, 28), maps, title="example 4")
    images = [axis for axis in figure.axes if axis.images]
    assert len(images) == 1 + 8
    low, high = images[1].images[0].get_clim()
    assert low == -high == -float(maps.abs().max())  # signed maps on one symmetric scale
    after = plot_activation_maps(torch.rand(28, 28), torch.rand(16, 12, 12), after_relu=True)
    assert len([axis for axis in after.axes if axis.images]) == 1 + 16
    assert len(plot_filters(torch.randn(8, 1, 5, 5)).axes) == 8


def test_confusion_matrix_and_accuracy_bars_write_their_numbers():
    matrix = torch.tensor([[5, 1], [0, 4]])
    figure = plot_confusion_matrix(matrix)
    assert sorted(text.get_text() for text in figure.axes[0].texts) == ["1", "4", "5"]
    bars = plot_accuracy_bars({("cnn", "original"): 0.9, ("fc", "original"): 0.8, ("cnn", "permuted"): 0.7,
                               ("fc", "permuted"): 0.8})
    labels = sorted(text.get_text() for text in bars.axes[0].texts)
    assert labels == ["0.700", "0.800", "0.800", "0.900"]

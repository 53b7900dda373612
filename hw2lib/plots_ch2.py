"""The figures of chapter 2 (the data, Q2.3-Q2.5): learning curves, images, filters, feature maps, errors.

Every function returns the matplotlib Figure it drew, under the book's style
(:mod:`hw2lib.plot_style`); import them from :mod:`hw2lib.plots`. Images of characters are drawn with
dark ink on white (``gray_r``), as they were written, and classes are labelled with their hiragana
when a font has them (:func:`japanese_font`, :func:`class_label`). :func:`plot_learning_curves`
draws chapter 3's training runs too.
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import font_manager
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from .kmnist import CLASS_CHARACTERS, CLASS_ROMAJI
from .plot_style import (
    COLUMN_WIDTH,
    KANA_FONT_FILE,
    SMALL_TEXT_PT,
    as_array,
    in_book_style,
    legend_in_free_slot,
    wrapped,
)


def _font_families(font: str | None) -> list[str]:
    """The font families for text that may hold hiragana: the current ones, then ``font`` as a fallback."""
    families = list(plt.rcParams["font.family"])
    return families + [font] if font and font not in families else families


@lru_cache(maxsize=1)
def japanese_font() -> str | None:
    """The name of a font with glyphs for all ten KMNIST hiragana, or None (Chapter 2): the book's own
    subset (``hw2lib/fonts``, registered at import) first, else an installed font.

    Matplotlib's "Last Resort" font maps every code point to a placeholder box, so it is skipped.
    """
    entries = sorted(font_manager.fontManager.ttflist, key=lambda entry: entry.fname != str(KANA_FONT_FILE))
    for entry in entries:
        if "last resort" in entry.name.lower():
            continue
        try:
            charmap = font_manager.get_font(entry.fname).get_charmap()
        except (OSError, RuntimeError, ValueError):
            continue
        if all(ord(character) in charmap for character in CLASS_CHARACTERS):
            return entry.name
    return None


def class_label(index: int, font: str | None = None) -> str:
    """``"お (o)"`` when a Japanese font is available, else the romaji ``"o"`` (Chapter 2)."""
    return f"{CLASS_CHARACTERS[index]} ({CLASS_ROMAJI[index]})" if font else CLASS_ROMAJI[index]


@in_book_style
def plot_image_grid(images, titles: Sequence[str] | None = None, *, columns: int = 8, size: float | None = None,
                    cmap: str = "gray_r", font: str | None = None, suptitle: str | None = None) -> Figure:
    """Images (N, 28, 28) or (N, 1, 28, 28) in a grid with optional titles (Chapter 2). ``size`` is the
    side of one image in inches; by default the grid fills the book's column."""
    images = as_array(images)
    images = images.reshape(len(images), *images.shape[-2:])
    columns = max(1, min(columns, len(images)))
    rows = max(1, math.ceil(len(images) / columns))
    side = size if size is not None else (COLUMN_WIDTH - 0.08) / columns  # the saved margins fit too
    lines = max((str(title).count("\n") + 1 for title in titles), default=0) if titles is not None else 0
    height = rows * (side + 0.16 * lines) + (0.3 if suptitle else 0.0)
    figure, axes = plt.subplots(rows, columns, figsize=(side * columns, height), squeeze=False, layout="constrained")
    figure.get_layout_engine().set(w_pad=0.01, h_pad=0.02, wspace=0.02, hspace=0.02)
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index < len(images):
            axis.imshow(images[index], cmap=cmap)
            if titles is not None:
                axis.set_title(titles[index], fontsize=SMALL_TEXT_PT, fontfamily=_font_families(font), pad=2)
    if suptitle:
        figure.suptitle(suptitle)
    return figure


def _draw_histories(axis, histories: Mapping[str, Sequence[Mapping[str, float]]], key: str,
                    highlight: str | None, colours: Mapping[str, str]) -> None:
    for label, history in histories.items():
        epochs = [row["epoch"] for row in history]
        values = [math.nan if row.get(key) is None else row[key] for row in history]
        emphasised = highlight is None or label == highlight
        axis.plot(epochs, values, marker="o", markersize=3 if emphasised else 2, color=colours[label],
                  linewidth=2.6 if emphasised and highlight else 1.3, alpha=1.0 if emphasised else 0.65,
                  label=f"{label} (best)" if label == highlight else label)


@in_book_style
def plot_learning_curves(histories: Mapping[str, Sequence[Mapping[str, float]]], *,
                         keys: Sequence[str] = ("train_loss", "dev_accuracy"), highlight: str | None = None,
                         titles: Mapping[str, str] | None = None, log_scale: Sequence[str] = ("train_loss",),
                         columns: int = 2, bands: Mapping[str, Mapping[str, tuple[float, float]]] | None = None,
                         band_label: str = "published range") -> Figure:
    """One panel per metric in ``keys`` (at most ``columns`` a row), one line per run, epochs across
    (Chapters 2 and 3).

    ``histories`` maps a label to a history (rows with ``epoch`` and the keys). The run
    named by ``highlight`` is drawn thick, the others thin, so the winner stands out.
    Missing values (a diverged run's NaN) leave gaps. ``bands`` maps a key to ``{run label: (low,
    high)}``: a band in that run's colour on that panel, named ``band_label`` in the legend. The legend
    takes a free panel slot when there is one, else the space below the panels.
    """
    titles, bands = dict(titles or {}), dict(bands or {})
    columns = max(1, min(columns, len(keys)))
    rows = math.ceil(len(keys) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(COLUMN_WIDTH, 2.55 * rows + 0.45), squeeze=False,
                                layout="constrained")
    colours = {label: f"C{index % 10}" for index, label in enumerate(histories)}
    for axis, key in zip(axes.flat, keys):
        _draw_histories(axis, histories, key, highlight, colours)
        for label, (low, high) in bands.get(key, {}).items():
            axis.axhspan(low, high, color=colours.get(label, "0.5"), alpha=0.15, linewidth=0)
        if key in log_scale:
            axis.set_yscale("log")
        axis.set_title(titles.get(key, key.replace("_", " ")))
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if bands:
        handles, labels = handles + [Patch(color="0.5", alpha=0.3, linewidth=0)], labels + [band_label]
    legend_in_free_slot(figure, list(axes.flat)[len(keys):], handles, labels, columns=3)
    return figure


@in_book_style
def plot_activation_maps(image, maps, *, title: str = "", after_relu: bool = False) -> Figure:
    """The input image beside its feature maps (C, H, W), on one colour scale (Chapter 2, Q2.5).

    Before the ReLU the maps are signed: red is positive (the filter matches), blue
    negative, white zero. After the ReLU only the positive part is left.
    """
    image, maps = as_array(image).reshape(28, 28), as_array(maps)
    channels = len(maps)
    columns = 4 if channels <= 8 else 8
    rows = max(math.ceil(channels / columns), 2)
    side = (COLUMN_WIDTH - 0.8) / (columns + 2)  # inches per map; 0.8 for the colour bar
    figure = plt.figure(figsize=(COLUMN_WIDTH, rows * (side + 0.2) + 0.35), layout="constrained")
    grid = figure.add_gridspec(rows, columns + 2)
    input_axis = figure.add_subplot(grid[:2, :2])
    input_axis.imshow(image, cmap="gray_r")
    input_axis.set_title(wrapped(title or "input", 2 * side, plt.rcParams["font.size"]),
                         fontsize=plt.rcParams["font.size"])
    input_axis.axis("off")
    limit = float(np.abs(maps).max()) or 1.0
    cmap, low = ("Reds", 0.0) if after_relu else ("RdBu_r", -limit)
    for channel in range(channels):
        axis = figure.add_subplot(grid[channel // columns, 2 + channel % columns])
        shown = axis.imshow(maps[channel], cmap=cmap, vmin=low, vmax=limit)
        axis.set_title(f"channel {channel}" if columns == 4 else f"ch. {channel}", fontsize=SMALL_TEXT_PT, pad=2)
        axis.axis("off")
    figure.colorbar(shown, ax=figure.axes[1:], shrink=0.85, label="activation")
    return figure


@in_book_style
def plot_filters(weight, *, title: str = "conv1 filters") -> Figure:
    """Convolution filters (C_out, 1, k, k) as small signed images (Chapter 2), at most eight a row."""
    weight = as_array(weight)[:, 0]
    limit = float(np.abs(weight).max()) or 1.0
    columns = min(len(weight), 8)
    rows = math.ceil(len(weight) / columns)
    side = COLUMN_WIDTH / 8
    figure, axes = plt.subplots(rows, columns, figsize=(side * columns, rows * (side + 0.2) + 0.35), squeeze=False,
                                layout="constrained")
    for channel, axis in enumerate(axes.flat):
        axis.axis("off")
        if channel < len(weight):
            axis.imshow(weight[channel], cmap="RdBu_r", vmin=-limit, vmax=limit)
            axis.set_title(f"channel {channel}", fontsize=SMALL_TEXT_PT, pad=2)
    figure.suptitle(title)
    return figure


@in_book_style
def plot_confusion_matrix(matrix, *, font: str | None = None, title: str = "") -> Figure:
    """A confusion matrix (rows true, columns predicted) with counts written in the cells and a colour
    bar (Chapter 2); classes are labelled "お (o)" when ``font`` is given, else in romaji."""
    matrix = as_array(matrix)
    labels = [class_label(index, font) for index in range(len(matrix))]
    figure, axis = plt.subplots(figsize=(5.6, 4.9), layout="constrained")
    shown = axis.imshow(matrix, cmap="Blues")
    for row in range(len(matrix)):
        for column in range(len(matrix)):
            count = int(matrix[row, column])
            if count:
                axis.text(column, row, count, ha="center", va="center", fontsize=SMALL_TEXT_PT,
                          color="white" if count > matrix.max() / 2 else "black")
    families = _font_families(font)
    axis.set_xticks(range(len(labels)), labels, rotation=45, ha="right", rotation_mode="anchor", fontfamily=families)
    axis.set_yticks(range(len(labels)), labels, fontfamily=families)
    axis.set_xlabel("predicted class")
    axis.set_ylabel("true class")
    axis.set_title(title)
    figure.colorbar(shown, ax=axis, shrink=0.85, label="test images")
    return figure


@in_book_style
def plot_misclassified(images, labels, predictions, indices, *, font: str | None = None, columns: int = 8) -> Figure:
    """The images at ``indices`` titled with the true class over the predicted one ("お (o)" over
    "→ き (ki)" when a font allows, else romaji) (Chapter 2)."""
    indices = [int(index) for index in indices]
    labels, predictions = as_array(labels), as_array(predictions)
    titles = [f"{class_label(labels[i], font)}\n→ {class_label(predictions[i], font)}" for i in indices]
    with warnings.catch_warnings():
        # A missing glyph is a bug here, not a warning to scroll past.
        warnings.filterwarnings("error", message="Glyph .* missing")
        figure = plot_image_grid(as_array(images)[indices], titles, columns=columns, font=font,
                                 suptitle="misclassified test images: true class, then → predicted class")
        figure.canvas.draw()
    return figure


@in_book_style
def plot_accuracy_bars(results: Mapping[tuple[str, str], float], *, title: str = "dev accuracy") -> Figure:
    """Grouped bars: accuracy per model for each pixel order, from {(model, pixels): accuracy} (Chapter 2, Q2.3)."""
    models = sorted({model for model, _ in results}, key=lambda name: name != "cnn")
    orders = sorted({pixels for _, pixels in results}, key=lambda name: name != "original")
    figure, axis = plt.subplots(figsize=(5.6, 3.2), layout="constrained")
    width = 0.8 / len(models)
    for offset, model in enumerate(models):
        values = [results.get((model, pixels), math.nan) for pixels in orders]
        bars = axis.bar(np.arange(len(orders)) + (offset - (len(models) - 1) / 2) * width, values, width,
                        label=model.upper())
        axis.bar_label(bars, fmt="%.3f", fontsize=SMALL_TEXT_PT)
    axis.set_xticks(range(len(orders)), [f"{pixels} pixels" for pixels in orders])
    axis.set_ylim(0, 1.08)
    axis.set_ylabel(title)
    axis.legend(loc="lower left", frameon=True)
    axis.grid(axis="y", alpha=0.3)
    return figure

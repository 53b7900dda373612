"""Figures of the book: generic helpers (learning curves, image grids) and chapter 2's CNN plots.

Every function returns the matplotlib Figure it drew, so a notebook cell can show it
and a test can inspect it. Images are drawn with white background and dark ink
(``gray_r``), as the characters were written.
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib import font_manager
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .kmnist import CLASS_CHARACTERS, CLASS_ROMAJI

# ---------------------------------------------------------------- generic helpers


def _as_array(values) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)


def plot_learning_curves(histories: Mapping[str, Sequence[Mapping[str, float]]], *,
                         keys: Sequence[str] = ("train_loss", "dev_accuracy"), highlight: str | None = None,
                         titles: Mapping[str, str] | None = None, log_scale: Sequence[str] = ("train_loss",)) -> Figure:
    """One panel per metric in ``keys``, one line per run, epochs on a shared x axis (Chapters 2 and 3).

    ``histories`` maps a label to a history (rows with ``epoch`` and the keys). The run
    named by ``highlight`` is drawn thick, the others thin, so the winner stands out.
    Missing values (a diverged run's NaN) leave gaps.
    """
    titles = dict(titles or {})
    figure, axes = plt.subplots(1, len(keys), figsize=(5.2 * len(keys), 3.6), sharex=True, squeeze=False)
    for axis, key in zip(axes[0], keys):
        for label, history in histories.items():
            epochs = [row["epoch"] for row in history]
            values = [math.nan if row.get(key) is None else row[key] for row in history]
            emphasised = highlight is None or label == highlight
            axis.plot(epochs, values, marker="o", markersize=3 if emphasised else 2,
                      linewidth=2.6 if emphasised and highlight else 1.2, alpha=1.0 if emphasised else 0.65,
                      label=f"{label} (best)" if label == highlight else label)
        if key in log_scale:
            axis.set_yscale("log")
        axis.set_title(titles.get(key, key.replace("_", " ")))
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8)
    figure.tight_layout()
    return figure


def plot_image_grid(images, titles: Sequence[str] | None = None, *, columns: int = 8, size: float = 1.3,
                    cmap: str = "gray_r", font: str | None = None, suptitle: str | None = None) -> Figure:
    """Images (N, 28, 28) or (N, 1, 28, 28) in a grid with optional titles (Chapter 2)."""
    images = _as_array(images)
    images = images.reshape(len(images), *images.shape[-2:])
    rows = max(1, math.ceil(len(images) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(size * columns, size * rows * 1.15), squeeze=False)
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index < len(images):
            axis.imshow(images[index], cmap=cmap)
            if titles is not None:
                axis.set_title(titles[index], fontsize=8, fontfamily=font or plt.rcParams["font.family"])
    if suptitle:
        figure.suptitle(suptitle)
    figure.tight_layout()
    return figure


# ---------------------------------------------------------------- chapter 2: the CNN


@lru_cache(maxsize=1)
def japanese_font() -> str | None:
    """The name of an installed font with glyphs for all ten KMNIST hiragana, or None (Chapter 2).

    Matplotlib's "Last Resort" font maps every code point to a placeholder box, so it is skipped.
    """
    for entry in font_manager.fontManager.ttflist:
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


def plot_activation_maps(image, maps, *, title: str = "", after_relu: bool = False) -> Figure:
    """The input image beside its feature maps (C, H, W), on one colour scale (Chapter 2, Q2.5).

    Before the ReLU the maps are signed: red is positive (the filter matches), blue
    negative, white zero. After the ReLU only the positive part is left.
    """
    image, maps = _as_array(image).reshape(28, 28), _as_array(maps)
    channels = len(maps)
    columns = 4 if channels <= 8 else 8
    rows = math.ceil(channels / columns)
    figure = plt.figure(figsize=(1.75 * (columns + 2) + 0.8, 1.9 * max(rows, 2)))
    grid = figure.add_gridspec(max(rows, 2), columns + 2)
    input_axis = figure.add_subplot(grid[:2, :2])
    input_axis.imshow(image, cmap="gray_r")
    input_axis.set_title(title or "input")
    input_axis.axis("off")
    limit = float(np.abs(maps).max()) or 1.0
    cmap, low = ("Reds", 0.0) if after_relu else ("RdBu_r", -limit)
    for channel in range(channels):
        axis = figure.add_subplot(grid[channel // columns, 2 + channel % columns])
        shown = axis.imshow(maps[channel], cmap=cmap, vmin=low, vmax=limit)
        axis.set_title(f"channel {channel}", fontsize=8)
        axis.axis("off")
    figure.colorbar(shown, ax=figure.axes[1:], shrink=0.8, label="activation")
    return figure


def plot_filters(weight, *, title: str = "conv1 filters") -> Figure:
    """Convolution filters (C_out, 1, k, k) as small signed images (Chapter 2)."""
    weight = _as_array(weight)[:, 0]
    limit = float(np.abs(weight).max()) or 1.0
    figure, axes = plt.subplots(1, len(weight), figsize=(1.4 * len(weight), 1.7), squeeze=False)
    for channel, axis in enumerate(axes[0]):
        axis.imshow(weight[channel], cmap="RdBu_r", vmin=-limit, vmax=limit)
        axis.set_title(f"channel {channel}", fontsize=8)
        axis.axis("off")
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def plot_confusion_matrix(matrix, *, font: str | None = None, title: str = "") -> Figure:
    """A confusion matrix (rows true, columns predicted) with counts written in the cells (Chapter 2)."""
    matrix = _as_array(matrix)
    labels = [class_label(index, font) for index in range(len(matrix))]
    figure, axis = plt.subplots(figsize=(6.2, 5.4))
    shown = axis.imshow(matrix, cmap="Blues")
    for row in range(len(matrix)):
        for column in range(len(matrix)):
            count = int(matrix[row, column])
            if count:
                axis.text(column, row, count, ha="center", va="center", fontsize=8,
                          color="white" if count > matrix.max() / 2 else "black")
    family = font or plt.rcParams["font.family"]
    axis.set_xticks(range(len(labels)), labels, rotation=45, fontfamily=family)
    axis.set_yticks(range(len(labels)), labels, fontfamily=family)
    axis.set_xlabel("predicted class")
    axis.set_ylabel("true class")
    axis.set_title(title)
    figure.colorbar(shown, ax=axis, shrink=0.8)
    figure.tight_layout()
    return figure


def plot_misclassified(images, labels, predictions, indices, *, font: str | None = None, columns: int = 8) -> Figure:
    """The images at ``indices`` titled "true → predicted" (hiragana + romaji when a font allows) (Chapter 2)."""
    indices = [int(index) for index in indices]
    labels, predictions = _as_array(labels), _as_array(predictions)
    titles = [f"{class_label(labels[i], font)} → {class_label(predictions[i], font)}" for i in indices]
    with warnings.catch_warnings():
        # A missing glyph is a bug here, not a warning to scroll past.
        warnings.filterwarnings("error", message="Glyph .* missing")
        figure = plot_image_grid(_as_array(images)[indices], titles, columns=columns, size=1.45, font=font,
                                 suptitle="misclassified test images: true → predicted")
        figure.canvas.draw()
    return figure


def plot_accuracy_bars(results: Mapping[tuple[str, str], float], *, title: str = "dev accuracy") -> Figure:
    """Grouped bars: accuracy per model for each pixel order, from {(model, pixels): accuracy} (Chapter 2, Q2.3)."""
    models = sorted({model for model, _ in results}, key=lambda name: name != "cnn")
    orders = sorted({pixels for _, pixels in results}, key=lambda name: name != "original")
    figure, axis = plt.subplots(figsize=(6, 3.4))
    width = 0.8 / len(models)
    for offset, model in enumerate(models):
        values = [results.get((model, pixels), math.nan) for pixels in orders]
        bars = axis.bar(np.arange(len(orders)) + (offset - (len(models) - 1) / 2) * width, values, width,
                        label=model.upper())
        axis.bar_label(bars, fmt="%.3f", fontsize=8)
    axis.set_xticks(range(len(orders)), [f"{pixels} pixels" for pixels in orders])
    axis.set_ylim(0, 1.05)
    axis.set_ylabel(title)
    axis.legend(loc="lower left")
    axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    return figure


def markdown_table(rows: Sequence[Mapping], columns: Mapping[str, str], formats: Mapping[str, str] | None = None) -> str:
    """A Markdown table of ``rows`` (Chapters 2 and 3): ``columns`` maps keys to headers, ``formats`` keys to specs.

    Display it with ``IPython.display.Markdown``; a missing value (None or NaN) prints as "–".
    """
    formats = dict(formats or {})

    def cell(row: Mapping, key: str) -> str:
        value = row.get(key)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "–"
        return format(value, formats.get(key, ""))

    lines = ["| " + " | ".join(columns.values()) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row, key) for key in columns) + " |" for row in rows]
    return "\n".join(lines)

"""Every figure of the book, one section per chapter, and the Markdown tables the chapters display.

Every function returns the matplotlib Figure it drew, so a notebook cell can show it and a test can
inspect it. Images of characters are drawn with dark ink on white (``gray_r``), as they were written.
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
from .seed_runs import MODEL_METRICS
from .translate import Translation

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


# ---------------------------------------------------------------- chapter 1: convolutions


def draw_conv_matrix(ax, matrix: torch.Tensor, block_shape: tuple[int, int], title: str, output_width: str = "W'") -> None:
    """Heatmap of a convolution matrix on ``ax`` with its block boundaries drawn; zeros stay white
    (chapter 1). ``block_shape`` is ``(W', W)`` for the valid **M**, ``(W, W)`` for the circulant one,
    whose rows are numbered ``a W + b`` (``output_width="W"``)."""
    if matrix.dim() != 2:
        raise ValueError(f"expected a matrix, got a tensor of shape {tuple(matrix.shape)}")
    matrix = matrix.detach().float()
    rows_per_block, cols_per_block = (int(size) for size in block_shape)
    masked = torch.where(matrix == 0, torch.nan, matrix)
    image = ax.imshow(masked.numpy(), cmap="viridis", interpolation="nearest")
    for row in range(rows_per_block, matrix.shape[0], rows_per_block):
        ax.axhline(row - 0.5, color="crimson", linewidth=1.2)
    for col in range(cols_per_block, matrix.shape[1], cols_per_block):
        ax.axvline(col - 0.5, color="crimson", linewidth=1.2)
    ax.set_xticks(range(0, matrix.shape[1], cols_per_block))
    ax.set_yticks(range(0, matrix.shape[0], rows_per_block))
    ax.set_xlabel("column j = c W + d (input pixel)")
    ax.set_ylabel(f"row i = a {output_width} + b (output pixel)")
    ax.set_title(title)
    ax.figure.colorbar(image, ax=ax, shrink=0.8, label="kernel value")


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


# ---------------------------------------------------------------- chapter 3: translation


def _shown(symbol: str) -> str:
    return {" ": "\u2423", "<eos>": "\u2039eos\u203a"}.get(symbol, symbol)  # a visible space, a short EOS


def plot_attention(translation: Translation, *, axis=None, title: str | None = None):
    """Heatmap of a translation's attention: output characters down, source characters across
    (chapter 3). Spaces show as a visible space sign. Returns the Figure."""
    if translation.attention is None:
        raise ValueError("this translation has no attention (the model without attention, or nothing to translate)")
    if axis is None:
        rows, columns = translation.attention.shape
        _, axis = plt.subplots(figsize=(1.2 + 0.3 * columns, 1.2 + 0.3 * rows))
    axis.imshow(translation.attention, cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
    axis.set_xticks(range(len(translation.source_symbols)), [_shown(s) for s in translation.source_symbols])
    axis.set_yticks(range(len(translation.target_symbols)), [_shown(s) for s in translation.target_symbols])
    axis.tick_params(axis="x", top=True, labeltop=True, bottom=False, labelbottom=False)
    axis.set_title(title if title is not None else f"{translation.normalised.strip()} \u2192 {translation.translation}",
                   fontsize=9)
    return axis.figure


def plot_attention_grid(translations: list[Translation], *, columns: int = 3, titles: list[str] | None = None):
    """Several attention heatmaps side by side (chapter 3). Returns the Figure."""
    if not translations:
        raise ValueError("no translations to plot")
    rows = -(-len(translations) // columns)
    width = max(t.attention.shape[1] for t in translations if t.attention is not None)
    height = max(t.attention.shape[0] for t in translations if t.attention is not None)
    figure, axes = plt.subplots(rows, columns, figsize=(columns * (1.0 + 0.26 * width), rows * (1.3 + 0.26 * height)),
                                squeeze=False)
    for index, axis in enumerate(axes.flat):
        if index < len(translations):
            plot_attention(translations[index], axis=axis, title=None if titles is None else titles[index])
        else:
            axis.axis("off")
    figure.tight_layout()
    return figure


def plot_decoder_comparison(comparisons: dict[str, list[dict]], *, metric: str = "error_rate"):
    """Question (c) at a glance (chapter 3): ``metric`` and decoding time against the beam size, one
    line per entry of ``comparisons`` (label -> rows of :func:`hw2lib.decoding.compare_decoders`);
    greedy decoding is the star at beam size 1. Returns the Figure."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(10.5, 3.6))
    for label, rows in comparisons.items():
        beams = [row for row in rows if row["decoder"].startswith("beam") and row["length_normalisation"] == 0]
        greedy = next(row for row in rows if row["decoder"] == "greedy")
        for axis, key in ((left, metric), (right, "seconds")):
            line, = axis.plot([row["beam_size"] for row in beams], [row[key] for row in beams], marker="o", label=label)
            axis.plot([1], [greedy[key]], marker="*", markersize=12, color=line.get_color(), linestyle="none")
    left.set_ylabel(metric.replace("_", " "))
    right.set_ylabel("decoding time of the split (s)")
    for axis in (left, right):
        axis.set_xlabel("beam size (star: greedy)")
        axis.set_xscale("log")
        axis.set_xticks([1, 3, 5, 10], ["1", "3", "5", "10"])
        axis.grid(alpha=0.3)
    left.legend(fontsize=8)
    figure.tight_layout()
    return figure


# ---------------------------------------------------------------- appendix: seeds


def plot_seed_spread(rows: list[dict]):
    """Each seed's figure as a dot, the mean +- std as a bar, the published range as a grey band,
    one panel per model (Appendix, "How repeatable are these numbers?"). Returns the Figure."""
    if not rows:
        raise ValueError("no rows to plot")
    models = list(dict.fromkeys(row["model"] for row in rows))
    figure, axes = plt.subplots(1, len(models), figsize=(3.6 * len(models), 3.2), squeeze=False)
    for axis, model in zip(axes[0], models):
        model_rows = [row for row in rows if row["model"] == model]
        for position, row in enumerate(model_rows):
            axis.axhspan(row["reference_low"], row["reference_high"], xmin=(position + 0.1) / len(model_rows),
                         xmax=(position + 0.9) / len(model_rows), color="0.85", zorder=0,
                         label="published range" if position == 0 else None)
            axis.errorbar([position], [row["mean"]], yerr=[row["std"]], fmt="s", color="C0", capsize=6,
                          label="mean ± std" if position == 0 else None)
            count = len(row["values"])
            offsets = [position - 0.12 * (count - index) for index in range(count)]  # left of the mean bar
            axis.scatter(offsets, row["values"], color="C1", s=18, zorder=3, label="one seed" if position == 0 else None)
            if row["chapter_value"] is not None:
                axis.scatter([position + 0.2], [row["chapter_value"]], marker="*", s=80, color="C3", zorder=4,
                             label=f"seed {row['chapter_seed']} (chapter)" if position == 0 else None)
        axis.set_xticks(range(len(model_rows)), [row["metric"] for row in model_rows])
        axis.set_xlim(-0.5, len(model_rows) - 0.5)
        axis.set_title(model_rows[0]["label"], fontsize=10)
        _, _, kind, higher_is_better = MODEL_METRICS[model]
        axis.set_ylabel(f"{kind} ({'higher' if higher_is_better else 'lower'} is better)")
        axis.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="best")
    figure.tight_layout()
    return figure


# ---------------------------------------------------------------- tables


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

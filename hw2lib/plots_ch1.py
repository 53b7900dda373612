"""The figures of chapter 1 (Q1.1 (b), (c), Q1.2): convolution matrices, heatmaps and parameter counts.

Every function returns the matplotlib Figure it drew (or, for :func:`draw_conv_matrix`, draws on
the axis it is given), under the book's style (:mod:`hw2lib.plot_style`); import them from
:mod:`hw2lib.plots`.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from .plot_style import COLUMN_WIDTH, as_array, in_book_style, wrapped


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


@in_book_style
def plot_conv_matrices(panels: Sequence[tuple[torch.Tensor, tuple[int, int], str, str]]) -> Figure:
    """Convolution matrices one above the other, each drawn by :func:`draw_conv_matrix` from a tuple
    ``(matrix, block_shape, title, output_width)``, with rows of one height across panels (chapter 1)."""
    if not panels:
        raise ValueError("no matrices to plot")
    columns = max(int(matrix.shape[1]) for matrix, *_ in panels)
    row_counts = [int(matrix.shape[0]) for matrix, *_ in panels]
    cell = min(0.26, (COLUMN_WIDTH - 1.9) / columns)  # inches per entry; the rest is labels and colour bar
    height = sum(rows * cell + 1.0 for rows in row_counts)
    figure, axes = plt.subplots(len(panels), 1, figsize=(COLUMN_WIDTH, height), squeeze=False, layout="constrained",
                                gridspec_kw={"height_ratios": [rows + 1.0 / cell for rows in row_counts]})
    for axis, (matrix, block_shape, title, output_width) in zip(axes[:, 0], panels):
        draw_conv_matrix(axis, matrix, block_shape, title, output_width)
    return figure


def plot_conv_matrix(matrix: torch.Tensor, block_shape: tuple[int, int], title: str, output_width: str = "W'") -> Figure:
    """One convolution matrix in a figure of the book's column width (chapter 1; see :func:`draw_conv_matrix`)."""
    return plot_conv_matrices([(matrix, block_shape, title, output_width)])


@in_book_style
def plot_heatmap_grid(rows: Sequence[Sequence[tuple[str, object]]], *, cmaps: Sequence[str] | None = None,
                      limits: Sequence[tuple[float, float]] | None = None, suptitle: str | None = None) -> Figure:
    """Small heatmaps in a grid, ``rows[r][c] = (title, values)``, each column on one colour scale
    (``cmaps[c]``, ``limits[c]``) with one colour bar, in the book's column (chapter 1, Question 1.2)."""
    columns = max(len(row) for row in rows)
    side = (COLUMN_WIDTH - 0.75 * columns) / columns  # each column keeps room for its colour bar
    figure, axes = plt.subplots(len(rows), columns, squeeze=False, layout="constrained",
                                figsize=(COLUMN_WIDTH, len(rows) * (side + 0.45) + (0.4 if suptitle else 0.0)))
    for column in range(columns):
        cmap = cmaps[column] if cmaps else "viridis"
        low, high = limits[column] if limits else (None, None)
        for row, axis in zip(rows, axes[:, column]):
            if column >= len(row):
                axis.axis("off")
                continue
            title, values = row[column]
            shown = axis.imshow(as_array(values), cmap=cmap, vmin=low, vmax=high)
            axis.set_title(wrapped(title, side + 0.3, plt.rcParams["axes.titlesize"]))
            axis.set_xticks([])
            axis.set_yticks([])
        figure.colorbar(shown, ax=list(axes[:, column]), shrink=0.8)
    if suptitle:
        figure.suptitle(wrapped(suptitle, COLUMN_WIDTH, plt.rcParams["figure.titlesize"]))
    return figure


@in_book_style
def plot_parameter_counts(sizes: Sequence[int], counts: Mapping[str, Sequence[int]], *,
                          title: str = "Parameters of the two networks") -> Figure:
    """Parameter counts against the image side, one line per network in ``counts`` (label -> counts),
    on a log scale (chapter 1, Question 1.1 (c))."""
    figure, axis = plt.subplots(figsize=(COLUMN_WIDTH, 3.4), layout="constrained")
    for label, values in counts.items():
        axis.plot(list(sizes), list(values), marker="o", markersize=3, label=label)
    axis.set_yscale("log")
    axis.set_xlabel("image side H = W (pixels)")
    axis.set_ylabel("number of weights (no biases)")
    axis.set_title(title)
    axis.grid(True, which="both", alpha=0.3)
    axis.legend()
    return figure

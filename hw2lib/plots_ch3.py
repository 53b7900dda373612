"""The figures of chapter 3 (Q3.1 (b), (c)): attention heatmaps and the comparison of decoders.

Every function returns the matplotlib Figure it drew, under the book's style
(:mod:`hw2lib.plot_style`); import them from :mod:`hw2lib.plots`. An attention heatmap shows the
output characters down and the source characters across, sized so that a grid of them fits the
book's column.
"""

from __future__ import annotations

import matplotlib.pyplot as plt

from .plot_style import COLUMN_WIDTH, SMALL_TEXT_PT, in_book_style, wrapped
from .translate import Translation


ATTENTION_CELL = 0.16  # inches per character in an attention heatmap, when the column has room
SMALLEST_ATTENTION_CELL = 0.11  # below this the 8 pt character labels would overlap


def _shown(symbol: str) -> str:
    return {" ": "\u2423", "<eos>": "\u2039eos\u203a"}.get(symbol, symbol)  # a visible space, a short EOS


def _attention_title(translation: Translation, title: str | None, width_inches: float) -> str:
    text = title if title is not None else f"{translation.normalised.strip()} \u2192 {translation.translation}"
    return wrapped(text, width_inches, SMALL_TEXT_PT + 1)


@in_book_style
def plot_attention(translation: Translation, *, axis=None, title: str | None = None, colorbar: bool = True):
    """Heatmap of a translation's attention: output characters down, source characters across, with a
    colour bar for the weights (chapter 3). Spaces show as a visible space sign. Returns the Figure."""
    if translation.attention is None:
        raise ValueError("this translation has no attention (the model without attention, or nothing to translate)")
    rows, columns = translation.attention.shape
    if axis is None:
        _, axis = plt.subplots(figsize=(1.6 + ATTENTION_CELL * columns, 1.3 + ATTENTION_CELL * rows),
                               layout="constrained")
    shown = axis.imshow(translation.attention, cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
    axis.set_xticks(range(len(translation.source_symbols)), [_shown(s) for s in translation.source_symbols],
                    fontsize=SMALL_TEXT_PT)
    axis.set_yticks(range(len(translation.target_symbols)), [_shown(s) for s in translation.target_symbols],
                    fontsize=SMALL_TEXT_PT)
    axis.tick_params(axis="x", top=True, labeltop=True, bottom=False, labelbottom=False, length=2, pad=1)
    axis.tick_params(axis="y", length=2, pad=1)
    axis.set_xlabel("Spanish input", fontsize=SMALL_TEXT_PT + 1)
    axis.set_ylabel("English output", fontsize=SMALL_TEXT_PT + 1)
    spec = axis.get_subplotspec()  # the panel's share of the figure's width, before the layout runs
    share = 1.0 if spec is None else (spec.colspan.stop - spec.colspan.start) / spec.get_gridspec().ncols
    axis.set_title(_attention_title(translation, title, max(axis.figure.get_figwidth() * share - 0.5, 1.5)),
                   fontsize=SMALL_TEXT_PT + 1)
    if colorbar:
        axis.figure.colorbar(shown, ax=axis, shrink=0.8, label="attention weight")
    return axis.figure


def _attention_layout(translations: list[Translation], columns: int) -> tuple[int, float]:
    """Panels a row and inches per character so that the grid fits the book's column."""
    widest = max(t.attention.shape[1] for t in translations if t.attention is not None)
    columns = max(1, min(columns, len(translations)))
    while columns > 1 and (COLUMN_WIDTH / columns - 0.55) / widest < SMALLEST_ATTENTION_CELL:
        columns -= 1
    return columns, min(ATTENTION_CELL, (COLUMN_WIDTH / columns - 0.55) / widest)


@in_book_style
def plot_attention_grid(translations: list[Translation], *, columns: int = 3, titles: list[str] | None = None):
    """Several attention heatmaps, at most ``columns`` a row and fewer when they would not fit the book's
    column, sharing one colour bar (chapter 3). Returns the Figure."""
    if not translations:
        raise ValueError("no translations to plot")
    if any(t.attention is None for t in translations):
        raise ValueError("every translation needs attention (the model without attention has none)")
    columns, cell = _attention_layout(translations, columns)
    rows = -(-len(translations) // columns)
    height = max(t.attention.shape[0] for t in translations)
    figure, axes = plt.subplots(rows, columns, figsize=(COLUMN_WIDTH, rows * (1.15 + cell * height) + 0.5),
                                squeeze=False, layout="constrained")
    for index, axis in enumerate(axes.flat):
        if index < len(translations):
            plot_attention(translations[index], axis=axis, title=None if titles is None else titles[index],
                           colorbar=False)
        else:
            axis.axis("off")
    image = axes.flat[0].images[0]
    figure.colorbar(image, ax=axes.ravel().tolist(), orientation="horizontal", shrink=0.5, aspect=40,
                    label="attention weight")
    return figure


@in_book_style
def plot_decoder_comparison(comparisons: dict[str, list[dict]], *, metric: str = "error_rate"):
    """Question (c) at a glance (chapter 3): ``metric`` and decoding time against the beam size, one
    line per entry of ``comparisons`` (label -> rows of :func:`hw2lib.decoding.compare_decoders`);
    greedy decoding is the star at beam size 1. Returns the Figure."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(COLUMN_WIDTH, 3.0), layout="constrained")
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
        axis.minorticks_off()
        axis.grid(alpha=0.3)
    left.legend()
    return figure

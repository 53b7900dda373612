"""Every figure of the book and the Markdown tables the chapters display: the one module to import them from.

Every figure function returns the matplotlib Figure it drew, so a notebook cell can show it and a
test can inspect it, and draws under the book's style, :data:`~hw2lib.plot_style.BOOK_STYLE`; a
notebook calls :func:`~hw2lib.plot_style.apply_book_style` once, in its first cell, to draw its own
figures under it too and show them as the book does (:func:`~hw2lib.plot_style.figure_png`).

The figures live in one module per chapter, re-exported here so that ``from hw2lib.plots import ...``
reaches all of them:

- :mod:`hw2lib.plot_style` -- the book's look (sizes, fonts, the PNGs) and
  :func:`~hw2lib.plot_style.markdown_table`;
- :mod:`hw2lib.plots_ch1` -- chapter 1: convolution matrices, heatmaps, parameter counts;
- :mod:`hw2lib.plots_ch2` -- chapter 2: images, learning curves (chapter 3's too), filters, feature
  maps, the confusion matrix, misclassified images, accuracy bars;
- :mod:`hw2lib.plots_ch3` -- chapter 3: attention heatmaps, the comparison of decoders;
- :mod:`hw2lib.plots_appendix` -- the appendix: the spread of the seed study.
"""

from __future__ import annotations

from .plot_style import (
    BOOK_DPI,
    BOOK_STYLE,
    COLUMN_PX,
    COLUMN_WIDTH,
    CSS_PX_PER_INCH,
    KANA_FAMILY,
    KANA_FONT_FILE,
    MIN_TEXT_PX,
    SMALL_TEXT_PT,
    SMALLEST_TEXT_KEY,
    apply_book_style,
    book_style,
    figure_png,
    markdown_table,
    saved_width_inches,
    shown_text_px,
    smallest_text_points,
)
from .plots_appendix import plot_seed_spread
from .plots_ch1 import draw_conv_matrix, plot_conv_matrices, plot_conv_matrix, plot_heatmap_grid, plot_parameter_counts
from .plots_ch2 import (
    class_label,
    japanese_font,
    plot_accuracy_bars,
    plot_activation_maps,
    plot_confusion_matrix,
    plot_filters,
    plot_image_grid,
    plot_learning_curves,
    plot_misclassified,
)
from .plots_ch3 import (
    ATTENTION_CELL,
    SMALLEST_ATTENTION_CELL,
    plot_attention,
    plot_attention_grid,
    plot_decoder_comparison,
)

__all__ = [
    # the book's look and the tables (hw2lib.plot_style)
    "CSS_PX_PER_INCH", "COLUMN_PX", "COLUMN_WIDTH", "BOOK_DPI", "MIN_TEXT_PX", "SMALLEST_TEXT_KEY", "KANA_FONT_FILE",
    "KANA_FAMILY", "SMALL_TEXT_PT", "BOOK_STYLE", "book_style", "smallest_text_points", "saved_width_inches",
    "shown_text_px", "figure_png", "apply_book_style", "markdown_table",
    # chapter 1 (hw2lib.plots_ch1)
    "draw_conv_matrix", "plot_conv_matrices", "plot_conv_matrix", "plot_heatmap_grid", "plot_parameter_counts",
    # chapter 2 (hw2lib.plots_ch2)
    "japanese_font", "class_label", "plot_image_grid", "plot_learning_curves", "plot_activation_maps",
    "plot_filters", "plot_confusion_matrix", "plot_misclassified", "plot_accuracy_bars",
    # chapter 3 (hw2lib.plots_ch3)
    "ATTENTION_CELL", "SMALLEST_ATTENTION_CELL", "plot_attention", "plot_attention_grid", "plot_decoder_comparison",
    # the appendix (hw2lib.plots_appendix)
    "plot_seed_spread",
]

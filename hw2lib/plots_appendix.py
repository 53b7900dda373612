"""The figure of the appendix ("How repeatable are these numbers?"): the spread of the seed study.

:func:`plot_seed_spread` returns the matplotlib Figure it drew, under the book's style
(:mod:`hw2lib.plot_style`); import it from :mod:`hw2lib.plots`.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt

from .plot_style import COLUMN_WIDTH, in_book_style, legend_in_free_slot
from .seed_runs import MODEL_METRICS


def _draw_seed_panel(axis, model_rows: list[dict]) -> None:
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


@in_book_style
def plot_seed_spread(rows: list[dict]):
    """Each seed's figure as a dot, the mean +- std as a bar, the published range as a grey band,
    one panel per model (Appendix, "How repeatable are these numbers?"). Returns the Figure."""
    if not rows:
        raise ValueError("no rows to plot")
    models = list(dict.fromkeys(row["model"] for row in rows))
    columns = min(2, len(models))  # two a row leave the metric names room under each panel
    grid_rows = math.ceil(len(models) / columns)
    figure, axes = plt.subplots(grid_rows, columns, figsize=(min(COLUMN_WIDTH, 0.6 + 3.2 * columns), 2.7 * grid_rows + 0.4),
                                squeeze=False, layout="constrained")
    for axis, model in zip(axes.flat, models):
        model_rows = [row for row in rows if row["model"] == model]
        _draw_seed_panel(axis, model_rows)
        axis.set_xticks(range(len(model_rows)), [row["metric"] for row in model_rows])
        axis.set_xlim(-0.5, len(model_rows) - 0.5)
        axis.set_title(model_rows[0]["label"])
        _, _, kind, higher_is_better = MODEL_METRICS[model]
        axis.set_ylabel(f"{kind} ({'higher' if higher_is_better else 'lower'} is better)")
        axis.grid(axis="y", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    legend_in_free_slot(figure, list(axes.flat)[len(models):], handles, labels, columns=4)
    return figure

"""Tests for hw2lib.plots: what the figures show (lines, panels, labels), not only that they draw."""

from __future__ import annotations

import base64
import io
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from hw2lib import plots  # noqa: E402
from hw2lib.convolution import circulant_conv_matrix, conv_matrix, counting_kernel  # noqa: E402
from hw2lib.kmnist import CLASS_CHARACTERS  # noqa: E402
from hw2lib.plots import (COLUMN_PX, KANA_FAMILY, KANA_FONT_FILE, MIN_TEXT_PX, SMALLEST_TEXT_KEY,  # noqa: E402
                          class_label, figure_png, japanese_font, plot_accuracy_bars, plot_activation_maps,
                          plot_confusion_matrix, plot_filters, plot_learning_curves, plot_misclassified,
                          shown_text_px, smallest_text_points)
from hw2lib.translate import Translation  # noqa: E402


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


def test_japanese_font_is_the_shipped_subset_and_really_has_the_glyphs():
    font = japanese_font()
    assert font == KANA_FAMILY  # shipped with the package, so found on any machine
    assert "last resort" not in font.lower()  # a placeholder-box font does not count
    assert class_label(1, font) == f"{CLASS_CHARACTERS[1]} (ki)"
    assert class_label(0) == "o" and class_label(9, None) == "wo"  # no font asked for: romaji
    figure, axis = plt.subplots()
    # The subset holds only the hiragana: Latin text comes from the first family, kana from the fallback.
    axis.set_title(" ".join(class_label(index, font) for index in range(10)), fontfamily=["sans-serif", font])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Glyph ... missing" would fail here
        figure.canvas.draw()


def test_the_font_file_is_tiny_licensed_and_holds_exactly_the_ten_hiragana():
    from fontTools.ttLib import TTFont

    assert KANA_FONT_FILE.stat().st_size < 8_000
    font = TTFont(KANA_FONT_FILE)
    assert sorted(font.getBestCmap()) == sorted(ord(character) for character in CLASS_CHARACTERS)
    assert font["name"].getDebugName(1) == KANA_FAMILY  # renamed, as the OFL asks of a modified font
    licence = (KANA_FONT_FILE.parent / "OFL.txt").read_text()
    assert "SIL OPEN FONT LICENSE Version 1.1" in licence
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert '"fonts/*.ttf"' in pyproject and '"fonts/*.txt"' in pyproject  # installed with the package


def test_a_fresh_machine_labels_classes_in_hiragana(tmp_path):
    """A new matplotlib font cache, as on a machine that never ran matplotlib and has no CJK font."""
    code = ("from hw2lib.plots import japanese_font, class_label\n"
            "font = japanese_font(); print(font); print(class_label(0, font))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "MPLCONFIGDIR": str(tmp_path), "MPLBACKEND": "Agg"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == [KANA_FAMILY, f"{CLASS_CHARACTERS[0]} (o)"]


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


# --- every figure of the book, as a reader sees it ---------------------------------------------


def translation(source: str, target: str, seed: int = 0) -> Translation:
    attention = torch.softmax(torch.randn(len(target) + 1, len(source), generator=torch.Generator().manual_seed(seed)),
                              dim=1).numpy()
    return Translation(source, source, list(source), target, list(target) + ["<eos>"], attention)


SENTENCES = [("me gusta el cafe negro .", "i like black coffee ."), ("lo prometiste .", "you promised ."),
             ("no tengo blanca .", "i m broke ."), ("tengo un perro negro .", "i have a black dog ."),
             ("la casa blanca .", "the white house ."), ("venios .", "come with us .")]
HISTORY = [{"epoch": epoch, "train_loss": 2.0 / epoch, "dev_accuracy": 1 - 0.5 / epoch, "val_loss": 1.0 / epoch,
            "val_error": 0.8 - 0.02 * epoch} for epoch in range(1, 21)]
DECODERS = [{"decoder": "greedy", "beam_size": 1, "length_normalisation": 0, "error_rate": 0.5, "seconds": 0.2}] + [
    {"decoder": f"beam {k}", "beam_size": k, "length_normalisation": 0, "error_rate": 0.5 - 0.01 * k, "seconds": 0.2 * k}
    for k in (3, 5, 10)]
SEED_ROWS = [{"model": model, "label": label, "metric": metric, "mean": 0.9, "std": 0.01, "values": [0.89, 0.9, 0.91],
              "reference_low": 0.92, "reference_high": 0.93, "chapter_value": 0.9, "chapter_seed": 42}
             for model, label in (("cnn", "CNN (best learning rate)"), ("seq2seq-no-attention", "(a) no attention"),
                                  ("seq2seq-attention", "(b) with attention"))
             for metric in ("dev accuracy", "test accuracy")]

BOOK_FIGURES = {
    "learning curves (chapter 2)": lambda: plot_learning_curves(
        {f"lr = {rate}": HISTORY for rate in (1e-5, 5e-4, 1e-2)}, highlight="lr = 0.0005",
        titles={"train_loss": "training loss (mean of the epoch, log scale)"}),
    "learning curves (chapter 3)": lambda: plot_learning_curves(
        {"(a) without attention": HISTORY, "(b) with attention": HISTORY}, keys=("train_loss", "val_loss", "val_error"),
        bands={"val_error": {"(a) without attention": (0.5, 0.52)}}, band_label="published final val errors"),
    "class images": lambda: plots.plot_image_grid(torch.rand(10, 28, 28), [class_label(i, KANA_FAMILY) for i in range(10)],
                                                  columns=10, font=KANA_FAMILY),
    "misclassified": lambda: plot_misclassified(torch.rand(30, 1, 28, 28), torch.arange(30) % 10,
                                                (torch.arange(30) + 3) % 10, list(range(24)), font=KANA_FAMILY),
    "activation maps, conv1": lambda: plot_activation_maps(torch.rand(28, 28), torch.randn(8, 28, 28), title="example 4"),
    "activation maps, conv2": lambda: plot_activation_maps(torch.rand(28, 28), torch.rand(16, 12, 12), after_relu=True),
    "filters": lambda: plot_filters(torch.randn(8, 1, 5, 5)),
    "confusion matrix": lambda: plot_confusion_matrix(torch.randint(0, 200, (10, 10)), font=KANA_FAMILY, title="test set"),
    "accuracy bars": lambda: plot_accuracy_bars({("cnn", "original"): 0.95, ("fc", "original"): 0.9,
                                                 ("cnn", "permuted"): 0.8, ("fc", "permuted"): 0.9}),
    "attention grid": lambda: plots.plot_attention_grid([translation(s, t, i) for i, (s, t) in enumerate(SENTENCES)],
                                                        columns=2),
    "one attention map": lambda: plots.plot_attention(translation(*SENTENCES[0])),
    "decoder comparison": lambda: plots.plot_decoder_comparison({"(a) test": DECODERS, "(b) test": DECODERS}),
    "seed spread": lambda: plots.plot_seed_spread(SEED_ROWS),
    "conv matrices (chapter 1)": lambda: plots.plot_conv_matrices(
        [(conv_matrix(counting_kernel(2, 3), (4, 5)), (3, 5), "valid M", "W'"),
         (circulant_conv_matrix(counting_kernel(2, 3), (4, 5)), (5, 5), "circular C", "W")]),
    "heatmap grid (chapter 1)": lambda: plots.plot_heatmap_grid(
        [[("image x", torch.rand(8, 8)), ("attention output o(x)", torch.rand(8, 8)),
          ("edge filter [1, -1] on x", torch.randn(8, 7))],
         [("shuffled image x_pi", torch.rand(8, 8)), ("o(x_pi) unshuffled: equals o(x)", torch.rand(8, 8)),
          ("edge filter [1, -1] on x_pi", torch.randn(8, 7))]],
        cmaps=["magma", "magma", "coolwarm"], limits=[(0, 1), (0, 1), (-1, 1)],
        suptitle="Attention without positions only shuffles along with the pixels; a convolution does not"),
    "parameter counts (chapter 1)": lambda: plots.plot_parameter_counts([8, 16, 32], {"conv": [1, 2, 3], "fc": [4, 5, 6]}),
}


@pytest.mark.parametrize("name", list(BOOK_FIGURES))
def test_every_figure_fits_the_column_and_its_smallest_text_is_readable(name):
    figure = BOOK_FIGURES[name]()
    # Every text element, at the size the book shows the figure (100 CSS px per inch, at most the column).
    assert shown_text_px(figure) >= MIN_TEXT_PX, f"{name}: smallest text {smallest_text_points(figure)} pt"
    data, metadata = figure_png(figure)
    assert metadata["width"] <= COLUMN_PX + 6, f"{name} is {metadata['width']} px wide, wider than the column"


def test_the_text_size_check_catches_a_figure_made_for_a_wider_page():
    figure, axis = plt.subplots(figsize=(13.8, 3.6), layout="constrained")  # the old learning curves
    axis.set_title("a title", fontsize=8)
    axis.tick_params(labelsize=9)
    figure.canvas.draw()
    assert smallest_text_points(figure) == 8
    shown_width = 100 * plots.saved_width_inches(figure)
    assert shown_width > 1300  # saved about 1,380 px wide at 100 px per inch, shown in 690
    assert shown_text_px(figure) == pytest.approx(8 / 72 * 100 * COLUMN_PX / shown_width)
    assert shown_text_px(figure) < MIN_TEXT_PX
    axis.set_title("")  # empty and hidden text does not count
    axis.text(0.5, 0.5, "hidden", fontsize=2).set_visible(False)
    assert smallest_text_points(figure) > 8


def test_figure_png_is_a_2x_palette_png_that_records_its_smallest_text():
    from PIL import Image

    figure = plot_accuracy_bars({("cnn", "original"): 0.95, ("cnn", "permuted"): 0.8})
    data, metadata = figure_png(figure)
    with Image.open(io.BytesIO(data)) as image:
        assert image.mode == "P"  # 256 colours: about a third of the full-colour file
        assert image.info["dpi"][0] == pytest.approx(200, abs=0.01)
        assert image.text[SMALLEST_TEXT_KEY] == "8.00"  # the bar labels
        assert image.text["Software"].startswith("Matplotlib")
        assert metadata == {"width": round(image.width / 2)}  # shown at 2 image pixels per CSS px
        assert len(image.getcolors(256)) > 8  # the bars' colours and the anti-aliasing survive
    full_colour = io.BytesIO()
    figure.savefig(full_colour, format="png", dpi=200, bbox_inches="tight")
    assert len(data) < 0.7 * len(full_colour.getvalue())


def test_apply_book_style_shows_figures_as_book_pngs_in_ipython(monkeypatch):
    from IPython.core.formatters import PNGFormatter

    class Shell:
        def __init__(self):
            self.display_formatter = type("Formatters", (), {"formatters": {"image/png": PNGFormatter()}})()

    shell = Shell()
    monkeypatch.setattr("IPython.get_ipython", lambda: shell)
    with matplotlib.rc_context():
        plots.apply_book_style()
        assert matplotlib.rcParams["font.family"] == ["sans-serif", KANA_FAMILY]
        assert matplotlib.rcParams["axes.titlesize"] == plots.BOOK_STYLE["axes.titlesize"]
        figure, axis = plt.subplots()
        axis.set_title("a figure a notebook draws itself")
        encoded, metadata = shell.display_formatter.formatters["image/png"](figure)
    from PIL import Image

    with Image.open(io.BytesIO(base64.b64decode(encoded))) as image:
        assert SMALLEST_TEXT_KEY in image.text and metadata["width"] == round(image.width / 2)
    assert tuple(figure.get_size_inches()) == plots.BOOK_STYLE["figure.figsize"]  # the column's width


def test_plot_functions_use_the_book_style_without_apply_book_style():
    with matplotlib.rc_context({"font.size": 4, "xtick.labelsize": 4, "axes.titlesize": 4}):
        figure = plot_learning_curves({"a": HISTORY})
    assert smallest_text_points(figure) >= 8  # not the tiny global settings
    tick_sizes = {label.get_fontsize() for axis in figure.axes for label in axis.get_xticklabels()}
    assert tick_sizes == {plots.BOOK_STYLE["xtick.labelsize"]}  # ticks too, which are made when first drawn


def test_learning_curves_put_the_legend_in_a_free_slot_and_name_the_bands():
    figure = BOOK_FIGURES["learning curves (chapter 3)"]()
    loss, val_loss, error, spare = figure.axes
    assert not spare.axison and spare.get_legend() is not None
    labels = [text.get_text() for text in spare.get_legend().get_texts()]
    assert labels == ["(a) without attention", "(b) with attention", "published final val errors"]
    band = error.patches[0]
    assert band.get_facecolor()[:3] == pytest.approx(matplotlib.colors.to_rgb("C0"))  # the run's own colour
    assert figure.axes[2].get_title() == "val error"  # figure.axes[2] stays the third metric
    two = plot_learning_curves({"a": HISTORY})
    assert len(two.axes) == 2 and two.legends  # two panels, the legend below them


def test_attention_heatmaps_have_a_colour_bar_and_readable_character_labels():
    single = BOOK_FIGURES["one attention map"]()
    heatmap, colour_bar = single.axes
    assert colour_bar.get_ylabel() == "attention weight"
    assert [label.get_text() for label in heatmap.get_xticklabels()] == [
        "\u2423" if c == " " else c for c in SENTENCES[0][0]]
    assert heatmap.get_yticklabels()[-1].get_text() == "\u2039eos\u203a"
    grid = BOOK_FIGURES["attention grid"]()
    heatmaps = [axis for axis in grid.axes if axis.images]
    bars = [axis for axis in grid.axes if axis.get_xlabel() == "attention weight"]
    assert len(heatmaps) == len(SENTENCES) and len(bars) == 1  # one shared colour bar
    assert heatmaps[0].get_subplotspec().get_gridspec().ncols == 2  # two a row fit the column
    long = translation("una frase bastante larga para dos columnas .", "a rather long sentence for two columns .")
    too_wide = plots.plot_attention_grid([long, long], columns=2)
    assert [a.get_subplotspec().get_gridspec().ncols for a in too_wide.axes if a.images] == [1, 1]  # fewer a row
    assert shown_text_px(too_wide) >= MIN_TEXT_PX

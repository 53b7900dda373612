"""Tests for book/_ext/book_figures.py: figure PNGs get their width and a readable minimum width, and
the pages get the hiragana font with its licence."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from docutils import nodes  # noqa: E402
from docutils.frontend import get_default_settings  # noqa: E402
from docutils.parsers.rst import Parser  # noqa: E402
from docutils.utils import new_document  # noqa: E402

from hw2lib import plots  # noqa: E402
from hw2lib.kmnist import CLASS_CHARACTERS  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "book" / "_ext"))

import book_figures  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def write_book_figure(path: Path) -> Path:
    figure = plots.plot_accuracy_bars({("cnn", "original"): 0.95, ("cnn", "permuted"): 0.8})
    path.write_bytes(plots.figure_png(figure)[0])
    return path


def text_px(display: book_figures.FigureDisplay, pixels: int, shown_width: float) -> float:
    return display.smallest_text_pt / 72 * display.dpi * shown_width / pixels


def test_a_book_figure_gets_its_width_and_the_least_width_at_which_its_text_is_readable(tmp_path):
    from PIL import Image

    path = write_book_figure(tmp_path / "figure.png")
    display = book_figures.read_figure_png(path)
    pixels = Image.open(path).width
    assert display.width_px == pytest.approx(pixels / 2, abs=0.01)  # 100 CSS px per inch of a 200 dpi PNG
    assert display.smallest_text_pt == 8.0
    assert text_px(display, pixels, display.width_px) == pytest.approx(8 / 72 * 100)  # 11.1 px as designed
    assert text_px(display, pixels, display.min_width_px) >= plots.MIN_TEXT_PX
    assert text_px(display, pixels, display.min_width_px - 1) < plots.MIN_TEXT_PX + book_figures.MARGIN_PX  # the least
    assert display.min_width_px < display.width_px


def test_other_images_are_left_alone(tmp_path):
    figure, axis = plt.subplots()
    figure.savefig(tmp_path / "plain.png")  # a matplotlib PNG that does not record its text
    (tmp_path / "broken.png").write_bytes(b"not a png")
    assert book_figures.read_figure_png(tmp_path / "plain.png") is None
    assert book_figures.read_figure_png(tmp_path / "broken.png") is None


def test_mark_figures_marks_the_image_and_its_box_and_sets_the_min_width(tmp_path):
    write_book_figure(tmp_path / "figure.png")
    document = new_document("page", get_default_settings(Parser))
    output = nodes.container(classes=["cell_output"])
    output += nodes.image(uri="figure.png", candidates={"*": "figure.png"})
    other = nodes.container(classes=["cell_output"])
    other += nodes.image(uri="logo.svg", candidates={"*": "logo.svg"})
    document += [output, other]
    book_figures.mark_figures(SimpleNamespace(srcdir=str(tmp_path)), document, "page")
    image = output.children[0]
    assert image["classes"] == ["hw2-figure", "hw2-figure-0"] and "hw2-figure-box" in output["classes"]
    display = book_figures.read_figure_png(tmp_path / "figure.png")
    assert image["width"] == f"{round(display.width_px)}px"
    assert other.children[0]["classes"] == [] and "hw2-figure-box" not in other["classes"]
    style = document.children[-1]
    assert isinstance(style, nodes.raw) and style["format"] == "html"
    assert style.astext() == f"<style>img.hw2-figure-0{{min-width:{display.min_width_px}px}}</style>"


def test_the_static_files_carry_the_font_its_licence_and_the_ten_hiragana(tmp_path):
    book_figures.write_static_files(SimpleNamespace(outdir=str(tmp_path), builder=SimpleNamespace(format="html")), None)
    static = tmp_path / "_static" / "book_figures"
    assert sorted(path.name for path in static.iterdir()) == ["OFL.txt", "figures.css", "figures.js",
                                                               "hw2book-kana.ttf"]
    css = (static / "figures.css").read_text()
    assert 'src: url("hw2book-kana.ttf")' in css and f'font-family: "{plots.KANA_FAMILY}"' in css
    served = sorted(int(code.strip()[2:], 16) for code in css.split("unicode-range:")[1].split(";")[0].split(","))
    assert served == sorted(map(ord, CLASS_CHARACTERS))
    # Put first in each of the theme's font stacks (unicode-range confines it to the ten characters).
    assert css.count(f'"{plots.KANA_FAMILY}", var(--pst-font-family-') == 3
    assert (static / "hw2book-kana.ttf").read_bytes() == plots.KANA_FONT_FILE.read_bytes()
    nothing = tmp_path / "failed"
    book_figures.write_static_files(SimpleNamespace(outdir=str(nothing), builder=SimpleNamespace(format="html")),
                                    RuntimeError("the build failed"))
    assert not nothing.exists()


def test_the_min_width_rule_is_exact_for_any_text_size(tmp_path):
    for size in (6.0, 8.0, 12.0):
        figure, axis = plt.subplots(figsize=(plots.COLUMN_WIDTH, 2), layout="constrained")
        axis.set_title("text", fontsize=size)
        axis.tick_params(labelsize=size)
        path = tmp_path / f"figure-{size}.png"
        path.write_bytes(plots.figure_png(figure)[0])
        display = book_figures.read_figure_png(path)
        assert display.smallest_text_pt == size
        expected = (plots.MIN_TEXT_PX + book_figures.MARGIN_PX) * 72 * display.width_px * 2 / (size * 200)
        assert display.min_width_px == math.ceil(expected) or abs(display.min_width_px - expected) < 1.01

"""A Sphinx extension for the book's figures and hiragana (loaded by ``_config.yml``'s ``local_extensions``).

* Figures: a notebook that calls :func:`hw2lib.plots.apply_book_style` shows each figure as a PNG at
  twice its screen size that records its smallest text (:data:`hw2lib.plots.SMALLEST_TEXT_KEY`). For
  each such image this extension marks the image (``hw2-figure``) and its output box
  (``hw2-figure-box``), and gives the image a minimum width at which that text is still
  :data:`hw2lib.plots.MIN_TEXT_PX` CSS px: on a narrow screen the figure keeps that width and scrolls
  sideways inside its own box instead of shrinking into unreadable print.
* Any figure enlarges on a click (or Enter): ``figures.js``, a small lightbox without dependencies
  that works offline and from ``file://``; Escape, a click or the close button shut it.
* Hiragana: ``figures.css`` serves the book's ten-glyph subset of Noto Sans JP (``hw2lib/fonts``,
  SIL OFL, licence copied beside it) through ``@font-face``, limited by ``unicode-range`` to those ten
  characters and put first in the theme's font stacks, so tables show real glyphs on a machine
  without a Japanese font.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docutils import nodes

HERE = Path(__file__).resolve().parent
STATIC_SOURCE = HERE / "book_figures_static"
STATIC_SUBDIR = "book_figures"
STATIC_FILES = ("figures.css", "figures.js")
FIGURE_CLASS = "hw2-figure"
BOX_CLASS = "hw2-figure-box"
MARGIN_PX = 0.25  # rounding room above the floor


@dataclass(frozen=True)
class FigureDisplay:
    """How the book shows one figure PNG: its width and minimum width in CSS px, from its metadata."""

    width_px: float
    min_width_px: int
    smallest_text_pt: float
    dpi: float


def read_figure_png(path: Path) -> FigureDisplay | None:
    """The display of a book figure (a PNG carrying its smallest text size), or None for any other image."""
    from PIL import Image

    from hw2lib.plots import CSS_PX_PER_INCH, MIN_TEXT_PX, SMALLEST_TEXT_KEY

    try:
        with Image.open(path) as image:
            text = getattr(image, "text", {}) or {}
            smallest = text.get(SMALLEST_TEXT_KEY)
            dpi = float((image.info.get("dpi") or (0, 0))[0])
            pixels = image.width
    except (OSError, ValueError):
        return None
    if smallest is None or dpi <= 0:
        return None
    smallest_pt = float(smallest)
    # Text of s points is s / 72 * dpi image pixels; shown w CSS px wide, that is s / 72 * dpi * w / pixels.
    min_width = (MIN_TEXT_PX + MARGIN_PX) * 72 * pixels / (smallest_pt * dpi)
    return FigureDisplay(pixels * CSS_PX_PER_INCH / dpi, math.ceil(min_width), smallest_pt, dpi)


def _image_file(app, node: nodes.image) -> Path | None:
    candidate = (node.get("candidates") or {}).get("*") or node.get("uri", "")
    if not candidate or "://" in candidate:
        return None
    path = Path(app.srcdir) / candidate
    return path if path.suffix.lower() == ".png" and path.is_file() else None


def mark_figures(app, doctree: nodes.document, docname: str) -> None:
    """Mark the book's figure PNGs, size them at 100 CSS px per inch, and give each its minimum width."""
    rules = []
    for index, node in enumerate(doctree.findall(nodes.image)):
        path = _image_file(app, node)
        display = read_figure_png(path) if path else None
        if display is None:
            continue
        name = f"{FIGURE_CLASS}-{index}"
        node["classes"] += [FIGURE_CLASS, name]
        node.setdefault("width", f"{round(display.width_px)}px")
        if isinstance(node.parent, nodes.container):
            node.parent["classes"].append(BOX_CLASS)
        rules.append(f"img.{name}{{min-width:{min(display.min_width_px, 4000)}px}}")
    if rules:
        doctree.append(nodes.raw("", f"<style>{''.join(rules)}</style>", format="html"))


def write_static_files(app, exception) -> None:
    """Copy the CSS, the script, the hiragana font and its licence into ``_static/book_figures``."""
    if exception is not None or app.builder.format != "html":
        return
    from hw2lib.plots import KANA_FONT_FILE

    target = Path(app.outdir) / "_static" / STATIC_SUBDIR
    target.mkdir(parents=True, exist_ok=True)
    for name in STATIC_FILES:
        shutil.copyfile(STATIC_SOURCE / name, target / name)
    shutil.copyfile(KANA_FONT_FILE, target / KANA_FONT_FILE.name)
    shutil.copyfile(KANA_FONT_FILE.with_name("OFL.txt"), target / "OFL.txt")


def setup(app) -> dict[str, Any]:
    app.add_css_file(f"{STATIC_SUBDIR}/figures.css")
    app.add_js_file(f"{STATIC_SUBDIR}/figures.js", defer="defer")
    app.connect("doctree-resolved", mark_figures)
    app.connect("build-finished", write_static_files)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

"""The book's look, shared by every figure module (chapters 1-3 and the appendix), and the Markdown tables.

The look has one owner, :data:`BOOK_STYLE`: every figure function of :mod:`hw2lib.plots` draws under
it (:func:`in_book_style`), and a notebook that calls :func:`apply_book_style` once draws its own
figures under it too and shows every figure as a PNG at twice its screen size (crisp on high-DPI
screens) that records its smallest text, which the book's browser check reads. A figure ``w`` inches
wide is shown ``w * 100`` CSS pixels wide, at most the text column (:data:`COLUMN_PX`), so
``COLUMN_WIDTH`` inches fill the column. Images of characters are drawn with dark ink on white
(``gray_r``), as they were written.

The helpers every chapter's figures use (:func:`as_array`, :func:`wrapped`,
:func:`legend_in_free_slot`) and :func:`markdown_table`, for the tables of chapters 2 and 3 and the
appendix, live here too. Import all of it from :mod:`hw2lib.plots`.
"""

from __future__ import annotations

import base64
import functools
import io
import math
import struct
import textwrap
from pathlib import Path
from typing import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib import font_manager
from matplotlib.figure import Figure
from matplotlib.text import Text

# ---------------------------------------------------------------- the book's look

CSS_PX_PER_INCH = 100  #: a figure w inches wide is shown w * 100 CSS px wide (matplotlib's own figure.dpi)
COLUMN_PX = 690  #: the book's text column at a 1280 px window (sphinx-book-theme), in CSS px
COLUMN_WIDTH = COLUMN_PX / CSS_PX_PER_INCH  #: inches: a figure this wide fills the column
BOOK_DPI = 2 * CSS_PX_PER_INCH  #: PNG pixels per inch: two per CSS px, crisp on high-DPI screens
MIN_TEXT_PX = 9.0  #: the smallest text a figure may show once displayed, in CSS px (the body's small print)
SMALLEST_TEXT_KEY = "hw2book:smallest-text-pt"  #: PNG text chunk: the figure's smallest text, in points
KANA_FONT_FILE = Path(__file__).with_name("fonts") / "hw2book-kana.ttf"  # the ten hiragana (Noto Sans JP, OFL)
KANA_FAMILY = "hw2book Kana"  #: the family name of the shipped hiragana font
SMALL_TEXT_PT = 8.0  #: annotations: counts in cells, bar labels, image titles (11 CSS px in the column)

#: The matplotlib settings of every figure of the book (see :func:`book_style`, :func:`apply_book_style`).
BOOK_STYLE: dict[str, object] = {
    "figure.dpi": CSS_PX_PER_INCH,
    "figure.figsize": (COLUMN_WIDTH, 3.2),
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    # Latin text in matplotlib's own font; any KMNIST hiragana falls back to the shipped subset.
    "font.family": ["sans-serif", KANA_FAMILY],
    "font.size": 10.0,
    "axes.titlesize": 10.5,
    "axes.labelsize": 10.0,
    "xtick.labelsize": 9.0,
    "ytick.labelsize": 9.0,
    "legend.fontsize": 9.0,
    "legend.title_fontsize": 9.0,
    "figure.titlesize": 11.0,
    "axes.titlepad": 5.0,
    "legend.frameon": False,
    "lines.linewidth": 1.6,
    "image.interpolation": "nearest",
}


def _register_kana_font() -> bool:
    """Make the shipped hiragana font known to matplotlib (once, at import); False when it is missing."""
    if not KANA_FONT_FILE.is_file():
        return False
    if not any(entry.fname == str(KANA_FONT_FILE) for entry in font_manager.fontManager.ttflist):
        font_manager.fontManager.addfont(str(KANA_FONT_FILE))
    return True


_KANA_FONT_REGISTERED = _register_kana_font()


def book_style():
    """A context manager that draws under :data:`BOOK_STYLE` (``with book_style(): ...``)."""
    return plt.rc_context(BOOK_STYLE)


def in_book_style(function: Callable) -> Callable:
    """Draw ``function``'s figure under the book's style, ticks included (they are made when first drawn)."""

    @functools.wraps(function)
    def styled(*args, **kwargs):
        with book_style():
            figure = function(*args, **kwargs)
            if isinstance(figure, Figure) and kwargs.get("axis") is None:
                figure.canvas.draw()
        return figure

    return styled


def smallest_text_points(figure: Figure) -> float:
    """The size in points of the smallest visible, non-empty text of ``figure`` (inf when it has none)."""
    sizes = [text.get_fontsize() for text in figure.findobj(Text)
             if text.get_visible() and text.get_text().strip() and text.get_alpha() != 0]
    return min(sizes, default=math.inf)


def saved_width_inches(figure: Figure) -> float:
    """The width of ``figure`` as saved with ``bbox_inches="tight"`` (what the book shows), in inches."""
    renderer = figure.canvas.get_renderer()
    return figure.get_tightbbox(renderer).padded(0.03).width


def shown_text_px(figure: Figure, column_px: float = COLUMN_PX) -> float:
    """The smallest text of ``figure`` in CSS px as the book shows it: at 100 px per inch, shrunk to
    ``column_px`` when wider."""
    width_px = saved_width_inches(figure) * CSS_PX_PER_INCH
    return smallest_text_points(figure) / 72 * CSS_PX_PER_INCH * min(1.0, column_px / width_px)


def _palette_png(data: bytes, text: Mapping[str, str], dpi: int) -> bytes:
    """``data`` (a PNG) with at most 256 colours, its ``text`` chunks and ``dpi`` kept: a figure's few
    flat colours and its anti-aliasing fit, and the file is about a third of the full-colour one."""
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    for key, value in text.items():
        info.add_text(key, value)
    with Image.open(io.BytesIO(data)) as image:
        palette = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT,
                                                dither=Image.Dither.NONE)
    buffer = io.BytesIO()
    palette.save(buffer, format="png", optimize=True, pnginfo=info, dpi=(dpi, dpi))
    return buffer.getvalue()


def figure_png(figure: Figure, dpi: int = BOOK_DPI) -> tuple[bytes, dict[str, int]]:
    """``figure`` as the book shows it: a 256-colour PNG at ``dpi`` whose text chunk
    :data:`SMALLEST_TEXT_KEY` records the smallest text in points, and the display metadata
    ``{"width": CSS px}`` (100 per inch)."""
    import matplotlib

    buffer = io.BytesIO()
    smallest = smallest_text_points(figure)
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.03, facecolor="white")
    text = {"Software": f"Matplotlib version{matplotlib.__version__}, https://matplotlib.org/"}
    if math.isfinite(smallest):
        text[SMALLEST_TEXT_KEY] = f"{smallest:.2f}"
    data = _palette_png(buffer.getvalue(), text, dpi)
    width_px = struct.unpack(">I", data[16:20])[0]  # the IHDR chunk's width
    return data, {"width": round(width_px * CSS_PX_PER_INCH / dpi)}


def _png_for_display(figure: Figure) -> tuple[str, dict[str, int]]:
    data, metadata = figure_png(figure)
    return base64.b64encode(data).decode("ascii"), metadata


def apply_book_style() -> None:
    """Draw every later figure of this session in the book's style; call once, in a notebook's first
    cell. In IPython (a notebook) figures are then shown as PNGs at :data:`BOOK_DPI` with their display
    width and smallest text recorded (see :func:`figure_png`)."""
    plt.rcParams.update(BOOK_STYLE)
    try:
        from IPython import get_ipython
    except ImportError:  # plain Python: the settings are all there is to do
        return
    shell = get_ipython()
    if shell is not None:
        shell.display_formatter.formatters["image/png"].for_type(Figure, _png_for_display)


# ---------------------------------------------------------------- generic helpers


def as_array(values) -> np.ndarray:
    """``values`` (a tensor, on any device, or anything array-like) as a NumPy array."""
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)


def wrapped(text: str, width_inches: float, size: float) -> str:
    """``text`` broken into lines that fit ``width_inches`` at ``size`` points (an average glyph is
    about 0.55 em wide), keeping its own line breaks."""
    characters = max(10, int(width_inches * 72 / (0.55 * size)))
    return "\n".join(textwrap.fill(line, characters) for line in text.split("\n"))


def legend_in_free_slot(figure: Figure, spare: list, handles: list, labels: list[str], columns: int) -> None:
    """The legend in the first unused panel of a grid (the unused ones hidden), else below the panels."""
    for axis in spare:
        axis.axis("off")
    if spare:
        spare[0].legend(handles, labels, loc="center")
    else:
        figure.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), columns))


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

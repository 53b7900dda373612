"""How the rendered book reads, at 1280 px and at 390 px (a phone): nothing wider than its column,
figures whose smallest text is readable, code that does not fill the page, an Answer box under every
homework question, cross-references that lead somewhere, and hiragana drawn with real glyphs.

Run after ``make book``: ``.venv/bin/python -m pytest tests/browser/test_page_quality.py -q`` (the
built book is read from ``_build/html``, or from $HW2BOOK_HTML). Screenshots of every page at both
widths go to ``screenshots/<width>/`` (or $HW2BOOK_SCREENSHOTS). The first group of tests checks the
checker on small pages made in a temporary folder, each showing that a given fault makes it fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

try:
    import playwright.sync_api  # noqa: F401
except ImportError as error:  # pragma: no cover - an environment problem, named clearly
    raise ImportError("the browser check needs Playwright: `pip install -e '.[dev]'`") from error

import check_book
import page_quality
from page_quality import QUESTION_HEADING, QualityReport, check_page_quality

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "book" / "_ext"))

import book_figures  # noqa: E402

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from hw2lib import plots  # noqa: E402
from hw2lib.kmnist import CLASS_CHARACTERS, CLASS_ROMAJI  # noqa: E402

HTML_DIR = Path(os.environ.get("HW2BOOK_HTML") or REPO / "_build" / "html")
VENDORED = REPO / "_vendor" / "static"
SCREENSHOTS = Path(os.environ.get("HW2BOOK_SCREENSHOTS") or REPO / "screenshots")
# The homework's questions, numbered as the homework numbers them (/work/shared/HOMEWORK.md).
HOMEWORK_QUESTIONS = ["Q1.1 (a)", "Q1.1 (b)", "Q1.1 (c)", "Q1.2", "Q2.1", "Q2.2", "Q2.3", "Q2.4", "Q2.5",
                      "Q3.1 (a)", "Q3.1 (b)", "Q3.1 (c)"]

# What the scratch pages share with the book's theme: a column of at most 690 px, formulas that
# scroll inside their own box (pydata-sphinx-theme), images no wider than their box.
PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="_static/book_figures/figures.css">
<style>
  :root {{ --pst-font-family-base-system: sans-serif; --pst-font-family-monospace-system: monospace; }}
  body {{ margin: 0; font: 16px/1.5 var(--pst-font-family-base); }}
  article.bd-article {{ max-width: 690px; margin: 0 auto; padding: 0 12px; }}
  img {{ max-width: 100%; }}
  div.math mjx-container {{ display: block; overflow: auto; }}
  .table-box {{ overflow-x: auto; }}
</style>
<script defer src="_static/mathjax/tex-chtml.js"></script>
<script defer src="_static/book_figures/figures.js"></script>
</head><body><article class="bd-article">{body}</article></body></html>"""

PROSE = "<p>" + "A paragraph of the chapter, long enough to give the page some height. " * 12 + "</p>"
CLASS_TABLE = ("<table><tr><th>class</th><th>hiragana</th></tr>"
               + "".join(f"<tr><td>{romaji}</td><td>{kana}</td></tr>"
                         for romaji, kana in zip(CLASS_ROMAJI, CLASS_CHARACTERS)) + "</table>")
WIDE_FORMULA = r"<div class='math'>\[" + " + ".join(f"a_{{{i}}} b_{{{i}}}" for i in range(60)) + r"\]</div>"
NARROW_FORMULA = r"<div class='math'>\[ z' = \mathbf{M} x' \]</div>"
WIDE_TABLE = "<table><tr>" + "".join(f"<td>column&nbsp;number&nbsp;{i}</td>" for i in range(14)) + "</tr></table>"
CODE_CELL = ("<div class='cell{tag}'><div class='cell_input'><pre>" + "print('a line of code')\n" * 30
             + "</pre></div></div>")
SHORT_CODE = "<div class='cell'><div class='cell_input'><pre>figure = plot_confusion_matrix(matrix)</pre></div></div>"
ANSWERED = ("<section id='q1'><h2>Q1.1 (a) The shape of z<a class='headerlink' href='#q1'>#</a></h2>"
            "<div class='admonition answer'><p class='admonition-title'>Answer</p><p>(H-M+1) x (W-N+1).</p></div>"
            "<p>The derivation.</p></section>")


def cjk_font_installed() -> bool:
    """Whether the machine has a Japanese font of its own (then a missing web font shows no box)."""
    fc_list = shutil.which("fc-list")
    return bool(fc_list and subprocess.run([fc_list, ":lang=ja"], capture_output=True, text=True).stdout.strip())


def save_figure(figure, path: Path, *, book_png: bool = True, dpi: int = plots.BOOK_DPI) -> Path:
    if book_png:
        path.write_bytes(plots.figure_png(figure, dpi=dpi)[0])
    else:
        figure.savefig(path, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(figure)
    return path


def figure_html(path: Path, index: int = 0) -> str:
    """The HTML that the book's extension makes of a figure PNG (see book/_ext/book_figures.py)."""
    display = book_figures.read_figure_png(path)
    if display is None:
        return f"<div class='cell_output'><img src='{path.name}' alt='figure'></div>"
    name = f"{book_figures.FIGURE_CLASS}-{index}"
    return (f"<div class='cell_output {book_figures.BOX_CLASS}'><img alt='figure' src='{path.name}' "
            f"class='{book_figures.FIGURE_CLASS} {name}' style='width: {display.width_px:.0f}px;'></div>"
            f"<style>img.{name}{{min-width:{display.min_width_px}px}}</style>")


@pytest.fixture
def site(tmp_path):
    """``site(body)`` writes page.html into a folder with MathJax and the extension's static files."""
    if not (VENDORED / "mathjax" / "tex-chtml.js").is_file():
        pytest.fail(f"no vendored MathJax in {VENDORED}: run `make vendor` (or `make book`) first")
    root = tmp_path / "site"
    (root / "_static").mkdir(parents=True)
    (root / "_static" / "mathjax").symlink_to(VENDORED / "mathjax", target_is_directory=True)
    book_figures.write_static_files(SimpleNamespace(outdir=str(root), builder=SimpleNamespace(format="html")), None)

    def make(body: str, name: str = "page.html") -> Path:
        (root / name).write_text(PAGE.format(body=body), encoding="utf-8")
        return root

    make.root = root
    return make


@pytest.fixture(scope="module")
def figures(tmp_path_factory) -> dict[str, Path]:
    """Figure PNGs: drawn for the book, drawn for a page twice as wide, and saved without the record."""
    folder = tmp_path_factory.mktemp("figures")
    bars = {("cnn", "original"): 0.95, ("fc", "original"): 0.9, ("cnn", "permuted"): 0.8, ("fc", "permuted"): 0.9}
    wide, axis = plt.subplots(figsize=(13.8, 3.6), layout="constrained")  # chapter 3's old learning curves
    axis.plot([1, 2, 3], [3, 2, 1], label="a run")
    axis.legend(fontsize=8)
    unrecorded, axis = plt.subplots(figsize=(6, 3))
    axis.plot([1, 2], [1, 2])
    return {"book": save_figure(plots.plot_accuracy_bars(bars), folder / "book.png"),
            "wide": save_figure(wide, folder / "wide.png", dpi=100),
            "unrecorded": save_figure(unrecorded, folder / "unrecorded.png", book_png=False)}


def check(browser, root: Path, width: int, page: str = "page.html", screenshot_dir: Path | None = None) -> QualityReport:
    with check_book.serve(root) as base_url:
        return check_page_quality(browser, base_url, page, width, screenshot_dir)


def assert_problem(report: QualityReport, kind: str, *fragments: str) -> None:
    matching = [message for message in report.messages(kind) if all(fragment in message for fragment in fragments)]
    assert matching, f"expected a {kind} problem naming {fragments}; got {report.problems}"


def with_figures(root: Path, figures: dict[str, Path], *names: str, extension: bool = True) -> str:
    """Figures copied into the site, as the book's extension shows them (or as a plain output image)."""
    html = []
    for index, name in enumerate(names):
        shutil.copyfile(figures[name], root / figures[name].name)
        html.append(figure_html(root / figures[name].name, index) if extension
                    else f"<div class='cell_output'><img src='{figures[name].name}' alt='figure'></div>")
    return "".join(html)


# --- the checker, on scratch pages ------------------------------------------------------------


@pytest.mark.parametrize("width", page_quality.WIDTHS)
def test_a_well_made_page_reads_well_at_both_widths(browser, site, figures, width, tmp_path):
    """The control: a formula that fits, a class table in hiragana, a book figure, one short code cell,
    an answered question, a resolving cross-reference, a wide table in its own short scroll box."""
    root = site("")
    body = ("<section id='top'><h1>Chapter</h1>" + PROSE + NARROW_FORMULA + CLASS_TABLE
            + with_figures(root, figures, "book") + SHORT_CODE
            + ANSWERED + PROSE * 4
            + "<p><a class='reference internal' href='page.html#q1'><code class='xref py py-func'>f()</code></a></p>"
            + f"<div class='table-box'>{WIDE_TABLE}</div></section>")
    report = check(browser, site(body), width, screenshot_dir=tmp_path / "shots")
    assert report.problems == []
    assert len(report.figures) == 1 and report.figures[0]["smallest_text_px"] >= plots.MIN_TEXT_PX
    if width == 390:  # the figure keeps the width at which its text is readable
        assert report.figures[0]["shown_width"] > 390 - 24
    assert [question["text"] for question in report.questions] == ["Q1.1 (a) The shape of z"]
    assert sorted(group["character"] for group in report.kana) == sorted(CLASS_CHARACTERS)
    assert all(group["real_glyph"] and group["in_table"] for group in report.kana)
    assert 0 < report.code_share < page_quality.MAX_CODE_SHARE
    assert (tmp_path / "shots" / str(width) / "page.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_formula_wider_than_the_column_fails_on_a_desktop_and_scrolls_on_a_phone(browser, site):
    root = site(PROSE + WIDE_FORMULA + PROSE)
    assert_problem(check(browser, root, 1280), "overflow", "display formula", "scrolls sideways")
    assert check(browser, root, 390).messages("overflow") == []  # inside its own box; the page stays put


def test_a_formula_cut_off_without_a_scroll_box_fails_at_any_width(browser, site):
    root = site("<style>div.math mjx-container { overflow: hidden; }</style>" + WIDE_FORMULA)
    for width in page_quality.WIDTHS:
        assert_problem(check(browser, root, width), "overflow", "display formula", "cut off")


def test_a_wide_table_fails_unless_it_scrolls_in_a_box_whose_scrollbar_is_in_sight(browser, site):
    assert_problem(check(browser, site(WIDE_TABLE), 1280), "overflow", "table", "sticks out of the column")
    assert check(browser, site(f"<div class='table-box'>{WIDE_TABLE}</div>"), 1280).messages("overflow") == []
    tall = WIDE_TABLE.replace("</tr>", "</tr>" + "<tr><td>row</td></tr>" * 60)
    assert_problem(check(browser, site(f"<div class='table-box'>{tall}</div>"), 1280), "overflow",
                   "taller than the window", "out of sight")


def test_a_page_that_scrolls_sideways_fails(browser, site):
    report = check(browser, site("<style>article.bd-article { max-width: none; }</style>"
                                 "<div style='width: 900px'>a fixed-width block</div>"), 390)
    assert_problem(report, "overflow", "the page is", "scrolls sideways")


def test_figure_text_shrunk_below_the_floor_fails(browser, site, figures):
    root = site("")
    report = check(browser, site(with_figures(root, figures, "wide", extension=False)), 1280)
    assert_problem(report, "figure-text", "smallest text (8 pt at 100 dpi)", "under 9")
    assert report.figures[0]["shown_width"] == pytest.approx(690, abs=2)  # 1,380 px shrunk into the column
    # The extension keeps its text readable (min-width), which makes it stick out of the column instead.
    kept = check(browser, site(with_figures(root, figures, "wide")), 1280)
    assert kept.figures[0]["smallest_text_px"] >= plots.MIN_TEXT_PX
    assert_problem(kept, "figure-text", "wider than its box")


def test_a_book_figure_without_its_min_width_shrinks_below_the_floor_on_a_phone(browser, site, figures):
    root = site("")
    html = with_figures(root, figures, "book").split("<style>")[0]  # the extension's min-width left out
    assert check(browser, site(html), 1280).messages("figure-text") == []
    assert_problem(check(browser, site(html), 390), "figure-text", "under 9")


def test_a_matplotlib_figure_that_does_not_record_its_text_fails(browser, site, figures):
    root = site("")
    report = check(browser, site(with_figures(root, figures, "unrecorded")), 1280)
    assert_problem(report, "figure-text", "does not record its smallest text", "apply_book_style")


def test_a_figure_wider_than_its_box_fails_on_a_desktop(browser, site, figures):
    root = site("")
    html = with_figures(root, figures, "book").replace("style='width:", "style='max-width: none; width: 900px; x:")
    assert_problem(check(browser, site(html), 1280), "figure-text", "wider than its box")


def test_too_much_visible_code_fails_unless_the_cells_are_exercise_starters(browser, site):
    code = CODE_CELL.format(tag="") * 3
    assert_problem(check(browser, site(PROSE + code + PROSE), 1280), "code", "visible code input is", "at most 12%")
    starters = CODE_CELL.format(tag=" tag_exercise-starter") * 3
    assert check(browser, site(PROSE + starters + PROSE), 1280).messages("code") == []
    hidden = "<details class='hide above-input'><summary>Show code</summary>" + code + "</details>"
    assert check(browser, site(PROSE + hidden + PROSE), 1280).messages("code") == []  # collapsed: not seen


@pytest.mark.parametrize(("between", "answer", "expected"), [
    ("<p>The answer follows later.</p>", "<div class='admonition answer'><p>x</p></div>", "next comes p"),
    ("", "<div class='admonition note'><p>x</p></div>", "next comes div.admonition.note"),
    ("", "", "next comes nothing"),
], ids=["prose-first", "another-box", "no-box"])
def test_a_question_heading_without_an_answer_box_directly_under_it_fails(browser, site, between, answer, expected):
    body = f"<section id='q'><h2>Q2.3 Inputs without spatial structure</h2>{between}{answer}</section>"
    assert_problem(check(browser, site(body), 1280), "answers", "'Q2.3 Inputs without spatial structure'", expected)


def test_an_answer_box_after_invisible_markup_counts_and_other_headings_are_not_questions(browser, site):
    body = ("<section id='q'><h2>Q3.1 (c) Decoding</h2><span class='target' id='x'></span>"
            "<div class='cell tag_remove-input' style='display:none'></div>"
            "<div class='admonition answer'><p>Beam search.</p></div></section>"
            "<section><h2>Questions and answers</h2><p>Not a homework question.</p></section>")
    report = check(browser, site(body), 1280)
    assert report.messages("answers") == []
    assert [question["text"] for question in report.questions] == ["Q3.1 (c) Decoding"]


def test_cross_references_that_lead_nowhere_fail(browser, site):
    site("<section id='present'><h2>There</h2></section>", name="other.html")
    body = ("<p><code class='xref py py-func docutils literal'>beam_search()</code> unresolved;"
            " <a class='reference internal' href='other.html#present'>fine</a>;"
            " <a class='reference internal' href='other.html#absent'>no anchor</a>;"
            " <a class='reference internal' href='missing.html'>no page</a>;"
            " <a href='https://example.org/'>outside, not checked</a></p>")
    report = check(browser, site(body), 1280)
    assert_problem(report, "links", "'beam_search()'", "links nowhere")
    assert_problem(report, "links", "'no anchor'", "missing anchor", "#absent")
    assert_problem(report, "links", "'no page'", "missing page", "missing.html")
    assert len(report.messages("links")) == 3


@pytest.mark.skipif(cjk_font_installed(), reason="this machine has a Japanese font: no box to catch")
def test_hiragana_without_the_web_font_are_caught_as_boxes(browser, site):
    root = site("")
    (root / "_static" / "book_figures" / "figures.css").write_text("")  # the @font-face gone
    report = check(browser, site(CLASS_TABLE), 1280)
    assert_problem(report, "hiragana", "missing-glyph box", "in a table")
    assert len(report.messages("hiragana")) == len(CLASS_CHARACTERS)


def test_a_character_no_font_has_is_caught_as_a_box_on_any_machine(browser, site, monkeypatch):
    monkeypatch.setattr(page_quality, "CLASS_CHARACTERS", ["\ue123"])  # private use: in no usual font
    report = check(browser, site("<p>A private-use character: \ue123</p>"), 1280)
    assert_problem(report, "hiragana", "\ue123", "missing-glyph box")


def test_the_kana_checked_are_the_ones_the_css_serves():
    css = (book_figures.STATIC_SOURCE / "figures.css").read_text()
    ranges = css.split("unicode-range:")[1].split(";")[0]
    assert sorted(int(code.strip()[2:], 16) for code in ranges.split(",")) == sorted(map(ord, CLASS_CHARACTERS))


def test_a_figure_enlarges_on_a_click_and_closes_with_escape(browser, site, figures):
    root = site("")
    site(PROSE + with_figures(root, figures, "book") + PROSE)
    with check_book.serve(root) as base_url:
        for width in (1280, 390):
            page = browser.new_page()
            page.set_viewport_size({"width": width, "height": 844})
            page.goto(base_url + "page.html", wait_until="load")
            figure = page.locator("img.hw2-figure")
            shown = figure.bounding_box()["width"]
            # On a phone the figure keeps its readable width, scrolls in its box and says so.
            scrolls = page.locator(".hw2-figure-box").evaluate("box => box.classList.contains('hw2-scrolls')")
            assert scrolls == (width == 390)
            figure.click()
            enlarged = page.locator(".hw2-lightbox img")
            enlarged.wait_for()
            box = enlarged.evaluate("image => ({width: image.getBoundingClientRect().width, "
                                    "natural: image.naturalWidth, min: parseFloat(getComputedStyle("
                                    "document.querySelector('img.hw2-figure')).minWidth)})")
            assert box["width"] > shown * 1.3 or box["width"] >= box["min"]  # bigger, or at least readable
            assert box["width"] <= max(box["natural"], box["min"]) + 1  # never blown up past its pixels
            page.keyboard.press("Escape")
            assert page.locator(".hw2-lightbox").count() == 0
            figure.focus()
            page.keyboard.press("Enter")  # the keyboard opens it too
            assert page.locator(".hw2-lightbox").count() == 1
            page.locator(".hw2-lightbox button").click()
            assert page.locator(".hw2-lightbox").count() == 0
            page.close()


def test_question_heading_pattern_matches_the_homework_numbering():
    import re

    assert all(re.match(QUESTION_HEADING, question) for question in HOMEWORK_QUESTIONS)
    assert not any(re.match(QUESTION_HEADING, text) for text in ("Question 1 (a)", "Questions", "Q&A", "Q2 overview"))


def test_a_notebook_with_the_book_style_builds_into_readable_figures_and_hiragana(browser, tmp_path):
    """A one-notebook book built with the project's _config.yml: the notebook calls apply_book_style(),
    draws the class images and shows the class table; the extension sizes the figure, the page serves
    the font, and the page reads well at both widths."""
    import nbformat
    import yaml

    sys.path.insert(0, str(REPO / "tools"))
    from book_config import book_config

    config = book_config("", "main")
    config["sphinx"]["config"]["html_static_path"] = [str(VENDORED)]
    (tmp_path / "_config.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    book = tmp_path / "book"
    book.mkdir()
    for name in config.get("bibtex_bibfiles") or []:  # the sources the configuration names
        shutil.copyfile(REPO / "book" / name, book / name)
    (book / "_toc.yml").write_text("format: jb-book\nroot: classes\n")
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    table = "| class | hiragana |\n|---|---|\n" + "".join(
        f"| {romaji} | {kana} |\n" for romaji, kana in zip(CLASS_ROMAJI, CLASS_CHARACTERS))
    notebook.cells = [
        nbformat.v4.new_markdown_cell("# The classes\n\n" + table),
        nbformat.v4.new_code_cell(
            "%matplotlib inline\nimport torch\nfrom hw2lib.plots import apply_book_style, class_label, japanese_font, "
            "plot_image_grid\napply_book_style()\nfont = japanese_font()\n"
            "figure = plot_image_grid(torch.rand(10, 28, 28), [class_label(i, font) for i in range(10)], columns=10, "
            "font=font)", metadata={"tags": ["hide-input"]}),  # a plotting cell, as the book tags them
    ]
    nbformat.write(notebook, book / "classes.ipynb")
    build = subprocess.run(
        [str(Path(sys.executable).with_name("jupyter-book")), "build", str(book), "--config",
         str(tmp_path / "_config.yml"), "--path-output", str(tmp_path), "-W"],
        capture_output=True, text=True, cwd=REPO, timeout=600,
    )
    assert build.returncode == 0, f"the scratch book did not build:\n{build.stdout[-3000:]}\n{build.stderr[-3000:]}"
    html_dir = tmp_path / "_build" / "html"
    assert (html_dir / "_static" / "book_figures" / "hw2book-kana.ttf").is_file()
    with check_book.serve(html_dir) as base_url:
        reports = [check_page_quality(browser, base_url, "classes.html", width) for width in page_quality.WIDTHS]
    assert page_quality.format_quality(reports) == ""
    for report in reports:
        (figure,) = report.figures
        assert figure["smallest_pt"] == plots.SMALL_TEXT_PT and figure["dpi"] == pytest.approx(200, abs=0.01)
        assert figure["smallest_text_px"] >= plots.MIN_TEXT_PX
        assert sum(group["count"] for group in report.kana if group["in_table"] and group["real_glyph"]) == 10


# --- the real book (run `make book` first) ----------------------------------------------------


@pytest.fixture(scope="module")
def quality_reports(browser) -> list[QualityReport]:
    if not (HTML_DIR / "intro.html").is_file():
        pytest.fail(f"no built book in {HTML_DIR}: run `make book` first (or set HW2BOOK_HTML)")
    fetcher = page_quality.Fetcher()
    with check_book.serve(HTML_DIR) as base_url:
        return [check_page_quality(browser, base_url, page, width, SCREENSHOTS, fetcher)
                for page in check_book.find_pages(HTML_DIR) for width in page_quality.WIDTHS]


def assert_none(reports: list[QualityReport], kind: str) -> None:
    problems = page_quality.format_quality(reports, kind)
    assert not problems, f"{kind} problems in the rendered book (screenshots in {SCREENSHOTS}):\n{problems}"


def test_the_book_has_a_screenshot_of_every_page_at_both_widths(quality_reports):
    missing = [f"{report.page} at {report.width}" for report in quality_reports
               if not (report.screenshot and report.screenshot.is_file())]
    assert not missing, f"no screenshot for {missing}"


def test_no_formula_or_table_is_wider_than_the_column(quality_reports):
    assert_none(quality_reports, "overflow")


def test_every_figure_is_readable(quality_reports):
    assert_none(quality_reports, "figure-text")
    figures = [figure for report in quality_reports for figure in report.figures]
    assert len(figures) >= 10, "the book's figures were not found (is this the built book?)"


def test_visible_code_is_under_12_percent_of_every_page(quality_reports):
    assert_none(quality_reports, "code")


def test_an_answer_box_is_under_every_homework_question(quality_reports):
    assert_none(quality_reports, "answers")
    headings = {question["text"] for report in quality_reports for question in report.questions}
    missing = [question for question in HOMEWORK_QUESTIONS
               if not any(heading.startswith(question) for heading in headings)]
    assert not missing, f"no heading for the homework's {missing} (found {sorted(headings)})"


def test_every_cross_reference_leads_somewhere(quality_reports):
    assert_none(quality_reports, "links")


def test_hiragana_are_drawn_with_real_glyphs_and_the_class_table_has_all_ten(quality_reports):
    assert_none(quality_reports, "hiragana")
    in_tables = {group["character"] for report in quality_reports if report.page == "ch2_cnn.html"
                 for group in report.kana if group["in_table"] and group["real_glyph"]}
    assert in_tables == set(CLASS_CHARACTERS), f"chapter 2's class table shows {sorted(in_tables)}"

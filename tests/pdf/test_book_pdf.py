"""The book on paper: the PDF that `make pdf` writes (_build/html/hw2book.pdf, or HW2BOOK_PDF).

Checked against the notebooks themselves: a bookmark and pages for every page of book/_toc.yml, in
order; every homework question's heading and every number glued into the prose from a stored run
in the text; at least as many images as the notebooks' figures; no TeX left untypeset; numbered
pages; and the HTML's download menu linking the file.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[2]
PDF = Path(os.environ.get("HW2BOOK_PDF") or REPO / "_build" / "html" / "hw2book.pdf")
QUESTION = re.compile(r"^#{1,6}\s+((?:Q\d|Question\b).*)$", re.MULTILINE)
GLUE_TEXT = re.compile(r"\{glue:text\}`([A-Za-z_][A-Za-z0-9_]*):([^`]+)`")


@pytest.fixture(scope="module")
def reader():
    from pypdf import PdfReader

    if not PDF.is_file():
        pytest.fail(f"no PDF at {PDF}: run `make pdf` first")
    return PdfReader(PDF)


@pytest.fixture(scope="module")
def pages_text(reader) -> list[str]:
    """Each page's text, by pdftotext when installed (poppler-utils), else by pypdf."""
    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", "-layout", str(PDF), "-"], capture_output=True, text=True, check=True).stdout
        pages = text.split("\f")
        return pages[: len(reader.pages)]
    return [page.extract_text() or "" for page in reader.pages]


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def _toc_names() -> list[str]:
    """Every page of book/_toc.yml in reading order (parts, chapters and their sections)."""
    sys.path.insert(0, str(REPO / "tools"))
    from book_pages import toc_files

    return toc_files(REPO / "book" / "_toc.yml")


def _notebooks() -> list[nbformat.NotebookNode]:
    return [nbformat.read(REPO / "book" / f"{name}.ipynb", as_version=4)
            for name in _toc_names() if (REPO / "book" / f"{name}.ipynb").is_file()]


def _title(name: str) -> str:
    path = REPO / "book" / f"{name}.ipynb"
    if path.is_file():
        text = "\n".join(cell.source for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "markdown")
    else:
        text = (REPO / "book" / f"{name}.md").read_text(encoding="utf-8")
    return re.search(r"^#\s+(.+)$", text, re.MULTILINE).group(1).strip()


def test_a_bookmark_and_pages_for_every_page_of_the_book_in_order(reader):
    outline = [item for item in reader.outline if not isinstance(item, list)]
    titles = [item["/Title"] for item in outline]
    assert titles[0] == "Contents"
    assert titles[1:] == [_title(name) for name in _toc_names()]
    starts = [reader.get_destination_page_number(item) for item in outline]
    assert starts == sorted(starts) and len(set(starts)) == len(starts), starts  # each its own pages, in order
    assert starts[1] >= 2 and len(reader.pages) > starts[-1]  # title page and contents come first


def test_every_homework_question_heading_is_in_the_text(pages_text):
    text = _flat(" ".join(pages_text))
    headings = [QUESTION.findall(cell.source) for notebook in _notebooks() for cell in notebook.cells
                if cell.cell_type == "markdown"]
    headings = [heading for found in headings for heading in found]
    assert len(headings) >= 8, headings
    for heading in headings:
        readable = _flat(re.sub(r"[*_`]", "", heading.split("$")[0])).strip()  # up to the first formula
        assert readable and readable in text, f"question heading {readable!r} is not in the PDF's text"


def _glued_values(name: str, notebook: nbformat.NotebookNode) -> dict[str, str]:
    """What the build glued (it executes the notebooks, so timings differ from book/), else book/'s."""
    import json

    executed = PDF.parent.parent / "jupyter_execute" / f"{name}.glue.json"
    if executed.is_file():
        return {key: entry.get("data", {}).get("text/plain", "")
                for key, entry in json.loads(executed.read_text(encoding="utf-8")).items()}
    values = {}
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            name = output.get("metadata", {}).get("scrapbook", {}).get("name")
            plain = output.get("data", {}).get("application/papermill.record/text/plain")
            if name and plain is not None:
                values[name] = plain
    return values


def test_every_number_glued_from_a_stored_run_is_in_the_text(pages_text):
    text = _flat(" ".join(pages_text))
    checked = 0
    for name in _toc_names():
        if not (REPO / "book" / f"{name}.ipynb").is_file():
            continue
        notebook = nbformat.read(REPO / "book" / f"{name}.ipynb", as_version=4)
        values = _glued_values(name, notebook)
        prose = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown")
        for name, spec in GLUE_TEXT.findall(prose):
            number = re.fullmatch(r"(?:np\.\w+\()?(-?[0-9.eE+-]+)\)?", values.get(name, "").strip())
            if number is None:  # a glued word or phrase, not a number
                continue
            value = float(number.group(1))
            shown = format(int(value) if spec.endswith(("d", ",")) and value.is_integer() else value, spec)
            assert shown in text, f"{name} = {shown} (glued with :{spec}) is not in the PDF's text"
            checked += 1
    assert checked >= 20, checked


def test_math_is_typeset_and_figures_are_there(reader, pages_text):
    raw_tex = re.compile(r"\$\$|\\(?:frac|mathbf|mathrm|begin|sum|left|right)\b")
    leftovers = [index + 1 for index, page in enumerate(pages_text) if raw_tex.search(page)]
    assert not leftovers, f"raw TeX on pages {leftovers}"
    figures = sum(1 for notebook in _notebooks() for cell in notebook.cells if cell.cell_type == "code"
                  and "remove-cell" not in cell.metadata.get("tags", []) for output in cell.get("outputs", [])
                  if "image/png" in output.get("data", {}))
    images = sum(len(page.images) for page in reader.pages)
    assert figures >= 10 and images >= figures, (images, figures)


def test_pages_are_numbered_after_the_title_page(pages_text):
    for number in range(2, len(pages_text) + 1):
        last_line = [line for line in pages_text[number - 1].splitlines() if line.strip()][-1]
        assert last_line.strip() == str(number), f"page {number} ends with {last_line!r}"


def test_the_html_download_menu_links_the_pdf():
    pages = [PDF.parent / f"{name}.html" for name in _toc_names()]
    for page in pages:
        html = page.read_text(encoding="utf-8")
        link = Path(os.path.relpath(PDF, page.parent)).as_posix()  # "hw2book.pdf", "../hw2book.pdf" in api/
        assert f'href="{link}"' in html and "window.print" not in html, page.name


def test_folded_benchmark_notes_are_printed_open(pages_text):
    from bench.common import NOTES_SUMMARY

    text = _flat(" ".join(pages_text)).replace("\u2019", "'")  # the page sets apostrophes typographically
    results = (REPO / "bench" / "RESULTS.md").read_text(encoding="utf-8")
    assert NOTES_SUMMARY in results  # the notes are folded on screen...
    notes = re.findall(r"^- \*\*.+?\*\*: (.+)$", results, re.MULTILINE)  # the text of each note, not its name
    prose = [note for note in notes if "`" not in note]  # code may wrap anywhere on paper
    assert len(notes) >= 10 and len(prose) >= 2
    for note in (prose[0], prose[-1]):  # ...and on paper every note is there to read
        words = " ".join(note.split()[:8])
        assert words in text, f"the note {words!r}... is not in the PDF's text"

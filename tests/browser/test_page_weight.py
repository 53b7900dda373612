"""How much each page of the rendered book transfers, and how big the build folder is.

Every page must stay within 3.5 MB transferred when opened for the first time (the live panels'
model data aside: those are the trained weights), and the whole build folder within 20 MB. The
measurement is bench/page_weight.py's (Chromium through Playwright, the cache off, the book served
from 127.0.0.1); its table, with each page's first contentful paint, is printed (``pytest -s``)
and is also part of ``make bench``. The first tests check the measurement itself on a scratch
site whose files have known sizes.

Run after ``make book``: ``.venv/bin/python -m pytest tests/browser/test_page_weight.py -q``
(``HW2BOOK_HTML`` points at another build's html folder).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.common import text_table
from bench.page_weight import (BUILD_BUDGET, PAGE_BUDGET, PRINTED_BOOK, build_row, folder_size, measure_pages,
                               model_data_files, page_row)

REPO = Path(__file__).resolve().parents[2]
HTML_DIR = Path(os.environ.get("HW2BOOK_HTML") or REPO / "_build" / "html")


def scratch_site(root: Path) -> Path:
    """A page loading a 200,000-byte script and a 300,000-byte model data file, 1,000 bytes each
    of a stylesheet it does not load."""
    model = sorted(model_data_files())[0]
    (root / Path(model).parent).mkdir(parents=True)
    (root / model).write_text("x" * 300_000)
    (root / "_static" / "big.js").write_text("/*" + "y" * 199_996 + "*/")
    (root / "_static" / "unused.css").write_text("z" * 1_000)
    (root / "page.html").write_text(
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><script src='_static/big.js'></script>"
        f"<script src='{model}'></script></head><body><p>A page.</p></body></html>", encoding="utf-8")
    return root


def test_the_measurement_counts_what_the_page_loads_and_keeps_model_data_apart(tmp_path):
    root = scratch_site(tmp_path)
    page_size = (root / "page.html").stat().st_size
    (weight,) = measure_pages(root, ["page.html"], loads=2)
    headers = weight.transferred - 200_000 - page_size
    assert 0 < headers < 2_000, weight  # body bytes exact, plus two responses' headers
    assert 300_000 < weight.model_data < 301_000
    assert weight.requests == 3 and [path for _, path in weight.files] == ["_static/big.js", "page.html"]
    assert len(weight.first_paints) == 2 and all(paint > 0 for paint in weight.first_paints)
    assert not weight.loads_widget_manager
    row = page_row(weight)
    assert row.passed and row.measured.startswith("0.20 MB, first paint ")


def test_a_page_over_budget_fails(tmp_path):
    root = scratch_site(tmp_path)
    (root / "_static" / "big.js").write_text("/*" + "y" * int(PAGE_BUDGET) + "*/")
    (weight,) = measure_pages(root, ["page.html"], loads=1)
    assert weight.transferred > PAGE_BUDGET and page_row(weight).verdict == "SHORT"


def test_folder_size_counts_every_file(tmp_path):
    root = scratch_site(tmp_path)
    size, parts = folder_size(root)
    assert size == sum(path.stat().st_size for path in root.rglob("*") if path.is_file())
    assert parts[0] == (300_000, "_static/live")
    (root / PRINTED_BOOK).write_bytes(b"%PDF" + bytes(500_000))  # the printed book: a download of its own
    assert folder_size(root) == (size, parts)
    assert "hw2book.pdf (make pdf), 0.50 MB, not counted" in build_row(root, "the scratch site").note


@pytest.fixture(scope="module")
def book_weights():
    if not (HTML_DIR / "intro.html").is_file():
        pytest.fail(f"no built book in {HTML_DIR}: run `make book` first (or set HW2BOOK_HTML)")
    return measure_pages(HTML_DIR)


def test_every_page_stays_within_its_budget(book_weights):
    rows = [page_row(weight) for weight in book_weights]
    print("\n" + text_table(rows + [build_row(HTML_DIR, str(HTML_DIR))]))
    heavy = [f"{row.benchmark}: {row.measured} ({row.note})" for row in rows if not row.passed]
    assert not heavy, f"pages over {PAGE_BUDGET / 1e6:.1f} MB:\n" + "\n".join(heavy)
    assert all(weight.first_paints for weight in book_weights), "a page reported no first contentful paint"


def test_the_build_folder_stays_within_its_budget():
    if not (HTML_DIR / "intro.html").is_file():
        pytest.fail(f"no built book in {HTML_DIR}: run `make book` first (or set HW2BOOK_HTML)")
    size, parts = folder_size(HTML_DIR)
    assert size <= BUILD_BUDGET, f"{HTML_DIR} holds {size / 1e6:.1f} MB; the biggest parts: {parts[:6]}"

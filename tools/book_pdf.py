"""Print the built HTML book as one PDF: a title page, the contents with page numbers, every page
in the order of book/_toc.yml, page numbers, and bookmarks.

Headless Chromium (Debian's, through Playwright, as the browser check uses it) prints each page
served from 127.0.0.1 once MathJax has typeset it and the widget manager has drawn the saved
widget states, so the PDF holds what the HTML shows: typeset math, figures, and the panels in
their saved state. No request leaves the machine. pypdf joins the pages and stamps the numbers.

    python tools/book_pdf.py --html _build/html --output _build/html/hw2book.pdf
"""

from __future__ import annotations

import argparse
import contextlib
import html
import io
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from book_pages import PANELS_FAILED, PANELS_READY, WIDGETS_DRAWN, chromium_path, serve, toc_files  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PAPER = {"format": "A4", "margin": {"top": "16mm", "bottom": "18mm", "left": "15mm", "right": "15mm"}}
SETTLE_MS = 30_000
PRINT_SCALE = 0.85  # 16 px body text prints at about 10 pt
# The width the page is laid out at when printed: A4 less the side margins (180 mm = 680 CSS px), / scale.
PRINT_VIEWPORT = {"width": round(680 / PRINT_SCALE), "height": 1200}
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"]

# Print-only adjustments: nothing wider than the page (see _FIT_TO_PAGE), headings stay with what
# follows them, and the theme's navigation is left out.
PRINT_CSS = """
@media print {
  img, svg, canvas { max-width: 100% !important; }
  h1, h2, h3 { break-after: avoid; break-inside: avoid; }
  figure, img, .cell_output .output.image_png { break-inside: avoid; }
  .bd-header-article, .header-article-items, .prev-next-area, .bd-footer, .bd-footer-article,
  .bd-sidebar-primary, .bd-sidebar-secondary, .headerlink, #pst-back-to-top { display: none !important; }
  #jb-print-toc { display: none !important; }  /* the page's own contents list: the PDF has one */
}
"""

_SETTLED = """
async (timeoutMs) => {
  const deadline = new Promise(resolve => setTimeout(() => resolve('timeout'), timeoutMs));
  const mathjax = window.MathJax && window.MathJax.startup && window.MathJax.startup.promise;
  const math = mathjax ? Promise.race([mathjax.then(() => 'done'), deadline]) : Promise.resolve('absent');
  const images = [...document.images].map(image => {
    image.loading = 'eager';
    return image.complete ? null : new Promise(resolve => { image.onload = image.onerror = resolve; });
  });
  await Promise.race([Promise.all(images), deadline]);
  return await math;
}
"""

# What is wider than the page on paper: display math, tables and panels are scaled down to fit
# (CSS zoom), code and text outputs get a smaller font and, if still too wide, wrap.
_FIT_TO_PAGE = """
() => {
  let fitted = 0;
  for (const element of document.querySelectorAll('mjx-container[display="true"], table, .widget-subarea, pre')) {
    const width = element.clientWidth, needed = element.scrollWidth;
    if (!width || needed <= width + 1) continue;
    fitted += 1;
    if (element.tagName === 'PRE') {
      const size = parseFloat(getComputedStyle(element).fontSize);
      element.style.fontSize = Math.max(size * width / needed, size * 0.75) + 'px';
      if (element.scrollWidth > element.clientWidth + 1) { element.style.whiteSpace = 'pre-wrap'; element.style.wordBreak = 'break-word'; }
    } else {
      element.style.zoom = Math.max(width / needed, 0.4);
      element.style.overflow = 'visible';
    }
  }
  return fitted;
}
"""

# Folded text (the benchmark notes' <details>) cannot be unfolded on paper: print it open. Folded code
# cells (class "hide") stay folded, as on screen.
_UNFOLD = """
() => {
  const folded = [...document.querySelectorAll('article details:not([open]):not(.hide)')];
  for (const details of folded) details.open = true;
  return folded.length;
}
"""

# Links between the book's pages lead nowhere on paper: keep their text, drop the address.
_UNLINK_LOCAL = """
() => {
  for (const a of document.querySelectorAll('a[href]')) {
    if (new URL(a.href, location.href).host === location.host) a.removeAttribute('href');
  }
  const h1 = document.querySelector('#jb-print-docs-body h1, article h1, main h1, h1');
  const headings = [...document.querySelectorAll('article h2, main h2')].filter(h => !h.closest('#jb-print-toc'))
    .map(h => h.innerText.replace(/#$/, '').trim());
  return {title: h1 ? h1.innerText.replace(/#$/, '').trim() : document.title, sections: headings};
}
"""


@dataclass
class Printed:
    """One page of the book, printed: its title, its h2 sections and the PDF's bytes."""

    name: str
    title: str
    sections: list[str]
    pdf: bytes
    pages: int = 0
    section_pages: list[tuple[str, int]] = field(default_factory=list)  # (title, page within this PDF)


@contextlib.contextmanager
def browser():
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="hw2book-pdf-") as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1100, "height": 1400}, color_scheme="light")
        # Nothing but the local server: a page that wants the network prints without it.
        context.route("**/*", lambda route: route.continue_() if urlsplit(route.request.url).hostname == "127.0.0.1"
                      else route.abort("blockedbyclient"))
        try:
            yield context
        finally:
            context.close()


def print_page(context, url: str, name: str) -> Printed:
    """Load ``url``, wait until math, images and widgets are drawn, and print it."""
    page = context.new_page()
    try:
        page.goto(url, wait_until="load", timeout=SETTLE_MS)
        math = page.evaluate(_SETTLED, SETTLE_MS)
        if math == "timeout":
            raise RuntimeError(f"{name}: MathJax did not finish typesetting within {SETTLE_MS // 1000} s")
        with contextlib.suppress(Exception):
            page.wait_for_function(WIDGETS_DRAWN, timeout=SETTLE_MS)
        with contextlib.suppress(Exception):
            page.wait_for_function(PANELS_READY, timeout=SETTLE_MS)
        broken = page.evaluate(PANELS_FAILED)
        if broken:
            raise RuntimeError(f"{name}: the live panel(s) {', '.join(broken)} did not draw; the PDF would show them broken")
        page.add_style_tag(content=PRINT_CSS)
        found = page.evaluate(_UNLINK_LOCAL)
        page.emulate_media(media="print")
        page.set_viewport_size(PRINT_VIEWPORT)  # lay out at the paper's width before measuring
        page.evaluate(_UNFOLD)
        page.evaluate(_FIT_TO_PAGE)
        pdf = page.pdf(print_background=True, scale=PRINT_SCALE, **PAPER)
    finally:
        page.close()
    return Printed(name, found["title"], found["sections"], pdf)


def print_html(context, markup: str) -> bytes:
    page = context.new_page()
    try:
        page.set_content(markup, wait_until="load")
        return page.pdf(print_background=True, **PAPER)
    finally:
        page.close()


def _normalised(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def locate_sections(printed: Printed) -> None:
    """Page count and, for each h2 section, the page of this PDF that shows its heading first."""
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(printed.pdf))
    printed.pages = len(reader.pages)
    texts = [_normalised(page.extract_text() or "") for page in reader.pages]
    start = 0
    for section in printed.sections:
        probe = _normalised(section)[:40]
        hit = next((index for index in range(start, len(texts)) if probe and probe in texts[index]), None)
        if hit is not None:
            printed.section_pages.append((section, hit))
            start = hit


def front_matter(title: str, subtitle: str, entries: list[tuple[int, str, int]]) -> str:
    """The title page and the contents (level, text, page number) as one HTML document."""
    rows = "\n".join(
        f'<div class="entry level{level}"><span>{html.escape(text)}</span><span class="dots"></span>'
        f"<span>{number}</span></div>" for level, text, number in entries)
    return f"""<!doctype html><html><head><meta charset="utf-8"><style>
      body {{ font-family: "DejaVu Sans", sans-serif; color: #222; }}
      .title {{ height: 240mm; display: flex; flex-direction: column; justify-content: center; break-after: page; }}
      .title h1 {{ font-size: 30pt; margin: 0 0 8mm; }} .title p {{ font-size: 13pt; color: #555; }}
      h2 {{ font-size: 18pt; }}
      .entry {{ display: flex; font-size: 11.5pt; margin: 2.2mm 0; }}
      .entry.level1 {{ margin-left: 8mm; font-size: 10.5pt; color: #444; }}
      .entry.level0 {{ font-weight: 600; margin-top: 4mm; }}
      .dots {{ flex: 1; border-bottom: 1px dotted #999; margin: 0 2mm 1.2mm; }}
    </style></head><body>
      <div class="title"><h1>{html.escape(title)}</h1><p>{html.escape(subtitle)}</p></div>
      <h2>Contents</h2>{rows}
    </body></html>"""


def page_numbers(context, count: int, skip_first: int = 1) -> bytes:
    """``count`` blank A4 pages with the page number at the foot (none on the first ``skip_first``)."""
    sheets = "".join(
        f'<div class="sheet"><span>{"" if number <= skip_first else number}</span></div>'
        for number in range(1, count + 1))
    markup = f"""<!doctype html><html><head><style>
      @page {{ size: A4; margin: 0; }} body {{ margin: 0; font-family: "DejaVu Sans", sans-serif; }}
      .sheet {{ height: 297mm; position: relative; break-after: page; }}
      .sheet span {{ position: absolute; bottom: 8mm; width: 100%; text-align: center; font-size: 9pt; color: #555; }}
    </style></head><body>{sheets}</body></html>"""
    page = context.new_page()
    try:
        page.set_content(markup)
        return page.pdf(format="A4", margin={"top": "0", "bottom": "0", "left": "0", "right": "0"})
    finally:
        page.close()


def book_subtitle() -> str:
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    changed = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain"], capture_output=True, text=True)
    revision = commit.stdout.strip() or "unknown"
    if changed.stdout.strip():
        revision += " with local changes"
    author = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8")).get("author", "")
    return f"{author} · printed {time.strftime('%Y-%m-%d')} from commit {revision}"


def assemble(context, printed: list[Printed], title: str, subtitle: str) -> bytes:
    """Front matter whose page numbers are right (it is re-printed until its own length is stable),
    then the pages, numbers and bookmarks."""
    from pypdf import PdfReader, PdfWriter

    front_pages = 2
    while True:
        entries, number = [], front_pages + 1
        for item in printed:
            entries.append((0, item.title, number))
            entries += [(1, section, number + page) for section, page in item.section_pages]
            number += item.pages
        front = print_html(context, front_matter(title, subtitle, entries))
        actual = len(PdfReader(io.BytesIO(front)).pages)
        if actual == front_pages:
            break
        front_pages = actual
    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(front)))
    starts = []
    for item in printed:
        starts.append(len(writer.pages))
        writer.append(PdfReader(io.BytesIO(item.pdf)))
    numbers = PdfReader(io.BytesIO(page_numbers(context, len(writer.pages))))
    for page, overlay in zip(writer.pages, numbers.pages):
        page.merge_page(overlay)
    writer.add_outline_item(title="Contents", page_number=1)
    for item, start in zip(printed, starts):
        parent = writer.add_outline_item(title=item.title, page_number=start)
        for section, page in item.section_pages:
            writer.add_outline_item(title=section, page_number=start + page, parent=parent)
    writer.add_metadata({"/Title": title, "/Subject": subtitle})
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def build_pdf(html_dir: Path, output: Path, toc: Path = ROOT / "book" / "_toc.yml") -> tuple[int, float]:
    """Print the book in ``html_dir`` into ``output``; returns (pages, seconds)."""
    started = time.perf_counter()
    names = toc_files(toc)
    missing = [name for name in names if not (html_dir / f"{name}.html").is_file()]
    if missing:
        raise FileNotFoundError(f"the built book in {html_dir} has no {missing[0]}.html: run `make book` first")
    title = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))["title"]
    with serve(html_dir) as base, browser() as context:
        printed = []
        for name in names:
            item = print_page(context, f"{base}{name}.html", name)
            locate_sections(item)
            printed.append(item)
            print(f"  {name}: {item.pages} pages", flush=True)
        document = assemble(context, printed, title, book_subtitle())
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.part")
    partial.write_bytes(document)
    os.replace(partial, output)
    from pypdf import PdfReader

    return len(PdfReader(output).pages), time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--html", type=Path, default=ROOT / "_build" / "html", help="the built HTML book")
    parser.add_argument("--output", type=Path, default=ROOT / "_build" / "html" / "hw2book.pdf")
    args = parser.parse_args(argv)
    from playwright.sync_api import Error as BrowserError

    try:
        pages, seconds = build_pdf(args.html, args.output)
    except (FileNotFoundError, RuntimeError, BrowserError) as error:
        print(f"book_pdf: {str(error).splitlines()[0]}", file=sys.stderr)
        return 1
    size = args.output.stat().st_size / 1e6
    print(f"{args.output}: {pages} pages, {size:.1f} MB, printed in {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

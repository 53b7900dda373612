"""How heavy the rendered book is: the bytes each page transfers when a reader opens it for the
first time, its first contentful paint, and the size of the build folder.

Every page of a built book is served from 127.0.0.1 (``tests/browser/check_book.py``'s server) and
opened in Debian's Chromium through Playwright with the cache off; once MathJax has typeset it and
the network has been quiet, every response of the page is counted as Chromium received it (body
and headers). The live panels' model data (``_static/live/<model>.js``, see
``book/_ext/live_panels.py``) is counted apart: those are the trained weights, budgeted by
:mod:`bench.live_speed`. First contentful paint is Chromium's own ``first-contentful-paint`` entry.

The book is ``--html DIR``, else ``$HW2BOOK_HTML``, else ``_build/html``; when none is built, it is
built into a temporary folder first (``jupyter-book build``, a few minutes).

Run alone: ``python -m bench.page_weight [--quick] [--html DIR]``.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

from .common import REPOSITORY, Row, machine_description, report, standard_arguments
from .end_to_end import LOGS, run_command

sys.path.insert(0, str(REPOSITORY / "book" / "_ext"))
sys.path.insert(0, str(REPOSITORY / "tests" / "browser"))
import check_book  # noqa: E402  (the book's browser check: Debian's Chromium through Playwright)
import live_panels  # noqa: E402

PAGE_BUDGET = 3.5e6  # bytes a page may transfer, the live panels' model data aside
BUILD_BUDGET = 20e6  # bytes of the whole build folder, the printed book aside
# The whole book as one PDF, which `make pdf` writes into the HTML folder for the download menu: a
# download of its own that no page loads, so its size is reported beside the folder's, not in it.
PRINTED_BOOK = "hw2book.pdf"
BUILD_TIMEOUT = 15 * 60  # seconds; `make book` takes about one minute
QUIET_MS = 3_000  # how long the network must stay idle before the page counts as loaded
WIDGET_MANAGER = "_static/widgets/embed.js"
_FIRST_PAINT = "() => (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime ?? null"


@dataclass
class PageWeight:
    """What one page cost: bytes (model data aside), model bytes, requests, first paints (ms) and the
    counted files, biggest first, as (bytes, path under the build folder)."""

    page: str
    transferred: int
    model_data: int
    requests: int
    first_paints: list[float] = field(default_factory=list)
    files: list[tuple[int, str]] = field(default_factory=list)

    @property
    def loads_widget_manager(self) -> bool:
        return any(path == WIDGET_MANAGER for _, path in self.files)


def model_data_files() -> set[str]:
    """The paths (under the build folder) of every live panel's model data."""
    models = {model for names in live_panels.PANEL_MODELS.values() for model in names}
    return {f"_static/{live_panels.STATIC_SUBDIR}/{model}.js" for model in models}


def _site_path(url: str, base_url: str) -> str:
    return urlsplit(url).path.removeprefix(urlsplit(base_url).path)


def load_once(context, base_url: str, page_path: str) -> tuple[dict[str, int], float | None]:
    """Open ``page_path`` with the cache off; the bytes of each response by site path, and the first paint."""
    page = context.new_page()
    session = context.new_cdp_session(page)
    session.send("Network.enable")
    session.send("Network.setCacheDisabled", {"cacheDisabled": True})
    finished = []
    page.on("requestfinished", lambda request: finished.append(request))
    try:
        page.goto(base_url + page_path, wait_until="load", timeout=check_book.PAGE_TIMEOUT_MS)
        page.evaluate(check_book._WAIT_FOR_MATHJAX)
        with contextlib.suppress(Exception):  # a page that keeps polling still counts what it loaded
            page.wait_for_load_state("networkidle", timeout=QUIET_MS + 5_000)
        first_paint = page.evaluate(_FIRST_PAINT)
        sizes: dict[str, int] = {}
        for request in list(finished):
            measured = request.sizes()
            path = _site_path(request.url, base_url)
            sizes[path] = sizes.get(path, 0) + measured["responseBodySize"] + measured["responseHeadersSize"]
        return sizes, first_paint
    finally:
        page.close()


def measure_pages(html_dir: Path, pages: list[str] | None = None, loads: int = 3) -> list[PageWeight]:
    """Every page of the book at ``html_dir`` (default: :func:`check_book.find_pages`), ``loads`` times each."""
    pages = check_book.find_pages(html_dir) if pages is None else pages
    models = model_data_files()
    weights = []
    with check_book.serve(Path(html_dir)) as base_url, check_book.open_browser() as context:
        for page_path in pages:
            first_paints, sizes = [], {}
            for _ in range(loads):
                sizes, first_paint = load_once(context, base_url, page_path)
                if first_paint is not None:
                    first_paints.append(first_paint)
            counted = sorted(((size, path) for path, size in sizes.items() if path not in models), reverse=True)
            weights.append(PageWeight(page_path, sum(size for size, _ in counted),
                                      sum(size for path, size in sizes.items() if path in models), len(sizes),
                                      first_paints, counted))
    return weights


def folder_size(folder: Path, leave_out: tuple[str, ...] = (PRINTED_BOOK,)) -> tuple[int, list[tuple[int, str]]]:
    """Bytes of every file under ``folder`` but ``leave_out`` (paths relative to it), and the biggest
    subfolders of ``_static`` and the top level."""
    folder = Path(folder)
    files = [path for path in folder.rglob("*") if path.is_file() and not path.is_symlink()
             and path.relative_to(folder).as_posix() not in leave_out]
    parts: dict[str, int] = {}
    for path in files:
        relative = path.relative_to(folder).parts
        key = "/".join(relative[:2]) if relative[0] == "_static" and len(relative) > 2 else relative[0]
        parts[key] = parts.get(key, 0) + path.stat().st_size
    return sum(parts.values()), sorted(((size, name) for name, size in parts.items()), reverse=True)


def megabytes(size: float) -> str:
    return f"{size / 1e6:.2f} MB"


def page_row(weight: PageWeight) -> Row:
    ratio = weight.transferred / PAGE_BUDGET
    paint = statistics.median(weight.first_paints) if weight.first_paints else None
    paint_text = f"first paint {paint:.0f} ms" if paint is not None else "no first paint"
    paints = (f"first contentful paint: median of {len(weight.first_paints)} loads, range "
              f"{min(weight.first_paints):.0f}-{max(weight.first_paints):.0f} ms" if weight.first_paints else
              "no first contentful paint reported")
    largest = ", ".join(f"{path} {megabytes(size)}" for size, path in weight.files[:4])
    note = (f"{weight.requests} requests, cache off, served from 127.0.0.1; {paints}; largest: {largest}; "
            f"widget manager {'LOADED' if weight.loads_widget_manager else 'not loaded'}")
    if weight.model_data:
        note += f"; the live panels' model data, not counted: {megabytes(weight.model_data)}"
    return Row(f"page weight: {weight.page}", f"{megabytes(weight.transferred)}, {paint_text}",
               f"budget {megabytes(PAGE_BUDGET)}", ratio, f"{ratio:.2f} of budget", f"< {megabytes(PAGE_BUDGET)}",
               weight.transferred <= PAGE_BUDGET, note)


def build_row(html_dir: Path, shown: str) -> Row:
    size, parts = folder_size(html_dir)
    ratio = size / BUILD_BUDGET
    biggest = ", ".join(f"{name} {megabytes(part)}" for part, name in parts[:6])
    printed = Path(html_dir) / PRINTED_BOOK
    pdf = (f"the printed book {PRINTED_BOOK} (make pdf), {megabytes(printed.stat().st_size)}, not counted"
           if printed.is_file() else f"no printed book {PRINTED_BOOK} in it (make pdf)")
    return Row("build folder size", megabytes(size), f"budget {megabytes(BUILD_BUDGET)}", ratio,
               f"{ratio:.2f} of budget", f"< {megabytes(BUILD_BUDGET)}", size <= BUILD_BUDGET,
               f"every file under {shown}, the live panels' model data included; {pdf}; biggest: {biggest}")


@contextlib.contextmanager
def built_book(html: Path | None, build: bool = True) -> Iterator[tuple[Path | None, str]]:
    """The book to measure and how to name it: ``html``, $HW2BOOK_HTML or _build/html if built, else
    (with ``build``) a fresh build in a temporary folder, removed afterwards, else None."""
    chosen = html or (Path(os.environ["HW2BOOK_HTML"]) if os.environ.get("HW2BOOK_HTML") else None)
    chosen = chosen or REPOSITORY / "_build" / "html"
    if (chosen / "index.html").is_file():
        yield chosen, str(chosen)
        return
    if html is not None:
        raise FileNotFoundError(f"no built book at {html}: build it with `make book` or leave --html out")
    if not build:
        yield None, f"no built book at {chosen}, and --quick builds none"
        return
    with tempfile.TemporaryDirectory(prefix="hw2book-weight-") as output:
        command = [str(Path(sys.executable).parent / "jupyter-book"), "build", "book", "--config", "_config.yml",
                   "--path-output", output]
        _, status = run_command(command, dict(os.environ), LOGS / "page_weight_book.log", BUILD_TIMEOUT)
        if status != 0:
            yield None, (f"the book did not build (exit status {status}, see bench/out/page_weight_book.log)"
                         if status is not None else f"the book build passed its {BUILD_TIMEOUT // 60}-minute timeout")
            return
        yield Path(output) / "_build" / "html", "a fresh build (jupyter-book build book)"


def run(quick: bool = False, html: Path | None = None) -> list[Row]:
    """Measure; return the table's rows (``quick``: one load per page, and no build when none is there)."""
    with built_book(html, build=not quick) as (folder, shown):
        if folder is None:
            return [Row("page weight", "not measured", f"budget {megabytes(PAGE_BUDGET)}", None,
                        note=f"{shown}; run `make book` first")]
        weights = measure_pages(folder, loads=1 if quick else 3)
        return [page_row(weight) for weight in weights] + [build_row(folder, shown)]


def main() -> int:
    parser = standard_arguments("The rendered book's page weights, first paints and build size")
    parser.add_argument("--html", type=Path, default=None, help="the built book (default: _build/html)")
    arguments = parser.parse_args()
    started = machine_description()
    rows = run(arguments.quick, arguments.html)
    report(rows, started, arguments.markdown, "The rendered book: page weight and first paint")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

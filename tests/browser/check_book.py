"""Open every page of the built book in headless Chromium and report what a reader would find broken.

For each HTML page of a built Jupyter Book (``_build/html``), served on 127.0.0.1, it checks that

* the math is typeset: every formula Sphinx marked (class ``math``) holds a MathJax container,
  MathJax reported no TeX error, and no raw TeX (``$$``, ``\\(``, ``\\[``, ``\\frac`` ...) is
  left in the visible text outside code;
* every ``<img>`` loaded (``complete`` and ``naturalWidth > 0``);
* every saved widget view (``application/vnd.jupyter.widget-view+json``) was rendered from the
  page's saved widget state by the local widget manager;
* no request leaves the machine: every request is recorded, any host other than 127.0.0.1 or
  localhost is blocked and named, and so are tags that make the browser connect elsewhere
  without a request event (``<link rel=preconnect>``, ``dns-prefetch``);
* every local request succeeded and no script threw an uncaught exception.

It writes a full-page screenshot of every page (``<name>.png``) so a person can look.

Run through pytest (``pytest tests/browser``), or alone:
``python tests/browser/check_book.py _build/html --screenshots screenshots``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
from book_pages import WIDGETS_DRAWN, chromium_path, serve, toc_files  # noqa: E402,F401  (shared with the PDF printer)

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost"})
# Schemes that never reach the network.
INERT_SCHEMES = frozenset({"data", "blob", "about", "javascript"})
# Built pages that are not chapters: Sphinx's index and search pages.
SKIPPED_PAGES = frozenset({"genindex.html", "search.html", "py-modindex.html"})
SKIPPED_DIRS = frozenset({"_static", "_sources", "_images", "_downloads", "_panels_static"})

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PAGE_TIMEOUT_MS = 30_000
# How long MathJax, images and the widget manager get to finish after the page's load event.
SETTLE_TIMEOUT_MS = 20_000

# Raw TeX a reader should never see outside code: display and inline delimiters, environments,
# control words, and $...$ holding TeX syntax (plain prices such as "$5" do not match).
RAW_TEX = re.compile(
    r"\$\$|\\\(|\\\)|\\\[|\\\]|\\begin\{|\\[A-Za-z]{2,}|\$[^$\n]{0,200}?[\\^_{}][^$\n]{0,200}?\$"
)

# A Markdown table that was printed instead of rendered: a row of cells, then its |---|---| rule
# (which typography may have turned into |—|—|).
_RULE_CELL = r"\s*:?(?:-{3,}|[\u2013\u2014]-*):?\s*"
RAW_MARKDOWN_TABLE = re.compile(rf"\|[^|\n]*\|[^|\n]*\|\s*\|?{_RULE_CELL}\|{_RULE_CELL}\|")


@dataclass
class PageReport:
    """What the browser saw on one page; ``problems`` is empty when the page reads correctly."""

    page: str
    problems: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    math_elements: int = 0
    typeset_math: int = 0
    images: int = 0
    widget_views: int = 0
    rendered_widgets: list[dict] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    screenshot: Path | None = None


def find_pages(html_dir: Path) -> list[str]:
    """Every content page of a built book, as paths relative to ``html_dir`` ("ch2_cnn.html").

    Skips Sphinx's genindex and search pages, the static folders, and pages that only redirect
    (the root ``index.html`` of a Jupyter Book)."""
    html_dir = Path(html_dir)
    if not html_dir.is_dir():
        raise FileNotFoundError(f"no built book at {html_dir}: run `make book` first")
    pages = []
    for path in sorted(html_dir.rglob("*.html")):
        relative = path.relative_to(html_dir)
        if relative.parts[0] in SKIPPED_DIRS or relative.as_posix() in SKIPPED_PAGES:
            continue
        head = path.read_text(encoding="utf-8", errors="replace")[:2000].lower()
        if 'http-equiv="refresh"' in head and "<body" not in head:
            continue
        pages.append(relative.as_posix())
    return pages


def screenshot_name(page: str) -> str:
    """``part/ch1.html`` -> ``part__ch1.png``."""
    return page.removesuffix(".html").replace("/", "__") + ".png"


def is_local_url(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in INERT_SCHEMES:
        return True
    return parts.scheme in {"http", "https", "ws", "wss"} and parts.hostname in LOCAL_HOSTS


@contextlib.contextmanager
def open_browser() -> Iterator[object]:
    """A headless Chromium with a fresh profile; yields a Playwright BrowserContext."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="hw2book-chromium-") as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=chromium_path(),
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


# --- what runs inside the page ------------------------------------------------------------

_WAIT_FOR_MATHJAX = """
() => new Promise(resolve => {
  const mathjax = window.MathJax;
  if (!mathjax || !mathjax.startup || !mathjax.startup.promise) { resolve("absent"); return; }
  setTimeout(() => resolve("timeout"), %d);
  mathjax.startup.promise.then(() => resolve("done"), error => resolve("failed: " + error));
})
""" % SETTLE_TIMEOUT_MS

_MATH_STATE = """
() => {
  // Sphinx marks every formula (inline, display, amsmath) with the class "math".
  const formulas = [...document.querySelectorAll('.math')];
  const untypeset = formulas.filter(f => !f.querySelector('mjx-container'))
                            .map(f => f.textContent.trim().slice(0, 80));
  const errors = [...document.querySelectorAll('mjx-merror, [data-mjx-error]')]
    .map(e => (e.getAttribute('data-mjx-error') || e.textContent || '').trim().slice(0, 120));
  return {count: formulas.length, typeset: formulas.length - untypeset.length, untypeset, errors};
}
"""

_VISIBLE_PROSE = """
() => {
  // Text a reader sees, outside code and outside typeset math.
  const skip = 'pre, code, kbd, samp, script, style, textarea, mjx-container, .highlight';
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const parts = [];
  while (walker.nextNode()) {
    const element = walker.currentNode.parentElement;
    if (!element || element.closest(skip) || element.getClientRects().length === 0) continue;
    if (getComputedStyle(element).visibility === 'hidden') continue;
    parts.push(walker.currentNode.textContent);
  }
  return parts.join(' ');
}
"""

_IMAGES = """
async (timeoutMs) => {
  const images = [...document.images];
  images.forEach(image => { if (image.loading === 'lazy') image.loading = 'eager'; });
  const settled = images.map(image => image.complete ? null : new Promise(resolve => {
    image.addEventListener('load', resolve); image.addEventListener('error', resolve);
  }));
  await Promise.race([Promise.all(settled), new Promise(resolve => setTimeout(resolve, timeoutMs))]);
  return images.map(image => ({src: image.getAttribute('src') || '', complete: image.complete,
                               width: image.naturalWidth}));
}
"""

_WIDGETS = """
() => {
  const states = [...document.querySelectorAll('script[type="application/vnd.jupyter.widget-state+json"]')];
  const models = {};
  for (const script of states) {
    try { Object.assign(models, JSON.parse(script.textContent).state || {}); } catch (error) {}
  }
  const views = [...document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]')];
  return {states: states.length, views: views.map(script => {
    let modelId = '?';
    try { modelId = JSON.parse(script.textContent).model_id; } catch (error) {}
    // The widget manager renders each view into a div.widget-subarea placed just before it.
    const area = script.previousElementSibling;
    const widget = area && area.classList.contains('widget-subarea')
      ? area.querySelector('.jupyter-widgets, [class*="widget-"]') : null;
    const box = widget ? widget.getBoundingClientRect() : null;
    const text = widget ? widget.innerText.trim() : '';
    const failed = !!widget && (widget.matches('.widget-error, .jupyter-widgets-error-widget')
      || /Error displaying widget|Could not create a view/.test(text));
    return {model_id: modelId, model_name: (models[modelId] || {}).model_name || 'no saved state',
            rendered: !!widget && !failed && box.width > 0 && box.height > 0, text: text.slice(0, 200)};
  })};
}
"""

_RESOURCE_TAGS = """
() => [...document.querySelectorAll(
  'link[href], script[src], img[src], iframe[src], source[src], video[src], audio[src], embed[src], object[data]')]
  .map(element => ({tag: element.tagName.toLowerCase(), rel: (element.getAttribute('rel') || '').toLowerCase(),
                    url: element.href || element.src || element.data || ''}))
"""

_LINKS = "() => [...document.querySelectorAll('a[href]')].map(a => a.href)"

# <link> relations that make the browser load or connect; other rels (canonical, next) are inert.
_LOADING_RELS = {"stylesheet", "preload", "prefetch", "preconnect", "dns-prefetch", "modulepreload", "icon", "manifest"}


def _raw_tex_snippets(text: str, limit: int = 3) -> list[str]:
    snippets = []
    for match in RAW_TEX.finditer(text):
        start, end = max(match.start() - 30, 0), min(match.end() + 30, len(text))
        snippets.append(" ".join(text[start:end].split()))
        if len(snippets) == limit:
            break
    return snippets


def _inspect(page, report: PageReport, screenshot_dir: Path | None) -> None:
    """The checks on a loaded page; problems go to ``report.problems``."""
    problems = report.problems
    # MathJax first (it typesets after load), then images and widgets.
    mathjax = page.evaluate(_WAIT_FOR_MATHJAX)
    math = page.evaluate(_MATH_STATE)
    report.math_elements, report.typeset_math = math["count"], math["typeset"]
    if math["count"] and mathjax != "done":
        problems.append(f"MathJax did not typeset the page's {math['count']} formulas (MathJax {mathjax})")
    if math["untypeset"]:
        shown = "; ".join(repr(text) for text in math["untypeset"][:3])
        problems.append(f"{len(math['untypeset'])} of {math['count']} formulas not typeset, e.g. {shown}")
    if math["errors"]:
        shown = "; ".join(repr(text) for text in math["errors"][:3])
        problems.append(f"MathJax reported {len(math['errors'])} TeX error(s): {shown}")
    prose = page.evaluate(_VISIBLE_PROSE)
    snippets = _raw_tex_snippets(prose)
    if snippets:
        problems.append("raw TeX in the visible text: " + "; ".join(repr(s) for s in snippets))
    table = RAW_MARKDOWN_TABLE.search(prose)
    if table:
        problems.append("a Markdown table shown as raw text: " + repr(" ".join(table.group(0).split())[:80]))

    images = page.evaluate(_IMAGES, SETTLE_TIMEOUT_MS)
    report.images = len(images)
    for image in images:
        if not (image["complete"] and image["width"] > 0):
            problems.append(f"image did not load: {image['src'] or '(no src)'}")

    with contextlib.suppress(Exception):  # a timeout is reported below, view by view
        page.wait_for_function(WIDGETS_DRAWN, timeout=SETTLE_TIMEOUT_MS)
    widgets = page.evaluate(_WIDGETS)
    report.widget_views = len(widgets["views"])
    report.rendered_widgets = [view for view in widgets["views"] if view["rendered"]]
    for view in widgets["views"]:
        if not view["rendered"]:
            detail = f": {view['text']!r}" if view["text"] else ""
            problems.append(
                f"widget {view['model_name']} (model {view['model_id']}) did not render from the "
                f"page's saved widget state ({widgets['states']} state block(s) on the page){detail}"
            )

    for resource in page.evaluate(_RESOURCE_TAGS):
        if resource["tag"] == "link" and not (set(resource["rel"].split()) & _LOADING_RELS):
            continue
        if not is_local_url(resource["url"]):
            host = urlsplit(resource["url"]).hostname or resource["url"]
            rel = f" rel={resource['rel']}" if resource["rel"] else ""
            problems.append(f"<{resource['tag']}{rel}> points outside the machine, to {host}: {resource['url']}")

    with contextlib.suppress(Exception):  # late requests (fonts, lazy components) are still recorded
        page.wait_for_load_state("networkidle", timeout=5_000)
    report.links = page.evaluate(_LINKS)

    if screenshot_dir is not None:
        screenshot_dir.mkdir(parents=True, exist_ok=True)
        target = screenshot_dir / screenshot_name(report.page)
        partial = target.with_name(target.name + ".part")
        page.screenshot(path=str(partial), full_page=True, type="png")
        os.replace(partial, target)
        report.screenshot = target


def check_page(context, base_url: str, page_path: str, screenshot_dir: Path | None = None) -> PageReport:
    """Open one page in ``context`` (see :func:`open_browser`) and report what is broken on it.

    Requests to any host but 127.0.0.1/localhost are recorded and blocked, so a failing check
    never reaches the outside either."""
    report = PageReport(page=page_path)
    outside: list[str] = []
    failed_local: list[str] = []
    page_errors: list[str] = []

    def route(route_request) -> None:
        url = route_request.request.url
        if is_local_url(url):
            route_request.continue_()
        else:
            outside.append(url)
            route_request.abort("blockedbyclient")

    def on_websocket(socket) -> None:
        report.requests.append(socket.url)
        if not is_local_url(socket.url):
            outside.append(socket.url)

    def on_request_failed(request) -> None:
        if is_local_url(request.url) and request.url not in outside:
            failed_local.append(f"{request.url} ({request.failure})")

    def on_response(response) -> None:
        if response.status >= 400 and is_local_url(response.url):
            failed_local.append(f"{response.url} (HTTP {response.status})")

    def on_page_error(error) -> None:
        message = (getattr(error, "message", "") or str(error)).splitlines()[0][:200]
        # Name the script that threw: the first address in the stack, relative to the site.
        where = re.search(r"(https?://[^\s)]+?):\d+:\d+", getattr(error, "stack", "") or "")
        if where:
            message += f" (in {urlsplit(where.group(1)).path.lstrip('/') or where.group(1)})"
        page_errors.append(message)

    page = context.new_page()
    page.route("**/*", route)
    page.on("request", lambda request: report.requests.append(request.url))
    page.on("websocket", on_websocket)
    page.on("requestfailed", on_request_failed)
    page.on("response", on_response)
    page.on("pageerror", on_page_error)
    try:
        try:
            page.goto(base_url + page_path, wait_until="load", timeout=PAGE_TIMEOUT_MS)
        except Exception as error:  # a page that does not load is reported, not raised
            report.problems.append(f"the page did not load: {error}".splitlines()[0])
        else:
            _inspect(page, report, screenshot_dir)
    finally:
        # Events arrive only while Playwright waits, so copies taken now leave out the
        # requests that closing the page aborts.
        outside, failed_local, page_errors = list(outside), list(failed_local), list(page_errors)
        page.close()

    for url in dict.fromkeys(outside):
        report.problems.append(f"request to {urlsplit(url).hostname or url} (outside the machine, blocked): {url}")
    for failure in dict.fromkeys(failed_local):
        report.problems.append(f"local request failed: {failure}")
    for error, count in Counter(page_errors).items():
        times = f" ({count} times)" if count > 1 else ""
        report.problems.append(f"uncaught script error{times}: {error}")
    return report


def check_book(html_dir: Path, pages: list[str] | None = None, screenshot_dir: Path | None = None) -> list[PageReport]:
    """Serve ``html_dir`` and check ``pages`` (default: :func:`find_pages`) in one Chromium."""
    html_dir = Path(html_dir)
    pages = find_pages(html_dir) if pages is None else pages
    with serve(html_dir) as base_url, open_browser() as context:
        return [check_page(context, base_url, page, screenshot_dir) for page in pages]


def launch_link_problems(
    report: PageReport,
    notebook: str,
    html_dir: Path,
    repository_url: str,
    branch: str,
    binderhub_url: str,
    colab_url: str,
) -> list[str]:
    """What is missing among a notebook page's Binder, Colab and download links.

    ``notebook`` is the notebook's path in the repository ("book/ch2_cnn.ipynb"); the expected
    addresses are those sphinx-book-theme builds from ``_config.yml``'s repository and
    launch_buttons keys."""
    org_repo = urlsplit(repository_url).path.strip("/")
    if org_repo.endswith(".git"):
        org_repo = org_repo[: -len(".git")]
    binder = f"{binderhub_url.rstrip('/')}/v2/gh/{org_repo}/{branch}?urlpath="
    colab = f"{colab_url.rstrip('/')}/github/{org_repo}/blob/{branch}/{notebook}"
    problems = []
    if not any(link.startswith(binder) and link.endswith(notebook) for link in report.links):
        problems.append(f"no Binder link {binder}...{notebook}")
    if colab not in report.links:
        problems.append(f"no Colab link {colab}")
    source_name = Path(notebook).name
    downloads = [link for link in report.links if urlsplit(link).path.endswith(f"/_sources/{source_name}")]
    if not downloads:
        problems.append(f"no download link to _sources/{source_name}")
    source = Path(html_dir) / "_sources" / Path(report.page).parent / source_name
    try:
        content = json.loads(source.read_text(encoding="utf-8"))
        if "cells" not in content:
            problems.append(f"the downloadable {source.name} is not a notebook (no 'cells')")
    except (OSError, ValueError) as error:
        problems.append(f"the downloadable notebook {source} cannot be read: {error}")
    return problems


def format_problems(reports: list[PageReport]) -> str:
    """One line per problem, each naming its page."""
    return "\n".join(f"{report.page}: {problem}" for report in reports for problem in report.problems)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html_dir", nargs="?", default="_build/html", type=Path)
    parser.add_argument("--screenshots", type=Path, default=Path("screenshots"))
    args = parser.parse_args(argv)
    reports = check_book(args.html_dir, screenshot_dir=args.screenshots)
    for report in reports:
        status = "ok" if not report.problems else f"{len(report.problems)} problem(s)"
        print(
            f"{report.page}: {status}; {report.typeset_math}/{report.math_elements} formulas typeset, "
            f"{report.images} images, {len(report.rendered_widgets)}/{report.widget_views} widgets, "
            f"{len(report.requests)} requests"
        )
    problems = format_problems(reports)
    if problems:
        print("\nproblems:\n" + problems)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

"""Open every page of the built book at a desktop and a phone width and report what a reader would find
hard to read. The companion of ``check_book.py`` (which checks that pages load, typeset and stay
offline); this one checks how they read.

For each page at 1280 and 390 CSS px, in headless Chromium:

* **overflow**: no display formula wider than its box at 1280 px (at 390 px one may scroll inside its
  own box); no table wider than its container unless it scrolls inside its own box, which must fit
  the column and be no taller than the window (else its scrollbar is out of sight); the page itself
  never scrolls sideways;
* **figure text**: every figure PNG that matplotlib wrote records its smallest text in points
  (:data:`hw2lib.plots.SMALLEST_TEXT_KEY`, written by :func:`hw2lib.plots.figure_png`), and that text,
  at the PNG's dpi and the image's displayed width, is at least :data:`hw2lib.plots.MIN_TEXT_PX` CSS
  px; at 1280 px no figure is wider than its box;
* **code**: visible code-cell input is under 12% of the page's height (cells tagged
  ``exercise-starter`` aside);
* **answers**: each homework question heading ("Q1.1 (a) ...", "Q2.3 ...") is followed directly by an
  Answer box, ``div.admonition.answer``;
* **links**: no cross-reference is styled as a link without a target (an unresolved ``{func}`` or
  ``{mod}``), and every link into the book reaches an existing page and anchor;
* **hiragana**: every KMNIST hiragana on the page is drawn with a real glyph, not the box of a
  missing one (drawn on a canvas in the element's own font and compared with an unassigned code
  point, which every font draws as that box).

How much a page weighs has its own measurement: bench/page_weight.py (tests/browser/test_page_weight.py).

Full-page screenshots go to ``<dir>/<width>/<page>.png``. Run through pytest
(``pytest tests/browser/test_page_quality.py``), or alone:
``python tests/browser/page_quality.py _build/html --screenshots screenshots``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlsplit

import check_book

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from hw2lib.kmnist import CLASS_CHARACTERS  # noqa: E402
from hw2lib.plots import MIN_TEXT_PX, SMALLEST_TEXT_KEY  # noqa: E402

WIDTHS = (1280, 390)
WINDOW_HEIGHTS = {1280: 900, 390: 844}
MAX_CODE_SHARE = 0.12
EXCLUDED_CODE = ".tag_exercise-starter"
QUESTION_HEADING = r"^Q\d+\.\d+"
ANSWER_BOX = "div.admonition.answer"
KINDS = ("overflow", "figure-text", "code", "answers", "links", "hiragana")
# An unassigned code point: every font draws it as its missing-glyph box.
MISSING_GLYPH = "\u0378"


@dataclass
class QualityReport:
    """What one page looks like at one width; ``problems`` holds ``(kind, message)`` pairs (see KINDS)."""

    page: str
    width: int
    problems: list[tuple[str, str]] = field(default_factory=list)
    figures: list[dict] = field(default_factory=list)
    code_share: float | None = None
    questions: list[dict] = field(default_factory=list)
    kana: list[dict] = field(default_factory=list)
    screenshot: Path | None = None

    def messages(self, kind: str | None = None) -> list[str]:
        return [message for problem_kind, message in self.problems if kind in (None, problem_kind)]


# --- what runs inside the page ------------------------------------------------------------

_HELPERS = """
  // Laid out and seen: not display:none, not inside a closed <details> (content-visibility), not hidden.
  const visible = element => element.getClientRects().length > 0
    && element.checkVisibility({contentVisibilityAuto: true, visibilityProperty: true});
  const column = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
  const where = element => {
    const section = element.closest('section');
    const heading = section && section.querySelector('h1, h2, h3, h4, h5, h6');
    return heading ? ' (under "' + heading.textContent.replace(/[#¶]/g, '').trim().slice(0, 60) + '")' : '';
  };
  const scrollBox = element => {
    for (let box = element.parentElement; box && box !== column && column.contains(box); box = box.parentElement) {
      if (['auto', 'scroll'].includes(getComputedStyle(box).overflowX)) return box;
    }
    return null;
  };
"""

_OVERFLOW = """
(desktop) => {
  %s
  const problems = [];
  const columnRight = column.getBoundingClientRect().right;
  for (const formula of document.querySelectorAll('mjx-container[display="true"]')) {
    const math = formula.querySelector('mjx-math');
    if (!math || !visible(formula)) continue;
    const wide = math.getBoundingClientRect().width, room = formula.clientWidth;
    const scrolls = ['auto', 'scroll'].includes(getComputedStyle(formula).overflowX);
    if (wide > room + 1 && (desktop || !scrolls))
      problems.push('a display formula is ' + Math.round(wide) + ' px wide in a box of ' + room + ' px'
                    + (scrolls ? ' (it scrolls sideways)' : ' (cut off)') + where(formula));
  }
  for (const table of document.querySelectorAll('table')) {
    if (!visible(table)) continue;
    const box = scrollBox(table), rect = table.getBoundingClientRect();
    if (box && box.scrollWidth > box.clientWidth + 1) {
      const boxRect = box.getBoundingClientRect();
      if (boxRect.right > columnRight + 1)
        problems.push('a table scrolls in a box that itself sticks out of the column' + where(table));
      if (boxRect.height > window.innerHeight)
        problems.push('a table scrolls sideways in a box ' + Math.round(boxRect.height) + ' px tall, taller than the '
                      + 'window: its scrollbar is out of sight' + where(table));
    } else if (rect.right > columnRight + 1) {
      problems.push('a table is ' + Math.round(rect.width) + ' px wide and sticks out of the column by '
                    + Math.round(rect.right - columnRight) + ' px' + where(table));
    }
  }
  const pageWidth = document.documentElement.scrollWidth;
  if (pageWidth > window.innerWidth + 1) problems.push('the page is ' + pageWidth + ' px wide in a window of '
                                                       + window.innerWidth + ' px: it scrolls sideways');
  return problems;
}
""" % _HELPERS

_FIGURES = """
() => {
  %s
  return [...document.images].filter(visible).map(image => {
    const style = getComputedStyle(image), rect = image.getBoundingClientRect();
    const edges = ['paddingLeft', 'paddingRight', 'borderLeftWidth', 'borderRightWidth']
      .reduce((sum, name) => sum + parseFloat(style[name] || 0), 0);
    const box = image.parentElement.getBoundingClientRect();
    return {src: image.currentSrc || image.src, natural: image.naturalWidth, shown: rect.width - edges,
            sticks_out: rect.right > Math.min(box.right, column.getBoundingClientRect().right) + 1,
            top: rect.top + window.scrollY, height: rect.height,
            where: where(image).trim()};
  });
}
""" % _HELPERS

_CODE = """
(excluded) => {
  %s
  let code = 0, cells = 0;
  for (const input of document.querySelectorAll('.cell_input')) {
    if (input.closest(excluded) || !visible(input)) continue;
    code += input.getBoundingClientRect().height;
    cells += 1;
  }
  return {code, cells, page: document.documentElement.scrollHeight};
}
""" % _HELPERS

_ANSWERS = """
([pattern, answer]) => {
  %s
  const question = new RegExp(pattern);
  const headingText = heading => {
    const copy = heading.cloneNode(true);
    copy.querySelectorAll('.headerlink').forEach(link => link.remove());
    return copy.textContent.trim();
  };
  return [...document.querySelectorAll('h1, h2, h3, h4, h5, h6')].filter(visible)
    .map(heading => ({heading, text: headingText(heading)})).filter(({text}) => question.test(text))
    .map(({heading, text}) => {
      let next = heading.nextElementSibling;
      while (next && (!visible(next) || next.matches('script, style, span.target'))) next = next.nextElementSibling;
      const describe = next ? next.tagName.toLowerCase() + (next.className ? '.' + next.className.trim()
        .split(/\\s+/).join('.') : '') : 'nothing';
      return {text, answered: !!next && next.matches(answer), next: describe.slice(0, 80)};
    });
}
""" % _HELPERS

_LINKS = """
() => ({
  unresolved: [...document.querySelectorAll('.xref')].filter(element => !element.closest('a[href]'))
    .map(element => element.textContent.trim().slice(0, 60)),
  links: [...document.querySelectorAll('a[href]')].map(a => ({href: a.href, text: a.textContent.trim().slice(0, 60)})),
})
"""

_KANA = """
async ([characters, missing]) => {
  %s
  await document.fonts.ready;
  const wanted = new Set(characters), groups = new Map();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const element = walker.currentNode.parentElement;
    if (!element || element.closest('script, style') || !visible(element)) continue;
    for (const character of walker.currentNode.textContent) {
      if (!wanted.has(character)) continue;
      const style = getComputedStyle(element);
      const font = style.fontStyle + ' ' + style.fontWeight + ' 40px ' + style.fontFamily;
      const key = character + '|' + font;
      const group = groups.get(key) || {character, font, family: style.fontFamily, count: 0, in_table: false};
      group.count += 1;
      group.in_table = group.in_table || !!element.closest('table');
      groups.set(key, group);
    }
  }
  const canvas = document.createElement('canvas');
  canvas.width = 64; canvas.height = 64;
  const context = canvas.getContext('2d', {willReadFrequently: true});
  const draw = (font, text) => {
    context.clearRect(0, 0, 64, 64);
    context.font = font;
    context.fillStyle = '#000';
    context.textBaseline = 'middle';
    context.fillText(text, 4, 32);
    return context.getImageData(0, 0, 64, 64).data;
  };
  const results = [];
  for (const group of groups.values()) {
    try { await document.fonts.load(group.font, group.character); } catch (error) {}
    const glyph = draw(group.font, group.character), box = draw(group.font, missing);
    let ink = 0, same = true;
    for (let i = 3; i < glyph.length; i += 4) {
      if (glyph[i] > 0) ink += 1;
      if (glyph[i] !== box[i]) same = false;
    }
    results.push({...group, real_glyph: ink > 0 && !same});
  }
  return results;
}
""" % _HELPERS



# --- reading what the page points at ------------------------------------------------------


class Fetcher:
    """GETs local URLs once each (the served book), for image metadata and link targets."""

    def __init__(self) -> None:
        self._cache: dict[str, bytes | None] = {}

    def get(self, url: str) -> bytes | None:
        """The body at ``url``, or None when it does not load (a missing page is a finding, not an error)."""
        url = urldefrag(url)[0]
        if url not in self._cache:
            try:
                with urllib.request.urlopen(url, timeout=30) as response:
                    self._cache[url] = response.read()
            except (urllib.error.URLError, OSError):
                self._cache[url] = None
        return self._cache[url]


def png_text_size(data: bytes) -> tuple[float | None, float | None, str]:
    """``(smallest text in points or None, dpi or None, software)`` from a PNG's metadata."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            text = dict(getattr(image, "text", {}) or {})
            dpi = (image.info.get("dpi") or (None,))[0]
    except (OSError, ValueError):
        return None, None, ""
    smallest = text.get(SMALLEST_TEXT_KEY)
    return (float(smallest) if smallest else None), (float(dpi) if dpi else None), text.get("Software", "")


def figure_problems(figures: list[dict], fetcher: Fetcher, desktop: bool) -> tuple[list[str], list[dict]]:
    """Problems with the figures' text sizes (and, on a desktop, their widths), and what was measured."""
    problems, measured = [], []
    for figure in figures:
        if not figure["src"].lower().split("?")[0].endswith(".png") or not figure["natural"]:
            continue
        data = fetcher.get(figure["src"])
        if data is None:
            continue  # an image that does not load is check_book's finding
        smallest, dpi, software = png_text_size(data)
        name = urlsplit(figure["src"]).path.rsplit("/", 1)[-1][:16] + "..."
        if smallest is None or dpi is None:
            if software.lower().startswith("matplotlib"):
                problems.append(f"figure {name}{figure['where']} does not record its smallest text (draw it "
                                "after hw2lib.plots.apply_book_style(), which saves figures with it)")
            continue
        shown_px = smallest / 72 * dpi * figure["shown"] / figure["natural"]
        measured.append({"src": figure["src"], "smallest_pt": smallest, "dpi": dpi, "shown_width": figure["shown"],
                         "smallest_text_px": shown_px, "top": figure["top"], "height": figure["height"]})
        if shown_px < MIN_TEXT_PX:
            problems.append(f"figure {name}{figure['where']}: its smallest text ({smallest:g} pt at {dpi:.0f} dpi) shows "
                            f"at {shown_px:.1f} CSS px at {figure['shown']:.0f} px wide, under {MIN_TEXT_PX:g}")
        if desktop and figure["sticks_out"]:
            problems.append(f"figure {name}{figure['where']} is wider than its box ({figure['shown']:.0f} px)")
    return problems, measured


def link_problems(found: dict, page_url: str, fetcher: Fetcher) -> list[str]:
    """Cross-references without a target, and links into the book whose page or anchor is missing."""
    problems = [f"{text!r} is styled as a cross-reference but links nowhere (no target)"
                for text in dict.fromkeys(found["unresolved"])]
    page_host = urlsplit(page_url).netloc
    for link in {link["href"]: link for link in found["links"]}.values():
        parts = urlsplit(link["href"])
        if parts.scheme not in ("http", "https") or parts.netloc != page_host:
            continue
        target = urldefrag(link["href"])[0]
        if target.endswith("/"):
            target += "index.html"
        body = fetcher.get(target)
        if body is None:
            problems.append(f"link {link['text']!r} leads to a missing page: {parts.path}")
            continue
        anchor = unquote(parts.fragment)
        if anchor and target.endswith(".html") and not re.search(
                rb"""\b(?:id|name)=["']""" + re.escape(anchor.encode()) + rb"""["']""", body):
            problems.append(f"link {link['text']!r} leads to a missing anchor: {parts.path}#{anchor}")
    return problems


# --- one page, one width -----------------------------------------------------------------


def _measure(page, report: QualityReport, page_url: str, fetcher: Fetcher) -> None:
    """The checks on a loaded, settled page; findings go to ``report``."""
    desktop = report.width >= 1000
    report.problems += [("overflow", message) for message in page.evaluate(_OVERFLOW, desktop)]
    problems, report.figures = figure_problems(page.evaluate(_FIGURES), fetcher, desktop)
    report.problems += [("figure-text", message) for message in problems]
    code = page.evaluate(_CODE, EXCLUDED_CODE)
    report.code_share = code["code"] / max(code["page"], 1)
    if report.code_share >= MAX_CODE_SHARE:
        report.problems.append(("code", f"visible code input is {report.code_share:.0%} of the page's height "
                                        f"({code['cells']} cells, {code['code']:.0f} of {code['page']} px), "
                                        f"at most {MAX_CODE_SHARE:.0%} allowed"))
    report.questions = page.evaluate(_ANSWERS, [QUESTION_HEADING, ANSWER_BOX])
    report.problems += [("answers", f"no Answer box ({ANSWER_BOX}) directly under the question heading "
                                    f"{question['text']!r}; next comes {question['next']}")
                        for question in report.questions if not question["answered"]]
    report.problems += [("links", message) for message in link_problems(page.evaluate(_LINKS), page_url, fetcher)]
    report.kana = page.evaluate(_KANA, [list(CLASS_CHARACTERS), MISSING_GLYPH])
    report.problems += [("hiragana", f"{group['character']} is drawn as a missing-glyph box in {group['family']!r} "
                                     f"({group['count']} times{', in a table' if group['in_table'] else ''})")
                        for group in report.kana if not group["real_glyph"]]


def check_page_quality(context, base_url: str, page_path: str, width: int, screenshot_dir: Path | None = None,
                       fetcher: Fetcher | None = None) -> QualityReport:
    """Open ``page_path`` at ``width`` CSS px in ``context`` (see :func:`check_book.open_browser`) and
    report how it reads; a full-page screenshot goes to ``screenshot_dir/<width>/``."""
    report = QualityReport(page=page_path, width=width)
    fetcher = fetcher or Fetcher()
    page = context.new_page()
    page.set_viewport_size({"width": width, "height": WINDOW_HEIGHTS.get(width, 900)})
    page.route("**/*", lambda route: route.continue_() if check_book.is_local_url(route.request.url)
               else route.abort("blockedbyclient"))
    try:
        page.goto(base_url + page_path, wait_until="load", timeout=check_book.PAGE_TIMEOUT_MS)
        page.evaluate(check_book._WAIT_FOR_MATHJAX)
        page.evaluate(check_book._IMAGES, check_book.SETTLE_TIMEOUT_MS)
        with contextlib.suppress(Exception):
            page.wait_for_load_state("networkidle", timeout=5_000)
        _measure(page, report, base_url + page_path, fetcher)
        if screenshot_dir is not None:
            target = Path(screenshot_dir) / str(width) / check_book.screenshot_name(page_path)
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".part")
            page.screenshot(path=str(partial), full_page=True, type="png")
            os.replace(partial, target)
            report.screenshot = target
    finally:
        page.close()
    return report


def check_book_quality(html_dir: Path, pages: list[str] | None = None, widths=WIDTHS,
                       screenshot_dir: Path | None = None) -> list[QualityReport]:
    """Serve ``html_dir`` and check every page (default :func:`check_book.find_pages`) at every width."""
    html_dir = Path(html_dir)
    pages = check_book.find_pages(html_dir) if pages is None else pages
    fetcher = Fetcher()
    with check_book.serve(html_dir) as base_url, check_book.open_browser() as context:
        return [check_page_quality(context, base_url, page, width, screenshot_dir, fetcher)
                for page in pages for width in widths]


def format_quality(reports: list[QualityReport], kind: str | None = None) -> str:
    """One line per problem (of ``kind``, or all), each naming its page and width."""
    return "\n".join(f"{report.page} at {report.width} px: [{problem_kind}] {message}"
                     for report in reports for problem_kind, message in report.problems
                     if kind in (None, problem_kind))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html_dir", nargs="?", default="_build/html", type=Path)
    parser.add_argument("--screenshots", type=Path, default=Path("screenshots"))
    parser.add_argument("--width", type=int, action="append", help="window widths (default: 1280 and 390)")
    args = parser.parse_args(argv)
    reports = check_book_quality(args.html_dir, widths=tuple(args.width or WIDTHS), screenshot_dir=args.screenshots)
    for report in reports:
        smallest = min((figure["smallest_text_px"] for figure in report.figures), default=None)
        print(f"{report.page} at {report.width} px: {len(report.problems)} problem(s); "
              f"code {report.code_share:.1%} of the height; {len(report.figures)} figures, smallest text "
              f"{'-' if smallest is None else f'{smallest:.1f} px'}; {len(report.questions)} question headings; "
              f"{sum(group['count'] for group in report.kana)} hiragana")
    problems = format_quality(reports)
    if problems:
        print("\nproblems:\n" + problems)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

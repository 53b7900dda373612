"""Fixes to the book theme that `_config.yml` cannot express (loaded by ``_config.yml``).

* One search box: sphinx-book-theme puts a search field in the sidebar, and pydata-sphinx-theme
  adds another one to its header (``navbar_persistent``). Jupyter Book 1 builds the theme options
  from its own keys, so the header's field is switched off here.
* Search results without raw TeX: Sphinx's search page shows a snippet of each page's text, taken
  from the page's HTML before MathJax has typeset it, so a snippet reads ``\\(\\mathbf{M}\\)``.
  On the search page, formulas and code cells are left out of the snippets.
* Scrollbars that show: a formula, table or code block wider than the column (on a phone) scrolls
  inside its own box, and the theme's overlay scrollbars hide that until the reader happens to
  scroll; ``hw2book-scroll.css`` gives those boxes a thin scrollbar that is always drawn, and lets
  long names in inline code break so that they never make a page wider than a phone's screen.
* Wide, long tables: a table that scrolls sideways and is taller than the window would put its
  scrollbar out of sight; such a table's box is held to the window's height (it scrolls both ways,
  its header row stays in view), so the sideways scrollbar is on screen whenever the table is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SCROLL_CSS = "hw2book-scroll.css"
_SCROLLERS = ('mjx-container[display="true"]', ".pst-scrollable-table-container", "div.cell_output pre",
              "div.cell_input pre", "div.highlight pre")
_SCROLL_RULES = """/* Boxes that scroll sideways on a narrow screen get a scrollbar that is always drawn. */
{webkit} {{ height: 8px; }}
{thumb} {{ background: #9aa3ad; border-radius: 4px; }}
{track} {{ background: transparent; }}
/* A long name in inline code (hw2lib.convolution.conv_net_parameter_count()) may break anywhere
   rather than push the page wider than a phone's screen. */
.bd-article code.literal, .bd-article code.literal span.pre, .bd-article dt.sig {{ overflow-wrap: anywhere; }}
.bd-article code.literal span.pre, .bd-article dt.sig span.pre {{ white-space: normal; }}
.bd-article dt.sig span.pre {{ overflow-wrap: anywhere; }}  /* a long value, e.g. an address, in a signature */
/* A table wider than the column (marked by _WIDE_TABLES) scrolls inside a box no taller than the window. */
@media screen {{  /* on paper a table is never a scroll box */
  .pst-scrollable-table-container.hw2-wide {{ max-height: 85vh; overflow: auto; }}
  .pst-scrollable-table-container.hw2-wide thead th {{ position: sticky; top: 0; z-index: 1;
                                                       background: var(--pst-color-background, #fff); }}
}}
@supports not selector(::-webkit-scrollbar) {{
  {plain} {{ scrollbar-width: thin; scrollbar-color: #9aa3ad transparent; }}
}}
""".format(webkit=", ".join(f"{box}::-webkit-scrollbar" for box in _SCROLLERS),
           thumb=", ".join(f"{box}::-webkit-scrollbar-thumb" for box in _SCROLLERS),
           track=", ".join(f"{box}::-webkit-scrollbar-track" for box in _SCROLLERS),
           plain=", ".join(_SCROLLERS))

_SEARCH_SNIPPETS = """// Search snippets without raw TeX or code: drop formulas and code cells from the page's text.
(function () {
  function patch() {
    if (typeof Search === "undefined" || !Search.htmlToText || Search.htmlToText.hw2book) return;
    const htmlToText = Search.htmlToText;
    Search.htmlToText = function (htmlString, anchor) {
      const page = new DOMParser().parseFromString(htmlString, "text/html");
      page.querySelectorAll(".math, .cell_input, .cell_output, .highlight").forEach(function (element) {
        element.replaceWith(" … ");
      });
      return htmlToText(page.documentElement.outerHTML, anchor);
    };
    Search.htmlToText.hw2book = true;
  }
  patch();  // searchtools.js already ran
  document.addEventListener("DOMContentLoaded", patch);  // or runs later, before the search starts
})();
"""


_WIDE_TABLES = """// Mark the table boxes that scroll sideways at this width (hw2book-scroll.css bounds their height).
(function () {
  function mark() {
    document.querySelectorAll(".pst-scrollable-table-container").forEach(function (box) {
      box.classList.remove("hw2-wide");
      if (box.scrollWidth > box.clientWidth + 1) box.classList.add("hw2-wide");
    });
  }
  document.addEventListener("DOMContentLoaded", mark);
  window.addEventListener("load", function () {  // after images, fonts and typeset math have set the widths
    mark();
    const mathjax = window.MathJax && window.MathJax.startup && window.MathJax.startup.promise;
    if (mathjax) mathjax.then(mark);
  });
  window.addEventListener("resize", mark);
})();
"""


def _one_search_box(app, config) -> None:
    options = dict(config.html_theme_options or {})
    options.setdefault("navbar_persistent", [])
    config.html_theme_options = options


def _search_page(app, pagename, templatename, context, doctree) -> None:
    if pagename == "search":
        app.add_js_file(None, body=_SEARCH_SNIPPETS, priority=900)


def _write_scroll_css(app, exception) -> None:
    if exception is None and app.builder.format == "html":
        (Path(app.outdir) / "_static" / SCROLL_CSS).write_text(_SCROLL_RULES, encoding="utf-8")


def setup(app) -> dict[str, Any]:
    app.connect("config-inited", _one_search_box)
    app.connect("html-page-context", _search_page)
    app.add_css_file(SCROLL_CSS)
    app.add_js_file(None, body=_WIDE_TABLES)
    app.connect("build-finished", _write_scroll_css)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

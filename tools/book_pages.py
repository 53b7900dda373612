"""The built book's pages: their order (book/_toc.yml), served over HTTP on 127.0.0.1 to Debian's
Chromium, and when one is ready to be looked at (JavaScript run inside the page by Playwright). Shared by the PDF printer (tools/book_pdf.py) and
the browser check (tests/browser)."""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        pass


@contextlib.contextmanager
def serve(html_dir: Path) -> Iterator[str]:
    """Serve ``html_dir`` on 127.0.0.1 at a free port; yields the base URL (ending in "/")."""
    handler = functools.partial(_QuietHandler, directory=str(html_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def chromium_path() -> str:
    """Debian's Chromium (or HW2BOOK_CHROMIUM); Playwright's own browser download is not used."""
    candidate = os.environ.get("HW2BOOK_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(candidate).is_file():
        raise FileNotFoundError(
            f"no Chromium at {candidate}: install it (`apt-get install chromium`) or set HW2BOOK_CHROMIUM"
        )
    return candidate


def toc_files(toc_path: Path) -> list[str]:
    """The ``file`` entries of a Jupyter Book ``_toc.yml`` (root first), without suffixes."""
    import yaml

    toc = yaml.safe_load(Path(toc_path).read_text(encoding="utf-8"))
    if not isinstance(toc, dict) or "root" not in toc:
        raise ValueError(f"{toc_path} is not a Jupyter Book table of contents: it has no 'root'")
    files = [str(toc["root"])]

    def walk(entries: list) -> None:
        for entry in entries or []:
            if "file" in entry:
                files.append(str(entry["file"]))
            for key in ("parts", "chapters", "sections"):
                walk(entry.get(key))

    for key in ("parts", "chapters", "sections"):
        walk(toc.get(key))
    return [re.sub(r"\.(md|ipynb|rst)$", "", name) for name in files]


# Done when every saved widget view has been drawn. Without a widget manager on the page (embed.js
# sets _jupyter_widget_embedder) or without a saved model for a view, nothing will be drawn.
WIDGETS_DRAWN = """
() => {
  if (!window._jupyter_widget_embedder) return true;
  const models = {};
  for (const script of document.querySelectorAll('script[type="application/vnd.jupyter.widget-state+json"]')) {
    try { Object.assign(models, JSON.parse(script.textContent).state || {}); } catch (error) {}
  }
  return [...document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]')].every(script => {
    let modelId = null;
    try { modelId = JSON.parse(script.textContent).model_id; } catch (error) { return true; }
    if (!(modelId in models)) return true;
    const area = script.previousElementSibling;
    return area && area.classList.contains('widget-subarea')
      && area.querySelector('.jupyter-widgets, [class*="widget-"]');
  });
}
"""

# The book's live panels (web/live/panels.js) mark themselves data-ready="1" once drawn, "error" if not.
PANELS_READY = """
() => [...document.querySelectorAll('.hw2-live[data-panel]')].every(panel => panel.dataset.ready)
"""
PANELS_FAILED = """
() => [...document.querySelectorAll('.hw2-live[data-panel]')].filter(panel => panel.dataset.ready !== '1')
        .map(panel => panel.dataset.panel)
"""

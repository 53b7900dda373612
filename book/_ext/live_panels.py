"""A Sphinx extension for the book's live panels (loaded by ``_config.yml``'s ``local_extensions``).

A chapter places a panel with one small Markdown cell holding an HTML block::

    <div class="hw2-live" data-panel="translate">
    <p>Text for a notebook reader; the rendered book shows the live panel here.</p>
    </div>

(``data-panel``: ``matrix`` for chapter 1, ``draw`` for chapter 2, ``translate`` for chapter 3.)
On the pages that hold a panel, and only there, this extension adds ``_static/live/live.css``,
the model scripts the panel needs, ``hw2live.js`` and ``panels.js`` (all ``defer``). When the
build finishes it copies ``web/live`` into ``_static/live`` and exports the stored runs' weights
there (:mod:`hw2lib.web_export`): generated with the book, never committed.

It also drops the ipywidgets state and the widget manager (about 1.9 MB) from every page that no
longer shows a widget, e.g. because its widget cell is tagged ``remove-output`` in favour of a
live panel; the running notebook keeps its widgets.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.util import logging

logger = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parents[2] / "web" / "live"
STATIC_SUBDIR = "live"
WEB_FILES = ("hw2live.js", "panels.js", "live.css")
PANEL_MODELS = {"matrix": (), "draw": ("cnn",), "translate": ("translator-a", "translator-b")}
_PANEL = re.compile(r"""<div\b[^>]*\bclass=["'][^"']*\bhw2-live\b[^>]*>""")
_PANEL_NAME = re.compile(r"""\bdata-panel=["']([^"']+)["']""")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def panels_in(html: str) -> list[str]:
    """The live panels (``data-panel`` values) that an HTML fragment places, in order."""
    found = []
    for tag in _PANEL.findall(html):
        name = _PANEL_NAME.search(tag)
        found.append(name.group(1) if name else "")
    return found


def page_assets(panels: list[str]) -> tuple[list[str], list[str]]:
    """The CSS and JavaScript files (paths under ``_static``) a page with ``panels`` loads, in order:
    the model data first, then the engine, then the panels."""
    unknown = sorted({panel for panel in panels if panel not in PANEL_MODELS})
    if unknown:
        raise ValueError(f"unknown live panel(s) {unknown}: data-panel must be one of {', '.join(PANEL_MODELS)}")
    models = list(dict.fromkeys(model for panel in panels for model in PANEL_MODELS[panel]))
    scripts = [f"{STATIC_SUBDIR}/{model}.js" for model in models] + [f"{STATIC_SUBDIR}/hw2live.js",
                                                                     f"{STATIC_SUBDIR}/panels.js"]
    return [f"{STATIC_SUBDIR}/live.css"], scripts


def write_live_assets(static_dir: Path, models: tuple[str, ...]) -> list[Path]:
    """Copy web/live's files into ``static_dir/live`` and export ``models`` there; returns what was written."""
    from hw2lib.web_export import export_live_models  # torch and the data load only when a page needs them

    target = Path(static_dir) / STATIC_SUBDIR
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name in WEB_FILES:
        shutil.copyfile(WEB_DIR / name, target / name)
        written.append(target / name)
    if models:
        written += list(export_live_models(target, tuple(models)).values())
    return written


def write_standalone_page(folder: Path, body: str, *, title: str = "live panels", models=None) -> Path:
    """A page outside the book holding ``body`` (panel ``<div>``s) with the assets they need: for the
    browser tests and the benchmarks. Returns the page's path."""
    panels = panels_in(body)
    css, scripts = page_assets(panels)
    needed = tuple(dict.fromkeys(model for panel in panels for model in PANEL_MODELS[panel]))
    write_live_assets(Path(folder) / "_static", needed if models is None else tuple(models))
    head = "".join(f'<link rel="stylesheet" href="_static/{path}">' for path in css)
    head += "".join(f'<script defer src="_static/{path}"></script>' for path in scripts)
    page = Path(folder) / "page.html"
    page.write_text(f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><meta name='viewport' "
                    f"content='width=device-width, initial-scale=1'><title>{title}</title>{head}</head>"
                    f"<body style='max-width: 52rem; margin: 0 auto; padding: 0 12px; font-family: system-ui, "
                    f"sans-serif'>{body}</body></html>", encoding="utf-8")
    return page


# ---------------------------------------------------------------- Sphinx events


def _panels(env) -> dict[str, list[str]]:
    if not hasattr(env, "hw2_live_panels"):
        env.hw2_live_panels = {}
    return env.hw2_live_panels


def _read_panels(app, doctree) -> None:
    """Note the panels a page places; drop the widget manager from a page that shows no widget."""
    raw_html = [node.astext() for node in doctree.findall(nodes.raw) if "html" in node.get("format", "").split()]
    panels = [panel for fragment in raw_html for panel in panels_in(fragment)]
    docname = app.env.docname
    if panels:
        try:
            page_assets(panels)
        except ValueError as error:
            logger.warning(f"{docname}: {error}", location=docname)
        _panels(app.env)[docname] = panels
    else:
        _panels(app.env).pop(docname, None)
    js_files = getattr(app.env, "nb_metadata", {}).get(docname, {}).get("js_files", {})
    if "ipywidgets_state" in js_files and not any(WIDGET_VIEW in fragment for fragment in raw_html):
        for key in [key for key in js_files if key.startswith("ipywidgets_")]:
            del js_files[key]


def _purge(app, env, docname) -> None:
    _panels(env).pop(docname, None)


def _merge(app, env, docnames, other) -> None:
    for docname in docnames:
        if docname in _panels(other):
            _panels(env)[docname] = _panels(other)[docname]


def _add_page_assets(app, pagename, templatename, context, doctree) -> None:
    panels = _panels(app.env).get(pagename)
    if not panels:
        return
    try:
        css, scripts = page_assets(panels)
    except ValueError:
        return  # warned about when the page was read
    for path in css:
        app.add_css_file(path)  # during html-page-context: this page only
    for priority, path in enumerate(scripts, start=600):
        app.add_js_file(path, defer="defer", priority=priority)


def _write_assets(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    panels = [panel for page in _panels(app.env).values() for panel in page if panel in PANEL_MODELS]
    if not panels:
        return
    models = tuple(dict.fromkeys(model for panel in panels for model in PANEL_MODELS[panel]))
    try:
        written = write_live_assets(Path(app.outdir) / "_static", models)
    except Exception as error:  # a missing stored run: the pages build, their panels say what is missing
        logger.warning(f"the live panels' model data could not be exported: {error}")
        return
    size = sum(path.stat().st_size for path in written) / 1e6
    logger.info(f"live panels: {len(written)} files, {size:.1f} MB in _static/{STATIC_SUBDIR}")


def setup(app) -> dict[str, Any]:
    app.connect("doctree-read", _read_panels)
    app.connect("env-purge-doc", _purge)
    app.connect("env-merge-info", _merge)
    # Before myst-nb's handler (priority 500) adds the page's notebook scripts.
    app.connect("html-page-context", _add_page_assets, priority=450)
    app.connect("build-finished", _write_assets)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "env_version": 1}

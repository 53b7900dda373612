"""A Sphinx extension that keeps the built book free of CDN scripts (used by ``_config.yml``).

Jupyter Book 1 always loads sphinx-thebe, which writes the address of its JavaScript bundle
on a CDN into every page. The book does not use thebe (live code runs through the launch
buttons instead), so its scripts are dropped; MathJax and the widget manager are served from
``_static`` (see the Makefile's ``vendor`` target).
"""

from __future__ import annotations

from typing import Any


def _is_remote_or_thebe(script: Any) -> bool:
    filename = str(getattr(script, "filename", script) or "")
    body = str(getattr(script, "attributes", {}).get("body", ""))
    return (
        filename.startswith(("http://", "https://", "//"))
        or "sphinx-thebe" in filename
        or "https://" in body
        or "http://" in body
    )


def _drop_remote_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if scripts:
        context["script_files"] = [script for script in scripts if not _is_remote_or_thebe(script)]


def setup(app) -> dict[str, Any]:
    app.connect("html-page-context", _drop_remote_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

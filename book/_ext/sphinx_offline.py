"""A Sphinx extension that keeps the built book free of CDN scripts (loaded by ``_config.yml``).

Jupyter Book 1 always loads sphinx-thebe, which writes the address of its JavaScript bundle
on a CDN into every page. The book does not use thebe (live code runs through the launch
buttons instead), so its scripts are dropped; MathJax and the widget manager are served from
``_static`` (see the Makefile's ``vendor`` target).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# ipywidgets 8 typesets widget labels through MathJax 2's ``MathJax.Hub.Queue``; the book
# loads MathJax 3, where that call throws. This shim forwards it to MathJax 3.
_MATHJAX2_HUB = """// Forwards MathJax 2's Hub.Queue (used by ipywidgets' labels) to MathJax 3.
(function () {
  var mathjax = window.MathJax;
  if (!mathjax || mathjax.Hub || !mathjax.startup) return;
  mathjax.Hub = { Queue: function (command) {
    if (Array.isArray(command) && command[0] === "Typeset" && command[2]) {
      command[2].classList.add("mathjax_process");  // Sphinx's MathJax typesets only marked elements
      mathjax.startup.promise = mathjax.startup.promise.then(function () { return mathjax.typesetPromise([command[2]]); });
    }
  }};
})();
"""


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


def _write_mathjax2_hub(app, exception) -> None:
    if exception is None and app.builder.format == "html":
        (Path(app.outdir) / "_static" / "mathjax2-hub.js").write_text(_MATHJAX2_HUB)


def setup(app) -> dict[str, Any]:
    app.connect("html-page-context", _drop_remote_scripts, priority=900)
    # Deferred, after MathJax's own deferred script, so window.MathJax is MathJax 3 by then.
    app.add_js_file("mathjax2-hub.js", defer="defer", priority=600)
    app.connect("build-finished", _write_mathjax2_hub)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

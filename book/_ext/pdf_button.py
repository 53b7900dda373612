"""The download menu's ".pdf" entry: a link to the whole book as a PDF, never the browser's print dialog.

The theme's entry calls ``window.print()``. When ``hw2book_pdf`` names a file of the HTML folder
(``make pdf`` sets it and writes the file there), the entry becomes a link to it; otherwise the
entry is removed, so no control on the page does something other than what it says.
"""

from __future__ import annotations

from sphinx.application import Sphinx

PRINT_BUTTON = "download-pdf-button"


def _replace_print_button(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    pdf = app.config.hw2book_pdf
    for button in context.get("header_buttons", []):
        if button.get("label") != "download-buttons":
            continue
        entries = [entry for entry in button["buttons"] if entry.get("label") != PRINT_BUTTON]
        if pdf:
            entries.append({"type": "link", "url": context["pathto"](pdf, 1), "text": ".pdf",
                            "tooltip": "The whole book as a PDF", "icon": "fas fa-file-pdf",
                            "label": PRINT_BUTTON})
        button["buttons"] = entries


def setup(app: Sphinx) -> dict:
    app.add_config_value("hw2book_pdf", "", "html")
    app.connect("html-page-context", _replace_print_button, priority=900)  # after the theme's buttons (501)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

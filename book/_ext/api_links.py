"""The API reference links back to the chapters (loaded by ``_config.yml``).

The library's docstrings name the chapter that explains each function ("Explained in chapter 1",
"(chapter 3)", "the appendix's study"). In the generated API pages those words become links to the
chapter's page, so a reader who arrives at a function from a search can go to its explanation.
Text inside inline literals (````...````) and literal blocks is left alone.
"""

from __future__ import annotations

import re
from typing import Any

CHAPTERS = {"1": "/ch1_convolutions", "2": "/ch2_cnn", "3": "/ch3_translation"}
PAGES = {"appendix": "/appendix_reliability", "introduction": "/intro", "performance page": "/performance"}

# "chapter 2", "chapters 2 and 3", "chapters 1-3", "chapters 1, 2 and 3"; "the appendix"; "the introduction";
# "the performance page".
_CHAPTERS = re.compile(r"\b([Cc]hapters?) ([1-3](?:(?:, | and |-)[1-3])*)\b")
_PAGE = re.compile(r"\b(appendix|introduction|performance page)\b")
_LITERAL = re.compile(r"(``.+?``|`[^`]+`_?|:[a-z:]+:`[^`]+`)")


def _link_chapters(match: re.Match) -> str:
    word, numbers = match.groups()
    if word.lower() == "chapter":
        return f":doc:`{word} {numbers} <{CHAPTERS[numbers]}>`"
    return word + " " + re.sub(r"[1-3]", lambda digit: f":doc:`{digit[0]} <{CHAPTERS[digit[0]]}>`", numbers)


def link_text(text: str) -> str:
    """``text`` with its chapter, appendix and introduction mentions turned into :doc: links."""
    parts = _LITERAL.split(text)
    for index in range(0, len(parts), 2):  # even parts lie outside literals and roles
        part = _CHAPTERS.sub(_link_chapters, parts[index])
        parts[index] = _PAGE.sub(lambda found: f":doc:`{found[1]} <{PAGES[found[1]]}>`", part)
    return "".join(parts)


def link_docstring(lines: list[str]) -> list[str]:
    """Every line of a docstring linked, except doctest lines and the body of literal blocks."""
    result, literal_indent = [], None
    for line in lines:
        indent = len(line) - len(line.lstrip())
        if literal_indent is not None and (not line.strip() or indent > literal_indent):
            result.append(line)
            continue
        literal_indent = None
        result.append(line if line.lstrip().startswith(">>>") else link_text(line))
        if line.rstrip().endswith("::"):
            literal_indent = indent
    return result


def _process(app, what, name, obj, options, lines: list[str]) -> None:
    lines[:] = link_docstring(lines)


def setup(app) -> dict[str, Any]:
    app.connect("autodoc-process-docstring", _process)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

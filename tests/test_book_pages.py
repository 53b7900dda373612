"""The chapters as a reader finds them: answers under the homework's own numbering, summaries that
link to them, library references that resolve, code that fits the column, and sources cited.

These read the notebooks and pages as files (no build, no kernel); the browser test checks the
rendered pages.
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import nbformat
import pytest

BOOK = Path(__file__).resolve().parents[1] / "book"
sys.path.insert(0, str(BOOK / "_ext"))

import api_links  # noqa: E402  (book/_ext is not a package)

# The homework's numbering (HOMEWORK.md), chapter by chapter.
QUESTIONS = {
    "ch1_convolutions.ipynb": ["Q1.1 (a)", "Q1.1 (b)", "Q1.1 (c)", "Q1.2"],
    "ch2_cnn.ipynb": ["Q2.1", "Q2.2", "Q2.3", "Q2.4", "Q2.5"],
    "ch3_translation.ipynb": ["Q3.1 (a)", "Q3.1 (b)", "Q3.1 (c)"],
}
NOTEBOOKS = sorted(BOOK.glob("*.ipynb"))
PAGES = sorted(BOOK.glob("*.md")) + sorted(BOOK.glob("api/*.md"))
ANSWER = re.compile(r"```\{admonition\} Answer\n:class: answer\n(?::name: (?P<name>\S+)\n)?(?P<body>.*?)\n```", re.S)
HEADING = re.compile(r"^(#{1,6})\s+(.*)$", re.M)
# Rendered at 1280 px the column holds about 90 characters of prose and 79 of code.
ANSWER_CHARACTERS = 400
CODE_COLUMNS = 79
HIDDEN = {"remove-input", "hide-input", "remove-cell"}


def _markdown(path: Path) -> list[str]:
    return [cell.source for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "markdown"]


def _question_headings(path: Path) -> list[tuple[str, str]]:
    """(number, the text after the heading up to the next heading) of each question heading."""
    found = []
    for source in _markdown(path):
        headings = list(HEADING.finditer(source))
        for index, heading in enumerate(headings):
            match = re.match(r"(Q\d\.\d(?: \([abc]\))?)\s", heading.group(2) + " ")
            if match:
                end = headings[index + 1].start() if index + 1 < len(headings) else len(source)
                found.append((match.group(1), source[heading.end():end]))
    return found


@pytest.mark.parametrize("name", sorted(QUESTIONS))
def test_each_question_has_its_heading_and_an_answer_box_first(name: str) -> None:
    headings = _question_headings(BOOK / name)
    assert [number for number, _ in headings] == QUESTIONS[name]
    for number, section in headings:
        answer = ANSWER.match(section.lstrip("\n"))
        assert answer, f"{name}: {number} does not open with an Answer box"
        text = re.sub(r"\{glue:text\}`[^`]*`", "0.0000", answer.group("body"))
        assert 2 <= len(answer.group("body").splitlines()) and len(" ".join(text.split())) <= ANSWER_CHARACTERS, \
            f"{name}: the Answer box of {number} is longer than about five lines"


@pytest.mark.parametrize("name", sorted(QUESTIONS))
def test_the_summary_at_the_top_links_to_every_answer(name: str) -> None:
    sources = _markdown(BOOK / name)
    labels = [answer.group("name") for source in sources for answer in ANSWER.finditer(source)]
    assert len(labels) == len(QUESTIONS[name]) and all(labels), f"{name}: every Answer box needs a :name:"
    summary = sources[0]
    for number, label in zip(QUESTIONS[name], labels):
        assert f"{{ref}}`{number} <{label}>`" in summary, f"{name}: the summary does not link to {number}"


def _references() -> list[tuple[str, str, str]]:
    found = []
    for path in [*NOTEBOOKS, *PAGES]:
        texts = _markdown(path) if path.suffix == ".ipynb" else [path.read_text(encoding="utf-8")]
        for text in texts:
            for role, target in re.findall(r"\{(func|mod|class|meth)\}`(?:[^`<]*<)?~?([\w.]+?)(?:\(\))?>?`", text):
                found.append((path.name, role, target))
    return found


def test_every_library_reference_in_the_book_names_a_real_object() -> None:
    references = _references()
    assert len(references) > 20
    for page, role, target in references:
        assert target.startswith("hw2lib."), f"{page}: {{{role}}}`{target}` is not in hw2lib"
        module_name, _, attribute = target.rpartition(".")
        if role == "mod":
            importlib.import_module(target)
            continue
        module = importlib.import_module(module_name)
        assert hasattr(module, attribute), f"{page}: {{{role}}}`{target}` does not exist"


def test_every_module_the_book_references_has_an_api_page() -> None:
    documented = set()
    for path in (BOOK / "api").glob("*.md"):
        documented |= set(re.findall(r"\.\. automodule:: (hw2lib\.\w+)", path.read_text(encoding="utf-8")))
    for page, role, target in _references():
        module = target if role == "mod" else target.rpartition(".")[0]
        assert module in documented, f"{page}: {module} has no entry in book/api"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_visible_code_fits_the_column_and_nothing_trains_silently(path: Path) -> None:
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        assert "progress=False" not in cell.source, f"{path.name}: a call that may train hides its progress"
        if HIDDEN & set(cell.metadata.get("tags", [])):
            continue
        for line in cell.source.splitlines():
            assert len(line) <= CODE_COLUMNS, f"{path.name}: a visible code line is {len(line)} characters: {line}"


def test_every_citation_has_an_entry_and_every_entry_is_cited() -> None:
    entries = set(re.findall(r"^@\w+\{(\w+),", (BOOK / "references.bib").read_text(encoding="utf-8"), re.M))
    cited = set()
    for path in [*NOTEBOOKS, *PAGES]:
        texts = _markdown(path) if path.suffix == ".ipynb" else [path.read_text(encoding="utf-8")]
        for text in texts:
            for keys in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", text):
                cited |= {key.strip() for key in keys.split(",")}
    assert cited <= entries, f"cited without an entry: {sorted(cited - entries)}"
    assert entries <= cited, f"entries nobody cites: {sorted(entries - cited)}"


def test_the_published_range_is_defined_once_and_linked_where_used() -> None:
    definitions = [path for path in PAGES if "(published-range)=" in path.read_text(encoding="utf-8")]
    assert [path.name for path in definitions] == ["intro.md"]
    linking = [path.name for path in NOTEBOOKS if any("<published-range>" in text for text in _markdown(path))]
    assert {"ch3_translation.ipynb", "appendix_reliability.ipynb"} <= set(linking)


@pytest.mark.parametrize(("text", "expected"), [
    ("Explained in chapter 1.", "Explained in :doc:`chapter 1 </ch1_convolutions>`."),
    ("used in chapters 2 and 3", "used in chapters :doc:`2 </ch2_cnn>` and :doc:`3 </ch3_translation>`"),
    ("the appendix's study", "the :doc:`appendix </appendix_reliability>`'s study"),
    ("measured on the performance page", "measured on the :doc:`performance page </performance>`"),
    ("see ``chapter 2`` and :mod:`hw2lib.cnn` (chapter 2)",
     "see ``chapter 2`` and :mod:`hw2lib.cnn` (:doc:`chapter 2 </ch2_cnn>`)"),
    ("chapter 4 and chapters", "chapter 4 and chapters"),
])
def test_docstring_mentions_of_chapters_become_links(text: str, expected: str) -> None:
    assert api_links.link_text(text) == expected


def test_literal_blocks_in_docstrings_are_not_linked() -> None:
    lines = ["Example::", "", "    python -m hw2lib sweep  # chapter 2", "", "Back in chapter 3."]
    linked = api_links.link_docstring(lines)
    assert linked[2] == lines[2]
    assert linked[4] == "Back in :doc:`chapter 3 </ch3_translation>`."

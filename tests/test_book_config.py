"""Launch buttons that work or do not exist (tools/book_config.py, book/_ext/pdf_button.py): the book
built with a repository address has a Binder and a Colab button on every notebook page, each with
the right address; built without one, no button and no link to a repository at all."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import book_config  # noqa: E402

FAKE = "https://github.com/example-org/hw2book-example"
BRANCH = "course-2022"
SERVICES = ("mybinder.org", "colab.research.google.com")


@pytest.mark.parametrize("url, expected", [
    ("https://github.com/owner/name", "https://github.com/owner/name"),
    ("https://github.com/owner/name.git", "https://github.com/owner/name"),
    ("https://github.com/owner/name/", "https://github.com/owner/name"),
    ("git@github.com:owner/name.git", "https://github.com/owner/name"),
    ("ssh://git@github.com/owner/my.book.git", "https://github.com/owner/my.book"),
    ("https://gitlab.com/owner/name", None),
    ("http://github.com/owner/name", None),
    ("https://github.com/owner", None),
    ("/work/main", None),
    ("https://github.com/owner/name/tree/main", None),
])
def test_github_addresses(url, expected):
    assert book_config.github_address(url) == expected


def _repository(tmp_path: Path, origin: str | None, branch: str = "main") -> Path:
    root = tmp_path / "checkout"
    subprocess.run(["git", "init", "--quiet", "-b", branch, str(root)], check=True)
    if origin:
        subprocess.run(["git", "-C", str(root), "remote", "add", "origin", origin], check=True)
    return root


def test_the_address_comes_from_the_variable_else_a_github_origin(tmp_path):
    root = _repository(tmp_path, "git@github.com:someone/hw2book.git", branch="spring")
    assert book_config.repository_address(None, root) == ("https://github.com/someone/hw2book", "the origin remote")
    assert book_config.repository_address(FAKE + ".git", root) == (FAKE, "REPOSITORY")
    assert book_config.launch_branch(None, root) == "spring"
    assert book_config.launch_branch("main", root) == "main"
    with pytest.raises(ValueError, match="REPOSITORY=https://gitlab.com/a/b is not a GitHub address"):
        book_config.repository_address("https://gitlab.com/a/b", root)


@pytest.mark.parametrize("origin, why", [(None, "no origin remote"), ("/srv/git/hw2book.git", "is not a GitHub address")])
def test_no_address_without_a_github_origin(tmp_path, origin, why):
    address, reason = book_config.repository_address(None, _repository(tmp_path, origin))
    assert address is None and why in reason


def test_a_bad_repository_variable_is_one_line_and_writes_nothing(tmp_path, capsys):
    output = tmp_path / "config.yml"
    assert book_config.main(["--output", str(output), "--repository", "hw2book"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "REPOSITORY=hw2book is not a GitHub address" in lines[0]
    assert not output.exists()


def test_make_book_warns_about_notebooks_whose_setup_cell_names_another_repository(tmp_path, monkeypatch, capsys):
    import nbformat

    import colab_setup

    (tmp_path / "book").mkdir()
    for name, repository in (("ch1.ipynb", FAKE), ("ch2.ipynb", "https://github.com/someone-else/hw2book")):
        notebook = nbformat.v4.new_notebook()
        colab_setup.with_setup_cell(notebook, repository, "main")
        nbformat.write(notebook, tmp_path / "book" / name)
    monkeypatch.setattr(book_config, "ROOT", tmp_path)
    assert book_config.stale_setup_cells(FAKE, "main") == ["ch2.ipynb"]
    assert book_config.main(["--output", str(tmp_path / "config.yml"), "--repository", FAKE, "--branch", "main"]) == 0
    warning = capsys.readouterr().err.strip().splitlines()
    assert len(warning) == 1 and "ch2.ipynb" in warning[0] and "ch1.ipynb" not in warning[0]


def test_the_committed_configuration_names_no_repository_and_no_service():
    config = yaml.safe_load((REPO / "_config.yml").read_text(encoding="utf-8"))
    assert config["repository"]["url"] == ""  # filled in at build time only, with the services:
    assert not any(config["launch_buttons"].get(key) for key in book_config.LAUNCH_SERVICES)


# --- built books (execution off: the notebooks' stored outputs are enough for the buttons) ---------

def _build(tmp_path: Path, config: dict) -> Path:
    config["execute"]["execute_notebooks"] = "off"
    config["sphinx"]["config"]["html_static_path"] = []  # links only: no need for `make vendor`'s MathJax
    path = tmp_path / "config.yml"
    book_config.write_yaml(config, path)
    result = subprocess.run([str(Path(sys.executable).with_name("jupyter-book")), "build", str(REPO / "book"),
                             "--config", str(path), "--path-output", str(tmp_path), "-W"],
                            capture_output=True, text=True, cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return tmp_path / "_build" / "html"


def _toc_pages() -> tuple[list[str], list[str]]:
    """(notebook pages, other pages) of the book, by the source file of each toc entry."""
    from book_pages import toc_files

    names = toc_files(REPO / "book" / "_toc.yml")
    notebooks = [name for name in names if (REPO / "book" / f"{name}.ipynb").is_file()]
    return notebooks, [name for name in names if name not in notebooks]


def _links(page: Path) -> list[str]:
    return re.findall(r'href="([^"]+)"', page.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def book_with_address(tmp_path_factory) -> Path:
    return _build(tmp_path_factory.mktemp("with-address"), book_config.book_config(FAKE, BRANCH, "hw2book.pdf"))


def test_every_notebook_page_has_binder_and_colab_buttons_with_the_right_address(book_with_address):
    notebooks, others = _toc_pages()
    assert len(notebooks) >= 4
    for name in notebooks:
        links = _links(book_with_address / f"{name}.html")
        launch = sorted(link for link in links if any(service in link for service in SERVICES))
        assert launch == [
            f"https://colab.research.google.com/github/example-org/hw2book-example/blob/{BRANCH}/book/{name}.ipynb",
            f"https://mybinder.org/v2/gh/example-org/hw2book-example/{BRANCH}?urlpath=tree/book/{name}.ipynb",
        ], name
        assert "hw2book.pdf" in links and "window.print" not in (book_with_address / f"{name}.html").read_text()
    for name in others:  # a page that is not a notebook has nothing to launch
        assert not [link for link in _links(book_with_address / f"{name}.html") if any(s in link for s in SERVICES)]


@pytest.mark.parametrize("source", ["no address", "_config.yml as committed"])
def test_without_an_address_there_is_no_button_and_no_repository_link(tmp_path, source):
    config = book_config.book_config(None, "main")
    if source != "no address":  # what `jupyter-book build book --config _config.yml` gets (paths aside)
        committed = yaml.safe_load((REPO / "_config.yml").read_text(encoding="utf-8"))
        config["repository"], config["launch_buttons"] = committed["repository"], committed["launch_buttons"]
    html = _build(tmp_path, config)
    pages = sorted(html.rglob("*.html"))
    assert len(pages) >= 5
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert not re.search(r"mybinder\.org|colab\.research\.google\.com|github\.com/hw2book|window\.print", text), page.name
        # no PDF was asked for: nothing links to one (the performance page may name it in prose)
        assert not [link for link in _links(page) if "hw2book.pdf" in link], page.name

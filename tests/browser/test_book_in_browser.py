"""The rendered book, opened in headless Chromium: math typeset, images loaded, widgets drawn
from their saved state, launch and download links present, and no request leaving the machine.

Run after ``make book``: ``.venv/bin/python -m pytest tests/browser -q`` (``make test`` leaves this
folder out; see tests/conftest.py). Screenshots of every page go to ``screenshots/`` (or
$HW2BOOK_SCREENSHOTS). The first group of tests checks the checker itself on small pages made
in a temporary folder, each showing that a given fault makes it fail.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

try:
    import playwright.sync_api  # noqa: F401
except ImportError as error:  # pragma: no cover - an environment problem, named clearly
    raise ImportError(
        "the browser check needs Playwright: `pip install -e '.[dev]'` (it uses Debian's "
        "/usr/bin/chromium, not a browser downloaded by Playwright)"
    ) from error

import check_book
from check_book import PageReport, check_page, find_pages, launch_link_problems, serve, toc_files

REPO = Path(__file__).resolve().parents[2]
HTML_DIR = Path(os.environ.get("HW2BOOK_HTML") or REPO / "_build" / "html")  # a book built elsewhere
VENDORED = REPO / "_vendor" / "static"
SCREENSHOTS = Path(os.environ.get("HW2BOOK_SCREENSHOTS") or REPO / "screenshots")

# A 1x1 PNG, for a page whose image must load.
PIXEL_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)

# Saved state of one IntSlider (value 7), in the form nbclient stores it and myst-nb embeds it.
SLIDER_ID = "5f3836ed8ef04827ba4f86793ac08f7f"
SLIDER_STATE = {
    "version_major": 2,
    "version_minor": 0,
    "state": {
        "layout0": {
            "model_name": "LayoutModel",
            "model_module": "@jupyter-widgets/base",
            "model_module_version": "2.0.0",
            "state": {},
        },
        "style0": {
            "model_name": "SliderStyleModel",
            "model_module": "@jupyter-widgets/controls",
            "model_module_version": "2.0.0",
            "state": {"description_width": ""},
        },
        SLIDER_ID: {
            "model_name": "IntSliderModel",
            "model_module": "@jupyter-widgets/controls",
            "model_module_version": "2.0.0",
            "state": {
                "layout": "IPY_MODEL_layout0",
                "style": "IPY_MODEL_style0",
                "min": 0,
                "max": 10,
                "value": 7,
            },
        },
    },
}


def widget_html(model_id: str = SLIDER_ID, manager: bool = True) -> str:
    state = json.dumps(SLIDER_STATE)
    view = json.dumps({"version_major": 2, "version_minor": 0, "model_id": model_id})
    script = '<script src="_static/widgets/embed.js"></script>' if manager else ""
    return (
        f'{script}<script type="application/vnd.jupyter.widget-state+json">{state}</script>'
        f'<div class="cell_output"><script type="application/vnd.jupyter.widget-view+json">{view}</script></div>'
    )


MATHJAX = '<script defer src="_static/mathjax/tex-chtml.js"></script>'


@pytest.fixture
def site(tmp_path):
    """A scratch site: ``site(body)`` writes page.html into a folder that has the book's
    vendored MathJax and widget manager, and returns the folder."""
    if not (VENDORED / "mathjax" / "tex-chtml.js").is_file():
        pytest.fail(f"no vendored MathJax in {VENDORED}: run `make vendor` (or `make book`) first")
    root = tmp_path / "site"
    (root / "_static").mkdir(parents=True)
    for name in ("mathjax", "widgets"):
        (root / "_static" / name).symlink_to(VENDORED / name, target_is_directory=True)
    (root / "pixel.png").write_bytes(PIXEL_PNG)

    def make(body: str, head: str = "") -> Path:
        (root / "page.html").write_text(
            f"<!DOCTYPE html><html><head><meta charset='utf-8'>{head}</head><body>{body}</body></html>",
            encoding="utf-8",
        )
        return root

    return make


def check_scratch(browser, root: Path, screenshot_dir: Path | None = None) -> PageReport:
    with serve(root) as base_url:
        return check_page(browser, base_url, "page.html", screenshot_dir)


def assert_problem(report: PageReport, *fragments: str) -> None:
    matching = [p for p in report.problems if all(fragment in p for fragment in fragments)]
    assert matching, f"expected a problem naming {fragments}; got {report.problems}"


# --- the checker, on scratch pages ------------------------------------------------------------


def test_a_correct_page_passes(browser, site, tmp_path):
    """The control for every test below: typeset math, a loaded image, a widget drawn from its
    saved state, TeX-like text inside code, and a plain link to Binder are all fine."""
    root = site(
        head=MATHJAX,
        body=(
            r"<p>Inline <span class='math'>\(x^2\)</span>, and a display:</p>"
            r"<div class='math'>\[\frac{a}{b}\]</div>"
            "<img src='pixel.png' alt='one pixel'>"
            r"<pre><code>echo '$$' '\(' \frac</code></pre>"
            "<a href='https://mybinder.org/v2/gh/hw2book/hw2book/main'>Binder</a>"
            + widget_html()
        ),
    )
    report = check_scratch(browser, root, tmp_path / "shots")
    assert report.problems == []
    assert (report.math_elements, report.typeset_math) == (2, 2)
    assert report.images == 1
    assert report.widget_views == 1
    assert [view["model_name"] for view in report.rendered_widgets] == ["IntSliderModel"]
    assert report.rendered_widgets[0]["text"] == "7"  # the saved value is what the reader sees
    assert all(check_book.is_local_url(url) for url in report.requests)
    assert (tmp_path / "shots" / "page.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("tag", "host"),
    [
        ('<script src="https://cdn.jsdelivr.net/npm/thebe@0.8.2/lib/index.js"></script>', "cdn.jsdelivr.net"),
        ('<link rel="stylesheet" href="https://fonts.googleapis.com/css?family=Lato">', "fonts.googleapis.com"),
        ('<script>fetch("https://api.github.com/zen").catch(() => {})</script>', "api.github.com"),
        ('<link rel="preconnect" href="https://fonts.gstatic.com">', "fonts.gstatic.com"),
        ('<img src="https://mybinder.org/badge_logo.svg" alt="Binder">', "mybinder.org"),
    ],
    ids=["cdn-script", "stylesheet", "fetch", "preconnect", "image"],
)
def test_anything_reaching_outside_the_machine_fails_and_is_named(browser, site, tag, host):
    report = check_scratch(browser, site(head=tag, body="<p>text</p>"))
    assert_problem(report, host)


def test_outside_requests_are_recorded_with_their_address(browser, site):
    thebe = "https://unpkg.com/thebe@0.8.2/lib/index.js"
    report = check_scratch(browser, site(head=f'<script src="{thebe}"></script>', body="<p>x</p>"))
    assert thebe in report.requests
    assert_problem(report, "request to unpkg.com", thebe)


def test_a_broken_image_fails_and_is_named(browser, site):
    root = site(body="<img src='_images/missing.png'><img src='corrupt.png'><img src='pixel.png'>")
    (root / "corrupt.png").write_bytes(b"not a png")
    report = check_scratch(browser, root)
    assert_problem(report, "image did not load", "_images/missing.png")
    assert_problem(report, "image did not load", "corrupt.png")
    assert not any("pixel.png" in problem for problem in report.problems)
    assert_problem(report, "local request failed", "missing.png", "404")


@pytest.mark.parametrize(
    ("head", "body", "expected"),
    [
        ("", "<p>The sum $$\\sum_i x_i$$ is left raw.</p>", "raw TeX"),
        ("", "<p>An inline formula $x_1$ left raw.</p>", "raw TeX"),
        ("", "<p>A command \\frac{a}{b} in prose.</p>", "raw TeX"),
        ("", "<p><span class='math'>\\(x\\)</span></p>", "not typeset"),
        (
            '<script defer src="_static/mathjax/missing.js"></script>',
            "<div class='math'>\\[y\\]</div>",
            "MathJax did not typeset",
        ),
    ],
    ids=["dollars", "inline-dollar", "command", "no-mathjax", "mathjax-404"],
)
def test_math_left_untypeset_fails(browser, site, head, body, expected):
    report = check_scratch(browser, site(head=head, body=body))
    assert_problem(report, expected)


def test_a_tex_error_fails(browser, site):
    report = check_scratch(browser, site(head=MATHJAX, body=r"<p><span class='math'>\(\frac{a}\)</span></p>"))
    assert_problem(report, "TeX error")


def test_widgets_without_the_widget_manager_fail(browser, site):
    report = check_scratch(browser, site(body=widget_html(manager=False)))
    assert_problem(report, "IntSliderModel", "did not render")


def test_a_widget_view_without_saved_state_fails(browser, site):
    report = check_scratch(browser, site(body=widget_html(model_id="0123456789abcdef")))
    assert_problem(report, "0123456789abcdef", "no saved state", "did not render")


def test_an_uncaught_script_error_fails(browser, site):
    report = check_scratch(browser, site(body="<script>throw new Error('the widget code broke')</script>"))
    assert_problem(report, "uncaught script error", "the widget code broke")


def test_find_pages_skips_index_search_static_and_redirects(tmp_path):
    for name in ("intro.html", "ch1.html", "part/ch2.html", "genindex.html", "search.html", "_static/x.html"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("<html><body>page</body></html>")
    (tmp_path / "index.html").write_text('<meta http-equiv="Refresh" content="0; url=intro.html" />')
    assert find_pages(tmp_path) == ["ch1.html", "intro.html", "part/ch2.html"]
    with pytest.raises(FileNotFoundError, match="make book"):
        find_pages(tmp_path / "absent")


def test_toc_files_walks_parts_chapters_and_sections(tmp_path):
    toc = tmp_path / "_toc.yml"
    toc.write_text(
        "format: jb-book\nroot: intro\nparts:\n  - caption: A\n    chapters:\n      - file: ch1.ipynb\n"
        "        sections:\n          - file: ch1_extra\n  - chapters:\n      - file: ch2\n"
    )
    assert toc_files(toc) == ["intro", "ch1", "ch1_extra", "ch2"]
    toc.write_text("chapters: []\n")
    with pytest.raises(ValueError, match="no 'root'"):
        toc_files(toc)


def test_launch_link_problems_name_each_missing_link(tmp_path):
    (tmp_path / "_sources").mkdir()
    (tmp_path / "_sources" / "ch2.ipynb").write_text(json.dumps({"cells": [], "nbformat": 4}))
    links = [
        "https://mybinder.org/v2/gh/hw2book/hw2book/main?urlpath=tree/book/ch2.ipynb",
        "https://colab.research.google.com/github/hw2book/hw2book/blob/main/book/ch2.ipynb",
        "http://127.0.0.1:8000/_sources/ch2.ipynb",
    ]
    settings = dict(
        notebook="book/ch2.ipynb",
        html_dir=tmp_path,
        repository_url="https://github.com/hw2book/hw2book",
        branch="main",
        binderhub_url="https://mybinder.org",
        colab_url="https://colab.research.google.com",
    )
    assert launch_link_problems(PageReport("ch2.html", links=links), **settings) == []
    missing = launch_link_problems(PageReport("ch2.html", links=links[:1]), **settings)
    assert [problem.split(" ")[1] for problem in missing] == ["Colab", "download"]
    (tmp_path / "_sources" / "ch2.ipynb").write_text("{}")
    assert launch_link_problems(PageReport("ch2.html", links=links), **settings) == [
        "the downloadable ch2.ipynb is not a notebook (no 'cells')"
    ]


# --- a book built with the project's own configuration ----------------------------------------


def load_config(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text(encoding="utf-8"))


def launch_settings(config: dict) -> dict:
    """The launch-link expectations from _config.yml (each key named when absent)."""
    repository = config.get("repository") or {}
    buttons = config.get("launch_buttons") or {}
    missing = [f"repository.{key}" for key in ("url", "branch") if key not in repository]
    missing += [f"launch_buttons.{key}" for key in ("binderhub_url", "colab_url") if key not in buttons]
    if not (config.get("html") or {}).get("use_download_button"):
        missing.append("html.use_download_button: true")
    assert not missing, f"_config.yml lacks {', '.join(missing)}"
    return dict(
        repository_url=repository["url"],
        branch=repository["branch"],
        binderhub_url=buttons["binderhub_url"],
        colab_url=buttons["colab_url"],
    )


def test_a_widget_notebook_reads_correctly_in_a_book_built_with_the_projects_config(browser, tmp_path):
    """A one-notebook book (a slider, math, a plot) built by Jupyter Book with _config.yml:
    its widget is drawn from the state saved at build time, offline, beside launch links."""
    import nbformat
    import yaml

    if not (VENDORED / "widgets" / "embed.js").is_file():
        pytest.fail(f"no vendored widget manager in {VENDORED}: run `make vendor` (or `make book`) first")
    # _config.yml as `make book` completes it, with an address (tools/book_config.py).
    sys.path.insert(0, str(REPO / "tools"))
    from book_config import book_config

    config = book_config("https://github.com/example-org/hw2book-example", "main")
    config["sphinx"]["config"]["html_static_path"] = [str(VENDORED)]
    (tmp_path / "_config.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    book = tmp_path / "book"
    book.mkdir()
    (book / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: slider\n")
    (book / "intro.md").write_text("# Intro\n\nThe kernel size $k$ and\n\n$$H' = H - M + 1$$\n")
    shutil.copy(REPO / "book" / "references.bib", book)  # the configuration's bibliography
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [
        nbformat.v4.new_markdown_cell("# Slider\n\nA slider for the kernel size $k$."),
        nbformat.v4.new_code_cell(
            "import ipywidgets as widgets\n"
            "widgets.IntSlider(value=7, min=0, max=10, description='kernel size')"
        ),
        nbformat.v4.new_code_cell("import matplotlib.pyplot as plt\nplt.plot([0, 1], [1, 0])\nplt.show()"),
    ]
    nbformat.write(notebook, book / "slider.ipynb")
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    build = subprocess.run(
        [str(jupyter_book), "build", str(book), "--config", str(tmp_path / "_config.yml"),
         "--path-output", str(tmp_path), "-W"],
        capture_output=True, text=True, cwd=REPO, timeout=600,
    )
    assert build.returncode == 0, f"the scratch book did not build:\n{build.stdout[-3000:]}\n{build.stderr[-3000:]}"
    html_dir = tmp_path / "_build" / "html"

    with serve(html_dir) as base_url:
        reports = {page: check_page(browser, base_url, page) for page in find_pages(html_dir)}
    assert sorted(reports) == ["intro.html", "slider.html"]
    assert check_book.format_problems(list(reports.values())) == ""
    slider = reports["slider.html"]
    assert [view["model_name"] for view in slider.rendered_widgets] == ["IntSliderModel"]
    assert slider.rendered_widgets[0]["text"].split() == ["kernel", "size", "7"]
    assert slider.images >= 1 and slider.typeset_math == 1
    assert reports["intro.html"].typeset_math == 2
    assert launch_link_problems(slider, "book/slider.ipynb", html_dir, **launch_settings(config)) == []


# --- the real book (run `make book` first) ----------------------------------------------------


@pytest.fixture(scope="module")
def built_pages() -> list[str]:
    if not (HTML_DIR / "intro.html").is_file():
        pytest.fail(f"no built book in {HTML_DIR}: run `make book` first")
    return find_pages(HTML_DIR)


@pytest.fixture(scope="module")
def book_reports(browser, built_pages) -> dict[str, PageReport]:
    with serve(HTML_DIR) as base_url:
        return {page: check_page(browser, base_url, page, SCREENSHOTS) for page in built_pages}


def test_every_toc_entry_was_built(built_pages):
    expected = [f"{name}.html" for name in toc_files(REPO / "book" / "_toc.yml")]
    missing = [page for page in expected if page not in built_pages]
    assert not missing, f"in book/_toc.yml but not built into {HTML_DIR}: {missing}"


def test_every_page_of_the_book_reads_correctly_offline(book_reports):
    problems = check_book.format_problems(list(book_reports.values()))
    assert not problems, f"problems in the rendered book (screenshots in {SCREENSHOTS}):\n{problems}"
    missing_shots = [
        page for page, report in book_reports.items() if not (report.screenshot and report.screenshot.is_file())
    ]
    assert not missing_shots, f"no screenshot written for {missing_shots}"


def test_notebook_pages_have_binder_colab_and_download_links(book_reports):
    # The configuration the book was built with: `make book` writes it beside the HTML folder,
    # with the repository's address when it has one (tools/book_config.py).
    built_with = HTML_DIR.parent / "_config.yml"
    config = load_config(built_with if built_with.is_file() else REPO / "_config.yml")
    settings = launch_settings(config)
    has_address = bool(settings["repository_url"])
    if not has_address:  # no address: no launch buttons at all, only the downloads
        settings["repository_url"] = "https://github.com/no-address/no-address"
        for report in book_reports.values():
            launch = [link for link in report.links
                      if urlsplit(link).hostname in ("mybinder.org", "colab.research.google.com")]
            assert not launch, f"{report.page}: launch links although the book has no repository address: {launch}"
    path_to_book = (config.get("repository") or {}).get("path_to_book", "book").strip("/")
    notebook_pages = {
        page: f"{path_to_book}/{page.removesuffix('.html')}.ipynb"
        for page in book_reports
        if (REPO / "book" / page).with_suffix(".ipynb").is_file()
    }
    assert notebook_pages, "the built book has no page made from a notebook (book/*.ipynb)"
    problems = [
        f"{page}: {problem}"
        for page, notebook in notebook_pages.items()
        for problem in launch_link_problems(book_reports[page], notebook, HTML_DIR, **settings)
        if has_address or not problem.startswith(("no Binder", "no Colab"))
    ]
    assert not problems, "\n".join(problems)


def test_a_markdown_table_shown_as_raw_text_fails(browser, site):
    for rule in ("|---|---|", "|\u2014|\u2014|", "| :--- | ---: |"):
        raw = f"<p>| learning rate | dev accuracy | {rule} | 1e-05 | 0.79 |</p>"
        assert_problem(check_scratch(browser, site(body=raw)), "Markdown table shown as raw text")
    rendered = "<table><tr><th>learning rate</th><th>dev</th></tr><tr><td>1e-05</td><td>0.79</td></tr></table>"
    report = check_scratch(browser, site(body=rendered))
    assert not any("Markdown table" in problem for problem in report.problems)

"""The live panels (web/live) in headless Chromium, opened from file:// and from a loopback http
server, with every request that would leave the machine refused.

A page made for the test holds the three panels with the models exported from the stored runs
(book/_ext/live_panels.write_standalone_page); torch's answers come from hw2lib.web_export. Checked:
chapter 3's panel decodes 200 validation sentences with both models, greedy and beam 5, to exactly
the strings of hw2lib.decoding (log-probabilities within 1e-4) and translates typed text like
hw2lib.translate.translate; chapter 2's CNN gives torch's class on all 1,000 test images
(probabilities within 1e-5), and strokes sent as pointer events change the prediction and the maps;
chapter 1's panel shows the kernel entry of hw2lib.convolution for sampled entries of M. Screenshots
of each panel in use, at 1280 px and 390 px, go to screenshots/ (or $HW2BOOK_SCREENSHOTS). When the
chapters hold panels, the built book's pages (``_build/html`` or $HW2BOOK_HTML) are checked too.

Run: ``.venv/bin/python -m pytest tests/browser/test_live_panels.py -q``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import torch

import check_book

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "book" / "_ext"))
import live_panels  # noqa: E402

from hw2lib import web_export  # noqa: E402
from hw2lib.cnn import CNN  # noqa: E402
from hw2lib.convolution import conv_matrix_entry, counting_kernel, kernel_index_at  # noqa: E402

SCREENSHOTS = Path(os.environ.get("HW2BOOK_SCREENSHOTS") or REPO / "screenshots")
HTML_DIR = Path(os.environ.get("HW2BOOK_HTML") or REPO / "_build" / "html")
BODY = """<h1>Live panels</h1>
<div class="hw2-live" data-panel="matrix"><p>The matrix panel needs JavaScript.</p></div>
<div class="hw2-live" data-panel="draw"><p>The drawing panel needs JavaScript.</p></div>
<div class="hw2-live" data-panel="translate"><p>The translator needs JavaScript.</p></div>"""
READY = "[...document.querySelectorAll('.hw2-live')].every(panel => panel.dataset.ready)"


@pytest.fixture(scope="module")
def live_site(tmp_path_factory, mirror_dir, shared_cache):
    """A folder with page.html (the three panels) and torch's answers for it."""
    folder = tmp_path_factory.mktemp("live-site")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HW2LIB_MIRROR", str(mirror_dir) if mirror_dir else "off")
        patch.setenv("HW2LIB_CACHE", str(shared_cache))
        live_panels.write_standalone_page(folder, BODY)
        golden = web_export.golden_outputs(sentences=200, images=1000)
    return folder, golden


@pytest.fixture(scope="module", params=["file", "http"])
def site_url(request, live_site):
    folder, _ = live_site
    if request.param == "file":
        yield folder.as_uri() + "/page.html"
    else:
        with check_book.serve(folder) as base:
            yield base + "page.html"


class LivePage:
    """A page opened with outside requests refused; ``problems`` collects what went wrong."""

    def __init__(self, context, url: str, width: int = 1280, height: int = 900):
        self.problems: list[str] = []
        self.page = context.new_page()
        self.page.set_viewport_size({"width": width, "height": height})
        self.page.route("**/*", self._route)
        self.page.on("pageerror", lambda error: self.problems.append(f"script error: {error}"))
        self.page.on("requestfailed", lambda request: self.problems.append(f"request failed: {request.url}"))
        self.page.goto(url, wait_until="load")
        self.page.wait_for_function(READY, timeout=30_000)

    def _route(self, route) -> None:
        url = route.request.url
        if url.startswith("file://") or check_book.is_local_url(url):
            route.continue_()
        else:
            self.problems.append(f"request outside the machine refused: {url}")
            route.abort("blockedbyclient")

    def panel(self, name: str):
        return self.page.locator(f".hw2-live[data-panel={name}]")

    def close(self) -> list[str]:
        problems = list(self.problems)
        self.page.close()
        return problems


@pytest.fixture
def live_page(browser, site_url):
    page = LivePage(browser, site_url)
    yield page
    assert page.close() == [], "problems on the page"


# --- chapter 3 ----------------------------------------------------------------------------------

_DECODE_ALL = """
([name, sources]) => {
  const translator = HW2Live.model(name);
  const index = new Map(translator.meta.source_symbols.map((symbol, id) => [symbol, id]));
  return sources.map(text => {
    const ids = Array.from(text, ch => index.get(ch));
    const greedy = HW2Live.seq2seq.greedyDecode(translator, ids);
    const beam = HW2Live.seq2seq.beamSearch(translator, ids, 5);
    return [[HW2Live.seq2seq.decodeTokens(translator, greedy.tokens), greedy.logProb],
            [HW2Live.seq2seq.decodeTokens(translator, beam.tokens), beam.logProb]];
  });
}
"""


@pytest.mark.parametrize("name", ["translator-a", "translator-b"])
def test_the_translator_decodes_200_sentences_as_hw2lib_decoding_does(live_page, live_site, name):
    golden = live_site[1]["translators"][name]
    results = live_page.page.evaluate(_DECODE_ALL, [name, golden["sources"]])
    assert len(results) == len(golden["sources"]) == 200
    for decoder, column in (("greedy", 0), ("beam5", 1)):
        pairs = enumerate(zip(results, golden[decoder]))
        wrong = [(golden["sources"][i], row[column][0], want["translation"])
                 for i, (row, want) in pairs if row[column][0] != want["translation"]]
        assert not wrong, f"{name} {decoder}: {len(wrong)} translations differ, e.g. {wrong[:3]}"
        worst = max(abs(row[column][1] - want["log_prob"]) for row, want in zip(results, golden[decoder]))
        assert worst < 1e-4, f"{name} {decoder}: log-probabilities differ by up to {worst}"


def test_typing_in_the_panel_shows_what_translate_gives(live_page, live_site):
    from hw2lib.seq2seq_runs import char_mt_data, load_seq2seq
    from hw2lib.translate import translate

    runs = web_export.chapter3_runs()
    data = char_mt_data("course")
    panel = live_page.panel("translate")
    panel.scroll_into_view_if_needed()
    text_box = panel.locator(".hw2-text")
    for text, model, beam in (("¿Dónde está el baño?", "translator-b", 5), ("Tengo un perro negro.", "translator-a", 1),
                              ("Привет, мир", "translator-b", 3)):
        panel.locator(f"input[type=radio][value={model}]").check()
        panel.locator("input[type=range]").fill(str(beam))
        text_box.fill("")
        text_box.type(text, delay=5)  # real key events; the panel redraws after a pause in typing
        expected = translate(load_seq2seq(runs[model]), data, text, beam_size=None if beam == 1 else beam)
        live_page.page.wait_for_function(
            "([text]) => document.querySelector('.hw2-live[data-panel=translate]').hw2live.result.text === text",
            arg=[text])
        shown = panel.locator(".hw2-translation").inner_text()
        assert shown == (expected.translation or "(empty)" if expected.log_prob is not None else "\u2014")
        assert panel.locator(".hw2-notes li").all_inner_texts() == expected.notes
        has_heatmap = panel.locator("canvas.hw2-heatmap").is_visible()
        assert has_heatmap == (expected.attention is not None)


# --- chapter 2 ----------------------------------------------------------------------------------

_CLASSIFY_ALL = """
([pixels, count]) => {
  const cnn = HW2Live.model("cnn"), bytes = Uint8Array.from(atob(pixels), ch => ch.charCodeAt(0));
  const out = [];
  for (let i = 0; i < count; i++) {
    const image = Float32Array.from(bytes.subarray(784 * i, 784 * (i + 1)), v => v / 256);
    out.push(HW2Live.cnn.forward(cnn, image).probabilities);
  }
  return out;
}
"""


def test_the_cnn_gives_torchs_class_on_all_1000_test_images(live_page, live_site):
    golden = live_site[1]["cnn"]
    probabilities = np.array(live_page.page.evaluate(_CLASSIFY_ALL, [golden["pixels"], len(golden["labels"])]))
    assert probabilities.shape == (1000, 10)
    assert np.array_equal(probabilities.argmax(axis=1), golden["predicted"])
    assert np.abs(probabilities - np.exp(golden["log_probs"])).max() < 1e-5


def draw(page, pad, strokes) -> None:
    """Strokes (lists of points in 0..1 of the pad) as mouse input, which the browser sends as pointer events."""
    pad.scroll_into_view_if_needed()
    box = pad.bounding_box()
    for stroke in strokes:
        page.mouse.move(box["x"] + stroke[0][0] * box["width"], box["y"] + stroke[0][1] * box["height"])
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"], steps=4)
        page.mouse.up()
    page.wait_for_timeout(100)  # the panel redraws on the next animation frame


_DRAW_STATE = """
() => {
  const panel = document.querySelector('.hw2-live[data-panel=draw]'), state = panel.hw2live.state;
  const maps = [...panel.querySelectorAll('.hw2-maps canvas')].map(canvas => canvas.toDataURL());
  return {predicted: panel.dataset.predicted, status: panel.querySelector('.hw2-status').textContent,
          top: panel.querySelector('.hw2-bar.hw2-top .hw2-romaji')?.textContent ?? null, maps,
          pixels: state ? Array.from(HW2Live.cnn.rasteriseStrokes(panel.hw2live.strokes,
                   {strokeWidth: HW2Live.model('cnn').meta.drawing.stroke_width}).pixels) : null,
          probabilities: state ? Array.from(state.probabilities) : null};
}
"""

SHAPES = {  # two drawings in 0..1 of the pad: a cross and a spiral-like hook
    "cross": [[(0.2, 0.2), (0.8, 0.8)], [(0.8, 0.2), (0.2, 0.8)]],
    "hook": [[(0.3, 0.15), (0.3, 0.85), (0.75, 0.85), (0.75, 0.4), (0.45, 0.4)], [(0.15, 0.5), (0.9, 0.5)]],
}


def test_strokes_sent_as_pointer_events_change_the_prediction_and_the_maps(live_page):
    page, panel = live_page.page, live_page.panel("draw")
    panel.locator("input[type=number]").fill("7")
    panel.locator("button", has_text="Load").click()
    loaded = page.evaluate(_DRAW_STATE)
    assert "test image 7" in loaded["status"] and loaded["predicted"] != ""
    states = {}
    for name, strokes in SHAPES.items():
        panel.locator("button", has_text="Clear").click()
        assert page.evaluate(_DRAW_STATE)["predicted"] == ""
        draw(page, panel.locator("canvas.hw2-pad"), strokes)
        states[name] = page.evaluate(_DRAW_STATE)
    cross, hook = states["cross"], states["hook"]
    for state in (cross, hook):
        assert state["maps"] != loaded["maps"]
        assert state["top"] is not None and f"({state['top']})" in state["status"]
        model = web_export.chapter2_cnn_run().load_weights(CNN()).eval()
        with torch.no_grad():
            expected = model(torch.tensor(state["pixels"]).reshape(1, 1, 28, 28)).exp()[0].numpy()
        assert np.abs(np.array(state["probabilities"]) - expected).max() < 1e-5
        assert int(state["predicted"]) == int(expected.argmax())
    assert cross["maps"] != hook["maps"]
    assert cross["predicted"] != hook["predicted"] or cross["probabilities"] != hook["probabilities"]


# --- chapter 1 ----------------------------------------------------------------------------------


def test_the_matrix_panel_shows_the_right_kernel_entry(live_page):
    page, panel = live_page.page, live_page.panel("matrix")
    generator = np.random.default_rng(14)
    checked = zeros = 0
    while checked < 24:
        height, width, kernel_height, kernel_width = (int(v) for v in generator.integers(1, 9, size=4))
        if kernel_height > height or kernel_width > width:
            continue
        page.evaluate("(size) => document.querySelector('.hw2-live[data-panel=matrix]').hw2live.set(size)",
                      {"H": height, "W": width, "M": kernel_height, "N": kernel_width})
        rows = (height - kernel_height + 1) * (width - kernel_width + 1)
        row, col = int(generator.integers(rows)), int(generator.integers(height * width))
        panel.locator("canvas.hw2-matrix").scroll_into_view_if_needed()
        centre = page.evaluate("([r, c]) => document.querySelector('.hw2-live[data-panel=matrix]').hw2live"
                               ".cellCentre(r, c)", [row, col])
        page.mouse.move(centre["x"], centre["y"])
        detail = panel.locator(".hw2-detail")
        assert (detail.get_attribute("data-row"), detail.get_attribute("data-col")) == (str(row), str(col))
        index = kernel_index_at(row, col, (height, width), (kernel_height, kernel_width))
        value = conv_matrix_entry(counting_kernel(kernel_height, kernel_width), (height, width), row, col)
        text = detail.inner_text()
        if index is None:
            zeros += 1
            assert detail.get_attribute("data-kernel") == "none"
            assert f"so M[{row}, {col}] = 0" in text and "outside" in text
        else:
            assert detail.get_attribute("data-kernel") == f"{index[0]},{index[1]}"
            assert f"M[{row}, {col}] = K[{index[0]}, {index[1]}] = {value:g}" in text
        checked += 1
    assert 0 < zeros < checked


def test_a_kernel_larger_than_the_image_is_explained_not_drawn(live_page):
    page, panel = live_page.page, live_page.panel("matrix")
    page.evaluate("() => document.querySelector('.hw2-live[data-panel=matrix]').hw2live.set({H: 2, W: 5, M: 3, N: 1})")
    assert "does not fit" in panel.locator(".hw2-summary").inner_text()
    assert not panel.locator("canvas.hw2-matrix").is_visible()


# --- how the panels look ------------------------------------------------------------------------


@pytest.mark.parametrize("width", [1280, 390])
def test_screenshots_of_each_panel_in_use(browser, live_site, width):
    folder, _ = live_site
    with check_book.serve(folder) as base:
        live = LivePage(browser, base + "page.html", width=width)
        page = live.page
        ready_at = page.evaluate("[...document.querySelectorAll('.hw2-live')].map(p => Number(p.dataset.readyAt))")
        print(f"\npanels ready {ready_at} ms after navigation at {width} px")
        matrix = live.panel("matrix")
        matrix.locator("canvas.hw2-matrix").scroll_into_view_if_needed()
        centre = page.evaluate("() => document.querySelector('.hw2-live[data-panel=matrix]').hw2live.cellCentre(4, 7)")
        page.mouse.move(centre["x"], centre["y"])
        draw(page, live.panel("draw").locator("canvas.hw2-pad"), SHAPES["hook"])
        translate = live.panel("translate")
        translate.locator(".hw2-text").fill("Me gusta el café negro.")
        page.wait_for_function("() => document.querySelector('.hw2-live[data-panel=translate]')"
                               ".hw2live.result.text === 'Me gusta el café negro.'")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for name in ("matrix", "draw", "translate"):
            target = SCREENSHOTS / f"live-{name}-{width}.png"
            live.panel(name).screenshot(path=str(target))
            assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        overflow = page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the page scrolls sideways by {overflow} px at {width} px"
        assert live.close() == []


# --- a book built with the project's configuration ----------------------------------------------


def test_only_pages_with_a_panel_load_it_and_a_removed_widget_takes_its_manager_along(browser, tmp_path):
    """A three-page scratch book built by Jupyter Book with the project's configuration: a notebook
    whose widget cell is tagged remove-output and which places the matrix panel, a notebook that
    shows its widget, and a page without either."""
    import nbformat

    vendored = REPO / "_vendor" / "static"
    if not (vendored / "widgets" / "embed.js").is_file():
        pytest.fail(f"no vendored MathJax and widget manager in {vendored}: run `make vendor` (or `make book`) first")
    sys.path.insert(0, str(REPO / "tools"))
    import yaml
    from book_config import book_config

    config = book_config(None, "main")
    config["sphinx"]["config"]["html_static_path"] = [str(vendored)]
    (tmp_path / "_config.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    book = tmp_path / "book"
    book.mkdir()
    (book / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: live\n  - file: widget\n")
    (book / "intro.md").write_text("# Intro\n\nNo panel here.\n")
    for name in config.get("bibtex_bibfiles") or []:  # files the configuration expects beside the chapters
        shutil.copyfile(REPO / "book" / name, book / name)
    slider = "import ipywidgets as widgets\nwidgets.IntSlider(value=3, description='H')"
    for name, tags, panel in (("live", ["remove-output"], True), ("widget", [], False)):
        notebook = nbformat.v4.new_notebook()
        notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        cell = nbformat.v4.new_code_cell(slider)
        cell.metadata["tags"] = tags
        notebook.cells = [nbformat.v4.new_markdown_cell(f"# {name.title()}"), cell]
        if panel:
            notebook.cells.append(nbformat.v4.new_markdown_cell(
                '<div class="hw2-live" data-panel="matrix" data-h="3" data-w="3" data-m="2" data-n="2">\n'
                "<p>The rendered page shows a live panel here.</p>\n</div>"))
        nbformat.write(notebook, book / f"{name}.ipynb")
    build = subprocess.run([str(Path(sys.executable).with_name("jupyter-book")), "build", str(book), "--config",
                            str(tmp_path / "_config.yml"), "--path-output", str(tmp_path), "-W"],
                           capture_output=True, text=True, cwd=REPO, timeout=600)
    assert build.returncode == 0, f"the scratch book did not build:\n{build.stdout[-3000:]}\n{build.stderr[-3000:]}"
    html = tmp_path / "_build" / "html"
    pages = {name: (html / f"{name}.html").read_text(encoding="utf-8") for name in ("intro", "live", "widget")}
    assert "live/panels.js" in pages["live"] and "live/live.css" in pages["live"]
    assert "live/translator" not in pages["live"] and "live/cnn.js" not in pages["live"]  # the matrix needs no model
    assert "widgets/embed.js" not in pages["live"] and "widget-state+json" not in pages["live"]
    assert "widgets/embed.js" in pages["widget"] and "live/" not in pages["widget"]
    assert "live/" not in pages["intro"]
    copied = html / "_static" / "live" / "hw2live.js"
    assert copied.read_bytes() == (REPO / "web" / "live" / "hw2live.js").read_bytes()
    live = LivePage(browser, (html / "live.html").as_uri())
    assert live.page.evaluate("document.querySelector('.hw2-live').dataset.panel") == "matrix"
    assert "M is" in live.panel("matrix").locator(".hw2-summary").inner_text()
    assert live.close() == []


# --- the built book -----------------------------------------------------------------------------

CHAPTER_PANELS = {"ch1_convolutions": "matrix", "ch2_cnn": "draw", "ch3_translation": "translate"}


def chapters_with_panels() -> dict[str, str]:
    """The chapters whose notebook (as the built book ships it in _sources, else book/) places its panel."""
    def source(chapter: str) -> str:
        shipped = HTML_DIR / "_sources" / f"{chapter}.ipynb"
        return (shipped if shipped.is_file() else REPO / "book" / f"{chapter}.ipynb").read_text(encoding="utf-8")
    return {chapter: panel for chapter, panel in CHAPTER_PANELS.items()
            if f'data-panel=\\"{panel}\\"' in source(chapter) or f'data-panel="{panel}"' in source(chapter)}


def test_the_books_chapters_run_their_panels_offline(browser):
    chapters = chapters_with_panels()
    if not chapters:
        pytest.skip("no chapter notebook places a live panel yet")
    if not (HTML_DIR / "intro.html").is_file():
        pytest.fail(f"no built book in {HTML_DIR}: run `make book` first (or set HW2BOOK_HTML)")
    weights = []
    with check_book.serve(HTML_DIR) as base:
        for chapter, panel in chapters.items():
            for url in (base + f"{chapter}.html", (HTML_DIR / f"{chapter}.html").as_uri()):
                live = LivePage(browser, url)
                found = live.page.evaluate("[...document.querySelectorAll('.hw2-live')].map(p => p.dataset.panel)")
                scripts = live.page.evaluate("[...document.scripts].map(s => s.getAttribute('src') || '')")
                views = live.page.evaluate("document.querySelectorAll("
                                           "'script[type=\"application/vnd.jupyter.widget-view+json\"]').length")
                paths = [Path(urlsplit(src).path) for src in scripts]  # without Sphinx's ?v=checksum
                model_bytes = sum((HTML_DIR / "_static" / "live" / path.name).stat().st_size
                                  for path in paths if "live" in path.parts and path.stem in web_export.LIVE_MODELS)
                assert found == [panel], f"{chapter}: panels {found}"
                assert views > 0 or not any("widgets/embed.js" in src for src in scripts), \
                    f"{chapter} loads the widget manager but shows no widget"
                assert model_bytes <= web_export.MAX_PAGE_MODEL_BYTES
                assert live.close() == [], f"problems on {url}"
                weights.append(f"{chapter}: {model_bytes / 1e6:.2f} MB of model data")
    print("\n" + "\n".join(dict.fromkeys(weights)))

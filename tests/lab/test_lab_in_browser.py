"""The chapters as a student opens them: ``make lab``, then each notebook in JupyterLab, in headless
Chromium, run top to bottom from the Run menu and its controls used by keyboard, click and typing.

Run with ``.venv/bin/python -m pytest tests/lab -q`` (``make test`` leaves this folder out; see
tests/conftest.py). The notebooks run in the full profile on a copy of the stored runs (nothing trains:
what ``make lab`` gives a student, and the controls then drive the trained models); the server
serves copies of the notebooks, so nothing in ``book/`` or ``results/`` is written. Screenshots of
every state go to ``screenshots/lab/`` (or ``$HW2BOOK_SCREENSHOTS/lab``). The last tests break a
widget callback and a cell on purpose and show that the checks then fail.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nbformat
import pytest

from hw2lib.download import mirror
from hw2lib.notebook_status import chapter_status

try:
    import playwright.sync_api  # noqa: F401
except ImportError as error:  # pragma: no cover - an environment problem, named clearly
    raise ImportError("the JupyterLab check needs Playwright: `pip install -e '.[dev]'` (it uses Debian's "
                      "/usr/bin/chromium, not a browser downloaded by Playwright)") from error

from lab_client import (REPO, LabNotebook, is_blank_picture, lab_environment, open_browser, processes_mentioning,
                        start_lab)

BOOK = REPO / "book"
STORED_RUNS = REPO / "results" / "full"
SCREENSHOTS = Path(os.environ.get("HW2BOOK_SCREENSHOTS") or REPO / "screenshots") / "lab"
RUN_TIMEOUT_S = 300  # a hang guard, not a timing test (bench/notebook_times.py measures the times)
SENTENCE = "tengo un perro negro ."  # not a training sentence (chapter 3 checks); "dog" in any good translation

# Where the server and its kernels come from, printed by a notebook of the test's own.
ENVIRONMENT_PROBE = """\
import json, os, sys
import hw2lib
from hw2lib import runs
configured = os.environ.pop("HW2LIB_RESULTS")  # what a student's `make lab` resolves, without the test's copy
try:
    default_results = str(runs.results_dir())
finally:
    os.environ["HW2LIB_RESULTS"] = configured
print(json.dumps({"cwd": os.getcwd(), "prefix": sys.prefix, "hw2lib": hw2lib.__file__, "profile": runs.profile(),
                  "results": default_results, "results_in_use": str(runs.results_dir())}))
"""

# Replaces every slider observer of chapter 1's explorer with one that raises, the way a broken
# redraw fails: the sliders still move in the page, but M's picture never changes.
BREAK_CHAPTER_1_SLIDERS = """\
import ipywidgets
import hw2lib.widgets

_working_explorer = hw2lib.widgets.conv_matrix_explorer

def _raise(change):
    raise RuntimeError("redraw broken on purpose")

def _explorer_with_broken_sliders(*args, **kwargs):
    box = _working_explorer(*args, **kwargs)
    pending = [box]
    while pending:
        widget = pending.pop()
        pending += list(getattr(widget, "children", ()))
        if isinstance(widget, ipywidgets.IntSlider):
            widget.unobserve_all("value")
            widget.observe(_raise, names="value")
    return box

hw2lib.widgets.conv_matrix_explorer = _explorer_with_broken_sliders
"""


def notebook(*sources: str) -> nbformat.NotebookNode:
    document = nbformat.v4.new_notebook()
    document.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    document.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    return document


@pytest.fixture(scope="session")
def lab_root(tmp_path_factory) -> Path:
    """What the server serves: copies of the book's notebooks, the test's probe, and broken copies."""
    root = tmp_path_factory.mktemp("lab") / "book"
    root.mkdir()
    for path in BOOK.glob("*.ipynb"):
        shutil.copy2(path, root / path.name)
    nbformat.write(notebook(ENVIRONMENT_PROBE), root / "environment_probe.ipynb")
    broken = nbformat.read(BOOK / "ch1_convolutions.ipynb", as_version=4)
    broken.cells.insert(0, nbformat.v4.new_code_cell(BREAK_CHAPTER_1_SLIDERS))
    nbformat.write(broken, root / "broken_ch1.ipynb")
    raises = notebook("x = 1", "1 / 0", "y = 2")
    # MyST left as source (what JupyterLab shows without jupyterlab-myst), here kept as code on purpose.
    raises.cells.insert(0, nbformat.v4.new_markdown_cell("Accuracy ``{glue:text}`best_accuracy` `` as source."))
    nbformat.write(raises, root / "raises.ipynb")
    return root


@pytest.fixture(scope="session")
def stored_results(tmp_path_factory) -> Path:
    """A copy of the complete stored runs, the notebooks' results folder (so results/ is not touched)."""
    complete = [run for run in STORED_RUNS.iterdir() if (run / "metrics.json").is_file()]
    if not complete:
        pytest.fail(f"no stored runs in {STORED_RUNS}: the notebooks would train for an hour")
    results = tmp_path_factory.mktemp("lab-results") / "results"
    for run in complete:
        shutil.copytree(run, results / run.name, ignore=shutil.ignore_patterns("checkpoint.pt", "*.part"))
    return results


@pytest.fixture(scope="session")
def lab(lab_root, stored_results, tmp_path_factory):
    """``make lab`` on the copies, in the full profile, reading the copy of the stored runs."""
    scratch = tmp_path_factory.mktemp("lab-scratch")
    location = mirror()  # the course's data mirror as the library finds it; None: the upstream addresses
    environment = lab_environment(scratch, {"HW2LIB_PROFILE": "full", "HW2LIB_RESULTS": str(stored_results),
                                            "HW2LIB_MIRROR": "off" if location is None else str(location)})
    with start_lab(lab_root, scratch, environment) as server:
        yield server
    # The server stopped its own kernels (none had to be killed), and nothing of it is left running.
    assert server.stray_kernels == [], f"kernels the server left running at shutdown: {server.stray_kernels}"
    assert processes_mentioning(str(scratch)) == []


def require_stored_runs(results: Path, chapter: str) -> None:
    """Fail at once, naming them, when ``chapter`` would train runs that are not stored (its "where
    you are" cell lists the same): the notebook would otherwise run into the time-out."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HW2LIB_RESULTS", str(results))
        missing = [run.folder for run in chapter_status(chapter, profile_name="full").missing]
    if missing:
        pytest.fail(f"{chapter} would train {len(missing)} run(s) that are not stored; store them first "
                    f"(`make reproduce`): {', '.join(missing)}")


@pytest.fixture(scope="session")
def browser():
    with open_browser() as context:
        yield context


@contextmanager
def opened(browser, lab, name: str) -> Iterator[LabNotebook]:
    page = LabNotebook(browser, lab, f"{name}.ipynb")
    try:
        yield page
    finally:
        page.close()


def run_all(page: LabNotebook, name: str) -> list[str]:
    """Run every cell; save a screenshot of the top of the notebook; return what shows an error."""
    seconds = page.run_all(RUN_TIMEOUT_S)
    problems = page.problems()
    page.screenshot_top(SCREENSHOTS / f"{name}-ran.png")  # the first cells: the "where you are" cell
    if seconds is not None:
        record_time(name, seconds)
    return problems


def record_time(name: str, seconds: float) -> None:
    """Each notebook's run-all time in the lab, for a person to read (screenshots/lab/run_times.json)."""
    path = SCREENSHOTS / "run_times.json"
    times = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    times[name] = round(seconds, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    partial.write_text(json.dumps(times, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(partial, path)


def status_problems(page: LabNotebook) -> list[str]:
    """The "where you are" cell, when the notebook has one, must say that nothing will be trained
    (every stored run is there); a notebook without it has nothing to check here."""
    text = page.page.evaluate("""name => {
      const panel = Array.from(window.jupyterapp.shell.widgets('main')).find(w => w.context && w.context.path === name);
      const cell = panel.content.widgets.find(c => c.model.type === 'code'
        && c.model.sharedModel.getSource().includes('notebook_status'));
      return cell ? cell.node.querySelector('.jp-OutputArea').innerText : null;
    }""", page.name)
    if text is None or "nothing will be trained" in text:
        return []
    return [f"the 'where you are' cell does not say that nothing will be trained: {text.strip()[:300]!r}"]


# --- chapter checks: each returns the problems it found ------------------------------------


def chapter_1_controls(page: LabNotebook, shots: str = "ch1", timeout_ms: int = 30_000) -> list[str]:
    """Move the M and N sliders of the matrix explorer and see M's picture change each time."""
    box = page.widget("M")
    box.wait_for(state="visible", timeout=timeout_ms)
    before = page.picture(box)
    if before is None or is_blank_picture(before):
        return ["chapter 1's explorer shows no picture of M after running"]
    page.screenshot(box, SCREENSHOTS / f"{shots}-explorer-start.png")
    problems = []
    for label in ("M", "N"):
        readout = page.slider_step(box, label)
        after = page.wait_for_change(box, before, timeout_ms=timeout_ms)
        if after is None:
            problems.append(f"chapter 1: moving slider {label} to {readout} did not change M's picture")
            continue
        page.screenshot(box, SCREENSHOTS / f"{shots}-explorer-{label}-{readout}.png")
        if is_blank_picture(after):
            problems.append(f"chapter 1: after moving slider {label} to {readout}, M's picture is blank")
        before = after
    return problems


def chapter_2_controls(page: LabNotebook, timeout_ms: int = 30_000) -> list[str]:
    """Move the activation browser's example slider, then switch to conv2: the maps change each time."""
    box = page.widget("example")
    box.wait_for(state="visible", timeout=timeout_ms)
    before = page.picture(box)
    if before is None or is_blank_picture(before):
        return ["chapter 2's activation browser shows no maps after running"]
    page.screenshot(box, SCREENSHOTS / "ch2-browser-start.png")
    problems = []
    readout = page.slider_step(box, "example")
    after = page.wait_for_change(box, before, timeout_ms=timeout_ms)
    if after is None:
        problems.append(f"chapter 2: moving the example slider to {readout} did not change the maps")
    else:
        page.screenshot(box, SCREENSHOTS / f"ch2-browser-example-{readout}.png")
        if is_blank_picture(after):
            problems.append(f"chapter 2: the maps of example {readout} are blank")
        before = after
    box.locator(".widget-toggle-buttons button", has_text="conv2").click()
    after = page.wait_for_change(box, before, timeout_ms=timeout_ms)
    if after is None:
        problems.append("chapter 2: switching the layer to conv2 did not change the maps")
    else:
        page.screenshot(box, SCREENSHOTS / "ch2-browser-conv2.png")
        if is_blank_picture(after):
            problems.append("chapter 2: the conv2 maps are blank")
    return problems


def chapter_3_controls(page: LabNotebook, timeout_ms: int = 60_000) -> list[str]:
    """Type a Spanish sentence into the translator: its translations and a new heatmap appear."""
    box = page.widget("Spanish")
    box.wait_for(state="visible", timeout=timeout_ms)
    before_picture, before_text = page.picture(box), page.output_text(box)
    if before_picture is None or is_blank_picture(before_picture):
        return ["chapter 3's translator shows no attention heatmap after running"]
    page.screenshot(box, SCREENSHOTS / "ch3-translator-start.png")
    field = box.locator(".widget-text input").first
    field.fill("")
    field.type(SENTENCE)
    field.press("Enter")
    text = page.wait_for_change(box, before_text, what="text", timeout_ms=timeout_ms)
    if text is None:
        return [f"chapter 3: typing {SENTENCE!r} did not change the translator's output"]
    page.wait_until_idle(timeout_ms)
    text, picture = page.output_text(box), page.wait_for_change(box, before_picture, timeout_ms=timeout_ms)
    page.screenshot(box, SCREENSHOTS / "ch3-translator-typed.png")
    problems = []
    if "perro" not in text or "(b)" not in text:
        problems.append(f"chapter 3: the output does not show the typed sentence and model (b): {text[:300]!r}")
    greedy_b = [line for line in text.splitlines() if line.startswith("(b): greedy")]
    if not greedy_b or "dog" not in greedy_b[0]:
        problems.append(f"chapter 3: model (b) did not translate {SENTENCE!r} to a sentence with 'dog': {greedy_b}")
    if picture is None:
        problems.append("chapter 3: no new attention heatmap appeared for the typed sentence")
    elif is_blank_picture(picture):
        problems.append("chapter 3: the attention heatmap for the typed sentence is blank (an empty figure)")
    return problems


# --- the environment `make lab` gives ------------------------------------------------------


def test_make_lab_gives_the_project_kernel_and_finds_the_stored_runs(browser, lab, stored_results):
    with opened(browser, lab, "environment_probe") as page:
        assert run_all(page, "environment_probe") == []
        outputs = page.page.evaluate("""name => {
          const panel = Array.from(window.jupyterapp.shell.widgets('main')).find(w => w.context && w.context.path === name);
          return panel.content.widgets[0].model.outputs.toJSON();
        }""", page.name)
    facts = json.loads("".join(output.get("text", "") for output in outputs if output.get("name") == "stdout"))
    assert Path(facts["prefix"]).resolve() == (REPO / ".venv").resolve()  # the project's .venv is the kernel
    assert Path(facts["hw2lib"]).resolve().parent == (REPO / "hw2lib").resolve()
    assert Path(facts["cwd"]).resolve() == lab.root.resolve()  # a notebook runs in its own folder
    assert facts["profile"] == "full"
    assert Path(facts["results"]).resolve() == STORED_RUNS.resolve()  # found from the notebook's folder
    assert Path(facts["results_in_use"]) == stored_results  # the test's copy, through HW2LIB_RESULTS


# --- each chapter, run as a student runs it ------------------------------------------------


def test_chapter_1_runs_and_its_size_sliders_redraw_M(browser, lab):
    with opened(browser, lab, "ch1_convolutions") as page:
        problems = run_all(page, "ch1")
        problems += status_problems(page) + chapter_1_controls(page) + page.problems()
    assert problems == []


def test_chapter_2_runs_and_its_activation_browser_follows_the_controls(browser, lab, stored_results):
    require_stored_runs(stored_results, "ch2")
    with opened(browser, lab, "ch2_cnn") as page:
        problems = run_all(page, "ch2")
        problems += status_problems(page) + chapter_2_controls(page) + page.problems()
    assert problems == []


def test_chapter_3_runs_and_translates_a_typed_sentence(browser, lab, stored_results):
    require_stored_runs(stored_results, "ch3")
    with opened(browser, lab, "ch3_translation") as page:
        problems = run_all(page, "ch3")
        problems += status_problems(page) + chapter_3_controls(page) + page.problems()
    assert problems == []


def test_the_appendix_runs_without_errors(browser, lab, stored_results):
    require_stored_runs(stored_results, "appendix")
    with opened(browser, lab, "appendix_reliability") as page:
        problems = run_all(page, "appendix") + status_problems(page)
    assert problems == []


# --- the checks themselves fail when something is broken -----------------------------------


def test_a_broken_slider_callback_fails_the_chapter_1_check(browser, lab):
    """The same check as chapter 1's, on a copy whose sliders' callback raises: it must fail, and
    the kernel's error must be reported."""
    with opened(browser, lab, "broken_ch1") as page:
        assert run_all(page, "broken-ch1") == []  # everything runs; only the callback is broken
        problems = chapter_1_controls(page, shots="broken-ch1", timeout_ms=8_000) + page.problems()
    assert any("moving slider M" in problem and "did not change M's picture" in problem for problem in problems)
    assert any("redraw broken on purpose" in problem for problem in problems), problems


def test_a_blank_figure_counts_as_no_picture():
    """The check that caught chapter 3's empty heatmap: one colour all over is blank, a drawn figure is not."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def png(draw: bool) -> str:
        figure, axis = plt.subplots(figsize=(2, 1))
        axis.set_axis_off()
        if draw:
            axis.imshow([[0.0, 1.0]], cmap="Greys")
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        plt.close(figure)
        return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()

    assert is_blank_picture(png(draw=False))
    assert not is_blank_picture(png(draw=True))
    assert is_blank_picture(None)


def test_a_cell_that_raises_and_myst_source_fail_the_run_check(browser, lab):
    with opened(browser, lab, "raises") as page:
        problems = run_all(page, "raises")
    assert any("cell 3" in problem and "ZeroDivisionError" in problem for problem in problems), problems
    assert any("1 code cell(s) never ran" in problem for problem in problems), problems
    assert any("markdown cell 1 shows MyST source" in problem and "{glue:text}`best_accuracy`" in problem
               for problem in problems), problems

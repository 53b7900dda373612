"""The chapters' exercises in headless Chromium: each solution stays folded until its toggle is
clicked, then shows; each check's verdict on the stub reads "not implemented yet"; nothing runs
past the right edge at 1280 px or on a phone (390 px).

Run after building the book: ``.venv/bin/python -m pytest tests/browser/test_exercises_in_browser.py``
(``HW2BOOK_HTML`` points at another build's html folder). Screenshots of each chapter's first
exercise, folded and unfolded, at both widths go to ``screenshots/`` (or $HW2BOOK_SCREENSHOTS).
The first test checks the check itself on a small page whose solution is not folded.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import check_book

REPO = Path(__file__).resolve().parents[2]
HTML_DIR = Path(os.environ.get("HW2BOOK_HTML") or REPO / "_build" / "html")
SCREENSHOTS = Path(os.environ.get("HW2BOOK_SCREENSHOTS") or REPO / "screenshots")
CHAPTERS = ["ch1_convolutions.html", "ch2_cnn.html", "ch3_translation.html"]
WIDTHS = {"desktop": 1280, "phone": 390}

# For every folded solution: is its content shown? (its code or first paragraph, whichever exists)
_SOLUTIONS = """
() => [...document.querySelectorAll('.solution.dropdown')].map(solution => {
  const body = solution.querySelector('section, pre, p:not(.admonition-title)');
  const box = body ? body.getBoundingClientRect() : null;
  return {id: solution.id, shown: !!box && box.height > 0 && getComputedStyle(body).visibility !== 'hidden'
                                   && body.checkVisibility()};
})
"""

# Elements of the exercises that stick out of the page on the right (code keeps its own scroll box).
_OVERFLOWING = """
() => {
  const limit = document.documentElement.clientWidth + 1;
  const parts = document.querySelectorAll('.exercise.admonition, .solution.dropdown, .tag_exercise-starter, '
                                          + '.tag_exercise-check, .exercise-check');
  return [...parts].filter(part => part.getBoundingClientRect().right > limit)
                   .map(part => (part.id || part.className).slice(0, 60));
}
"""


def solution_states(page) -> list[dict]:
    return page.evaluate(_SOLUTIONS)


def open_solution(page, solution_id: str) -> None:
    """Click the solution's toggle: the button sphinx-togglebutton adds to its title (the title's text
    links back to the exercise)."""
    page.locator(f"[id='{solution_id}'] button.toggle-button").first.click()
    page.wait_for_timeout(400)  # the unfolding animation


@pytest.fixture(scope="module")
def book():
    if not (HTML_DIR / CHAPTERS[0]).is_file():
        pytest.fail(f"no built book at {HTML_DIR}: run `make book` (or set HW2BOOK_HTML)")
    with check_book.serve(HTML_DIR) as base_url:
        yield base_url


def test_an_unfolded_solution_is_caught(browser, tmp_path):
    (tmp_path / "page.html").write_text(
        '<html><body><div class="exercise admonition" id="ex-a"><p class="admonition-title">Exercise</p>'
        '<p>Do it.</p></div><div class="solution dropdown admonition" id="s-1">'
        '<p class="admonition-title">Solution</p><section><p>The answer.</p></section></div></body></html>')
    with check_book.serve(tmp_path) as base_url:
        page = browser.new_page()
        page.goto(base_url + "page.html")
        assert solution_states(page) == [{"id": "s-1", "shown": True}]  # no toggle script: shown at once
        page.close()


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_solutions_stay_folded_until_clicked_and_checks_show_not_implemented(browser, book, chapter):
    page = browser.new_page()
    page.set_viewport_size({"width": WIDTHS["desktop"], "height": 900})
    page.goto(book + chapter, wait_until="load")
    page.wait_for_timeout(500)  # sphinx-togglebutton folds the solutions after the load event
    exercises = page.locator(".exercise.admonition")
    solutions = solution_states(page)
    assert exercises.count() >= 1 and len(solutions) == exercises.count(), (exercises.count(), solutions)
    labels = {exercises.nth(index).get_attribute("id") for index in range(exercises.count())}
    answered = set(page.eval_on_selector_all(".solution.dropdown .admonition-title a[href^='#']",
                                             "links => links.map(link => link.getAttribute('href').slice(1))"))
    assert all(label.startswith("ex-") for label in labels) and answered == labels  # one solution each
    assert not [state["id"] for state in solutions if state["shown"]], "solutions shown before any click"
    for state in solutions:
        open_solution(page, state["id"])
        shown = {entry["id"]: entry["shown"] for entry in solution_states(page)}
        assert shown[state["id"]], f"{chapter}: {state['id']} still folded after its toggle was clicked"
    verdicts = page.locator(".exercise-check")
    assert verdicts.count() >= 1
    for index in range(verdicts.count()):
        verdict = verdicts.nth(index)
        assert verdict.is_visible() and "not implemented yet" in verdict.inner_text()
    page.close()


def _exercise_clip(page) -> dict:
    """The page region from the first exercise's statement to the bottom of its solution."""
    return page.evaluate("""() => {
      const statement = document.querySelector('.exercise.admonition');
      let solution = statement.nextElementSibling;
      while (solution && !solution.matches('.solution.dropdown')) solution = solution.nextElementSibling;
      const top = statement.getBoundingClientRect().top + window.scrollY - 8;
      const bottom = (solution || statement).getBoundingClientRect().bottom + window.scrollY + 8;
      return {x: 0, y: Math.max(top, 0), width: document.documentElement.clientWidth, height: bottom - top,
              solution: solution ? solution.id : null};
    }""")


def _photograph(page, clip: dict, path: Path) -> None:
    """A screenshot of ``clip`` (page coordinates) with the page scrolled to it, below the sticky header:
    the viewport grows to hold the whole region, so the header is not painted over it."""
    margin = 120
    page.set_viewport_size({"width": clip["width"], "height": int(clip["height"]) + 2 * margin})
    page.evaluate("y => window.scrollTo(0, y)", clip["y"] - margin)
    page.wait_for_timeout(200)
    top = page.evaluate("y => y - window.scrollY", clip["y"])
    partial = path.with_name(path.name + ".part")
    page.screenshot(path=str(partial), type="png",
                    clip={"x": 0, "y": top, "width": clip["width"], "height": clip["height"]})
    os.replace(partial, path)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_exercises_fit_the_page_and_are_photographed(browser, book, chapter, width):
    page = browser.new_page()
    page.set_viewport_size({"width": WIDTHS[width], "height": 900})
    page.goto(book + chapter, wait_until="load")
    page.wait_for_timeout(500)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    name = chapter.removesuffix(".html")
    for state in ("folded", "open"):
        clip = _exercise_clip(page)
        if state == "open":
            open_solution(page, clip["solution"])
            clip = _exercise_clip(page)
        assert not page.evaluate(_OVERFLOWING), f"{chapter} at {WIDTHS[width]} px ({state}): parts past the edge"
        _photograph(page, clip, SCREENSHOTS / f"exercise-{name}-{WIDTHS[width]}-{state}.png")
        page.set_viewport_size({"width": WIDTHS[width], "height": 900})
    page.close()

"""The live panels' speed in Chromium: the work a reader's action triggers, timed in the page
(``performance.now()``) and by torch in this process, round by round.

* chapter 3: translating one sentence with beam 5 (model (b)), as the panel does it on every pause
  in typing (:func:`hw2lib.translate.translate` on one sentence is torch's side of the same work);
* chapter 2: classifying one 28 x 28 image (the CNN's forward pass; torch on a batch of one);
  torch runs on one thread, like the page's JavaScript (and chapter 3's notebook);
* how long after the navigation all three panels are usable (budget: 1 s), and how much model
  data each chapter page loads (budget: 4 MB).

The page is the standalone one the browser tests use (book/_ext/live_panels.py), opened from
file:// in Debian's Chromium, headless. Run alone: ``python -m bench.live_speed [--quick]``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from hw2lib.chardata import CharPairs
from hw2lib.cnn import CNN
from hw2lib.cnn_runs import kmnist_data
from hw2lib.seq2seq_runs import char_mt_data, load_seq2seq
from hw2lib.translate import translate
from hw2lib.web_export import MAX_PAGE_MODEL_BYTES, chapter2_cnn_run, chapter3_runs

from .common import REPOSITORY, Row, interleaved, machine_description, prepare_environment, report, speed_row, \
    standard_arguments

sys.path.insert(0, str(REPOSITORY / "book" / "_ext"))
sys.path.insert(0, str(REPOSITORY / "tests" / "browser"))
import check_book  # noqa: E402  (the book's browser check: Debian's Chromium through Playwright)
import live_panels  # noqa: E402

BEAM_SIZE = 5
PAGE = """<div class="hw2-live" data-panel="matrix"></div><div class="hw2-live" data-panel="draw"></div>
<div class="hw2-live" data-panel="translate"></div>"""
READY = "[...document.querySelectorAll('.hw2-live')].every(panel => panel.dataset.ready)"


@dataclass
class Settings:
    sentences: int
    images: int
    rounds: int
    loads: int


FULL = Settings(sentences=50, images=200, rounds=7, loads=7)
QUICK = Settings(sentences=5, images=20, rounds=1, loads=1)

_TRANSLATE = """([sources, beam]) => {
  const translator = HW2Live.model("translator-b"), started = performance.now();
  for (const text of sources) HW2Live.text.translate(translator, text, {beamSize: beam});
  return performance.now() - started;
}"""
_CLASSIFY = """(count) => {
  const cnn = HW2Live.model("cnn"), images = HW2Live.cnn.testImages(cnn).slice(0, count), started = performance.now();
  for (const image of images) HW2Live.cnn.forward(cnn, image);
  return performance.now() - started;
}"""


def per_item_ms(speed: float) -> str:
    return f"{1000 / speed:.1f} ms"


def translation_row(page, settings: Settings) -> Row:
    data = char_mt_data("course")
    model = load_seq2seq(chapter3_runs()["translator-b"])
    sources = [spanish.strip() for spanish, _ in CharPairs(data.val.pairs[:settings.sentences], data.source_vocab,
                                                           data.target_vocab).pairs]

    def torch_side() -> float:
        started = time.perf_counter()
        for text in sources:
            translate(model, data, text, beam_size=BEAM_SIZE)
        return len(sources) / (time.perf_counter() - started)

    def chromium_side() -> float:
        return len(sources) / (page.evaluate(_TRANSLATE, [sources, BEAM_SIZE]) / 1000)

    measured = interleaved({"torch": torch_side, "chromium": chromium_side}, settings.rounds)
    return speed_row(
        "live panel (chapter 3): one sentence, beam 5, model (b): JavaScript in Chromium vs torch",
        per_item_ms(measured.speeds["chromium"]), per_item_ms(measured.speeds["torch"]), measured.ratios["chromium"],
        spread=measured.ratio_spread("chromium"),
        note=(f"mean time per sentence over the first {len(sources)} validation sentences, median of "
              f"{settings.rounds} interleaved rounds ({measured.spread('chromium')}); the page's "
              f"HW2Live.text.translate (one thread) against hw2lib.translate.translate on one sentence (1 torch "
              f"thread, as chapter 3 sets it; 2 threads on a busy 2-core machine were up to 50x slower); ratio below "
              f"1: the page is slower"))


def classification_row(page, settings: Settings) -> Row:
    model = chapter2_cnn_run().load_weights(CNN()).eval()
    images = kmnist_data("kmnist-t10k").test[0][:settings.images]

    def torch_side() -> float:
        started = time.perf_counter()
        with torch.no_grad():
            for image in images:
                model(image[None])
        return len(images) / (time.perf_counter() - started)

    def chromium_side() -> float:
        return len(images) / (page.evaluate(_CLASSIFY, len(images)) / 1000)

    measured = interleaved({"torch": torch_side, "chromium": chromium_side}, settings.rounds)
    return speed_row(
        "live panel (chapter 2): classifying one image: JavaScript in Chromium vs torch",
        per_item_ms(measured.speeds["chromium"]), per_item_ms(measured.speeds["torch"]), measured.ratios["chromium"],
        spread=measured.ratio_spread("chromium"),
        note=(f"mean time per image over {len(images)} test images (the forward pass with the conv1 and conv2 maps "
              f"the panel draws), median of {settings.rounds} interleaved rounds ({measured.spread('chromium')}); "
              f"torch: the same CNN on batches of one, 1 thread"))


def readiness_row(context, url: str, settings: Settings) -> Row:
    times = []
    for _ in range(settings.loads):
        page = context.new_page()
        page.goto(url, wait_until="load")
        page.wait_for_function(READY, timeout=30_000)
        ready = page.evaluate("[...document.querySelectorAll('.hw2-live')].map(p => Number(p.dataset.readyAt))")
        times.append(max(ready))
        page.close()
    median = statistics.median(times)
    return Row("live panels usable after navigation (all three on one page, file://)", f"{median:.0f} ms",
               "budget 1.0 s", median / 1000, f"{median / 1000:.2f} of budget", "< 1.0 s", median < 1000,
               note=f"median of {settings.loads} fresh loads (range {min(times):.0f}-{max(times):.0f} ms): time from "
                    f"navigation to the last panel's first drawing, model data decoded and a first translation done")


def model_data_rows(folder: Path) -> list[Row]:
    live = folder / "_static" / "live"
    rows = []
    for chapter, panel in (("chapter 2", "draw"), ("chapter 3", "translate")):
        size = sum((live / f"{model}.js").stat().st_size for model in live_panels.PANEL_MODELS[panel])
        ratio = size / MAX_PAGE_MODEL_BYTES
        rows.append(Row(f"live panel model data, {chapter} page", f"{size / 1e6:.2f} MB",
                        f"budget {MAX_PAGE_MODEL_BYTES / 1e6:.1f} MB", ratio, f"{ratio:.2f} of budget",
                        f"< {MAX_PAGE_MODEL_BYTES / 1e6:.1f} MB", size <= MAX_PAGE_MODEL_BYTES,
                        note=("the page's model scripts (_static/live): base64 float32 weights, tied weights once"
                              + (", and the first 200 test images" if panel == "draw" else "")
                              + "; only the page with the panel loads them")))
    return rows


def run(quick: bool = False) -> list[Row]:
    """Measure; return the table's rows."""
    settings = QUICK if quick else FULL
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one sentence or image at a time: one thread is torch's fastest, as the page's
    try:
        return _measure(settings)
    finally:
        torch.set_num_threads(threads)


def _measure(settings: Settings) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="hw2book-live-bench-") as folder:
        url = live_panels.write_standalone_page(Path(folder), PAGE).as_uri()
        with check_book.open_browser() as context:
            page = context.new_page()
            page.goto(url, wait_until="load")
            page.wait_for_function(READY, timeout=30_000)
            rows = [translation_row(page, settings), classification_row(page, settings)]
            page.close()
            rows.append(readiness_row(context, url, settings))
        rows += model_data_rows(Path(folder))
    return rows


def main() -> int:
    arguments = standard_arguments("The live panels' speed in Chromium against torch").parse_args()
    threads = prepare_environment(arguments.threads)
    rows = run(arguments.quick)
    report(rows, machine_description(), arguments.markdown, f"Live panels ({threads} torch threads)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

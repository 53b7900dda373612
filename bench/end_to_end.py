"""End-to-end times: nbval over every notebook in the quick profile, the book build from stored
runs, and the full reproduction of every experiment (from the stored runs' own wall times).

Both commands run as a fresh clone would: with ``HW2LIB_RESULTS`` pointing at a temporary folder
that holds a copy of the complete runs of ``results/full`` (what a clone has: config, metrics,
weights) and no quick runs, so quick runs are trained from scratch and the live ``results/``
folders are neither read half-written nor touched. Their output goes to ``bench/out/*.log``.

The full reproduction is not rerun by default (about twenty minutes of both cores): its time is the
sum of the ``wall_seconds`` that every run in ``results/full/*/metrics.json`` recorded when it was
trained. ``--reproduce`` times ``make reproduce`` itself from an empty results folder and then
compares every run it trained with the stored one.

Run alone: ``python -m bench.end_to_end [--quick]`` (``--quick`` skips the two commands).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch

from hw2lib.runs import without_timings

from .common import REPOSITORY, Row, budget_row, format_seconds, machine_description, prepare_environment, report, \
    standard_arguments

NOTEBOOK_BUDGET = 10 * 60
BOOK_BUDGET = 3 * 60
REPRODUCTION_BUDGET = 18 * 60  # two streams on a 2-core machine
TIMEOUT_FACTOR = 2  # a command still running at twice its budget is stopped: the goal is missed anyway
LOGS = REPOSITORY / "bench" / "out"
STORED_FILES = ("config.json", "metrics.json", "weights.pt", "best_weights.pt")


def stored_runs(results: Path) -> tuple[list[Path], list[Path]]:
    """(complete runs, unfinished runs) under ``results``: a run is complete once it has metrics.json."""
    folders = sorted(path for path in results.glob("*") if (path / "config.json").is_file())
    complete = [path for path in folders if (path / "metrics.json").is_file()]
    return complete, [path for path in folders if path not in complete]


def copy_complete_runs(results: Path, destination: Path) -> None:
    """What a fresh clone holds of ``results``: the stored files of every complete run."""
    for run in stored_runs(results)[0]:
        (destination / run.name).mkdir(parents=True)
        for name in STORED_FILES:
            if (run / name).is_file():
                shutil.copy2(run / name, destination / run.name / name)


def run_command(command: list[str], environment: dict[str, str], log: Path, timeout: float) -> tuple[float, int | None]:
    """Wall seconds and exit status of ``command`` (status None when stopped at ``timeout``)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w", encoding="utf-8") as output:
        output.write("$ " + " ".join(command) + "\n")
        output.flush()
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=REPOSITORY, env=environment, stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            status: int | None = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)  # the whole group: pytest workers and notebook kernels too
            process.wait()
            status = None
        return time.perf_counter() - started, status


def command_row(benchmark: str, command: list[str], shown_command: str, budget: float, log_name: str,
                extra_environment: dict[str, str], note: str, stored_runs: bool = True,
                inspect: Callable[[Path], str] | None = None, keep: Path | None = None) -> Row:
    """Run ``command`` as a fresh clone would (see the module's docstring) and time it against ``budget``;
    without ``stored_runs`` its results folder starts empty, so every run is trained. ``inspect``
    looks at the results folder after a successful command; what it returns joins the note. With
    ``keep`` (a folder that must not exist yet) the results folder is that one and is kept."""
    if keep is not None and keep.exists():
        raise ValueError(f"{keep} already exists; --keep needs a new folder")
    with tempfile.TemporaryDirectory(prefix="hw2book-bench-") as scratch:
        results = keep.resolve() if keep is not None else Path(scratch) / "results"
        results.mkdir(parents=True)
        if stored_runs:
            copy_complete_runs(REPOSITORY / "results" / "full", results)
        environment = {**os.environ, "HW2LIB_RESULTS": str(results), **extra_environment}
        log = LOGS / log_name
        seconds, status = run_command(command, environment, log, TIMEOUT_FACTOR * budget)
        if status is None:
            outcome = f"stopped at the {format_seconds(TIMEOUT_FACTOR * budget)} timeout"
        elif status != 0:
            outcome = f"FAILED with exit status {status} (see {log.relative_to(REPOSITORY)})"
        else:
            outcome = "succeeded"
            if inspect is not None:
                outcome += f"; {inspect(results)}"
    return budget_row(benchmark, seconds, budget, lower_bound=status is None, failed=status not in (0, None),
                      note=f"`{shown_command}`; {note}; {outcome}")


def differences(original: Any, again: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """Every place where two JSON values differ: ``(path, stored, new)``, e.g.
    ``("history[3].train_loss", 0.51, 0.52)``; a key or entry that only one has counts as a difference."""
    if isinstance(original, dict) and isinstance(again, dict):
        found = []
        for key in sorted(set(original) | set(again)):
            where = f"{path}.{key}".lstrip(".")
            if key not in original or key not in again:
                found.append((where, original.get(key, "<missing>"), again.get(key, "<missing>")))
            else:
                found += differences(original[key], again[key], where)
        return found
    if isinstance(original, list) and isinstance(again, list):
        if len(original) != len(again):
            return [(path, f"{len(original)} entries", f"{len(again)} entries")]
        return [found for index, (left, right) in enumerate(zip(original, again))
                for found in differences(left, right, f"{path}[{index}]")]
    return [] if original == again else [(path, original, again)]


def summarise_differences(found: list[tuple[str, Any, Any]]) -> str:
    """``found`` grouped by field, list indices folded: ``history[*].val_loss in 21 places (history[3]: a vs b)``."""
    groups: dict[str, list[tuple[str, Any, Any]]] = {}
    for where, original, again in found:
        groups.setdefault(re.sub(r"\[\d+\]", "[*]", where), []).append((where, original, again))
    return "; ".join(f"{field} in {len(items)} place(s), e.g. {items[0][0]}: {items[0][1]!r} stored, {items[0][2]!r} new"
                     for field, items in groups.items())


def same_weights(stored_run: Path, new_run: Path) -> bool | None:
    """Whether every weights file of ``stored_run`` holds exactly the tensors of ``new_run``'s (None: no weights)."""
    from hw2lib.utils import load_state_dict_file

    names = [name for name in ("weights.pt", "best_weights.pt") if (stored_run / name).is_file()]
    if not names:
        return None
    for name in names:
        if not (new_run / name).is_file():
            return False
        original, again = load_state_dict_file(stored_run / name), load_state_dict_file(new_run / name)
        if original.keys() != again.keys() or not all(torch.equal(original[key], again[key]) for key in original):
            return False
    return True


def compare_with_stored(reproduced: Path, stored: Path | None = None) -> str:
    """How many of the stored runs under ``stored`` (default ``results/full``) the runs under
    ``reproduced`` repeat exactly: the same folder (so the same configuration), the same metrics,
    every history row included, apart from times and thread counts, and the same weights."""
    stored = stored or REPOSITORY / "results" / "full"
    complete = stored_runs(stored)[0]
    same, different, missing = [], [], []
    for run in complete:
        twin = reproduced / run.name
        if not (twin / "metrics.json").is_file():
            missing.append(run.name)
            continue
        original = without_timings(json.loads((run / "metrics.json").read_text(encoding="utf-8")))
        again = without_timings(json.loads((twin / "metrics.json").read_text(encoding="utf-8")))
        found, weights = differences(original, again), same_weights(run, twin)
        if not found and weights is not False:
            same.append(run.name)
            continue
        weights_text = {True: "weights identical", False: "WEIGHTS DIFFER", None: "no stored weights"}[weights]
        different.append(f"{run.name} ({summarise_differences(found) or 'metrics identical'}; {weights_text})")
    text = (f"{len(same)} of the {len(complete)} stored runs trained again with identical metrics and weights "
            f"(every epoch's losses and scores; times and thread counts aside)")
    if different:
        text += f"; DIFFERENT: {', '.join(different)}"
    if missing:
        text += f"; NOT TRAINED: {', '.join(missing)}"
    return text


def notebooks_row() -> Row:
    notebooks = sorted(str(path.relative_to(REPOSITORY)) for path in (REPOSITORY / "book").glob("*.ipynb"))
    command = [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadfile", "--nbval", "--nbval-current-env",
               *notebooks]
    shown = "HW2LIB_PROFILE=quick python " + " ".join(command[1:])
    return command_row("nbval, every notebook, quick profile (make test-notebooks)", command, shown, NOTEBOOK_BUDGET,
                       "nbval.log", {"HW2LIB_PROFILE": "quick"},
                       f"{len(notebooks)} notebooks, quick runs trained from scratch")


def book_row() -> Row:
    complete, unfinished = stored_runs(REPOSITORY / "results" / "full")
    if unfinished:
        return budget_row("book build from stored runs (make book)", None, BOOK_BUDGET, note=(
            "not measured: these stored runs are unfinished, and building would train them: "
            + ", ".join(path.name for path in unfinished)))
    with tempfile.TemporaryDirectory(prefix="hw2book-build-") as output:
        command = [str(Path(sys.executable).parent / "jupyter-book"), "build", "book", "--config", "_config.yml",
                   "--path-output", output]
        shown = "jupyter-book build book --config _config.yml --path-output <a new temporary folder>"
        return command_row("book build from stored runs (make book)", command, shown, BOOK_BUDGET, "book.log",
                           {"HW2LIB_PROFILE": "full"}, f"{len(complete)} stored runs, every notebook executed "
                           "(execute_notebooks: force), a fresh build folder")


def reproduction_row() -> Row:
    """The sum of the stored runs' wall times; a resumed run's wall time covers only its last part,
    so for those the sum of the per-epoch seconds is used when it is larger."""
    complete, unfinished = stored_runs(REPOSITORY / "results" / "full")
    total, resumed, threads, by_kind = 0.0, [], set(), {}
    for run in complete:
        metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
        seconds = float(metrics.get("wall_seconds") or 0.0)
        if metrics.get("resumed_from_checkpoint"):
            seconds = max(seconds, sum(float(row.get("seconds") or 0.0) for row in metrics.get("history", [])))
            resumed.append(run.name)
        threads.add(str(metrics.get("cpu_threads", "?")))
        total += seconds
        kind = run.name.split("-", 1)[0]  # cnn, fc, seq2seq
        count, kind_seconds = by_kind.get(kind, (0, 0.0))
        by_kind[kind] = (count + 1, kind_seconds + seconds)
    note = (f"not rerun: sum of wall_seconds in results/full/*/metrics.json over {len(complete)} complete runs "
            f"(trained with {', '.join(sorted(threads)) or '?'} torch thread(s) each, possibly side by side with "
            f"other work); by model: " + ", ".join(f"{kind} {count} runs {format_seconds(kind_seconds)}"
                                                   for kind, (count, kind_seconds) in sorted(by_kind.items())))
    if resumed:
        note += f"; resumed runs counted by their per-epoch seconds: {', '.join(resumed)}"
    if unfinished:
        note += f"; INCOMPLETE, not yet stored: {', '.join(path.name for path in unfinished)} (so a lower bound)"
    note += ("; training times one after another, not the wall time of `make reproduce`, which runs two streams "
             "at once: that one is measured by `python -m bench.end_to_end --reproduce` (bench/REPRODUCE.md), and "
             f"cannot be shorter than half this sum, {format_seconds(total / 2)}, unless the runs themselves train "
             "faster")
    row = budget_row("training time recorded by the stored runs (sum, informational)", total if complete else None,
                     REPRODUCTION_BUDGET, note=note, lower_bound=bool(unfinished))
    row.goal, row.passed = "", None  # the goal is judged on the measured `make reproduce`
    return row


def measured_reproduction_row(keep: Path | None = None) -> Row:
    """``make reproduce`` from an empty results folder: every full-profile experiment trained again
    (into ``keep`` when given, which is then kept)."""
    command = ["make", "--no-print-directory", "reproduce", f"PY={sys.executable}"]
    return command_row("full reproduction of every experiment (make reproduce), measured", command,
                       "make reproduce", REPRODUCTION_BUDGET, "reproduce.log", {"HW2LIB_PROFILE": "full"},
                       "every full-profile run trained again from an empty results folder, two streams of one "
                       "thread each", stored_runs=False, inspect=compare_with_stored, keep=keep)


def run(quick: bool = False, notebooks: bool = True, book: bool = True) -> list[Row]:
    """Measure; return the table's rows (``quick`` skips the two commands)."""
    rows = []
    if notebooks and not quick:
        rows.append(notebooks_row())
    else:
        rows.append(budget_row("nbval, every notebook, quick profile (make test-notebooks)", None, NOTEBOOK_BUDGET,
                               note="skipped (`--quick` or `--skip-notebooks`)"))
    if book and not quick:
        rows.append(book_row())
    else:
        rows.append(budget_row("book build from stored runs (make book)", None, BOOK_BUDGET,
                               note="skipped (`--quick` or `--skip-book`)"))
    rows.append(reproduction_row())
    return rows


def main() -> int:
    parser = standard_arguments("End-to-end times: notebooks under nbval, the book build, the full reproduction")
    parser.add_argument("--skip-notebooks", action="store_true", help="do not run nbval")
    parser.add_argument("--skip-book", action="store_true", help="do not build the book")
    parser.add_argument("--reproduce", action="store_true",
                        help="only time `make reproduce` from an empty results folder (about twenty minutes)")
    parser.add_argument("--keep", type=Path, default=None, metavar="FOLDER",
                        help="with --reproduce: train into FOLDER (new) and keep it, e.g. to inspect a difference")
    arguments = parser.parse_args()
    prepare_environment(arguments.threads)
    if arguments.reproduce:
        rows = [measured_reproduction_row(arguments.keep)]
    else:
        rows = run(arguments.quick, notebooks=not arguments.skip_notebooks, book=not arguments.skip_book)
    report(rows, machine_description(), arguments.markdown, "End-to-end times")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Where you are: the first cell of every chapter notebook says what running it will do.

``where_you_are("ch2")`` prints the profile, which of the chapter's stored runs are in the results
folder and which are missing, whether running the notebook will train anything and about how long
that takes, and how to switch to the other profile. It reads the results folder and writes nothing;
the rendered book hides the cell (it speaks to a reader who runs the notebook).

Each chapter's runs are the ``chapter_plan`` of its experiments module (:mod:`hw2lib.cnn_runs`,
:mod:`hw2lib.seq2seq_runs`, :mod:`hw2lib.seed_runs`); a run is found when the folder its
configuration keys holds a complete run (:func:`hw2lib.runs.load_run`). Times come from the stored
runs themselves (:func:`hw2lib.runs.comparable_run`): epochs times seconds per epoch of the most
similar stored run in the same results folder, else of the repository's full-profile runs scaled
to the run's training size, measured on the machine that trained them.
"""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from . import cnn_runs, seed_runs, seq2seq_runs
from .download import DataError
from .runs import (PROFILE_VARIABLE, REPOSITORY_ROOT, RESULTS_VARIABLE, comparable_run, load_run, profile,
                   results_dir, run_folder)

CHAPTERS = {"ch1": "Chapter 1", "ch2": "Chapter 2", "ch3": "Chapter 3", "appendix": "The appendix"}
PROFILE_MEANINGS = {"full": "the homework's settings, the numbers the book prints",
                    "quick": "tiny models trained in seconds; their numbers are not the book's"}
# The appendix's reproducibility check trains the chapter 2 CNN for one epoch, twice, on purpose.
APPENDIX_REPLAY_EPOCHS = 2
WIDTH = 100  # characters a printed line holds


@dataclass
class MissingRun:
    """A run the notebook will train: its folder name, epochs and the estimated seconds (None: unknown)."""

    folder: str
    epochs: int | None
    seconds: float | None
    like: str | None = None  # the stored run the estimate comes from
    like_threads: int | None = None
    at_most: bool = False  # an upper bound: the stored run trained on more examples than this one will


@dataclass
class ChapterStatus:
    """What :func:`where_you_are` prints, as data."""

    chapter: str
    profile: str
    results: Path
    found: list[str] = field(default_factory=list)
    missing: list[MissingRun] = field(default_factory=list)
    problem: str | None = None  # the one line that stops the chapter (its data cannot be had)
    replay_seconds: float | None = None  # the appendix's deliberate one-epoch replays

    @property
    def training_seconds(self) -> float | None:
        """Seconds of training the notebook will do in all; None when a part cannot be estimated."""
        parts = [run.seconds for run in self.missing]
        return None if any(part is None for part in parts) else sum(parts)


def chapter_plan(chapter: str, profile_name: str, *, variant: str | None = None) -> list[tuple[str, dict]]:
    """(run name, configuration) of every stored run ``chapter`` reads, as its experiments module lists
    them; ``variant`` is chapter 2's data (default: that of the stored runs, so nothing is probed for)."""
    if chapter not in CHAPTERS:
        raise ValueError(f"unknown chapter {chapter!r}; choose one of {', '.join(CHAPTERS)}")
    if chapter == "ch1":
        return []
    if chapter == "ch2":
        return cnn_runs.chapter_plan(variant=variant or seed_runs.CNN_VARIANT, profile=profile_name)
    if chapter == "ch3":
        return seq2seq_runs.chapter_plan(profile=profile_name)
    return seed_runs.chapter_plan(profile=profile_name)


def chapter_status(chapter: str, *, profile_name: str | None = None, variant: str | None = None) -> ChapterStatus:
    """Which of ``chapter``'s stored runs are found and what the missing ones cost (reads only)."""
    chosen = profile() if profile_name is None else profile_name
    status = ChapterStatus(chapter, chosen, results_dir(chosen))
    try:
        plan = chapter_plan(chapter, chosen, variant=variant)
    except DataError as error:
        status.problem = str(error)
        return status
    for name, config in plan:
        folder = run_folder(name, config)
        if load_run(folder) is not None:
            status.found.append(folder.name)
        else:
            status.missing.append(_estimate(folder, config))
    if chapter == "appendix":
        cnn = seed_runs.base_config("cnn", profile=chosen)
        like = comparable_run(run_folder(cnn_runs.run_name(cnn), cnn), cnn)
        status.replay_seconds = None if like is None else APPENDIX_REPLAY_EPOCHS * like[1]
    return status


def _estimate(folder: Path, config: dict) -> MissingRun:
    """The missing run's cost: its epochs times the seconds per epoch of the most similar stored run in
    its own results folder, else in the repository's full-profile runs scaled to its training size."""
    epochs = config.get("epochs") if isinstance(config.get("epochs"), int) else None
    for results in dict.fromkeys([folder.parent, REPOSITORY_ROOT / "results" / "full"]):
        like = comparable_run(results / folder.name, config)
        if like is not None and epochs is not None:
            stored = load_run(results / like[0])
            ratio, exact = (1.0, True) if results == folder.parent else _size_ratio(config, stored)
            threads = stored.metrics.get("cpu_threads")
            return MissingRun(folder.name, epochs, epochs * like[1] * ratio, like[0],
                              threads if isinstance(threads, int) else None, at_most=not exact)
    return MissingRun(folder.name, epochs, None)


def _size_ratio(config: dict, stored) -> tuple[float, bool]:
    """(training examples of ``config`` / those of the stored run, whether that ratio is known); an
    unknown ratio counts as 1, an upper bound, since only the quick profile trains on fewer."""
    for key in ("train_examples", "train_pairs"):
        if key in config:
            mine, theirs = config[key], stored.config.get(key) or stored.metrics.get(key)
            if mine is None or theirs is None:
                return 1.0, mine == stored.config.get(key)
            return mine / theirs, True
    return 1.0, False


def about(seconds: float) -> str:
    """A duration as a person says it: "a few seconds", "about 40 seconds", "about 7 minutes", "about 1.5 hours"."""
    if seconds < 10:
        return "a few seconds"
    if seconds < 90:
        return f"about {5 * round(seconds / 5):.0f} seconds"
    if seconds < 90 * 60:
        return f"about {round(seconds / 60):.0f} minutes"
    return f"about {seconds / 3600:.1f} hours"


def _shown(path: Path) -> str:
    """``results/full`` inside the repository, else the absolute folder (named as HW2LIB_RESULTS when set)."""
    try:
        text = path.resolve().relative_to(REPOSITORY_ROOT.resolve()).as_posix()
    except ValueError:
        text = str(path)
    return f"{text} ({RESULTS_VARIABLE})" if os.environ.get(RESULTS_VARIABLE, "").strip() else text


def _wrapped(names: list[str], width: int = WIDTH) -> list[str]:
    lines, line = [], ""
    for name in names:
        piece = name if not line else f", {name}"
        if line and len(line) + len(piece) > width - 2:
            lines.append("  " + line + ",")
            line, piece = "", name
        line += piece
    return lines + (["  " + line] if line else [])


def format_status(status: ChapterStatus) -> str:
    """The lines :func:`where_you_are` prints."""
    title = CHAPTERS[status.chapter]
    if status.chapter == "ch1":
        return textwrap.fill(f"{title}: nothing will be trained; this chapter reads no stored runs, and every "
                             "result is computed as its cells run, in seconds.", WIDTH)
    lines = [textwrap.fill(f"{title}, profile {status.profile!r} ({PROFILE_MEANINGS[status.profile]}); stored "
                           f"runs are read from {_shown(status.results)}.", WIDTH)]
    if status.problem:
        return "\n".join(lines + [f"This chapter cannot run here: {status.problem}"])
    total = len(status.found) + len(status.missing)
    if status.missing:
        lines += _missing_lines(status, total)
    else:
        every = "Both" if total == 2 else f"All {total}"
        outcome = ("nothing will be trained" if status.replay_seconds is None else
                   "nothing will be trained but the reproducibility check at the end, which trains one epoch "
                   f"twice on purpose ({about(status.replay_seconds)})")
        lines.append(textwrap.fill(f"{every} of its stored runs are there, so {outcome}:", WIDTH))
        lines += _wrapped(status.found)
    lines += _switch_lines(status.profile)
    return "\n".join(lines)


def _missing_lines(status: ChapterStatus, total: int) -> list[str]:
    lines = [textwrap.fill(f"{len(status.found)} of its {total} stored runs are there; running the notebook will "
                           f"train the {len(status.missing)} missing, with a notice and a progress bar for each:", WIDTH)]
    for run in status.missing:
        epochs = "epochs unknown" if run.epochs is None else f"{run.epochs} epoch{'s' if run.epochs != 1 else ''}"
        cost = ("time unknown (no comparable stored run)" if run.seconds is None else
                f"at most {about(run.seconds).removeprefix('about ')}" if run.at_most else about(run.seconds))
        lines.append(f"  {run.folder}: {epochs}, {cost}")
    total_seconds = status.training_seconds
    if total_seconds is not None:
        measured = {(run.like, run.like_threads) for run in status.missing}
        threads = sorted({count for _, count in measured if count is not None})
        on = f" on {'/'.join(map(str, threads))} CPU thread{'s' if threads != [1] else ''}" if threads else ""
        bound = "at most " + about(total_seconds).removeprefix("about ") if any(run.at_most for run in status.missing) \
            else about(total_seconds)
        lines.append(textwrap.fill(f"In all {bound}, judged by the epoch times of similar stored runs (measured{on} "
                                   "of the machine that trained them; a slower or busier computer takes longer).",
                                   WIDTH))
    return lines


def _switch_lines(current: str) -> list[str]:
    other = "quick" if current == "full" else "full"
    return [f"For the {other} profile ({PROFILE_MEANINGS[other]}):",
            f"  add a cell above this one holding `%env {PROFILE_VARIABLE}={other}` and choose Run > Run All Cells,",
            f"  or start JupyterLab with `{PROFILE_VARIABLE}={other} make lab`."]


def where_you_are(chapter: str, *, variant: str | None = None) -> None:
    """Print where a chapter notebook stands (its first cell calls this): see the module's docstring."""
    print(format_status(chapter_status(chapter, variant=variant)))

"""What every benchmark shares: the machine description, rows with goals, tables, timing."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch

from hw2lib.utils import write_text_atomically

REPOSITORY = Path(__file__).resolve().parents[1]


def prepare_environment(threads: int | None = None) -> int:
    """Set torch's threads (every core by default); returns them. The data layer finds the course
    mirror itself (hw2lib.download.mirror)."""
    threads = threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    return threads


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block on ``threads`` torch threads (None: leave the process's setting), then restore it."""
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


# Another training run, as far as the CPU can tell: float32 matrix products on one thread, until the
# parent (the benchmark) ends. It says "ready" once torch is imported and the loop is about to start.
BUSY_WORKER = """
import os, sys
import torch
torch.set_num_threads(1)
parent = int(sys.argv[1])
left, right = torch.randn(256, 256), torch.randn(256, 256)
print("ready", flush=True)
while os.getppid() == parent:
    for _ in range(20):
        left @ right
"""


@contextlib.contextmanager
def competing_load(cores: int = 1) -> Iterator[str]:
    """Keep ``cores`` cores busy while the block runs, as a second training run on the machine
    would: one process each, multiplying float32 matrices on one thread. They are stopped when the
    block ends (and stop by themselves if this process dies). Yields a description for the notes."""
    if cores < 1:
        raise ValueError(f"cores must be at least 1, got {cores}")
    workers = [subprocess.Popen([sys.executable, "-c", BUSY_WORKER, str(os.getpid())], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) for _ in range(cores)]
    try:
        for worker in workers:
            if worker.stdout is None or worker.stdout.readline().strip() != "ready":
                raise RuntimeError("a competing-load process did not start (it could not import torch)")
        yield (f"busy machine: {cores} other process{'es' if cores > 1 else ''} kept {cores} of the "
               f"{os.cpu_count()} cores busy (float32 256x256 matrix products on one thread, like a second training run)")
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            try:
                worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
            if worker.stdout is not None:
                worker.stdout.close()


def cpu_model() -> str:
    """The CPU's name from /proc/cpuinfo (Linux), else what the platform module knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine_description() -> dict[str, str]:
    """The facts that make a timing meaningful: CPU, cores, threads, torch, load when measured."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cores": str(os.cpu_count()),
        "torch threads": str(torch.get_num_threads()),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load average at start (1/5/15 min)": " / ".join(f"{value:.2f}" for value in load),
    }


@dataclass
class Row:
    """One line of the table: what was measured, against what, the ratio, and the goal if any.

    ``ratio`` is always "bigger is better" for speed rows (project speed / reference speed);
    for time-budget rows it is measured time / budget (below 1 passes).
    """

    benchmark: str
    measured: str
    reference: str
    ratio: float | None
    ratio_text: str = ""
    goal: str = ""
    passed: bool | None = None
    note: str = ""
    spread: str = ""  # how much the ratio moved between rounds: "lowest-highest (N rounds)"

    @property
    def verdict(self) -> str:
        return "" if self.passed is None else ("PASS" if self.passed else "SHORT")


def speed_row(benchmark: str, measured: str, reference: str, ratio: float, *, at_least: float | None = None,
              note: str = "", spread: str = "") -> Row:
    """A row whose ratio is a speed-up (``at_least``: the goal, a minimum ratio; ``spread``: see
    :func:`spread_text`)."""
    goal = f">= {at_least:g}x" if at_least is not None else ""
    passed = None if at_least is None else ratio >= at_least
    return Row(benchmark, measured, reference, ratio, f"{ratio:.2f}x", goal, passed, note, spread)


def spread_text(values: Sequence[float], percent: bool = False) -> str:
    """The range of a ratio over its rounds, as the table shows it: ``1.41-1.80 (9 rounds)``."""
    low, high = min(values), max(values)
    shown = f"{low:.1%}-{high:.1%}" if percent else f"{low:.2f}-{high:.2f}"
    return f"{shown} ({len(values)} round{'s' if len(values) != 1 else ''})"


def budget_row(benchmark: str, seconds: float | None, budget_seconds: float, *, note: str = "",
               lower_bound: bool = False, failed: bool = False) -> Row:
    """A row for a wall time against a budget; ``seconds=None`` means it was not measured.

    ``lower_bound``: the true time is at least ``seconds`` (a run stopped at its timeout, a sum
    with runs missing): it fails when it is already over budget and is undecided otherwise.
    ``failed``: the command did not succeed, so the goal is not met whatever the time."""
    budget = f"< {format_seconds(budget_seconds)}"
    if seconds is None:
        return Row(benchmark, "not measured", f"budget {format_seconds(budget_seconds)}", None, "", budget, None, note)
    ratio = seconds / budget_seconds
    measured = f">= {format_seconds(seconds)}" if lower_bound else format_seconds(seconds)
    if failed:
        passed = False
    elif lower_bound:
        passed = False if ratio >= 1 else None
    else:
        passed = ratio < 1
    return Row(benchmark, measured, f"budget {format_seconds(budget_seconds)}", ratio,
               f"{ratio:.2f} of budget", budget, passed, note)


def format_seconds(seconds: float) -> str:
    if seconds >= 90:
        return f"{seconds / 60:.1f} min"
    if seconds >= 1:
        return f"{seconds:.1f} s"
    return f"{seconds * 1000:.1f} ms"


def format_rate(per_second: float, unit: str) -> str:
    return f"{per_second:,.0f} {unit}/s" if per_second >= 100 else f"{per_second:.1f} {unit}/s"


@dataclass
class Comparison:
    """What :func:`interleaved` measured: each candidate's median and best speed, and the median,
    lowest and highest of its per-round ratios to the reference (the first candidate)."""

    speeds: dict[str, float]
    ratios: dict[str, float]
    lowest: dict[str, float]
    highest: dict[str, float]
    best_speeds: dict[str, float]
    rounds: dict[str, list[float]] = field(default_factory=dict)  # every round's speed, in order

    def spread(self, name: str) -> str:
        return f"per-round ratios {self.lowest[name]:.2f}-{self.highest[name]:.2f}"

    def ratio_spread(self, name: str) -> str:
        """The spread of ``name``'s per-round ratios to the reference (:func:`spread_text`)."""
        return self.ratio_between(name, next(iter(self.rounds)))[1]

    def ratio_between(self, name: str, other: str) -> tuple[float, str]:
        """Median and spread of ``name``'s speed over ``other``'s, round by round."""
        ratios = [value / base for value, base in zip(self.rounds[name], self.rounds[other])]
        return statistics.median(ratios), spread_text(ratios)


def interleaved(candidates: dict[str, Callable[[], float]], rounds: int, warmup_rounds: int = 1) -> Comparison:
    """Run the ``candidates`` in turn, ``rounds`` times, and compare each with the first (the reference).

    Each callable returns a speed (bigger is better). Alternating keeps a change in the
    machine's load from favouring one side; the warm-up rounds (oneDNN primitive creation,
    allocator growth) are run and thrown away.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    for _ in range(warmup_rounds):
        for candidate in candidates.values():
            candidate()
    speeds: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, candidate in candidates.items():
            speeds[name].append(candidate())
    reference = speeds[next(iter(candidates))]
    ratios = {name: [value / base for value, base in zip(values, reference)] for name, values in speeds.items()}
    return Comparison({name: statistics.median(values) for name, values in speeds.items()},
                      {name: statistics.median(values) for name, values in ratios.items()},
                      {name: min(values) for name, values in ratios.items()},
                      {name: max(values) for name, values in ratios.items()},
                      {name: max(values) for name, values in speeds.items()}, speeds)


def timed(function: Callable[[], object]) -> tuple[float, object]:
    """Wall seconds of one call and its result."""
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


EXPLANATION = (
    "Every speed is a ratio against a reference measured in the same process, on the same data, "
    "alternating with it round by round (so a change in the machine's load hits both): "
    "ratio = project speed / reference speed (the median over the rounds), or for end-to-end rows "
    "measured time / budget; spread = the lowest and highest ratio of a single round, which says how "
    "much a rerun may differ. Regenerate with the command below (`make bench`)."
)

COLUMNS = ("benchmark", "measured", "reference", "ratio", "spread", "goal", "verdict")


def _cells(row: Row) -> list[str]:
    return [row.benchmark, row.measured, row.reference, row.ratio_text, row.spread, row.goal, row.verdict]


def text_table(rows: Sequence[Row]) -> str:
    """The rows as an aligned plain-text table, notes below it."""
    cells = [list(COLUMNS)] + [_cells(row) for row in rows]
    widths = [max(len(line[column]) for line in cells) for column in range(len(COLUMNS))]
    lines = ["  ".join(value.ljust(width) for value, width in zip(line, widths)).rstrip() for line in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    notes = [f"  [{number}] {row.benchmark}: {row.note}" for number, row in enumerate(rows, 1) if row.note]
    return "\n".join(lines + ([""] + notes if notes else []))


GOAL_COLUMNS = ("benchmark", "measured", "ratio", "spread", "goal", "verdict")
OTHER_COLUMNS = ("benchmark", "measured", "reference", "ratio", "spread")
NOTES_SUMMARY = "How each row was measured"


def _markdown_rows(columns: Sequence[str], rows: Sequence[Row]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join(" --- " for _ in columns) + "|"]
    for row in rows:
        cells = dict(zip(COLUMNS, _cells(row)))
        lines.append("| " + " | ".join(cells[column].replace("|", "\\|") for column in columns) + " |")
    return lines


def markdown_table(rows: Sequence[Row]) -> str:
    """The rows as Markdown for a reader: first the rows with a goal (what was measured, the ratio
    and its spread, the goal and the verdict), then, under their own heading, the informational rows
    (with the reference they were measured against); the notes last, folded (a ``<details>`` block,
    which GitHub and the book both render), since they are for whoever reruns a row.

    Two narrower tables instead of one with every column: the book's text column holds five or six
    columns without scrolling sideways, not seven."""
    with_goal, without_goal = [row for row in rows if row.goal], [row for row in rows if not row.goal]
    if with_goal and without_goal:
        lines = (["## Goals", ""] + _markdown_rows(GOAL_COLUMNS, with_goal)
                 + ["", "## Other measurements", ""] + _markdown_rows(OTHER_COLUMNS, without_goal))
    elif with_goal:
        lines = _markdown_rows(GOAL_COLUMNS, with_goal)
    else:
        lines = _markdown_rows(OTHER_COLUMNS, without_goal)
    notes = [f"- **{row.benchmark}**: {row.note}" for row in rows if row.note]
    if notes:
        lines += ["", f"<details><summary>{NOTES_SUMMARY}</summary>", ""] + notes + ["", "</details>"]
    return "\n".join(lines)


def header_lines(machine: dict[str, str], command: str) -> list[str]:
    return [f"command: {command}"] + [f"{key}: {value}" for key, value in machine.items()]


def markdown_document(rows: Sequence[Row], machine: dict[str, str], command: str, title: str) -> str:
    header = "\n".join(f"- {line}" for line in header_lines(machine, f"`{command}`"))
    return f"# {title}\n\n{EXPLANATION}\n\n{header}\n\n{markdown_table(rows)}\n"




def command_line() -> str:
    """The command as typed (``python -m bench ...`` when run as a module)."""
    program = Path(sys.argv[0])
    if program.name == "__main__.py":
        program_text = f"python -m {program.parent.name}"
    elif program.parent.name == "bench" and program.stem != "run_all":
        program_text = f"python -m bench.{program.stem}"
    else:
        inside = program.is_absolute() and REPOSITORY in program.parents
        program_text = f"python {program.relative_to(REPOSITORY) if inside else program}"
    return " ".join([program_text, *sys.argv[1:]])


def standard_arguments(description: str) -> argparse.ArgumentParser:
    """The options every benchmark script accepts."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds (numbers not meaningful)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: all cores, os.cpu_count())")
    parser.add_argument("--markdown", type=Path, default=None, metavar="FILE",
                        help="also write the table as Markdown to FILE")
    return parser


def report(rows: Sequence[Row], machine: dict[str, str], markdown: Path | None, title: str) -> None:
    """Print the table with its header; write the Markdown file if asked."""
    command = command_line()
    print()
    print(title)
    print("\n".join(header_lines(machine, command)))
    print()
    print(text_table(rows))
    if markdown is not None:
        write_text_atomically(markdown_document(rows, machine, command, title), markdown)
        print(f"\nwritten: {markdown}")

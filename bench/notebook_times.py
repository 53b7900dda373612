"""Each notebook run top to bottom on the stored runs, as a student runs it after ``make lab``: the
full profile, nothing to train, every notebook against a one-minute budget.

Each notebook runs in a fresh kernel in its own folder (nbclient, as Jupyter Book and nbval run it;
nothing is written back), in a process started like the end-to-end rows' commands
(:func:`bench.end_to_end.command_row`): ``HW2LIB_RESULTS`` points at a copy of the complete stored
runs, so ``results/`` is not touched, and a run the notebook had to train is named in the note.
The time counts starting Python and the kernel. Logs go to ``bench/out/notebook-<name>.log``.

Run alone: ``python -m bench.notebook_times [--quick] [--markdown FILE]``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .common import REPOSITORY, Row, budget_row, machine_description, prepare_environment, report, standard_arguments
from .end_to_end import command_row, stored_runs

NOTEBOOK_BUDGET = 60  # seconds per notebook, from the issue: "under a minute per chapter"
BOOK = REPOSITORY / "book"


def notebooks() -> list[Path]:
    return sorted(BOOK.glob("*.ipynb"))


def execute(path: Path) -> int:
    """Run ``path`` top to bottom in a fresh kernel in its folder, without saving; 0 when every cell ran."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    notebook = nbformat.read(path, as_version=4)
    started = time.perf_counter()
    try:
        # No limit per cell: the row's command is stopped at twice the budget (end_to_end.TIMEOUT_FACTOR).
        NotebookClient(notebook, timeout=None, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    except CellExecutionError as error:
        print(f"{path.name}: a cell failed: {error.ename}: {error.evalue}")
        return 1
    print(f"{path.name}: every cell ran in {time.perf_counter() - started:.1f} s")
    return 0


def nothing_trained(results: Path) -> str:
    """What the notebook added to the copy of the stored runs: nothing, or the runs it trained."""
    stored = {path.name for path in stored_runs(REPOSITORY / "results" / "full")[0]}
    trained = sorted(path.name for path in stored_runs(results)[0] if path.name not in stored)
    return "nothing trained" if not trained else f"TRAINED {len(trained)} run(s): {', '.join(trained)}"


def notebook_row(path: Path) -> Row:
    command = [sys.executable, "-m", "bench.notebook_times", "--execute", str(path.relative_to(REPOSITORY))]
    return command_row(f"notebook top to bottom on the stored runs: {path.stem} (full profile)", command,
                       f"python -m bench.notebook_times --execute {path.relative_to(REPOSITORY)}", NOTEBOOK_BUDGET,
                       f"notebook-{path.stem}.log", {"HW2LIB_PROFILE": "full"},
                       "a fresh kernel, every cell, including starting Python and the kernel", inspect=nothing_trained)


def run(quick: bool = False) -> list[Row]:
    """One row per notebook (``quick``: listed, not measured)."""
    if quick:
        return [budget_row(f"notebook top to bottom on the stored runs: {path.stem} (full profile)", None,
                           NOTEBOOK_BUDGET, note="skipped (`--quick`)") for path in notebooks()]
    rows = []
    for path in notebooks():
        print(f"  {path.name} ...", flush=True)
        rows.append(notebook_row(path))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = standard_arguments("Each notebook run top to bottom on the stored runs, against a one-minute budget")
    parser.add_argument("--execute", type=Path, default=None, metavar="NOTEBOOK",
                        help="run one notebook (what each row times) and exit")
    arguments = parser.parse_args(argv)
    if arguments.execute is not None:
        return execute(arguments.execute)
    prepare_environment(arguments.threads)
    machine = machine_description()
    report(run(arguments.quick), machine, arguments.markdown, "Notebooks on the stored runs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Run every benchmark and print one table: ``python -m bench`` or ``python bench/run_all.py``.

Options: ``--quick`` (a smoke run of a few seconds; its numbers mean nothing), ``--markdown FILE``
(also write the table as Markdown), ``--only cnn,seq2seq,live,pages,e2e`` (a subset), ``--threads N``
(default: all cores), ``--skip-notebooks`` / ``--skip-book`` (the two slow end-to-end commands).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable as the package root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    __package__ = "bench"

from bench import cnn_speed, cnn_steps, end_to_end, live_speed, notebook_times, page_weight, seq2seq_speed  # noqa: E402
from bench.common import Row, machine_description, prepare_environment, report, standard_arguments  # noqa: E402

BENCHMARKS = ("cnn", "seq2seq", "live", "pages", "e2e")


def main(argv: list[str] | None = None) -> int:
    parser = standard_arguments("Every hw2lib speed benchmark, as ratios against references run in the same process")
    parser.add_argument("--only", default=",".join(BENCHMARKS),
                        help=f"comma-separated subset of {', '.join(BENCHMARKS)} (default: all)")
    parser.add_argument("--skip-notebooks", action="store_true", help="e2e: do not run nbval over the notebooks")
    parser.add_argument("--skip-book", action="store_true", help="e2e: do not build the book")
    arguments = parser.parse_args(argv)
    chosen = [name.strip() for name in arguments.only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown or not chosen:
        parser.error(f"--only takes names from {', '.join(BENCHMARKS)}; got {arguments.only!r}")
    threads = prepare_environment(arguments.threads)
    machine = machine_description()  # before measuring: the load average is the one we started under
    rows: list[Row] = []
    if "cnn" in chosen:
        print("measuring CNN training ...", flush=True)
        rows += cnn_speed.run(arguments.quick)
        print("measuring a CNN training step, part by part ...", flush=True)
        rows += cnn_steps.run(arguments.quick)
        print("measuring CNN training and its steps on a busy machine ...", flush=True)
        rows += cnn_speed.run(arguments.quick, busy=True) + cnn_steps.run(arguments.quick, busy=True)
    if "seq2seq" in chosen:
        print("measuring the translator ...", flush=True)
        rows += seq2seq_speed.run(arguments.quick)
    if "live" in chosen:
        print("measuring the live panels in Chromium ...", flush=True)
        rows += live_speed.run(arguments.quick)
    if "pages" in chosen:
        print("measuring the rendered book's page weights in Chromium ...", flush=True)
        rows += page_weight.run(arguments.quick)
    if "e2e" in chosen:
        print("measuring end-to-end times ...", flush=True)
        rows += end_to_end.run(arguments.quick, notebooks=not arguments.skip_notebooks, book=not arguments.skip_book)
        if not arguments.skip_notebooks:
            print("measuring each notebook on the stored runs ...", flush=True)
            rows += notebook_times.run(arguments.quick)
    title = f"hw2lib benchmarks ({threads} torch threads)"
    if arguments.quick:
        title += " -- QUICK SMOKE RUN, numbers not meaningful"
    report(rows, machine, arguments.markdown, title)
    goals = [row for row in rows if row.passed is not None]
    short = [row for row in goals if not row.passed]
    print(f"\ngoals: {len(goals) - len(short)} PASS, {len(short)} SHORT"
          + (f" ({'; '.join(row.benchmark for row in short)})" if short else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The command line, ``python -m hw2lib <command>``: train (or load) and store the book's runs.

Explained in chapter 2 ("Reproducing the runs"). Commands:

* ``cnn`` -- one KMNIST configuration (chapter 2);
* ``sweep`` -- every run of chapter 2, then a summary table;
* ``seq2seq`` -- the translators of chapter 3;
* ``seeds`` -- the appendix's runs with other seeds.

Adding a command: write ``add_<name>_command(subparsers)`` that creates its subparser
with ``subparsers.add_parser(...)`` and sets ``handler=<function(args) -> int>`` with
``set_defaults``, then list it in :data:`COMMANDS`. A handler reports bad input by
raising :class:`CommandError` (or ValueError / DataError); :func:`main` prints one
line and exits with status 2 (bad arguments) or 1 (data or run failure), no traceback.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from typing import Callable, Sequence

from .download import DataError
from .kmnist import VARIANTS


class CommandError(Exception):
    """Bad input found after parsing; its message is printed as the one error line."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage block) and exit status 2."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # So that "--lr -5e-4" reaches the lr check instead of "expected one argument"
        # (argparse's default pattern knows no exponent).
        self._negative_number_matcher = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def whole_number(low: int, high: int) -> Callable[[str], int]:
    """argparse type: a whole number from ``low`` to ``high``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be a whole number from {low} to {high}, got {text}")
        return value

    return parse


MAX_EPOCHS = 1000
MAX_THREADS = 4 * (os.cpu_count() or 1)  # torch crashes on absurd thread counts; more than the cores never helps


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """Options every training command shares: profile, device, threads, progress."""
    parser.add_argument("--profile", choices=("full", "quick"), default=None,
                        help="full: the homework's settings; quick: seconds (default: $HW2LIB_PROFILE or full)")
    parser.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda or mps")
    parser.add_argument("--threads", type=whole_number(1, MAX_THREADS), default=None, help=(
        f"CPU threads for torch, 1 to {MAX_THREADS} (default: torch's own choice, every core, the fastest for one run at a time; "
        "give 1 when two trainings share the machine, as make reproduce does, or to repeat the stored runs "
        "bit for bit: they were trained on one thread)"))
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_cnn_command(subparsers) -> None:
    """``cnn``: one KMNIST configuration (Chapter 2)."""
    parser = subparsers.add_parser("cnn", help="train (or load) one KMNIST run", description=(
        "Train one KMNIST configuration and store it under results/<profile>/; a stored run with the "
        "same configuration is loaded instead."))
    parser.add_argument("--lr", type=positive_float, default=5e-4, help="learning rate (default 5e-4)")
    parser.add_argument("--epochs", type=whole_number(1, MAX_EPOCHS), default=None,
                        help=f"epochs, 1 to {MAX_EPOCHS} (default: the profile's)")
    parser.add_argument("--variant", choices=("auto", *VARIANTS), default="auto", help="KMNIST data variant")
    parser.add_argument("--model", choices=("cnn", "fc"), default="cnn", help="the CNN or the fully connected baseline")
    parser.add_argument("--permuted", action="store_true", help="shuffle the pixels (one fixed permutation)")
    parser.add_argument("--retrain", action="store_true", help="train again even if the run is stored")
    add_common_options(parser)
    parser.set_defaults(handler=run_cnn_command)


def add_sweep_command(subparsers) -> None:
    """``sweep``: every run of chapter 2."""
    parser = subparsers.add_parser("sweep", help="every run of chapter 2 and a summary table", description=(
        "The three learning rates of Q2.4 and the CNN-vs-FC comparison of Q2.3; stored runs are loaded."))
    parser.add_argument("--variant", choices=("auto", *VARIANTS), default="auto", help="KMNIST data variant")
    add_common_options(parser)
    parser.set_defaults(handler=run_sweep_command)


def _prepare(args: argparse.Namespace) -> dict:
    """Apply --threads and check --device; return the options every run takes."""
    import torch

    from .utils import choose_device

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    choose_device(args.device)  # fails early, with one line, on a device this machine lacks
    return {"variant": args.variant, "profile": args.profile, "device": args.device, "progress": not args.no_progress}


def run_cnn_command(args: argparse.Namespace) -> int:
    from .cnn_runs import get_cnn_run

    options = _prepare(args)
    run = get_cnn_run(args.lr, model=args.model, pixels="permuted" if args.permuted else "original",
                      epochs=args.epochs, retrain=args.retrain, **options)
    metrics = run.metrics

    def shown(value) -> str:  # a diverged run stores null
        return "nan" if value is None else f"{value:.4f}"

    print(f"{run.path.name}: dev accuracy {shown(metrics['dev_accuracy'])}, test accuracy {shown(metrics['test_accuracy'])} "
          f"after {run.config['epochs']} epochs ({metrics['seconds_per_epoch']:.2f} s/epoch) -> {run.path}")
    return 0


def run_sweep_command(args: argparse.Namespace) -> int:
    from .cnn_runs import best_run, chapter_sweep, format_table, summary_rows

    sweep, comparison, probes = chapter_sweep(**_prepare(args))
    print(format_table(summary_rows(sweep, comparison)))
    rate, best = best_run(sweep)
    print(f"best learning rate on dev: {rate:g} ({best.path})")
    for probe_rate, probe in probes.items():
        dead = ", ".join(f"{layer} {fraction:.0%}" for layer, fraction in probe.metrics["dead_units"].items())
        print(f"dead ReLU units after {probe.metrics['steps']} steps at lr {probe_rate:g}: {dead}")
    total = sum(run.metrics["wall_seconds"] for run in {run.path: run for run in
                                                        [*sweep.values(), *comparison.values(), *probes.values()]}.values())
    print(f"training time of all stored runs: {total / 60:.1f} min")
    return 0


def add_seq2seq_command(subparsers) -> None:
    """``seq2seq``: the Spanish -> English translators of chapter 3."""
    parser = subparsers.add_parser("seq2seq", help="train (or load) the chapter 3 translators", description=(
        "Train the character-level translator without (a) and/or with (b) bilinear attention and store it under "
        "results/<profile>/; a stored run with the same configuration is loaded instead."))
    parser.add_argument("--attention", choices=("no", "yes", "both"), default="both",
                        help="model (a) without attention, (b) with it, or both (default)")
    parser.add_argument("--epochs", type=whole_number(1, MAX_EPOCHS), default=None,
                        help=f"epochs, 1 to {MAX_EPOCHS} (default: the profile's)")
    parser.add_argument("--retrain", action="store_true", help="train again even if the run is stored")
    add_common_options(parser)
    parser.set_defaults(handler=run_seq2seq_command, variant="course")


def run_seq2seq_command(args: argparse.Namespace) -> int:
    from .seq2seq_runs import get_seq2seq_run

    options = _prepare(args)
    options.pop("variant")  # the course's files: the only data the homework's numbers refer to
    for attention in {"no": [False], "yes": [True], "both": [False, True]}[args.attention]:
        run = get_seq2seq_run(attention, epochs=args.epochs, retrain=args.retrain, **options)
        metrics = run.metrics
        print(f"{run.path.name}: val error {metrics['val_error']:.4f}, test error {metrics['test_error']:.4f} "
              f"after {run.config['epochs']} epochs ({metrics['seconds_per_epoch']:.2f} s/epoch) -> {run.path}")
    return 0


def add_seeds_command(subparsers) -> None:
    """``seeds``: the appendix's runs with other seeds."""
    from .seed_runs import MAX_SEED, MODELS, SEEDS

    parser = subparsers.add_parser("seeds", help="the appendix's runs with other seeds", description=(
        "Train (or load) the chapters' best runs with other random seeds, one after the other, and print "
        "each one's figures. Runs with a seed other than the chapter's keep their metrics only: their "
        "weights are deleted once the metrics are stored."))
    parser.add_argument("models", nargs="+", choices=MODELS, help="which runs")
    parser.add_argument("--seeds", nargs="+", type=whole_number(0, MAX_SEED), default=list(SEEDS), help=(
        f"seeds to train (default: {' '.join(map(str, SEEDS))})"))
    add_common_options(parser)
    parser.set_defaults(handler=run_seeds_command, variant=None)


def run_seeds_command(args: argparse.Namespace) -> int:
    from .seed_runs import MODEL_METRICS, get_seed_run

    options = _prepare(args)
    options.pop("variant")
    for model in args.models:
        for seed in args.seeds:
            run = get_seed_run(model, seed, **options)
            _, keys, _, _ = MODEL_METRICS[model]
            figures = ", ".join(f"{key} {run.metrics[key]:.4f}" for key in keys)
            print(f"{model} seed {seed}: {figures} ({run.metrics['wall_seconds']:.0f} s) -> {run.path}", flush=True)
    return 0


COMMANDS: list[Callable] = [add_cnn_command, add_sweep_command, add_seq2seq_command, add_seeds_command]


def build_parser() -> argparse.ArgumentParser:
    """The parser with every command of :data:`COMMANDS`."""
    parser = _Parser(prog="python -m hw2lib", description="Train and store the runs of hw2book.")
    subparsers = parser.add_subparsers(dest="command", metavar="command", parser_class=_Parser)
    subparsers.required = True
    for add_command in COMMANDS:
        add_command(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the command; errors are one line on stderr (Chapter 2)."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (CommandError, ValueError) as error:
        print(f"python -m hw2lib {args.command}: error: {error}", file=sys.stderr)
        return 2
    except DataError as error:
        print(f"python -m hw2lib {args.command}: data error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"python -m hw2lib {args.command}: interrupted; run it again to resume from the checkpoint",
              file=sys.stderr)
        return 130

"""The command line, ``python -m hw2lib <command>``: train (or load) and store the book's runs.

Explained in chapter 2 ("Reproducing the runs"). Commands:

* ``cnn`` -- one KMNIST configuration (chapter 2);
* ``sweep`` -- every run of chapter 2, then a summary table;
* ``seq2seq`` -- the translators of chapter 3;
* ``seeds`` -- the appendix's runs with other seeds.

Adding a command: write ``add_<name>_command(subparsers)`` that creates its subparser
with ``subparsers.add_parser(...)`` and sets ``handler=<function(args) -> int>`` with
``set_defaults``, then list it in :data:`COMMANDS`. A handler reports bad input by
raising :class:`CommandError` (or ValueError, or any :class:`~hw2lib.utils.OneLineError`);
:func:`main` prints one line, no traceback, and exits with the status of its kind
(:data:`EXIT_STATUS`).
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from typing import Any, Callable, Sequence

from .download import DataError
from .kmnist import VARIANTS
from .runs import MAX_EPOCHS, METRICS_FILE, Run, TrainingInterrupted, load_run, recovery_advice, run_folder
from .utils import MAX_THREADS, OneLineError, StoredFileError, busy_machine_hint, set_threads

EXIT_BAD_ARGUMENTS = 2
EXIT_INTERRUPTED = TrainingInterrupted.exit_code
#: Exit status of ``python -m hw2lib`` -> what it means.
EXIT_STATUS = {0: "done", EXIT_BAD_ARGUMENTS: "bad arguments: an option, a value or HW2LIB_PROFILE that cannot be used",
               DataError.exit_code: "bad data: a data file is missing, damaged, of the wrong size, or could not be "
                                    "downloaded before its deadline",
               StoredFileError.exit_code: "bad stored run: a file in the results folder is damaged or foreign, or the "
                                          "folder cannot be written",
               EXIT_INTERRUPTED: "interrupted (Ctrl-C): a run keeps its last checkpoint; the same command resumes it"}


class CommandError(OneLineError):
    """Bad input found after parsing; its message is printed as the one error line."""

    exit_code = EXIT_BAD_ARGUMENTS


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage block) and exit status 2."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # So that "--lr -5e-4" reaches the lr check instead of "expected one argument"
        # (argparse's default pattern knows no exponent).
        self._negative_number_matcher = re.compile(r"^-((\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|inf|infinity|nan)$",
                                                   re.IGNORECASE)

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


VARIANT_HELP = ("KMNIST data variant; auto: a variant whose run is already stored (the course split first, no "
                "download), else the course split when its 60,000 training images can be had, else kmnist-t10k")
RETRAIN_HELP = ("train again even if the run is stored; the stored run is replaced only once the new one is "
                "complete (and stays if training fails)")


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """Options every training command shares: profile, device, threads, progress."""
    parser.add_argument("--profile", choices=("full", "quick"), default=None,
                        help="full: the homework's settings; quick: seconds (default: $HW2LIB_PROFILE or full)")
    parser.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda or mps")
    parser.add_argument("--threads", type=whole_number(1, MAX_THREADS), default=None, help=(
        f"CPU threads for torch, 1 to {MAX_THREADS} (default: torch's own choice, every core, the fastest for one run at a time; "
        "give 1 when two trainings share the machine, as make reproduce does, or to repeat the stored runs "
        "bit for bit: they were trained on one thread)"))
    parser.add_argument("--no-progress", action="store_true", help=(
        "no per-batch progress bars: one progress line per run that trains (for logs)"))


def add_cnn_command(subparsers) -> None:
    """``cnn``: one KMNIST configuration (chapter 2)."""
    parser = subparsers.add_parser("cnn", help="train (or load) one KMNIST run", description=(
        "Train one KMNIST configuration and store it under results/<profile>/; a stored run with the "
        "same configuration is loaded instead."))
    parser.add_argument("--lr", type=positive_float, default=5e-4, help="learning rate (default 5e-4)")
    parser.add_argument("--epochs", type=whole_number(1, MAX_EPOCHS), default=None,
                        help=f"epochs, 1 to {MAX_EPOCHS} (default: the profile's)")
    parser.add_argument("--variant", choices=("auto", *VARIANTS), default="auto", help=VARIANT_HELP)
    parser.add_argument("--model", choices=("cnn", "fc"), default="cnn", help="the CNN or the fully connected baseline")
    parser.add_argument("--permuted", action="store_true", help="shuffle the pixels (one fixed permutation)")
    parser.add_argument("--retrain", action="store_true", help=RETRAIN_HELP)
    add_common_options(parser)
    parser.set_defaults(handler=run_cnn_command)


def add_sweep_command(subparsers) -> None:
    """``sweep``: every run of chapter 2."""
    parser = subparsers.add_parser("sweep", help="every run of chapter 2 and a summary table", description=(
        "The three learning rates of Q2.4, the CNN-vs-FC comparison of Q2.3 and the dead-unit probes; stored "
        "runs are loaded. Weights: of the runs this command trains itself, only the best learning rate's CNN "
        "keeps its weights (the others keep their metrics, to keep results/ small); runs stored before, for "
        "instance by the cnn command, keep theirs."))
    parser.add_argument("--variant", choices=("auto", *VARIANTS), default="auto", help=VARIANT_HELP)
    add_common_options(parser)
    parser.set_defaults(handler=run_sweep_command)


def _prepare(args: argparse.Namespace) -> dict:
    """Apply --threads and check --device; return the options every run takes."""
    from .utils import choose_device

    if args.threads is not None:
        set_threads(args.threads)
    device = choose_device(args.device)  # fails early, with one line, on a device this machine lacks
    hint = busy_machine_hint() if args.threads is None and device.type == "cpu" else None
    if hint is not None:
        print(hint, file=sys.stderr)
    return {"variant": args.variant, "profile": args.profile, "device": args.device, "progress": not args.no_progress}


def _stored_variant(args: argparse.Namespace, learning_rate: float, model: str = "cnn", pixels: str = "original",
                    epochs: int | None = None) -> str:
    """--variant, with "auto" resolved without the network when the run is stored for a variant."""
    from .cnn_runs import cnn_config, run_name
    from .kmnist import resolve_variant

    def stored(variant: str) -> bool:
        config = cnn_config(learning_rate, model=model, pixels=pixels, variant=variant, profile=args.profile,
                            epochs=epochs)
        return load_run(run_folder(run_name(config), config)) is not None

    return resolve_variant(args.variant, stored=stored)


_READ = object()  # _number's default: read the value from the run's metrics


def _number(run: Run, key: str, value: Any = _READ) -> float | None:
    """A figure of a stored run (None for a diverged run's null); anything else is a bad stored run."""
    value = run.metrics[key] if value is _READ else value
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return value
    raise StoredFileError(f"{run.path / METRICS_FILE}: {key!r} is {value!r}, not a number; {recovery_advice(run.path)}")


def _shown(run: Run, key: str, digits: int = 4) -> str:
    value = _number(run, key)
    return "nan" if value is None else f"{value:.{digits}f}"


def run_cnn_command(args: argparse.Namespace) -> int:
    from .cnn_runs import get_cnn_run

    options = _prepare(args)
    pixels = "permuted" if args.permuted else "original"
    options["variant"] = _stored_variant(args, args.lr, args.model, pixels, args.epochs)
    run = get_cnn_run(args.lr, model=args.model, pixels=pixels, epochs=args.epochs, retrain=args.retrain, **options)
    print(f"{run.path.name}: dev accuracy {_shown(run, 'dev_accuracy')}, test accuracy {_shown(run, 'test_accuracy')} "
          f"after {run.config['epochs']} epochs ({_shown(run, 'seconds_per_epoch', 2)} s/epoch) -> {run.path}")
    return 0


def run_sweep_command(args: argparse.Namespace) -> int:
    from .cnn_runs import COMPARISON_LEARNING_RATE, best_run, chapter_sweep, format_table, summary_rows

    options = _prepare(args)
    options["variant"] = _stored_variant(args, COMPARISON_LEARNING_RATE)
    sweep, comparison, probes = chapter_sweep(**options)
    for run in [*sweep.values(), *comparison.values()]:
        for key in ("dev_accuracy", "test_accuracy", "seconds_per_epoch"):
            _number(run, key)
    print(format_table(summary_rows(sweep, comparison)))
    rate, best = best_run(sweep)
    print(f"best learning rate on dev: {rate:g} ({best.path})")
    for probe_rate, probe in probes.items():
        dead_units = probe.metrics["dead_units"]
        if not isinstance(dead_units, dict):
            raise StoredFileError(f"{probe.path / METRICS_FILE}: 'dead_units' is not a table of layers; "
                                  f"{recovery_advice(probe.path)}")
        fractions = {layer: _number(probe, layer, fraction) for layer, fraction in dead_units.items()}
        dead = ", ".join(f"{layer} {'nan' if value is None else f'{value:.0%}'}" for layer, value in fractions.items())
        print(f"dead ReLU units after {probe.metrics['steps']} steps at lr {probe_rate:g}: {dead}")
    runs = {run.path: run for run in [*sweep.values(), *comparison.values(), *probes.values()]}.values()
    total = sum(_number(run, "wall_seconds") or 0.0 for run in runs)
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
    parser.add_argument("--retrain", action="store_true", help=RETRAIN_HELP)
    add_common_options(parser)
    parser.set_defaults(handler=run_seq2seq_command, variant="course")


def run_seq2seq_command(args: argparse.Namespace) -> int:
    from .seq2seq_runs import get_seq2seq_run

    options = _prepare(args)
    options.pop("variant")  # the course's files: the only data the homework's numbers refer to
    for attention in {"no": [False], "yes": [True], "both": [False, True]}[args.attention]:
        run = get_seq2seq_run(attention, epochs=args.epochs, retrain=args.retrain, **options)
        print(f"{run.path.name}: val error {_shown(run, 'val_error')}, test error {_shown(run, 'test_error')} "
              f"after {run.config['epochs']} epochs ({_shown(run, 'seconds_per_epoch', 2)} s/epoch) -> {run.path}")
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
            figures = ", ".join(f"{key} {_shown(run, key)}" for key in keys)
            print(f"{model} seed {seed}: {figures} ({_shown(run, 'wall_seconds', 0)} s) -> {run.path}", flush=True)
    return 0


#: The functions that add each subcommand to the parser, in the order ``--help`` lists them.
COMMANDS: list[Callable] = [add_cnn_command, add_sweep_command, add_seq2seq_command, add_seeds_command]


def build_parser() -> argparse.ArgumentParser:
    """The parser with every command of :data:`COMMANDS`."""
    statuses = "\n".join(f"  {status:<4} {meaning}" for status, meaning in EXIT_STATUS.items())
    parser = _Parser(prog="python -m hw2lib", description="Train and store the runs of hw2book.",
                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=(
                         "Every failure is one line on stderr that names the file or option and what to do.\n"
                         f"exit status:\n{statuses}"))
    subparsers = parser.add_subparsers(dest="command", metavar="command", parser_class=_Parser)
    subparsers.required = True
    for add_command in COMMANDS:
        add_command(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the command; a failure is one line on stderr and the exit status of its kind
    (:data:`EXIT_STATUS`; chapter 2)."""
    args = build_parser().parse_args(argv)
    prefix = f"python -m hw2lib {args.command}"
    try:
        return args.handler(args)
    except OneLineError as error:
        print(f"{prefix}: {error.kind}: {error}", file=sys.stderr)
        return error.exit_code
    except ValueError as error:
        print(f"{prefix}: error: {error}", file=sys.stderr)
        return EXIT_BAD_ARGUMENTS
    except TrainingInterrupted as error:
        print(f"{prefix}: interrupted: {error}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print(f"{prefix}: interrupted; nothing was being trained", file=sys.stderr)
        return EXIT_INTERRUPTED

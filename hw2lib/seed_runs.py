"""The appendix's study, "How repeatable are these numbers?": the chapters' best runs trained again
with other random seeds, and a replay that checks a stored run repeats bit for bit.

The seed of a run's configuration sets everything random in training: the initial weights (torch is
seeded before the model is built), dropout and the order of the training batches; the data splits do
not depend on it. :func:`seed_runs` trains the best CNN and both translators once per seed in
:data:`SEEDS` through the results store; the seed-42 runs are the chapters' own, the others keep only
their metrics. From the command line: ``python -m hw2lib seeds MODEL ... --seeds 43 44``.
"""

from __future__ import annotations

import math
import statistics
import tempfile
from pathlib import Path
from typing import Callable, Sequence

import torch

from . import cnn_runs, seq2seq_runs
from .runs import Run, get_or_train, without_timings
from .utils import set_threads

#: The seeds of the study; 42 is the chapters' own.
SEEDS = (42, 43, 44)
CNN_LEARNING_RATE = 5e-4  # the rate chapter 2 selects on dev
CNN_VARIANT = "kmnist-t10k"  # the data of chapter 2's stored runs (named, so nothing is probed for)
MODELS = ("cnn", "seq2seq-attention", "seq2seq-no-attention")

# model -> (label, metric keys in the run's metrics: (dev, test), what the numbers are, higher is better)
MODEL_METRICS = {
    "cnn": ("CNN, lr 5e-4", ("dev_accuracy", "test_accuracy"), "accuracy", True),
    "seq2seq-attention": ("seq2seq with attention", ("val_error", "test_error"), "error rate", False),
    "seq2seq-no-attention": ("seq2seq without attention", ("val_error", "test_error"), "error rate", False),
}


def _check_model(model: str) -> None:
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")


MAX_SEED = 2**63 - 1  # torch.manual_seed takes a 64-bit integer


def _check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"a seed must be a whole number from 0 to {MAX_SEED}, got {seed!r}")


def base_config(model: str, *, profile: str | None = None) -> dict:
    """The chapters' configuration of ``model``.

    "cnn" is :func:`hw2lib.cnn_runs.cnn_config` at the chosen rate 5e-4; the translators are
    :func:`hw2lib.seq2seq_runs.seq2seq_config`.
    """
    _check_model(model)
    if model == "cnn":
        return cnn_runs.cnn_config(CNN_LEARNING_RATE, variant=CNN_VARIANT, profile=profile)
    return seq2seq_runs.seq2seq_config(model == "seq2seq-attention", profile=profile)


def with_seed(config: dict, seed: int) -> dict:
    """A copy of ``config`` with ``"seed": seed``; nothing else changes."""
    _check_seed(seed)
    if "seed" not in config:
        raise ValueError("the configuration has no 'seed' entry; is it a run configuration?")
    return {**config, "seed": seed}


def seed_run_name(model: str, config: dict) -> str:
    """The run's folder name: the chapter's own name for the chapter's seed,
    ``...-seed43`` otherwise."""
    _check_model(model)
    name = cnn_runs.run_name(config) if model == "cnn" else seq2seq_runs.run_name(config)
    default_seed = base_config(model, profile=config["profile"])["seed"]
    return name if config["seed"] == default_seed else f"{name}-seed{config['seed']}"


def _train_function(model: str, device: str, progress: bool) -> Callable[[dict, Path], dict]:
    if model == "cnn" or model == "kmnist-classification":
        return lambda config, run_dir: cnn_runs.train_kmnist_run(config, run_dir, device=device, progress=progress)
    return lambda config, run_dir: seq2seq_runs.train_seq2seq_run(config, run_dir, device=device, progress=progress)


def get_seed_run(model: str, seed: int, *, profile: str | None = None, keep_weights: bool | None = None,
                 device: str = "auto", progress: bool = True) -> Run:
    """The stored run of ``model`` trained with ``seed``, trained first if there is none.

    The chapter's seed gives exactly the chapter's run (same configuration, same folder). Runs with any
    other seed keep no weights unless ``keep_weights=True``: the store drops them before it stores the
    run (the translator needs its best epoch's weights to score itself while it trains).
    """
    config = with_seed(base_config(model, profile=profile), seed)
    is_chapter_run = seed == base_config(model, profile=config["profile"])["seed"]
    keep = is_chapter_run if keep_weights is None else keep_weights
    return get_or_train(seed_run_name(model, config), config, _train_function(model, device, progress),
                        keep_weights=keep)


def seed_runs(model: str, seeds: Sequence[int] = SEEDS, **options) -> dict[int, Run]:
    """``{seed: run}`` for ``model`` over ``seeds``; options go to :func:`get_seed_run`."""
    if len(set(seeds)) != len(seeds) or not seeds:
        raise ValueError(f"seeds must be distinct and at least one, got {list(seeds)}")
    return {seed: get_seed_run(model, seed, **options) for seed in seeds}


def chapter_plan(*, profile: str | None = None) -> list[tuple[str, dict]]:
    """(run name, configuration) of every stored run the appendix reads, without loading or training any."""
    plan = []
    for model in MODELS:
        for seed in SEEDS:
            config = with_seed(base_config(model, profile=profile), seed)
            plan.append((seed_run_name(model, config), config))
    return plan


def replay(run: Run, *, epochs: int = 1, threads: int | None = None, progress: bool = False) -> dict:
    """Train the first ``epochs`` epochs of a stored run again and compare them with its stored history
   .

    The replay uses the stored run's configuration and device, and its torch thread count unless
    ``threads`` names another (on a CPU the count can change the order in which sums are taken, and
    so the last bits of every number). It trains in a temporary folder: nothing is stored. Returns
    ``{"identical": bool, "max_difference": float, "threads": int, "stored": rows, "replayed": rows}``;
    wall-clock times are left out of the comparison.
    """
    task = run.config.get("task")
    if task not in ("kmnist-classification", "char-translation"):
        raise ValueError(f"cannot replay a run of task {task!r}; only the CNN and translator runs")
    if not 1 <= epochs <= run.config["epochs"]:
        raise ValueError(f"epochs must be between 1 and the run's {run.config['epochs']}, got {epochs}")
    config = {**run.config, "epochs": epochs}
    previous_threads = torch.get_num_threads()
    threads = threads or run.metrics.get("cpu_threads") or previous_threads
    device = run.metrics.get("device")
    device = "auto" if device in (None, "not recorded") else device
    set_threads(int(threads))
    try:
        with tempfile.TemporaryDirectory(prefix="hw2lib-replay-") as folder:
            metrics = _train_function(task, device, progress)(config, Path(folder))
    finally:
        torch.set_num_threads(previous_threads)

    stored, replayed = without_timings(run.history[:epochs]), without_timings(metrics["history"])
    differences = [abs(float(row[key]) - float(other.get(key, math.nan)))
                   for row, other in zip(stored, replayed) for key in row]
    return {"identical": stored == replayed, "threads": int(threads), "stored": stored, "replayed": replayed,
            "max_difference": max(differences, default=0.0)}


def mean_and_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1 in the denominator; 0.0 for one value)."""
    values = [float(value) for value in values]
    if not values:
        raise ValueError("no values to summarise")
    if any(value != value for value in values):  # NaN: a diverged run has no meaningful spread
        raise ValueError(f"cannot summarise values containing NaN: {values}")
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def reference_range(model: str, split: str) -> tuple[float, float]:
    """(lowest, highest) published figure for ``model`` on ``split`` ("dev" or "test").

    From the chapters' tables of reference results: :data:`hw2lib.cnn_runs.REFERENCE_RESULTS`
    and :data:`hw2lib.seq2seq_runs.PUBLISHED_ERRORS`.
    """
    _check_model(model)
    if split not in ("dev", "test"):
        raise ValueError(f"split must be 'dev' or 'test', got {split!r}")
    if model == "cnn":
        index = 0 if split == "dev" else 1
        figures = [results[CNN_LEARNING_RATE][index] for results in cnn_runs.REFERENCE_RESULTS.values()]
    else:
        figures = seq2seq_runs.PUBLISHED_ERRORS[model == "seq2seq-attention"]["val" if split == "dev" else "test"]
    return min(figures), max(figures)


def summary_rows(runs_by_model: dict[str, dict[int, Run]]) -> list[dict]:
    """One row per model and split: the chapter's single-seed figure, the mean and standard deviation
    over the seeds, each seed's figure and the published range.

    Each row also says where the mean lies against the published range (``published_position``:
    "below", "inside" or "above", and ``published_distance``, 0.0 inside), how many seeds fall
    inside it (``seeds_in_published``) and where the chapter's run ranks among the seeds
    (``chapter_rank``: "lowest", "highest" or "middle").
    """
    rows = []
    for model, runs in runs_by_model.items():
        _check_model(model)
        label, keys, kind, higher_is_better = MODEL_METRICS[model]
        chapter_seed = base_config(model, profile=next(iter(runs.values())).config["profile"])["seed"]
        for split, key in zip(("dev", "test"), keys):
            values = {seed: run.metrics[key] for seed, run in sorted(runs.items())}
            missing = [seed for seed, value in values.items() if value is None]
            if missing:
                raise ValueError(f"{model}: the runs with seeds {missing} have no {key} (diverged?)")
            mean, std = mean_and_std(list(values.values()))
            low, high = reference_range(model, split)
            position, distance = ("below", low - mean) if mean < low else ("above", mean - high) if mean > high \
                else ("inside", 0.0)
            chapter_value = values.get(chapter_seed)
            rank = (None if chapter_value is None else "lowest" if chapter_value == min(values.values())
                    else "highest" if chapter_value == max(values.values()) else "middle")
            rows.append({"model": model, "label": label, "split": split, "metric": f"{split} {kind}",
                         "higher_is_better": higher_is_better, "chapter_seed": chapter_seed,
                         "chapter_value": chapter_value, "mean": mean, "std": std,
                         "seeds": list(values), "values": list(values.values()),
                         "reference_low": low, "reference_high": high,
                         "published_position": position, "published_distance": distance,
                         "seeds_in_published": sum(low <= value <= high for value in values.values()),
                         "chapter_rank": rank, "profile": next(iter(runs.values())).config["profile"]})
    return rows


def binomial_standard_error(accuracy: float, examples: int) -> float:
    """sqrt(p (1 - p) / n): how far an accuracy ``p`` measured on ``examples`` test items may be from
    the model's true accuracy, from the finite test set alone."""
    if not 0.0 <= accuracy <= 1.0:
        raise ValueError(f"an accuracy lies between 0 and 1, got {accuracy}")
    if examples < 1:
        raise ValueError(f"the test set must hold at least one example, got {examples}")
    return math.sqrt(accuracy * (1.0 - accuracy) / examples)


def attention_gain(rows: list[dict], split: str = "test") -> dict:
    """How much attention lowers the error on ``split`` over the seeds:
    ``gain`` (difference of the means), ``gain_in_stds`` (over the larger standard deviation) and
    ``separated`` (even the worst attention seed beats the best seed without attention)."""
    by_model = {row["model"]: row for row in rows if row["split"] == split}
    if not {"seq2seq-attention", "seq2seq-no-attention"} <= set(by_model):
        raise ValueError(f"the rows need both translators on the {split} split")
    with_attention, without = by_model["seq2seq-attention"], by_model["seq2seq-no-attention"]
    gain = without["mean"] - with_attention["mean"]
    spread = max(with_attention["std"], without["std"])
    return {"gain": gain, "gain_in_stds": gain / spread if spread > 0 else math.inf,
            "separated": max(with_attention["values"]) < min(without["values"])}


def format_rows(rows: list[dict]) -> str:
    """``rows`` of :func:`summary_rows` as a fixed-width text table."""
    header = (f"{'model':<26} {'figure':<16} {'seed 42':>8} {'mean +- std (n)':>22} "
              f"{'published':>15}")
    lines = [header, "-" * len(header)]
    for row in rows:
        chapter = "-" if row["chapter_value"] is None else f"{row['chapter_value']:.4f}"
        spread = f"{row['mean']:.4f} +- {row['std']:.4f} ({len(row['values'])})"
        published = f"{row['reference_low']:.4f}-{row['reference_high']:.4f}"
        lines.append(f"{row['label']:<26} {row['metric']:<16} {chapter:>8} {spread:>22} {published:>15}")
    return "\n".join(lines)

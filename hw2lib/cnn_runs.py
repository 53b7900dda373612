"""Chapter 2's experiments as stored runs: the learning-rate sweep (Q2.4), CNN vs FC (Q2.3) and the
dead-unit probes.

:class:`KMNISTTask` is the training problem; :func:`cnn_config` turns a learning rate, a model, a
pixel order and a profile into the configuration that keys a stored run; :func:`get_cnn_run` loads
that run or trains it; :func:`chapter_sweep` reproduces every run of the chapter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from .cnn import accuracy, build_model, dead_units, permute_pixels
from .kmnist import KMNIST, load_kmnist, resolve_variant
from .runs import (Run, canonical_json, checkpoint_file, get_or_train, load_run, profile_settings, prune_weights,
                   run_folder, save_weights)
from .train import train
from .utils import choose_device, count_parameters, model_device

LEARNING_RATES = (1e-5, 5e-4, 1e-2)  # the homework's grid (Q2.4)
COMPARISON_LEARNING_RATE = 5e-4  # the Q2.3 experiment's rate
COMPARISON = (("cnn", "original"), ("fc", "original"), ("cnn", "permuted"), ("fc", "permuted"))
PIXEL_ORDERS = ("original", "permuted")

# full = the homework's settings; quick = seconds, for tests, CI and nbval.
PROFILE_SETTINGS = {
    "full": {"epochs": 20, "batch_size": 8, "train_examples": None, "dropout": 0.3, "seed": 42},
    "quick": {"epochs": 2, "batch_size": 32, "train_examples": 2000, "dropout": 0.3, "seed": 42},
}


@dataclass
class KMNISTTask:
    """Image classification on in-memory tensors, the :class:`hw2lib.train.Task` of chapter 2.

    Every epoch shuffles the training set with a permutation drawn from the generator
    and slices it into batches (no per-item DataLoader: indexing a tensor is far cheaper;
    the shuffled copy costs one training set's memory during the epoch). The dev set is
    evaluated in one batch. ``channels_last`` stores the images in the memory layout
    that oneDNN's convolutions prefer on CPU.
    """

    train_images: torch.Tensor
    train_labels: torch.Tensor
    dev_images: torch.Tensor
    dev_labels: torch.Tensor
    batch_size: int = 8
    channels_last: bool = False
    _dev_cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if len(self.train_images) != len(self.train_labels) or len(self.dev_images) != len(self.dev_labels):
            raise ValueError("images and labels differ in length")
        if self.channels_last:
            self.train_images = self.train_images.contiguous(memory_format=torch.channels_last)
            self.dev_images = self.dev_images.contiguous(memory_format=torch.channels_last)

    def training_batches(self, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(self.train_labels), generator=generator)
        # One gather per epoch, then every batch is a view: the same batches as gathering each one,
        # without two small copies per step (at batch size 8 a step is only about 2 ms).
        images, labels = self.train_images[order], self.train_labels[order]
        for start in range(0, len(order), self.batch_size):
            yield images[start:start + self.batch_size], labels[start:start + self.batch_size]

    def __len__(self) -> int:
        """Batches per epoch."""
        return -(-len(self.train_labels) // self.batch_size)

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        images, labels = batch
        return F.nll_loss(model(images), labels)

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        device = model_device(model)
        if device not in self._dev_cache:  # copy the dev set to the device once, not every epoch
            self._dev_cache = {device: (self.dev_images.to(device), self.dev_labels.to(device))}
        images, labels = self._dev_cache[device]
        log_probabilities = model(images)
        return {"dev_loss": F.nll_loss(log_probabilities, labels).item(),
                "dev_accuracy": (log_probabilities.argmax(dim=1) == labels).float().mean().item()}


def cnn_config(learning_rate: float, *, model: str = "cnn", pixels: str = "original", variant: str = "auto",
               profile: str | None = None, epochs: int | None = None) -> dict:
    """The configuration of one KMNIST run; it is what keys the stored run.

    ``variant="auto"`` is resolved here, so the key names the data the run really uses: a variant for
    which this run is already stored (no network needed), else the variant available.
    """
    profile, settings = profile_settings(PROFILE_SETTINGS, profile, epochs)
    if not (isinstance(learning_rate, (int, float)) and math.isfinite(learning_rate) and learning_rate > 0):
        raise ValueError(f"the learning rate must be a positive number, got {learning_rate}")
    if model not in ("cnn", "fc"):
        raise ValueError(f"unknown model {model!r}; choose cnn or fc")
    if pixels not in PIXEL_ORDERS:
        raise ValueError(f"unknown pixel order {pixels!r}; choose {' or '.join(PIXEL_ORDERS)}")

    def config_for(chosen: str) -> dict:
        return {
            "task": "kmnist-classification", "model": model, "variant": chosen, "pixels": pixels,
            "learning_rate": float(learning_rate), **settings,
            # oneDNN's convolutions run ~15% faster on CPU in this layout; runs stay repeatable.
            "channels_last": model == "cnn", "fused_adam": True, "profile": profile,
        }

    def stored(chosen: str) -> bool:
        config = config_for(chosen)
        return load_run(run_folder(run_name(config), config)) is not None

    return config_for(resolve_variant(variant, stored=stored))


def run_name(config: dict) -> str:
    """A readable folder name, e.g. ``cnn-kmnist-t10k-lr0.0005`` (the config hash is appended by the store)."""
    pixels = "-permuted" if config["pixels"] == "permuted" else ""
    return f"{config['model']}-{config['variant']}{pixels}-lr{config['learning_rate']:g}"


@lru_cache(maxsize=4)
def kmnist_data(variant: str, pixels: str = "original") -> KMNIST:
    """KMNIST ``variant`` with its pixels in ``pixels`` order, loaded once per process."""
    data = load_kmnist(variant)
    return permute_pixels(data) if pixels == "permuted" else data


def _train_model(config: dict, run_dir: Path, device: str, progress: bool) -> tuple[torch.nn.Module, KMNIST, list, str]:
    """Build, train (resuming from ``run_dir``'s checkpoint) and return the model, data, history, device."""
    data = kmnist_data(config["variant"], config["pixels"])
    train_images, train_labels = data.train
    if config["train_examples"] is not None:
        train_images, train_labels = train_images[:config["train_examples"]], train_labels[:config["train_examples"]]
    task = KMNISTTask(train_images, train_labels, *data.dev, batch_size=config["batch_size"],
                      channels_last=config["channels_last"])
    torch.manual_seed(config["seed"])  # the initial weights depend on the seed only
    model = build_model(config["model"], dropout=config["dropout"])
    if config["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    chosen = choose_device(device)
    history = train(model, task, epochs=config["epochs"], learning_rate=config["learning_rate"], seed=config["seed"],
                    device=chosen, checkpoint_path=checkpoint_file(run_dir), progress=progress,
                    description=run_name(config), fused_adam=config.get("fused_adam", False))
    return model, data, history, str(chosen)


def train_kmnist_run(config: dict, run_dir: Path, *, device: str = "auto", progress: bool = True) -> dict:
    """Train the run ``config`` describes, resuming from ``run_dir``'s checkpoint; return its metrics.

    Stores the final weights in ``run_dir/weights.pt``. The metrics hold the history,
    the final dev and test accuracy, the parameter count and the device.
    """
    model, data, history, device_name = _train_model(config, run_dir, device, progress)
    save_weights(model, run_dir)
    return {
        "history": history,
        "dev_accuracy": history[-1]["dev_accuracy"],
        "test_accuracy": accuracy(model, *data.test),
        "parameters": count_parameters(model),
        "train_examples": config["train_examples"] or len(data.train[1]),
        "seconds_per_epoch": sum(row["seconds"] for row in history) / len(history),
        "device": device_name,
        "data": data.description,
    }


def dead_unit_config(learning_rate: float, *, examples: int = 2000, variant: str = "auto",
                     profile: str | None = None) -> tuple[str, dict]:
    """The run name and configuration of :func:`dead_unit_probe`."""
    config = cnn_config(learning_rate, variant=variant, profile=profile, epochs=1)
    config.update(task="kmnist-dead-units", train_examples=examples)
    return f"cnn-{config['variant']}-dead-units-lr{learning_rate:g}", config


def dead_unit_probe(learning_rate: float, *, examples: int = 2000, variant: str = "auto", profile: str | None = None,
                    device: str = "auto", progress: bool = False) -> Run:
    """A stored short run (one epoch on ``examples`` images) that records the CNN's dead ReLU units.

    Its metrics hold ``dead_units`` ({layer: fraction of units silent on the whole dev
    set}, see :func:`hw2lib.cnn.dead_units`) before and after that epoch, which shows
    how a too-large learning rate kills the network early. No weights are kept.
    """
    name, config = dead_unit_config(learning_rate, examples=examples, variant=variant, profile=profile)

    def train_fn(config: dict, run_dir: Path) -> dict:
        torch.manual_seed(config["seed"])
        untrained = build_model(config["model"], dropout=config["dropout"])
        model, data, history, device_name = _train_model(config, run_dir, device, progress)
        return {"history": history, "dead_units_at_start": dead_units(untrained, data.dev[0]),
                "dead_units": dead_units(model, data.dev[0]), "dev_accuracy": history[-1]["dev_accuracy"],
                "steps": -(-examples // config["batch_size"]), "device": device_name}

    return get_or_train(name, config, train_fn)


def get_cnn_run(learning_rate: float, *, model: str = "cnn", pixels: str = "original", variant: str = "auto",
                profile: str | None = None, epochs: int | None = None, retrain: bool = False,
                device: str = "auto", progress: bool = True) -> Run:
    """The stored run for these settings, trained (and stored) first if there is none."""
    config = cnn_config(learning_rate, model=model, pixels=pixels, variant=variant, profile=profile, epochs=epochs)
    return get_or_train(run_name(config), config,
                        lambda config, run_dir: train_kmnist_run(config, run_dir, device=device, progress=progress),
                        retrain=retrain)


def learning_rate_sweep(**options) -> dict[float, Run]:
    """The three CNN runs of Q2.4, keyed by learning rate; options go to :func:`get_cnn_run`."""
    return {rate: get_cnn_run(rate, **options) for rate in LEARNING_RATES}


def comparison_runs(**options) -> dict[tuple[str, str], Run]:
    """The four runs of Q2.3 at the comparison rate, keyed by (model, pixels)."""
    return {(model, pixels): get_cnn_run(COMPARISON_LEARNING_RATE, model=model, pixels=pixels, **options)
            for model, pixels in COMPARISON}


def best_run(runs: dict[float, Run]) -> tuple[float, Run]:
    """The learning rate and run with the highest final dev accuracy (tuning on dev only)."""
    return max(runs.items(), key=lambda item: item[1].metrics["dev_accuracy"] or 0.0)


def keep_only_best_weights(runs: dict[float, Run]) -> Run:
    """Delete the stored weights of every sweep run but the best one (keeps results small); only the
    weights of runs trained in this call are deleted (:func:`hw2lib.runs.prune_weights`)."""
    _, best = best_run(runs)
    for run in runs.values():
        if run.path != best.path:
            prune_weights(run)
    return best


def chapter_sweep(**options) -> tuple[dict[float, Run], dict[tuple[str, str], Run], dict[float, Run]]:
    """Every run of chapter 2: the learning-rate sweep, the CNN-vs-FC comparison, the dead-unit probes.

    Weights are kept for the best-rate CNN only. The CNN on original pixels at the
    comparison rate is the same configuration as the sweep's run at that rate, so it is
    trained once.
    """
    sweep = learning_rate_sweep(**options)
    comparison = comparison_runs(**options)
    probes = {rate: dead_unit_probe(rate, **options) for rate in LEARNING_RATES}
    best = keep_only_best_weights(sweep)
    for run in comparison.values():
        if run.path != best.path:
            prune_weights(run)
    return sweep, comparison, probes


def chapter_plan(*, variant: str = "auto", profile: str | None = None) -> list[tuple[str, dict]]:
    """(run name, configuration) of every stored run chapter 2 reads, without loading or training any."""
    configs = [cnn_config(rate, variant=variant, profile=profile) for rate in LEARNING_RATES]
    configs += [cnn_config(COMPARISON_LEARNING_RATE, model=model, pixels=pixels, variant=variant, profile=profile)
                for model, pixels in COMPARISON]
    plan = list({run_name(config) + canonical_json(config): (run_name(config), config) for config in configs}.values())
    return plan + [dead_unit_config(rate, variant=variant, profile=profile) for rate in LEARNING_RATES]


def summary_rows(sweep: dict[float, Run], comparison: dict[tuple[str, str], Run]) -> list[dict]:
    """One row per run of the chapter: experiment, model, pixels, rate, accuracies, time."""
    rows = []
    for experiment, entries in (("Q2.4", [(("cnn", "original"), rate, run) for rate, run in sweep.items()]),
                                ("Q2.3", [(key, COMPARISON_LEARNING_RATE, run) for key, run in comparison.items()])):
        for (model, pixels), rate, run in entries:
            rows.append({"experiment": experiment, "model": model, "pixels": pixels, "learning_rate": rate,
                         "epochs": run.config["epochs"], "dev_accuracy": run.metrics["dev_accuracy"],
                         "test_accuracy": run.metrics["test_accuracy"],
                         "seconds_per_epoch": run.metrics["seconds_per_epoch"], "run": run.path.name})
    return rows


def format_table(rows: list[dict]) -> str:
    """``rows`` as a fixed-width text table (printed by ``python -m hw2lib sweep``)."""
    header = f"{'experiment':<10} {'model':<5} {'pixels':<9} {'lr':>7} {'epochs':>6} {'dev acc':>8} {'test acc':>8} {'s/epoch':>8}"
    lines = [header, "-" * len(header)]
    for row in rows:
        dev = "nan" if row["dev_accuracy"] is None else f"{row['dev_accuracy']:.4f}"
        test = "nan" if row["test_accuracy"] is None else f"{row['test_accuracy']:.4f}"
        lines.append(f"{row['experiment']:<10} {row['model']:<5} {row['pixels']:<9} {row['learning_rate']:>7g} "
                     f"{row['epochs']:>6} {dev:>8} {test:>8} {row['seconds_per_epoch']:>8.2f}")
    return "\n".join(lines)


# Published results the chapter compares with (HOMEWORK.md). The course's runs used the
# "kmnist" split (50,000 training images); the KMNIST authors trained on all 60,000 and
# tested on the official 10,000.
#: Published (dev, test) accuracies per learning rate the chapter compares with.
REFERENCE_RESULTS = {
    "seed report": {1e-5: (0.9568, 0.8938), 5e-4: (0.9857, 0.9541), 1e-2: (0.1022, 0.1000)},
    "another group": {1e-5: (0.9559, 0.8896), 5e-4: (0.9843, 0.9598), 1e-2: (0.9298, 0.8404)},
}
KMNIST_BASELINES = {"4-nearest neighbours": 0.9156, "RBF SVM": 0.9282, "simple CNN (Keras)": 0.9512,
                    "PreActResNet-18": 0.9782, "ResNet18 + VGG ensemble": 0.9890}

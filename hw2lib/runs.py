"""The results store: every training run is kept in a folder keyed by its configuration.

Explained in chapter 2 ("Stored runs"). A notebook asks :func:`get_or_train` for a run
with a given configuration; a stored run with exactly that configuration is loaded,
otherwise the run is trained and stored. A run's folder
``<results>/<name>-<hash of the config>/`` holds

* ``config.json`` -- the configuration (model, data variant, hyperparameters, seed, profile);
* ``metrics.json`` -- what ``train_fn`` returned (history, final metrics) plus
  ``wall_seconds`` (this call's wall time), ``torch_version`` and ``device``;
  written last and atomically, so a run without it never counts as complete;
* ``weights.pt`` (optional) -- the trained ``state_dict``; ``best_weights.pt`` (optional) -- those of
  the epoch with the best dev score;
* ``checkpoint.pt`` -- only while a run is unfinished; a rerun resumes from it.

This module is the only one that spells these file names.

Environment variables: ``HW2LIB_PROFILE`` ("full", the default, or "quick") and
``HW2LIB_RESULTS`` (a folder that replaces ``<repo>/results/<profile>``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .utils import load_state_dict_file, save_state_dict, write_json_atomically

PROFILES = ("full", "quick")
PROFILE_VARIABLE = "HW2LIB_PROFILE"
RESULTS_VARIABLE = "HW2LIB_RESULTS"
REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
WEIGHTS_FILE = "weights.pt"
BEST_WEIGHTS_FILE = "best_weights.pt"
CHECKPOINT_FILE = "checkpoint.pt"
WEIGHT_FILES = (WEIGHTS_FILE, BEST_WEIGHTS_FILE)
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def profile() -> str:
    """The profile in ``HW2LIB_PROFILE``: "full" (default, the homework's settings) or "quick"."""
    value = os.environ.get(PROFILE_VARIABLE, "").strip()
    if not value:
        return "full"
    if value not in PROFILES:
        raise ValueError(f"{PROFILE_VARIABLE} must be 'full' or 'quick', not {value!r}")
    return value


current_profile = profile  # results_dir's argument is called ``profile`` and hides the function


def profile_settings(table: dict[str, dict], profile: str | None = None,
                     epochs: int | None = None) -> tuple[str, dict]:
    """The profile (``HW2LIB_PROFILE`` when None) and a copy of its settings from a chapter's
    ``table`` (profile -> settings), with ``epochs`` overridden when given."""
    profile = current_profile() if profile is None else profile
    if profile not in table:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(table)}")
    settings = dict(table[profile])
    if epochs is not None:
        if epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {epochs}")
        settings["epochs"] = epochs
    return profile, settings


def results_dir(profile: str | None = None) -> Path:
    """Where runs are stored: ``HW2LIB_RESULTS`` if set, else ``<repo>/results/<profile>``.

    ``<repo>`` is the folder above the ``hw2lib`` package when it holds ``pyproject.toml``
    (a source checkout), else the current folder.
    """
    configured = os.environ.get(RESULTS_VARIABLE, "").strip()
    if configured:
        return Path(configured).expanduser()
    chosen = current_profile() if profile is None else profile
    if chosen not in PROFILES:
        raise ValueError(f"unknown profile {chosen!r}; choose 'full' or 'quick'")
    root = REPOSITORY_ROOT if (REPOSITORY_ROOT / "pyproject.toml").is_file() else Path.cwd()
    return root / "results" / chosen


def canonical_json(config: dict) -> str:
    """The configuration as JSON with sorted keys and no spaces: equal configs give equal text."""
    try:
        return json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"a run configuration must be plain JSON (str, number, bool, None, list, dict): {error}") from error


def config_hash(config: dict) -> str:
    """Eight hex digits of the sha256 of :func:`canonical_json`."""
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()[:8]


MACHINE_DEPENDENT_KEYS = frozenset({"seconds", "wall_seconds", "seconds_per_epoch", "resumed_from_checkpoint",
                                    "cpu_threads"})


def without_timings(value: Any) -> Any:
    """Stored metrics or history without :data:`MACHINE_DEPENDENT_KEYS`, at any depth: what two
    trainings of the same configuration must agree on exactly."""
    if isinstance(value, dict):
        return {key: without_timings(item) for key, item in value.items() if key not in MACHINE_DEPENDENT_KEYS}
    if isinstance(value, list):
        return [without_timings(item) for item in value]
    return value


@dataclass
class Run:
    """One stored run: its name, configuration, metrics and folder."""

    name: str
    config: dict
    metrics: dict
    path: Path

    @property
    def weights_path(self) -> Path:
        return weights_file(self.path)

    @property
    def best_weights_path(self) -> Path:
        return weights_file(self.path, best=True)

    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT_FILE

    def has_weights(self) -> bool:
        return self.weights_path.is_file()

    def load_weights(self, model: nn.Module, *, best: bool = False) -> nn.Module:
        """Load the stored final (or, with ``best``, best-epoch) weights into ``model`` and return it."""
        path = self.best_weights_path if best else self.weights_path
        if not path.is_file():
            raise FileNotFoundError(f"run {self.path.name} has no stored weights ({path} is missing); "
                                    "train it again with retrain=True to get them")
        model.load_state_dict(load_state_dict_file(path))
        return model

    @property
    def history(self) -> list[dict[str, float]]:
        """Per-epoch rows; a stored null (a diverged value) reads back as NaN."""
        return [{key: (math.nan if value is None else value) for key, value in row.items()}
                for row in self.metrics.get("history", [])]


def prune_weights(run: Run) -> list[str]:
    """Delete a run's stored weight files (its metrics stay); return the names deleted.

    Called only where the user asked for it: by experiments that keep weights for some runs only
    (their help says so).
    """
    deleted = []
    for name in WEIGHT_FILES:
        path = run.path / name
        if path.is_file():
            path.unlink()
            deleted.append(name)
    return deleted


def weights_file(run_dir: Path, *, best: bool = False) -> Path:
    """Where a run keeps its final (or, with ``best``, best-epoch) weights."""
    return Path(run_dir) / (BEST_WEIGHTS_FILE if best else WEIGHTS_FILE)


def save_weights(model: nn.Module, run_dir: Path, *, best: bool = False) -> Path:
    """Store ``model``'s weights as the run's final (or, with ``best``, best-epoch) weights."""
    return save_state_dict(model, weights_file(run_dir, best=best))


def checkpoint_file(run_dir: Path) -> Path:
    """Where a run in ``run_dir`` keeps its checkpoint while it trains."""
    return Path(run_dir) / CHECKPOINT_FILE


def run_folder(name: str, config: dict) -> Path:
    """The folder of the run ``name`` with ``config``; the profile comes from the config."""
    if not _NAME_PATTERN.match(name):
        raise ValueError(f"run name {name!r} must be letters, digits, '.', '_' or '-' (it names a folder)")
    return results_dir(config.get("profile")) / f"{name}-{config_hash(config)}"


def load_run(path: Path) -> Run | None:
    """The complete run stored in ``path``, or None when it is missing or unfinished."""
    path = Path(path)
    metrics_file, config_file = path / METRICS_FILE, path / CONFIG_FILE
    if not (metrics_file.is_file() and config_file.is_file()):
        return None
    config = json.loads(config_file.read_text(encoding="utf-8"))
    metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
    name = path.name.rsplit("-", 1)[0]
    return Run(name=name, config=config, metrics=metrics, path=path)


def get_or_train(name: str, config: dict, train_fn: Callable[[dict, Path], dict], *, retrain: bool = False) -> Run:
    """The stored run ``name`` with ``config``, trained first when there is none (chapter 2, "Stored runs").

    ``config`` gets ``"profile": profile()`` unless it names one. ``train_fn(config, run_dir)`` trains
    (resuming from :func:`checkpoint_file` when it exists), may save weights (:func:`save_weights`) and
    returns the metrics, which should name the ``"device"``. ``retrain=True`` discards a stored run first.
    """
    config = dict(config)
    config.setdefault("profile", profile())
    folder = run_folder(name, config)
    stored = load_run(folder)
    if stored is not None and not retrain:
        if canonical_json(stored.config) != canonical_json(config):
            raise ValueError(f"{folder} holds a different configuration than asked for (hash collision?); move it away")
        return stored
    if retrain:  # discard everything a previous run left, checkpoint included
        for leftover in (METRICS_FILE, *WEIGHT_FILES, CHECKPOINT_FILE):
            (folder / leftover).unlink(missing_ok=True)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomically(config, folder / CONFIG_FILE)
    resumed = checkpoint_file(folder).is_file()
    started = time.perf_counter()
    try:
        metrics = train_fn(config, folder)
    except BaseException:
        # A run that failed before its first checkpoint (missing data, bad config) leaves nothing behind;
        # one with a checkpoint keeps its folder so that the next call resumes it.
        if created and not checkpoint_file(folder).exists():
            shutil.rmtree(folder, ignore_errors=True)
        raise
    if not isinstance(metrics, dict):
        raise TypeError(f"train_fn must return a dict of metrics, got {type(metrics).__name__}")
    metrics = dict(metrics)
    metrics["wall_seconds"] = time.perf_counter() - started
    metrics["resumed_from_checkpoint"] = resumed
    metrics["torch_version"] = torch.__version__
    metrics.setdefault("device", "not recorded")
    metrics.setdefault("cpu_threads", torch.get_num_threads())
    write_json_atomically(metrics, folder / METRICS_FILE)
    checkpoint_file(folder).unlink(missing_ok=True)
    return load_run(folder)

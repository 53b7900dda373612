"""The results store: every training run is kept in a folder keyed by its configuration.

Explained in the introduction ("How to run it"). A notebook asks :func:`get_or_train` for a run
with a given configuration; a stored run with exactly that configuration is loaded,
otherwise the run is trained and stored. A run's folder
``<results>/<name>-<hash of the config>/`` holds

* ``config.json`` -- the configuration (model, data variant, hyperparameters, seed, profile);
* ``metrics.json`` -- what ``train_fn`` returned (history, final metrics) plus
  ``wall_seconds`` (this call's wall time), ``torch_version`` and ``device``;
* ``weights.pt`` (optional) -- the trained ``state_dict``; ``best_weights.pt`` (optional) -- those of
  the epoch with the best dev score.

What the store guarantees, like a small database:

* A run folder is only ever complete. A run trains in ``<results>/.store/<folder>/`` (its
  ``checkpoint.pt`` written after every epoch) and is renamed into place once its metrics are
  written; ``retrain`` swaps the new folder in the same way, so the previous run stays intact
  until the new one is complete, and is kept if training fails.
* One process trains a configuration at a time: it holds an operating-system lock
  (``<results>/.store/<folder>.lock``), which the system releases even when the process is killed.
  Another process asking for the same run waits, saying so, and then loads what the first stored.
* A run that stops (Ctrl-C, ``kill -9``, a power cut) is resumed from its checkpoint by the next call
  that trains it; an interrupt removes only what its own process wrote, and only before the first
  checkpoint. Temporary files of killed processes are removed.
* Loading writes nothing: stored runs can be read from a read-only folder. Damaged stored files
  raise :class:`~hw2lib.utils.StoredFileError`, one line naming the file and what to do.

This module is the only one that spells these file names.

Environment variables: ``HW2LIB_PROFILE`` ("full", the default, or "quick") and
``HW2LIB_RESULTS`` (a folder that replaces ``<repo>/results/<profile>``).
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import re
import shutil
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .utils import (StoredFileError, file_lock, load_state_dict_file, remove_stale_parts, save_state_dict,
                    write_json_atomically)

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
STORE_FOLDER = ".store"  # inside a results folder: locks and the runs being trained or replaced
MAX_EPOCHS = 1000  # more would run for days; a typo, not a plan
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


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
        if isinstance(epochs, bool) or not isinstance(epochs, int) or not 1 <= epochs <= MAX_EPOCHS:
            raise ValueError(f"epochs must be a whole number from 1 to {MAX_EPOCHS}, got {epochs!r}")
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


#: Keys of stored metrics that depend on the machine and the moment, not on the training itself.
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


class MissingMetricError(StoredFileError, KeyError):
    """A stored run's metrics lack a key that the caller reads (also a KeyError)."""


class StoredMetrics(dict):
    """A run's metrics as stored; reading a key that is not there raises :class:`MissingMetricError`
    naming the ``metrics.json`` it came from, instead of a bare KeyError."""

    def __init__(self, values: Any = (), source: Path | None = None):
        super().__init__(values)
        self.source = source

    def __missing__(self, key: Any) -> Any:
        folder = self.source.parent if self.source is not None else None
        raise MissingMetricError(f"{self.source} has no {key!r}: the run was stored by other code or is damaged; "
                                 f"{recovery_advice(folder)}")


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C while a run trained; the message says what was kept and how to resume."""

    exit_code = 130

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


@dataclass
class Run:
    """One stored run: its name, configuration, metrics and folder; ``trained`` is True when this call
    trained it (False when it was loaded)."""

    name: str
    config: dict
    metrics: dict
    path: Path
    trained: bool = False

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
        try:
            model.load_state_dict(load_state_dict_file(path))
        except RuntimeError as error:  # the weights of another model (other sizes or names)
            raise StoredFileError(f"stored weights {path} do not fit this model ({str(error).splitlines()[0]}); "
                                  f"{recovery_advice(self.path)}") from error
        return model

    @property
    def history(self) -> list[dict[str, float]]:
        """Per-epoch rows; a stored null (a diverged value) reads back as NaN."""
        return [{key: (math.nan if value is None else value) for key, value in row.items()}
                for row in self.metrics.get("history", [])]


def prune_weights(run: Run) -> list[str]:
    """Delete the weight files of a run that this process has just trained (``run.trained``); return the
    names deleted.

    A run loaded from the store keeps its weights, whoever trained it: nothing deletes weights that
    nobody asked to delete. Experiments that keep weights for some runs only call this on the runs
    they train, and say so in their help.
    """
    if not run.trained:
        return []
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
        raise ValueError(f"run name {name!r} must be letters, digits, '.', '_', '+' or '-' (it names a folder)")
    return results_dir(config.get("profile")) / f"{name}-{config_hash(config)}"


def store_paths(folder: Path) -> tuple[Path, Path, Path]:
    """The lock, the training folder and the folder of a run being replaced, for the run ``folder``."""
    store = Path(folder).parent / STORE_FOLDER
    return store / f"{Path(folder).name}.lock", store / Path(folder).name, store / f"{Path(folder).name}.replaced"


# ---------------------------------------------------------------- reading


def recovery_advice(folder: Path | None) -> str:
    where = f" {folder}" if folder is not None else ""
    return (f"train it again (--retrain, or retrain=True), or delete the folder{where} "
            "(a run of results/full can be restored with `git checkout results/full`)")


def _read_json(path: Path) -> Any:
    """The JSON in ``path``; None when the file is not there; StoredFileError naming it when it is damaged."""
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise StoredFileError(f"{path} cannot be read ({getattr(error, 'strerror', None) or error}); "
                              f"{recovery_advice(path.parent)}") from error
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise StoredFileError(f"{path} is not valid JSON (line {error.lineno}, column {error.colno}: {error.msg}); "
                              f"{recovery_advice(path.parent)}") from error
    if not isinstance(value, dict):
        raise StoredFileError(f"{path} holds {type(value).__name__ if value is not None else 'null'}, not a JSON "
                              f"object; {recovery_advice(path.parent)}")
    return value


def load_run(path: Path) -> Run | None:
    """The complete run stored in ``path``, or None when there is none; a damaged run raises
    :class:`~hw2lib.utils.StoredFileError` naming the file."""
    path = Path(path)
    metrics_file, config_file = path / METRICS_FILE, path / CONFIG_FILE
    if not metrics_file.is_file():
        return None
    config, metrics = _read_json(config_file), _read_json(metrics_file)
    if metrics is None:  # renamed away meanwhile (a retrain swapped it): as if not there
        return None
    if config is None:
        if not path.is_dir():
            return None
        raise StoredFileError(f"{path} holds {METRICS_FILE} but no {CONFIG_FILE}; {recovery_advice(path)}")
    history = metrics.get("history", [])
    if not (isinstance(history, list) and all(isinstance(row, dict) for row in history)):
        raise StoredFileError(f"{metrics_file}: 'history' is not a list of rows; {recovery_advice(path)}")
    name = path.name.rsplit("-", 1)[0]
    return Run(name=name, config=config, metrics=StoredMetrics(metrics, metrics_file), path=path)


def _stored_run(folder: Path, config: dict) -> Run | None:
    stored = load_run(folder)
    if stored is not None and canonical_json(stored.config) != canonical_json(config):
        raise StoredFileError(f"{folder / CONFIG_FILE} holds a different configuration than asked for (a hash "
                              "collision, or an edited file); move the folder away")
    return stored


# ---------------------------------------------------------------- training


def get_or_train(name: str, config: dict, train_fn: Callable[[dict, Path], dict], *, retrain: bool = False,
                 keep_weights: bool = True) -> Run:
    """The stored run ``name`` with ``config``, trained first when there is none (introduction, "How to run it").

    ``config`` gets ``"profile": profile()`` unless it names one. ``train_fn(config, run_dir)`` trains
    (resuming from :func:`checkpoint_file` when it exists), may save weights (:func:`save_weights`) and
    returns the metrics, which should name the ``"device"``. ``retrain=True`` trains a new run even when
    one is stored and replaces it only once the new one is complete. ``keep_weights=False`` stores the
    metrics only. Training prints one line to stderr first (what it trains and about how long it takes);
    a call that finds another process training the same run waits for it. See the module's guarantees.
    """
    config = dict(config)
    config.setdefault("profile", profile())
    folder = run_folder(name, config)
    if not retrain:
        stored = _stored_run(folder, config)
        if stored is not None:
            return stored
    with _run_lock(folder):
        try:
            _recover(folder)
        except OSError as error:
            raise StoredFileError(_unwritable(folder.parent, error)) from error
        if not retrain:
            stored = _stored_run(folder, config)
            if stored is not None:
                return stored
        return _train_and_store(folder, config, train_fn, retrain=retrain, keep_weights=keep_weights)


def _unwritable(results: Path, error: OSError) -> str:
    if results.exists() and not results.is_dir():
        return (f"the results folder {results} is a file, not a folder; point HW2LIB_RESULTS at a folder "
                "(it is created when missing)")
    return (f"cannot write the results folder {results} ({error.strerror or error}); set HW2LIB_RESULTS to a "
            "writable folder (stored runs can still be loaded from this one)")


def _run_lock(folder: Path) -> ExitStack:
    """The run's lock, held: one process trains ``folder``'s run at a time; others wait, saying so."""
    lock, _, _ = store_paths(folder)

    def waiting(holder: str) -> None:
        print(f"{folder.name} is being trained by {holder}; waiting for it to finish (Ctrl-C stops waiting)",
              file=sys.stderr, flush=True)

    stack = ExitStack()
    try:
        stack.enter_context(file_lock(lock, waiting=waiting))
    except OSError as error:
        raise StoredFileError(_unwritable(folder.parent, error)) from error
    return stack


def _complete(folder: Path) -> bool:
    return (folder / METRICS_FILE).is_file()


def _publish(staging: Path, folder: Path) -> None:
    """Rename the complete run in ``staging`` to ``folder``, replacing (then deleting) a run stored there."""
    _, _, replaced = store_paths(folder)
    checkpoint_file(staging).unlink(missing_ok=True)
    remove_stale_parts(staging)
    if folder.exists():
        if replaced.exists():
            shutil.rmtree(replaced)
        os.replace(folder, replaced)
    os.replace(staging, folder)
    shutil.rmtree(replaced, ignore_errors=True)


def _recover(folder: Path) -> None:
    """Finish what a killed process left half done (under the run's lock): a complete run not yet renamed
    into place is published; a replaced run whose successor is not complete is put back."""
    _, staging, replaced = store_paths(folder)
    if replaced.exists() and not folder.exists() and not _complete(staging):
        os.replace(replaced, folder)
    if _complete(staging):
        _publish(staging, folder)
    if replaced.exists():
        shutil.rmtree(replaced)


def _prepare_staging(folder: Path) -> tuple[Path, bool]:
    """The folder to train in and whether this call created it (False: resuming from its checkpoint)."""
    _, staging, _ = store_paths(folder)
    if checkpoint_file(staging).is_file():
        remove_stale_parts(staging)
        return staging, False
    if staging.exists():  # what a process killed before its first checkpoint left: nobody writes there now
        shutil.rmtree(staging)
    if checkpoint_file(folder).is_file() and not _complete(folder):  # unfinished in place (older versions)
        os.replace(folder, staging)
        return staging, False
    staging.mkdir(parents=True)
    return staging, True


def _train_and_store(folder: Path, config: dict, train_fn: Callable[[dict, Path], dict], *, retrain: bool,
                     keep_weights: bool) -> Run:
    try:
        staging, created = _prepare_staging(folder)
        write_json_atomically(config, staging / CONFIG_FILE)
    except OSError as error:
        raise StoredFileError(_unwritable(folder.parent, error)) from error
    resumed = not created
    print(training_notice(folder, config, resumed=resumed, retrain=retrain), file=sys.stderr, flush=True)
    started = time.perf_counter()
    try:
        metrics = _finished_metrics(train_fn(config, staging), started, resumed)
        if not keep_weights:
            for weights in WEIGHT_FILES:
                (staging / weights).unlink(missing_ok=True)
        write_json_atomically(metrics, staging / METRICS_FILE)
        _publish(staging, folder)
    except BaseException as error:
        _after_failure(folder, staging, created, error)
        raise
    run = load_run(folder)
    run.trained = True
    return run


def _finished_metrics(metrics: Any, started: float, resumed: bool) -> dict:
    if not isinstance(metrics, dict):
        raise TypeError(f"train_fn must return a dict of metrics, got {type(metrics).__name__}")
    metrics = dict(metrics)
    metrics["wall_seconds"] = time.perf_counter() - started
    metrics["resumed_from_checkpoint"] = resumed
    metrics["torch_version"] = torch.__version__
    metrics.setdefault("device", "not recorded")
    metrics.setdefault("cpu_threads", torch.get_num_threads())
    return metrics


def _after_failure(folder: Path, staging: Path, created: bool, error: BaseException) -> None:
    """Clean up after a failed training: keep a checkpoint (the next call resumes from it), else remove the
    training folder this call created. Ctrl-C and OS errors become one-line errors saying what was kept."""
    if _complete(staging):  # stopped while renaming the finished run into place
        kept = f"it is finished in {staging}, and the next call that asks for it stores it"
    elif checkpoint_file(staging).is_file():
        kept = f"its checkpoint is kept in {staging}: run the same command again to resume"
    else:
        if created:
            shutil.rmtree(staging, ignore_errors=True)
        kept = "nothing of it was stored"
    if _complete(folder):
        kept += f"; the stored run {folder} is unchanged"
    if isinstance(error, KeyboardInterrupt) and not isinstance(error, TrainingInterrupted):
        raise TrainingInterrupted(f"training {folder.name} was interrupted; {kept}") from error
    if isinstance(error, OSError) and _writing_the_store(error, folder.parent):
        raise StoredFileError(f"training {folder.name} failed writing {error.filename or 'the results folder'} "
                              f"({error.strerror or error}); {kept}") from error


def _writing_the_store(error: OSError, results: Path) -> bool:
    """Whether ``error`` is the results folder's: a file in it, or a full or read-only disk."""
    if error.errno in (errno.ENOSPC, errno.EROFS, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return True
    filename = error.filename
    return isinstance(filename, (str, os.PathLike)) and Path(filename).absolute().is_relative_to(results.absolute())


# ---------------------------------------------------------------- the notice before training


def _seconds_per_epoch(metrics: dict) -> float | None:
    value = metrics.get("seconds_per_epoch")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
        return float(value)
    history, wall = metrics.get("history") or [], metrics.get("wall_seconds")
    if isinstance(wall, (int, float)) and history:
        return float(wall) / len(history)
    return None


def comparable_run(folder: Path, config: dict) -> tuple[str, float] | None:
    """(folder name, seconds per epoch) of the stored run beside ``folder`` most like ``config``: the same
    task and model, the fewest other settings different (epochs, seed and learning rate aside)."""
    best = None
    results = Path(folder).parent
    for candidate in sorted(results.iterdir()) if results.is_dir() else []:
        if candidate.name.startswith(".") or not _complete(candidate):
            continue
        try:
            run = load_run(candidate)
        except StoredFileError:
            continue
        other = run.config
        seconds = _seconds_per_epoch(run.metrics)
        if seconds is None or (other.get("task"), other.get("model")) != (config.get("task"), config.get("model")):
            continue
        differences = sum(other.get(key) != config.get(key) for key in set(other) | set(config)
                          if key not in ("epochs", "seed", "learning_rate"))
        if best is None or differences < best[0]:
            best = (differences, candidate.name, seconds)
    return None if best is None else best[1:]


def training_notice(folder: Path, config: dict, *, resumed: bool = False, retrain: bool = False) -> str:
    """The line printed before a run trains: which run, why, how many epochs and about how long."""
    what = (f"resuming {folder.name} from its checkpoint" if resumed else
            f"retraining {folder.name} (the stored run stays until the new one is complete)" if retrain else
            f"no stored run for {folder.name}: training")
    epochs = config.get("epochs")
    comparable = comparable_run(folder, config)
    count = f", {epochs} epochs" if isinstance(epochs, int) else ""
    if not isinstance(epochs, int) or comparable is None:
        return f"{what}{count} (no comparable stored run to estimate the time from)"
    name, seconds = comparable
    minutes = seconds * epochs / 60
    duration = "under a minute" if minutes < 1 else f"about {minutes:.0f} minute{'s' if round(minutes) != 1 else ''}"
    return f"{what}{count}, {duration} (like {name}: {seconds:.1f} s per epoch)"

"""The training loop shared by chapters 2 and 3: Adam, per-epoch history, resumable checkpoints.

Explained in chapter 2 ("Training"). A model is trained on a :class:`Task`, which knows
its data and its loss; :func:`train` owns everything else: seeding, the optimiser, the
progress bar, the history and the checkpoint.

Batches and devices: :func:`train` moves every training batch to the model's device
with :func:`to_device` before it calls ``task.loss`` (a batch may be a tensor, a
tuple / list / dict of tensors, or a dataclass whose fields are tensors; anything else
is passed through unchanged). ``task.evaluate`` receives only the model and must move
its own dev data, e.g. with ``to_device(data, model_device(model))``. A task that
defines ``__len__`` (batches per epoch) gets a progress bar with a total.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Iterable, Protocol

import torch
from torch import nn
from tqdm.auto import tqdm

from .optim import LeanFusedAdam

CHECKPOINT_FORMAT = 1


class Task(Protocol):
    """What :func:`train` needs to know about a problem (Chapter 2, "Training")."""

    def training_batches(self, generator: torch.Generator) -> Iterable[Any]:
        """One epoch of training batches, shuffled with ``generator``."""

    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """Mean loss of one batch (the model is in train mode)."""

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Dev metrics after an epoch (the model is in eval mode, gradients off)."""


def choose_device(preference: str = "auto") -> torch.device:
    """The device to train on (Chapter 2): "auto" takes cuda, then mps, then cpu.

    An explicit "cpu", "cuda", "cuda:N" or "mps" is checked: asking for an accelerator
    that this machine lacks raises ValueError naming it.
    """
    preference = str(preference).strip().lower()
    mps_available = hasattr(torch.backends, "mps") and torch.backends.mps.is_available()
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if mps_available:
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(preference)
    except RuntimeError as error:
        raise ValueError(f"unknown device {preference!r}; use auto, cpu, cuda or mps") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {preference!r} was asked for but CUDA is not available here")
    if device.type == "mps" and not mps_available:
        raise ValueError(f"device {preference!r} was asked for but MPS is not available here")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unsupported device {preference!r}; use auto, cpu, cuda or mps")
    return device


def model_device(model: nn.Module) -> torch.device:
    """The device that holds ``model``'s parameters (Chapter 2)."""
    for parameter in model.parameters():
        return parameter.device
    return torch.device("cpu")


def to_device(batch: Any, device: torch.device | str) -> Any:
    """``batch`` with every tensor in it moved to ``device`` (Chapter 2, "Training").

    Handles tensors, tuples (named ones too), lists, dicts and dataclass instances,
    recursively; other values are returned unchanged.
    """
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        changes = {field.name: to_device(getattr(batch, field.name), device)
                   for field in dataclasses.fields(batch) if field.init}
        return dataclasses.replace(batch, **changes)
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(to_device(item, device) for item in batch))
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(item, device) for item in batch)
    if isinstance(batch, dict):
        return {key: to_device(value, device) for key, value in batch.items()}
    return batch


def save_atomically(state: dict, path: Path) -> None:
    """torch.save to a temporary file next to ``path``, then rename: never a half-written file (Chapter 2)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".part", delete=False)
    temporary = Path(handle.name)
    try:
        with handle:
            torch.save(state, handle)
        os.chmod(temporary, 0o644)  # temporary files are created private; results are meant to be shared
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()


def save_state_dict(model: nn.Module, path: Path) -> Path:
    """Store ``model``'s weights (CPU tensors) in ``path`` atomically (Chapter 2, "Stored runs")."""
    path = Path(path)
    save_atomically({key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}, path)
    return path


def load_state_dict_file(path: Path, map_location: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Read weights stored by :func:`save_state_dict` with ``weights_only=True`` (Chapter 2).

    A file that carries anything but tensors (a crafted pickle that would run code) or that is
    damaged is refused with a ValueError naming it; it is never retried without the safeguard.
    """
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:
        raise ValueError(f"stored weights {path} cannot be read safely ({type(error).__name__}: "
                         f"{str(error).splitlines()[0] if str(error) else ''}); they are never loaded with "
                         "weights_only=False: delete them and train again (retrain=True)") from error


def _rng_state(generator: torch.Generator, device: torch.device) -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "generator": generator.get_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _restore_rng(state: dict[str, Any], generator: torch.Generator, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["generator"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`train` (weights_only: no code runs on load) (Chapter 2)."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a damaged or foreign file: say which, do not guess
        raise ValueError(f"checkpoint {path} cannot be read ({error}); delete it to start over") from error
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a checkpoint of this training loop; delete it to start over")
    return checkpoint


def train(model: nn.Module, task: Task, *, epochs: int, learning_rate: float, seed: int,
          device: torch.device | str = "auto", checkpoint_path: Path | None = None,
          progress: bool = True, description: str = "training",
          fused_adam: bool = False) -> list[dict[str, float]]:
    """Train ``model`` on ``task`` with Adam for ``epochs`` epochs; return one history row per epoch.

    Explained in chapter 2 ("Training"). Each row holds ``epoch``, ``train_loss`` (mean
    loss of the epoch's batches), ``train_loss_running`` (mean of all batch losses since
    epoch 1, the figure the course skeleton printed), ``seconds`` (wall time of the
    epoch, evaluation included) and whatever ``task.evaluate`` returns.

    Seeds torch with ``seed`` (dropout) and a separate ``torch.Generator`` (shuffling).
    The model should be built, and so initialised, by the caller after its own
    ``torch.manual_seed``. With ``checkpoint_path``, the model, optimiser, random
    states and history are saved after every epoch, and a run started with an
    existing checkpoint resumes from it: the history of an interrupted run then
    equals that of an uninterrupted one (apart from ``seconds``). ``fused_adam`` selects
    PyTorch's fused Adam kernel (much faster for small batches on the CPU), called through
    :class:`hw2lib.optim.LeanFusedAdam` (the same weights as ``torch.optim.Adam(fused=True)``).
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    if not learning_rate > 0 or not math.isfinite(learning_rate):
        raise ValueError(f"learning_rate must be a positive number, got {learning_rate}")
    device = choose_device(device) if isinstance(device, str) else torch.device(device)
    model.to(device)
    # The fused Adam updates all weights in one kernel instead of a Python loop of several passes per
    # tensor: for the CNN at batch size 8 the update then stops costing as much as the whole forward
    # and backward pass. Same algorithm, different rounding, so the choice is part of a run's config.
    # LeanFusedAdam is that fused Adam, bit for bit, with less Python per step (hw2lib.optim).
    if fused_adam and device.type in ("cpu", "cuda"):
        optimizer: torch.optim.Adam = LeanFusedAdam(model.parameters(), lr=learning_rate)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)

    history: list[dict[str, float]] = []
    loss_sum_all, batches_all = 0.0, 0  # for the running mean since epoch 1
    checkpoint_path = Path(checkpoint_path) if checkpoint_path is not None else None
    if checkpoint_path is not None and checkpoint_path.is_file():
        checkpoint = load_checkpoint(checkpoint_path)
        if checkpoint["epochs_done"] > epochs:
            raise ValueError(f"checkpoint {checkpoint_path} already holds {checkpoint['epochs_done']} epochs, "
                             f"more than the {epochs} asked for; delete it to start over")
        saved_threads = checkpoint.get("threads")
        if saved_threads is not None and saved_threads != torch.get_num_threads():
            # CPU kernels split their sums by thread, so the resumed epochs may differ in the last bits.
            warnings.warn(f"checkpoint {checkpoint_path} was written with {saved_threads} CPU threads, this run uses "
                          f"{torch.get_num_threads()}: the history may differ slightly from an uninterrupted run",
                          stacklevel=2)
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        _restore_rng(checkpoint["rng"], generator, device)
        history = [dict(row) for row in checkpoint["history"]]
        loss_sum_all, batches_all = checkpoint["loss_sum_all"], checkpoint["batches_all"]

    epoch_bar = tqdm(range(len(history) + 1, epochs + 1), desc=description, unit="epoch",
                     initial=len(history), total=epochs, disable=not progress)
    for epoch in epoch_bar:
        started = time.perf_counter()
        model.train()
        # Summing on the device and reading the sum once per epoch avoids a host sync per step
        # (in float64 for an exact-enough sum, except on MPS, which has no float64).
        loss_sum = torch.zeros((), dtype=torch.float32 if device.type == "mps" else torch.float64, device=device)
        batches = 0
        for batch in tqdm(task.training_batches(generator), desc=f"epoch {epoch}", unit="batch",
                          total=len(task) if hasattr(task, "__len__") else None,
                          leave=False, disable=not progress):
            batch = to_device(batch, device)
            optimizer.zero_grad(set_to_none=True)
            loss = task.loss(model, batch)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach()
            batches += 1
        if batches == 0:
            raise ValueError("task.training_batches yielded no batch; is the training set empty?")
        epoch_loss_sum = loss_sum.item()
        loss_sum_all += epoch_loss_sum
        batches_all += batches
        model.eval()
        with torch.no_grad():
            dev_metrics = task.evaluate(model)
        row = {"epoch": epoch, "train_loss": epoch_loss_sum / batches,
               "train_loss_running": loss_sum_all / batches_all,
               "seconds": time.perf_counter() - started}
        row.update({key: float(value) for key, value in dev_metrics.items()})
        history.append(row)
        epoch_bar.set_postfix({key: f"{value:.4g}" for key, value in row.items()
                               if key not in ("epoch", "seconds", "train_loss_running")})
        if checkpoint_path is not None:
            save_atomically({
                "format": CHECKPOINT_FORMAT, "epochs_done": epoch,
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "rng": _rng_state(generator, device), "history": history,
                "loss_sum_all": loss_sum_all, "batches_all": batches_all, "threads": torch.get_num_threads(),
            }, checkpoint_path)
    epoch_bar.close()
    model.eval()
    return history

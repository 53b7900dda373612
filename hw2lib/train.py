"""The one training loop of the book (chapters 2 and 3): Adam, a history row per epoch, and a
checkpoint after every epoch from which an interrupted run resumes exactly.

Explained in chapter 2 (Q2.4). A problem is a :class:`Task` (its batches, its loss, its dev
metrics); :func:`train` owns everything else: seeding, the optimiser, progress bars, the history and
the checkpoint.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Protocol

import torch
from torch import nn
from tqdm.auto import tqdm

from .optim import LeanFusedAdam
from .utils import StoredFileError, choose_device, load_torch_file, save_torch_atomically, to_device

CHECKPOINT_FORMAT = 1


class Task(Protocol):
    """What :func:`train` needs to know about a problem.

    A task that defines ``__len__`` (batches per epoch) gets a progress bar with a total.
    """

    def training_batches(self, generator: torch.Generator) -> Iterable[Any]:
        """One epoch of training batches, shuffled with ``generator``; :func:`train` moves each batch
        (tensors, tuples, dicts or dataclasses of tensors) to the model's device."""

    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """Mean loss of one batch (the model is in train mode)."""

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Dev metrics after an epoch (eval mode, no gradients); moves its own data to the model's device."""


@dataclass
class _Progress:
    """What a checkpoint keeps besides the weights and the optimiser."""

    history: list[dict[str, float]] = field(default_factory=list)
    loss_sum_all: float = 0.0  # for the running mean since epoch 1
    batches_all: int = 0


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint written by :func:`train`, read safely; anything else raises ValueError naming it."""
    checkpoint = load_torch_file(path, "checkpoint")
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise StoredFileError(f"{path} is not a checkpoint of this training loop; delete it to start over")
    return checkpoint


def _optimizer(model: nn.Module, learning_rate: float, fused_adam: bool, device: torch.device) -> torch.optim.Adam:
    # The fused kernel updates all weights at once instead of several passes per tensor: at batch size 8
    # the update would otherwise cost as much as the forward and backward pass. Same algorithm, other
    # rounding, so the choice is part of a run's configuration.
    if fused_adam and device.type in ("cpu", "cuda"):
        return LeanFusedAdam(model.parameters(), lr=learning_rate)
    return torch.optim.Adam(model.parameters(), lr=learning_rate)


def _resume(path: Path, epochs: int, model: nn.Module, optimizer: torch.optim.Optimizer,
            generator: torch.Generator, device: torch.device) -> _Progress:
    """Load the checkpoint at ``path`` into the model, optimiser and random states."""
    checkpoint = load_checkpoint(path)
    if checkpoint["epochs_done"] > epochs:
        raise StoredFileError(f"checkpoint {path} already holds {checkpoint['epochs_done']} epochs, more than the "
                              f"{epochs} asked for; delete it to start over")
    saved_threads = checkpoint.get("threads")
    if saved_threads is not None and saved_threads != torch.get_num_threads():
        # CPU kernels split their sums by thread, so the resumed epochs may differ in the last bits.
        warnings.warn(f"checkpoint {path} was written with {saved_threads} CPU threads, this run uses "
                      f"{torch.get_num_threads()}: the history may differ slightly from an uninterrupted run",
                      stacklevel=3)
    try:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
    except (RuntimeError, ValueError, KeyError) as error:
        raise StoredFileError(f"checkpoint {path} belongs to another model or optimiser; delete it to start over") \
            from error
    rng = checkpoint["rng"]
    torch.set_rng_state(rng["torch"])
    generator.set_state(rng["generator"])
    if device.type == "cuda" and "cuda" in rng:
        torch.cuda.set_rng_state(rng["cuda"], device)
    return _Progress([dict(row) for row in checkpoint["history"]], checkpoint["loss_sum_all"],
                     checkpoint["batches_all"])


def _save_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                     generator: torch.Generator, device: torch.device, progress: _Progress) -> None:
    rng = {"torch": torch.get_rng_state(), "generator": generator.get_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    save_torch_atomically({
        "format": CHECKPOINT_FORMAT, "epochs_done": len(progress.history), "model": model.state_dict(),
        "optimizer": optimizer.state_dict(), "rng": rng, "history": progress.history,
        "loss_sum_all": progress.loss_sum_all, "batches_all": progress.batches_all,
        "threads": torch.get_num_threads(),
    }, path)


def _train_epoch(model: nn.Module, task: Task, optimizer: torch.optim.Optimizer, generator: torch.Generator,
                 device: torch.device, bar_options: dict) -> tuple[float, int]:
    """One pass over the training batches; returns the sum of the batch losses and their number."""
    model.train()
    # Summed on the device and read once per epoch: no host sync per step (float64 except on MPS).
    loss_sum = torch.zeros((), dtype=torch.float32 if device.type == "mps" else torch.float64, device=device)
    batches = 0
    total = len(task) if hasattr(task, "__len__") else None
    for batch in tqdm(task.training_batches(generator), total=total, unit="batch", leave=False, **bar_options):
        batch = to_device(batch, device)
        optimizer.zero_grad(set_to_none=True)
        loss = task.loss(model, batch)
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach()
        batches += 1
    if batches == 0:
        raise ValueError("task.training_batches yielded no batch; is the training set empty?")
    return loss_sum.item(), batches


def train(model: nn.Module, task: Task, *, epochs: int, learning_rate: float, seed: int,
          device: torch.device | str = "auto", checkpoint_path: Path | None = None,
          progress: bool = True, description: str = "training",
          fused_adam: bool = False) -> list[dict[str, float]]:
    """Train ``model`` on ``task`` with Adam for ``epochs`` epochs; return one history row per epoch
    (chapter 2, Q2.4).

    A row holds ``epoch``, ``train_loss`` (mean batch loss of the epoch), ``train_loss_running`` (mean
    since epoch 1, what the course skeleton printed), ``seconds`` and ``task.evaluate``'s metrics.
    ``seed`` seeds dropout and the shuffling; seed torch yourself before building the model. With
    ``checkpoint_path`` an interrupted run resumes with the history an uninterrupted one would have had.
    ``fused_adam`` selects :class:`hw2lib.optim.LeanFusedAdam`. ``progress=False`` hides the per-batch bars
    only: the epoch bar (one line, updated once an epoch) always shows, so training never runs silently.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    if not learning_rate > 0 or not math.isfinite(learning_rate):
        raise ValueError(f"learning_rate must be a positive number, got {learning_rate}")
    device = choose_device(device) if isinstance(device, str) else torch.device(device)
    model.to(device)
    optimizer = _optimizer(model, learning_rate, fused_adam, device)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    checkpoint_path = Path(checkpoint_path) if checkpoint_path is not None else None
    state = _Progress()
    if checkpoint_path is not None and checkpoint_path.is_file():
        state = _resume(checkpoint_path, epochs, model, optimizer, generator, device)

    epoch_bar = tqdm(range(len(state.history) + 1, epochs + 1), desc=description, unit="epoch",
                     initial=len(state.history), total=epochs)
    for epoch in epoch_bar:
        started = time.perf_counter()
        loss_sum, batches = _train_epoch(model, task, optimizer, generator, device,
                                         {"desc": f"epoch {epoch}", "disable": not progress})
        state.loss_sum_all += loss_sum
        state.batches_all += batches
        model.eval()
        with torch.no_grad():
            dev_metrics = task.evaluate(model)
        row = {"epoch": epoch, "train_loss": loss_sum / batches,
               "train_loss_running": state.loss_sum_all / state.batches_all,
               "seconds": time.perf_counter() - started}
        row.update({key: float(value) for key, value in dev_metrics.items()})
        state.history.append(row)
        epoch_bar.set_postfix({key: f"{value:.4g}" for key, value in row.items()
                               if key not in ("epoch", "seconds", "train_loss_running")})
        if checkpoint_path is not None:
            _save_checkpoint(checkpoint_path, model, optimizer, generator, device, state)
    epoch_bar.close()
    model.eval()
    return state.history

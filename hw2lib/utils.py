"""Small utilities every layer shares: devices, evaluation mode, parameter counts, files written
atomically, and weights read safely.

The lowest layer of hw2lib: it imports nothing else from the package.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator

import torch
from torch import nn

# ---------------------------------------------------------------- devices


def choose_device(preference: str = "auto") -> torch.device:
    """The device to train on: "auto" takes cuda, then mps, then cpu (chapter 2, "Training").

    An explicit "cpu", "cuda", "cuda:N" or "mps" that this machine lacks raises ValueError naming it.
    """
    preference = str(preference).strip().lower()
    mps_available = hasattr(torch.backends, "mps") and torch.backends.mps.is_available()
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if mps_available else "cpu")
    try:
        device = torch.device(preference)
    except RuntimeError as error:
        raise ValueError(f"unknown device {preference!r}; use auto, cpu, cuda or mps") from error
    if device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unsupported device {preference!r}; use auto, cpu, cuda or mps")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {preference!r} was asked for but CUDA is not available here")
    if device.type == "mps" and not mps_available:
        raise ValueError(f"device {preference!r} was asked for but MPS is not available here")
    return device


def model_device(model: nn.Module) -> torch.device:
    """The device that holds ``model``'s parameters (the CPU for a model without any)."""
    for parameter in model.parameters():
        return parameter.device
    return torch.device("cpu")


def to_device(batch: Any, device: torch.device | str) -> Any:
    """``batch`` with every tensor in it moved to ``device``: tensors, (named) tuples, lists, dicts and
    dataclass instances, recursively; anything else unchanged."""
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


# ---------------------------------------------------------------- models


@contextmanager
def evaluation_mode(model: nn.Module) -> Iterator[None]:
    """Dropout off and no gradients inside the block; the model's previous mode is restored afterwards,
    also when the block raises."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def count_parameters(model: nn.Module) -> int:
    """Number of distinct trainable parameters (a tied weight counts once)."""
    return sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)


# ---------------------------------------------------------------- files


@contextmanager
def atomic_write(path: Path, mode: str = "wb", encoding: str | None = None) -> Iterator[IO]:
    """A handle on a temporary file beside ``path``, renamed to ``path`` when the block ends without an
    error and deleted when it raises: readers see the old file or the new one, never half of one.

    The temporary file is named ``.<name>.<random>.part``, so a crash leaves only such a file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(mode, dir=path.parent, prefix=f".{path.name}.", suffix=".part",
                                         delete=False, encoding=encoding)
    temporary = Path(handle.name)
    try:
        with handle:
            yield handle
        os.chmod(temporary, 0o644)  # temporary files are created private; results are meant to be shared
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()


def write_text_atomically(text: str, path: Path) -> None:
    """Write ``text`` (UTF-8) to ``path`` through :func:`atomic_write`."""
    with atomic_write(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def json_ready(value: Any) -> Any:
    """``value`` with NaN and infinities as None (strict JSON has no NaN; a diverged run produces it) and
    one-element tensors as numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return json_ready(value.item())
    return value


def write_json_atomically(data: Any, path: Path) -> None:
    """Write ``data`` as indented strict JSON through :func:`atomic_write`."""
    write_text_atomically(json.dumps(json_ready(data), indent=1, allow_nan=False) + "\n", path)


def save_torch_atomically(state: Any, path: Path) -> None:
    """``torch.save(state)`` through :func:`atomic_write`."""
    with atomic_write(path) as handle:
        torch.save(state, handle)


def save_state_dict(model: nn.Module, path: Path) -> Path:
    """Store ``model``'s weights as CPU tensors in ``path``, atomically."""
    path = Path(path)
    save_torch_atomically({key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()},
                          path)
    return path


def _load_failure(error: Exception) -> str:
    """Why torch.load refused a file, in our words: torch's own text for a refused pickle suggests
    loading it unsafely, which this project never does."""
    if isinstance(error, FileNotFoundError):
        return "the file is missing"
    if "weights only" in str(error).lower() or "weights_only" in str(error):
        return "it holds Python objects besides tensors, which are never unpickled here"
    first_line = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {first_line}" if first_line else type(error).__name__


def load_torch_file(path: Path, what: str = "stored weights", map_location: torch.device | str = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``: tensors and plain containers only, no code runs on load.

    A damaged or foreign file raises ValueError naming it (``what`` says what it should have been).
    """
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:
        raise ValueError(f"{what} {path} cannot be read ({_load_failure(error)}); delete it and train the run "
                         "again") from error


def load_state_dict_file(path: Path, map_location: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Weights stored by :func:`save_state_dict` (see :func:`load_torch_file`)."""
    state = load_torch_file(path, "stored weights", map_location)
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise ValueError(f"stored weights {path} are not a state dict of tensors; delete them and train the run again")
    return state

"""Small utilities every layer shares: devices, evaluation mode, parameter counts, files written
atomically, weights read safely, errors that are one line, and a lock held by one process at a time.

The lowest layer of hw2lib: it imports nothing else from the package.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import socket
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Callable, Iterator

import torch
from torch import nn

try:  # POSIX
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt

# ---------------------------------------------------------------- errors


class OneLineError(Exception):
    """An anticipated failure whose message is the whole report: one line that names the file or option
    and says what to do. The command line prints it and exits with :attr:`exit_code`; IPython (a
    notebook) shows it without a traceback."""

    exit_code = 1  #: the exit status of the command line for this kind of failure
    kind = "error"

    def __str__(self) -> str:  # KeyError, a base of some subclasses, would quote the message
        return str(self.args[0]) if self.args else ""

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


class StoredFileError(OneLineError, ValueError):
    """A file of the results store (a run's configuration, metrics, weights or checkpoint) is damaged or
    foreign, or the results folder cannot be written; the message names the file and what to do."""

    exit_code = 4
    kind = "stored run error"


# ---------------------------------------------------------------- devices


def choose_device(preference: str = "auto") -> torch.device:
    """The device to train on: "auto" takes cuda, then mps, then cpu (chapter 2, Q2.4).

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

    The temporary file is named ``.<name>.<writer>.<random>.part`` (``<writer>``: this machine and process),
    so a crash leaves only such a file, and :func:`remove_stale_parts` knows when its writer is gone.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(mode, dir=path.parent, prefix=f".{path.name}.{_writer()}.", suffix=".part",
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


_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"


def _writer() -> str:
    """This machine and process, as a temporary file's name carries them (read at each write: a forked
    child is another process)."""
    return f"{_HOST}-{os.getpid()}"


def _writer_is_gone(writer: str) -> bool:
    """Whether the process that ``writer`` (``<host>-<pid>`` from a temporary file's name) names has ended;
    False when that cannot be known (another machine, or Windows, where probing a pid would end it)."""
    host, _, pid = writer.rpartition("-")
    if os.name == "nt" or host != _HOST or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # PermissionError: alive, another user's
        return False
    return False


def remove_stale_parts(folder: Path) -> list[str]:
    """Delete the temporary files that :func:`atomic_write` left in ``folder`` when its process was killed
    (their writer is gone); return their names. Files being written by a live process stay."""
    removed = []
    for path in Path(folder).glob(".*.part") if Path(folder).is_dir() else []:
        match = re.fullmatch(r"\..+\.([A-Za-z0-9-]+-\d+)\.[^.]+\.part", path.name)
        if match and _writer_is_gone(match.group(1)):
            path.unlink(missing_ok=True)
            removed.append(path.name)
    return removed


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
        raise StoredFileError(f"{what} {path} cannot be read ({_load_failure(error)}); delete it and train the "
                              "run again") from error


def load_state_dict_file(path: Path, map_location: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Weights stored by :func:`save_state_dict` (see :func:`load_torch_file`)."""
    state = load_torch_file(path, "stored weights", map_location)
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise StoredFileError(f"stored weights {path} are not a state dict of tensors; delete them and train the run "
                              "again")
    return state


# ---------------------------------------------------------------- threads and locks

#: The most torch threads allowed: torch crashes on absurd counts, and more than the cores never helps.
MAX_THREADS = 4 * (os.cpu_count() or 1)


def set_threads(count: int) -> None:
    """``torch.set_num_threads(count)`` for a whole number from 1 to :data:`MAX_THREADS` (ValueError otherwise:
    torch itself crashes on absurd counts)."""
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_THREADS:
        raise ValueError(f"threads must be a whole number from 1 to {MAX_THREADS}, got {count!r}")
    torch.set_num_threads(count)


def busy_machine_hint(threads: int | None = None, load: float | None = None, cores: int | None = None) -> str | None:
    """One line for the command line when other processes keep cores busy (chapter 2, "Reproducing the runs"), else None.

    A CPU kernel on ``threads`` threads (default: torch's) waits for all of them, so when another
    process holds one core the whole kernel runs at that thread's pace: the benchmarks measured a
    batch-8 CNN 4x slower on 2 threads than on the 1 free core. ``load`` is the 1-minute load
    average and ``cores`` the core count (default: this machine's); without a load average
    (Windows) there is no hint.
    """
    threads = torch.get_num_threads() if threads is None else threads
    cores = cores or os.cpu_count() or 1
    if load is None:
        if not hasattr(os, "getloadavg"):
            return None
        load = os.getloadavg()[0]
    free = max(1, cores - math.floor(load + 0.25))  # a core busy three quarters of the minute counts
    if threads <= 1 or free >= threads:
        return None
    return (f"note: other processes keep about {cores - free} of the {cores} cores busy (load average {load:.1f}); "
            f"torch's {threads} threads would wait on each other: --threads {free} is likely faster")


_HELD_LOCKS: set[str] = set()


def _try_lock(descriptor: int) -> bool:
    try:
        if fcntl is not None:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            msvcrt.locking(descriptor, msvcrt.LK_NBLCK, 1)
        return True
    except OSError:  # BlockingIOError on POSIX, PermissionError on Windows
        return False


def _wait_for_lock(descriptor: int) -> None:
    if fcntl is not None:
        fcntl.flock(descriptor, fcntl.LOCK_EX)  # Ctrl-C interrupts the wait
        return
    while not _try_lock(descriptor):
        time.sleep(0.2)


@contextmanager
def file_lock(path: Path, *, waiting: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold an exclusive operating-system lock on ``path`` (created when missing) during the block: one
    process at a time, and a holder that dies, even by ``kill -9``, releases it.

    When another process holds it, ``waiting(holder)`` is called once (``holder`` says which process,
    from the pid the holder writes into the file) and the call waits until the lock is free; Ctrl-C stops
    the wait. A process asking again for a lock it holds gets a RuntimeError instead of waiting for itself.
    """
    path = Path(path)
    key = str(path.absolute())
    if key in _HELD_LOCKS:
        raise RuntimeError(f"this process already holds the lock {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not _try_lock(descriptor):
            if waiting is not None:
                pid = path.read_text(errors="replace").strip()
                waiting(f"process {pid}" if pid.isdigit() else "another process")
            _wait_for_lock(descriptor)
        _HELD_LOCKS.add(key)
        try:
            os.ftruncate(descriptor, 0)
            os.write(descriptor, f"{os.getpid()}\n".encode())  # at offset 0: the file was just opened
            yield
        finally:
            _HELD_LOCKS.discard(key)
    finally:
        os.close(descriptor)  # releases the lock

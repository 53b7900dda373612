"""Fetching data files: upstream address or a mirror, sha256-checked, never half-written.

Explained in the book's introduction ("The data"). Every data set the book uses is a list
of :class:`RemoteFile` entries. :func:`fetch` returns the path of a verified copy in the
cache folder, downloading it (or copying it from the mirror) when needed.

Environment variables:

* ``HW2LIB_MIRROR`` -- a folder or a base URL that replaces every upstream base address.
  A file is looked up there as ``<mirror>/<dataset>/<name>`` (the layout of the course mirror).
  Unset, the course's ``../shared/data`` beside a source checkout is used when it exists; set but
  empty (or "off"), no mirror is used.
* ``HW2LIB_CACHE`` -- the cache folder (default: ``$XDG_CACHE_HOME/hw2lib`` or ``~/.cache/hw2lib``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .utils import atomic_write

MIRROR_VARIABLE = "HW2LIB_MIRROR"
CACHE_VARIABLE = "HW2LIB_CACHE"
_CHUNK = 1 << 16


class DataError(RuntimeError):
    """A data file could not be had or is not what it should be; the message says which and why."""


@dataclass(frozen=True)
class RemoteFile:
    """One published file: where it lives upstream and what its bytes hash to."""

    dataset: str  # folder name in the cache and in a mirror, e.g. "kmnist"
    name: str  # file name, e.g. "t10k-images-idx3-ubyte.gz"
    base_url: str | None  # upstream folder URL, or None when there is no public address
    sha256: str
    size: int | None = None

    @property
    def url(self) -> str | None:
        return None if self.base_url is None else self.base_url.rstrip("/") + "/" + self.name


def cache_dir() -> Path:
    """The folder where verified data files are kept."""
    configured = os.environ.get(CACHE_VARIABLE)
    if configured:
        return Path(configured).expanduser()
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "hw2lib"


# In class and in CI the course's data folder sits beside a checkout of the book, as ../shared/data.
_CHECKOUT = Path(__file__).resolve().parents[1]
COURSE_MIRROR = _CHECKOUT.parent / "shared" / "data"
NO_MIRROR = ("", "off", "none")


def mirror() -> str | None:
    """Where data files are read instead of their upstream addresses, or None.

    ``HW2LIB_MIRROR`` when it is set (a folder or a base URL; set but empty, or "off": no mirror, as on
    a student's laptop); unset, the course's data folder beside a source checkout when it exists.
    """
    if MIRROR_VARIABLE in os.environ:
        value = os.environ[MIRROR_VARIABLE].strip()
        return None if value.lower() in NO_MIRROR else value
    beside_checkout = (_CHECKOUT / "pyproject.toml").is_file() and (COURSE_MIRROR / "README.md").is_file()
    return str(COURSE_MIRROR) if beside_checkout else None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _is_url(location: str) -> bool:
    return location.startswith(("http://", "https://", "file://"))


def _source_of(remote: RemoteFile) -> str:
    """Where to read ``remote`` from: the mirror when set, else the upstream URL."""
    location = mirror()
    if location is None:
        if remote.url is None:
            raise DataError(
                f"{remote.dataset}/{remote.name} has no public download address; "
                f"set {MIRROR_VARIABLE} to a folder or URL that holds {remote.dataset}/{remote.name}"
            )
        return remote.url
    if _is_url(location):
        return location.rstrip("/") + f"/{remote.dataset}/{remote.name}"
    return str(Path(location).expanduser() / remote.dataset / remote.name)


def _copy_into(source: str, handle, remote: RemoteFile) -> None:
    """Write the bytes at ``source`` into the open ``handle``; raise DataError naming the file."""
    label = f"{remote.dataset}/{remote.name}"
    if not _is_url(source):
        path = Path(source)
        if not path.is_file():
            raise DataError(
                f"{label} is missing from the mirror: no file {path} "
                f"({MIRROR_VARIABLE}={mirror()}). Unset {MIRROR_VARIABLE} to download it from "
                f"{remote.url or 'its upstream address'}, or add the file to the mirror."
            )
        try:
            with open(path, "rb") as source_handle:
                shutil.copyfileobj(source_handle, handle, _CHUNK)
        except OSError as error:
            raise DataError(f"{label} cannot be read from the mirror file {path} ({error.strerror or error})") from error
        return
    try:
        with urllib.request.urlopen(source, timeout=60) as response:
            expected_length = response.headers.get("Content-Length")
            received = 0
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                handle.write(chunk)
                received += len(chunk)
            if expected_length is not None and received != int(expected_length):
                raise DataError(
                    f"{label}: the download from {source} stopped after {received} of "
                    f"{expected_length} bytes; try again"
                )
    except urllib.error.HTTPError as error:
        where = "the mirror" if mirror() else "upstream"
        raise DataError(f"{label} could not be downloaded from {where} {source}: HTTP {error.code} {error.reason}") from error
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as error:
        if isinstance(error, DataError):
            raise
        raise DataError(
            f"{label} could not be downloaded from {source} ({getattr(error, 'reason', error)}). "
            f"Without network, set {MIRROR_VARIABLE} to a folder or URL that holds "
            f"{remote.dataset}/{remote.name} (for example the course's shared/data folder)."
        ) from error


def fetch(remote: RemoteFile, *, refresh: bool = False) -> Path:
    """Return the path of a verified local copy of ``remote``, fetching it when needed.

    A cached copy whose sha256 does not match (corrupt, truncated) is fetched again.
    The new copy is written to a temporary file in the cache folder and renamed into
    place only after its checksum matches, so no partial file is ever left behind.
    """
    folder = cache_dir() / remote.dataset
    target = folder / remote.name
    if target.is_file() and not refresh:
        if sha256_of(target) == remote.sha256:
            return target
        # A damaged cached copy: fetch it again below rather than fail.
    try:
        with atomic_write(target) as handle:
            _copy_into(_source_of(remote), handle, remote)
            handle.flush()
            got = sha256_of(Path(handle.name))
            if got != remote.sha256:
                raise DataError(
                    f"{remote.dataset}/{remote.name}: checksum mismatch (sha256 expected {remote.sha256}, "
                    f"got {got}). The source ({_source_of(remote)}) holds a different or damaged file; "
                    f"replace it or point {MIRROR_VARIABLE} at a correct copy."
                )
    except OSError as error:  # the source side raises DataError: an OSError here is the cache's
        raise DataError(
            f"cannot write the data cache folder {folder} ({error.strerror or error}); "
            f"set {CACHE_VARIABLE} to a writable folder"
        ) from error
    return target


def available(remote: RemoteFile) -> bool:
    """Whether ``remote`` is in the cache or the configured mirror folder, without fetching it.

    With no mirror folder set the answer is True when an upstream address exists
    (reaching it is tried only by :func:`fetch`).
    """
    target = cache_dir() / remote.dataset / remote.name
    if target.is_file():
        return True
    location = mirror()
    if location is None:
        return remote.url is not None
    if _is_url(location):
        return True
    return (Path(location).expanduser() / remote.dataset / remote.name).is_file()

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
* ``HW2LIB_DOWNLOAD_DEADLINE`` -- seconds one download may take in all (default: one minute plus the
  time the file takes at 50 kB/s), so that a stalled or dripping connection ends with an error.

A file whose size is known is checked before a byte is copied: a mirror's copy or a server's
``Content-Length`` of another size is refused at once.
"""

from __future__ import annotations

import hashlib
import http.client
import math
import os
import shutil
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from .utils import OneLineError, atomic_write, remove_stale_parts

MIRROR_VARIABLE = "HW2LIB_MIRROR"
CACHE_VARIABLE = "HW2LIB_CACHE"
DEADLINE_VARIABLE = "HW2LIB_DOWNLOAD_DEADLINE"
#: Bytes per second a download may average before its deadline ends it.
SLOWEST_SPEED = 50_000
READ_TIMEOUT = 30  # seconds without a byte before a download is given up
_CHUNK = 1 << 16


class DataError(OneLineError, RuntimeError):
    """A data file could not be had or is not what it should be; the message says which and why."""

    exit_code = 3
    kind = "data error"


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


def download_deadline(remote: RemoteFile) -> float:
    """Seconds a download of ``remote`` may take in all: ``HW2LIB_DOWNLOAD_DEADLINE`` when set, else one
    minute plus the file's size at :data:`SLOWEST_SPEED` (50 MB when the size is not known)."""
    configured = os.environ.get(DEADLINE_VARIABLE, "").strip()
    if not configured:
        return 60.0 + (remote.size or 50_000_000) / SLOWEST_SPEED
    try:
        value = float(configured)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{DEADLINE_VARIABLE} must be a positive number of seconds, got {configured!r}")
    return value


def _label(remote: RemoteFile) -> str:
    return f"{remote.dataset}/{remote.name}"


def _copy_from_folder(path: Path, handle, remote: RemoteFile) -> None:
    """Copy the mirror folder's file ``path`` into ``handle``, refusing one of the wrong size first."""
    if not path.exists():
        raise DataError(
            f"{_label(remote)} is missing from the mirror: no file {path} "
            f"({MIRROR_VARIABLE}={mirror()}). Unset {MIRROR_VARIABLE} to download it from "
            f"{remote.url or 'its upstream address'}, or add the file to the mirror."
        )
    try:
        if not path.is_file():
            raise DataError(f"{_label(remote)}: the mirror holds something other than a file at {path}; "
                            "replace it with the published file")
        size = path.stat().st_size
        if remote.size is not None and size != remote.size:
            raise DataError(f"{_label(remote)}: the mirror's copy {path} is {size:,} bytes, not the published "
                            f"{remote.size:,}; refused before copying: replace it with the published file")
        with open(path, "rb") as source_handle:
            shutil.copyfileobj(source_handle, handle, _CHUNK)
    except OSError as error:
        raise DataError(f"{_label(remote)} cannot be read from the mirror file {path} ({error.strerror or error})") \
            from error


def _announced_length(response, url: str, remote: RemoteFile) -> int | None:
    """The response's Content-Length; one that differs from the published size is refused at once."""
    text = response.headers.get("Content-Length")
    announced = int(text) if text is not None and text.strip().isdigit() else None
    if remote.size is not None and announced is not None and announced != remote.size:
        raise DataError(f"{_label(remote)}: {url} announces {announced:,} bytes, not the published {remote.size:,}; "
                        "refused before downloading (another file, or an error page): check the address or the mirror")
    return announced


def _download(url: str, handle, remote: RemoteFile) -> None:
    """Write the bytes at ``url`` into ``handle`` within :func:`download_deadline`, with a progress bar."""
    deadline = download_deadline(remote)
    started = time.monotonic()
    with urllib.request.urlopen(url, timeout=min(READ_TIMEOUT, deadline)) as response:
        announced = _announced_length(response, url, remote)
        expected = remote.size if remote.size is not None else announced
        read = getattr(response, "read1", response.read)  # read1: at most one wait on the socket per call
        received = 0
        with tqdm(total=expected, unit="B", unit_scale=True, desc=f"downloading {remote.name}", leave=False,
                  disable=None) as bar:
            while chunk := read(_CHUNK):
                received += len(chunk)
                if expected is not None and received > expected:
                    raise DataError(f"{_label(remote)}: {url} sends more than the {expected:,} bytes expected; refused")
                handle.write(chunk)
                bar.update(len(chunk))
                if time.monotonic() - started > deadline:
                    raise DataError(
                        f"{_label(remote)}: the download from {url} passed its deadline of {deadline:.0f} s "
                        f"({received:,} of {expected or '?'} bytes); try again, raise {DEADLINE_VARIABLE}, "
                        f"or set {MIRROR_VARIABLE} to a folder that holds {_label(remote)}")
    if announced is not None and received != announced:
        raise DataError(f"{_label(remote)}: the download from {url} stopped after {received} of {announced} bytes; "
                        "try again")


def _copy_into(source: str, handle, remote: RemoteFile) -> None:
    """Write the bytes at ``source`` into the open ``handle``; raise DataError naming the file."""
    if not _is_url(source):
        _copy_from_folder(Path(source), handle, remote)
        return
    try:
        _download(source, handle, remote)
    except urllib.error.HTTPError as error:
        where = "the mirror" if mirror() else "upstream"
        raise DataError(f"{_label(remote)} could not be downloaded from {where} {source}: HTTP {error.code} "
                        f"{error.reason}") from error
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        raise DataError(
            f"{_label(remote)} could not be downloaded from {source} ({getattr(error, 'reason', None) or error!r}). "
            f"Without network, set {MIRROR_VARIABLE} to a folder or URL that holds "
            f"{_label(remote)} (for example the course's shared/data folder)."
        ) from error


def _cached_copy_is_good(target: Path, remote: RemoteFile) -> bool:
    """Whether the cached ``target`` is ``remote``'s bytes (its size first, then its sha256)."""
    try:
        if remote.size is not None and target.stat().st_size != remote.size:
            return False
        return sha256_of(target) == remote.sha256
    except OSError as error:
        raise DataError(f"the cached file {target} cannot be read ({error.strerror or error}); delete it and run "
                        "again") from error


def fetch(remote: RemoteFile, *, refresh: bool = False) -> Path:
    """Return the path of a verified local copy of ``remote``, fetching it when needed.

    A cached copy whose size or sha256 does not match (corrupt, truncated) is fetched again. The new
    copy is written to a temporary file in the cache folder and renamed into place only after its
    checksum matches, so no partial file is ever left behind (and temporary files of killed processes
    are removed).
    """
    folder = cache_dir() / remote.dataset
    target = folder / remote.name
    if target.exists() and not target.is_file():
        raise DataError(f"the cache entry {target} is not a file (a folder?); move it out of the way and run again")
    if target.is_file() and not refresh and _cached_copy_is_good(target, remote):
        return target
    try:
        remove_stale_parts(folder)
        with atomic_write(target) as handle:
            _copy_into(_source_of(remote), handle, remote)
            handle.flush()
            got = sha256_of(Path(handle.name))
            if got != remote.sha256:
                raise DataError(
                    f"{_label(remote)}: checksum mismatch (sha256 expected {remote.sha256}, "
                    f"got {got}). The source ({_source_of(remote)}) holds a different or damaged file; "
                    f"replace it or point {MIRROR_VARIABLE} at a correct copy."
                )
    except OSError as error:  # the source side raises DataError: an OSError here is the cache's
        raise DataError(
            f"cannot write the data cache folder {folder} ({error.strerror or error}); "
            f"set {CACHE_VARIABLE} to a writable folder"
        ) from error
    return target


def cached_or_local(remote: RemoteFile) -> bool:
    """Whether ``remote`` can be had without the network: a cached copy of the right size, or a file in
    the mirror folder (cheap: no checksum, no download)."""
    target = cache_dir() / remote.dataset / remote.name
    try:
        if target.is_file() and (remote.size is None or target.stat().st_size == remote.size):
            return True
    except OSError:
        pass
    location = mirror()
    return location is not None and not _is_url(location) and \
        (Path(location).expanduser() / remote.dataset / remote.name).is_file()


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

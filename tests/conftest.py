"""Shared fixtures: the course mirror (or, without one, the upstream addresses) and a private data cache."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

from hw2lib.download import CACHE_VARIABLE, mirror


def _mirror_folder() -> Path | None:
    """The mirror the library uses (hw2lib.download.mirror: HW2LIB_MIRROR, set but empty for none, else
    ../shared/data beside the checkout); None means the data come from their upstream addresses."""
    location = mirror()
    return None if location is None else Path(location)


MIRROR = _mirror_folder()

# The suite never touches the user's own data cache (~/.cache/hw2lib): this process, and every process a
# test starts, gets a temporary one unless a test sets its own (tests/test_reliability.py checks it).
os.environ[CACHE_VARIABLE] = tempfile.mkdtemp(prefix="hw2lib-test-cache-")
atexit.register(shutil.rmtree, os.environ[CACHE_VARIABLE], ignore_errors=True)

# Two pytest-xdist workers share two cores: one thread each keeps them from fighting.
torch.set_num_threads(1)


#: Folders collected only when the command line names them or a file in them (``pytest tests/browser``):
#: they need a built book, Chromium or JupyterLab and take minutes, so ``make test`` (``pytest tests``)
#: leaves them out; .ci/run asks for each after building the book.
ON_REQUEST = tuple(Path(__file__).resolve().parent / name for name in ("browser", "lab", "pdf"))


def _asked_for(folder: Path, config: pytest.Config) -> bool:
    start = config.invocation_params.dir
    for argument in config.args:
        path = (start / argument.split("::")[0]).resolve()
        if path == folder or folder in path.parents:
            return True
    return False


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    for folder in ON_REQUEST:
        if (collection_path == folder or folder in collection_path.parents) and not _asked_for(folder, config):
            return True
    return None


@pytest.fixture(scope="session")
def mirror_dir() -> Path | None:
    if MIRROR is not None and not (MIRROR / "kmnist" / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.fail(f"the data mirror is not at {MIRROR}; set HW2LIB_MIRROR to the course's shared/data folder")
    return MIRROR


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory) -> Path:
    """One cache folder for the whole session, so real data files are copied once."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def use_mirror(monkeypatch, mirror_dir, shared_cache) -> Path | None:
    """Read data from the mirror folder (without one: the upstream addresses) into the session's
    cache (never the user's own cache)."""
    _point_at_data(monkeypatch, mirror_dir, shared_cache)
    return mirror_dir


def _point_at_data(patch: pytest.MonkeyPatch, mirror_dir: Path | None, cache: Path) -> None:
    if mirror_dir is None:  # "off", not unset: unset means ../shared/data beside the checkout
        patch.setenv("HW2LIB_MIRROR", "off")
    else:
        patch.setenv("HW2LIB_MIRROR", str(mirror_dir))
    patch.setenv("HW2LIB_CACHE", str(cache))


def _load_from_mirror(mirror_dir: Path | None, cache: Path, loader, *arguments):
    """Call ``loader`` with the mirror and the session cache set, without leaking them to other tests."""
    with pytest.MonkeyPatch.context() as patch:
        _point_at_data(patch, mirror_dir, cache)
        return loader(*arguments)


@pytest.fixture(scope="session")
def kmnist_t10k(mirror_dir, shared_cache):
    """The offline KMNIST variant, read once per test session (tests must not modify it)."""
    from hw2lib.kmnist import load_kmnist

    return _load_from_mirror(mirror_dir, shared_cache, load_kmnist, "kmnist-t10k")


@pytest.fixture(scope="session")
def char_mt_course(mirror_dir, shared_cache):
    """The homework's character MT files, read once per test session (tests must not modify them)."""
    from hw2lib.chardata import load_char_mt

    return _load_from_mirror(mirror_dir, shared_cache, load_char_mt, "course")

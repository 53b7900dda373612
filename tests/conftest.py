"""Shared fixtures: the course mirror and a private data cache for every test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
MIRROR = Path(os.environ.get("HW2LIB_MIRROR") or REPO.parent / "shared" / "data")

# Two pytest-xdist workers share two cores: one thread each keeps them from fighting.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def mirror_dir() -> Path:
    if not (MIRROR / "kmnist" / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.fail(f"the data mirror is not at {MIRROR}; set HW2LIB_MIRROR to the course's shared/data folder")
    return MIRROR


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory) -> Path:
    """One cache folder for the whole session, so real data files are copied once."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def use_mirror(monkeypatch, mirror_dir, shared_cache) -> Path:
    """Read data from the mirror folder into the session's cache (never the user's own cache)."""
    monkeypatch.setenv("HW2LIB_MIRROR", str(mirror_dir))
    monkeypatch.setenv("HW2LIB_CACHE", str(shared_cache))
    return mirror_dir


def _load_from_mirror(mirror_dir: Path, cache: Path, loader, *arguments):
    """Call ``loader`` with the mirror and the session cache set, without leaking them to other tests."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HW2LIB_MIRROR", str(mirror_dir))
        patch.setenv("HW2LIB_CACHE", str(cache))
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

"""Kuzushiji-MNIST: the idx reader and the two data variants the book uses.

Explained in the introduction ("The data") and used in chapter 2.

* ``kmnist`` -- the course split: the 60,000 official training images shuffled with
  seed 42 into 50,000 train / 10,000 dev, the official 10,000 test images as test.
  It needs ``train-images-idx3-ubyte.gz`` (18 MB, from the upstream address).
* ``kmnist-t10k`` -- the offline variant, built from the 10,000 official *test* images
  alone (which the course mirror has): a stratified split with seed 42 into
  8,000 train / 1,000 dev / 1,000 test (800 / 100 / 100 per class). It keeps every
  class exactly balanced, leaves a dev and a test set of the same size as each other,
  and gives the network as many training images as possible. Its numbers are *not*
  comparable one-to-one with the course's: 6x fewer training images, and the test set
  is a slice of the official test set, not all of it.

Pixels are divided by 256 (as the course did), images are float32 ``(N, 1, 28, 28)``,
labels int64.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .download import DataError, RemoteFile, cached_or_local, fetch

UPSTREAM = "http://codh.rois.ac.jp/kmnist/dataset/kmnist/"
FILES = {
    "train-images": RemoteFile("kmnist", "train-images-idx3-ubyte.gz", UPSTREAM,
                               "51467d22d8cc72929e2a028a0428f2086b092bb31cfb79c69cc0a90ce135fde4", 18165135),
    "train-labels": RemoteFile("kmnist", "train-labels-idx1-ubyte.gz", UPSTREAM,
                               "e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17", 29497),
    "test-images": RemoteFile("kmnist", "t10k-images-idx3-ubyte.gz", UPSTREAM,
                              "edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5", 3041136),
    "test-labels": RemoteFile("kmnist", "t10k-labels-idx1-ubyte.gz", UPSTREAM,
                              "20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c", 5120),
}

# The ten classes: the hiragana each class stands for and its romanisation (KMNIST's classmap).
CLASS_CHARACTERS = ["お", "き", "す", "つ", "な", "は", "ま", "や", "れ", "を"]
CLASS_ROMAJI = ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"]

VARIANTS = ("kmnist", "kmnist-t10k")
SPLIT_SEED = 42
T10K_SPLIT = (800, 100, 100)  # per class: train, dev, test

_IDX_MAGIC = {2049: 1, 2051: 3}  # labels: 1 dimension, images: 3 dimensions (unsigned bytes)


#: The largest payload :func:`read_idx` accepts (KMNIST's largest file holds 47 MB).
MAX_IDX_BYTES = 1 << 30


def _idx_header(handle, name: str) -> tuple[int, ...]:
    """The shape that an idx file's header announces (the handle is left at the payload)."""
    start = handle.read(4)
    if len(start) < 4:
        raise DataError(f"{name} is too short to be an idx file ({len(start)} bytes)")
    magic = struct.unpack(">I", start)[0]
    if magic not in _IDX_MAGIC:
        raise DataError(f"{name} is not an idx file of unsigned bytes (magic number {magic}, expected 2049 or 2051)")
    dimensions = _IDX_MAGIC[magic]
    sizes = handle.read(4 * dimensions)
    if len(sizes) < 4 * dimensions:
        raise DataError(f"{name}: header cut short")
    return struct.unpack(f">{dimensions}I", sizes)


def read_idx(path: str | Path) -> np.ndarray:
    """Read a gzipped MNIST idx file (labels or images) as a uint8 array.

    Checks the magic number, the header and that the payload has exactly the size the header
    announces; a truncated, foreign or damaged file raises :class:`~hw2lib.download.DataError` naming it. Never
    inflates more than the announced size plus one byte (a gzip bomb is refused, not unpacked), and
    a header announcing more than :data:`MAX_IDX_BYTES` is refused before reading on.
    """
    path = Path(path)
    try:
        with gzip.open(path, "rb") as handle:
            shape = _idx_header(handle, path.name)
            expected = math.prod(shape)  # Python integers: no overflow
            if expected > MAX_IDX_BYTES:
                raise DataError(f"{path.name}: the header announces shape {shape} ({expected:,} bytes), more than "
                                f"the {MAX_IDX_BYTES:,} an idx file of this book can hold; the file is damaged")
            raw = handle.read(expected + 1)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path.name} is not a readable gzip file ({error}); delete it and fetch it again") from error
    if len(raw) != expected:
        held = f"{len(raw)}" if len(raw) <= expected else "more"
        raise DataError(
            f"{path.name}: the header announces shape {shape} ({expected} bytes of data) "
            f"but the file holds {held}; the file is truncated or damaged"
        )
    return np.frombuffer(raw, dtype=np.uint8).reshape(shape)


@dataclass
class KMNIST:
    """One KMNIST variant, split into train / dev / test tensors."""

    variant: str
    description: str
    splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(repr=False)

    @property
    def train(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.splits["train"]

    @property
    def dev(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.splits["dev"]

    @property
    def test(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.splits["test"]

    def sizes(self) -> dict[str, int]:
        return {name: len(labels) for name, (_, labels) in self.splits.items()}

    def __str__(self) -> str:
        sizes = ", ".join(f"{name} {count:,}" for name, count in self.sizes().items())
        return f"{self.variant}: {sizes} -- {self.description}"


def _to_tensors(images: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    pixels = torch.from_numpy(images.astype(np.float32) / 256.0).unsqueeze(1)
    return pixels.contiguous(), torch.from_numpy(labels.astype(np.int64))


def _read_pair(images_key: str, labels_key: str) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(fetch(FILES[images_key]))
    labels = read_idx(fetch(FILES[labels_key]))
    if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"{FILES[images_key].name} / {FILES[labels_key].name}: shapes {images.shape} and {labels.shape} do not match KMNIST")
    return images, labels


def _load_course_split() -> KMNIST:
    train_images, train_labels = _read_pair("train-images", "train-labels")
    test_images, test_labels = _read_pair("test-images", "test-labels")
    order = np.random.default_rng(SPLIT_SEED).permutation(len(train_labels))
    train_index, dev_index = order[:50_000], order[50_000:]
    return KMNIST(
        variant="kmnist",
        description="the course split: 60,000 official training images shuffled (seed 42) into train/dev, official test set",
        splits={
            "train": _to_tensors(train_images[train_index], train_labels[train_index]),
            "dev": _to_tensors(train_images[dev_index], train_labels[dev_index]),
            "test": _to_tensors(test_images, test_labels),
        },
    )


def stratified_split(labels: np.ndarray, per_class: tuple[int, ...], seed: int) -> list[np.ndarray]:
    """Indices of a seeded split taking ``per_class[k]`` examples of every class for part ``k``.

    Each part is shuffled, so classes are interleaved in training order.
    """
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in per_class]
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        if len(members) < sum(per_class):
            raise DataError(f"class {label} has {len(members)} examples, fewer than the {sum(per_class)} the split needs")
        start = 0
        for part, count in zip(parts, per_class):
            part.append(members[start:start + count])
            start += count
    return [rng.permutation(np.concatenate(part)) for part in parts]


def _load_t10k_split() -> KMNIST:
    images, labels = _read_pair("test-images", "test-labels")
    train_index, dev_index, test_index = stratified_split(labels, T10K_SPLIT, SPLIT_SEED)
    return KMNIST(
        variant="kmnist-t10k",
        description=("offline variant: the 10,000 official test images only, stratified split (seed 42) "
                     "8,000 / 1,000 / 1,000; numbers are not directly comparable with the course's"),
        splits={
            "train": _to_tensors(images[train_index], labels[train_index]),
            "dev": _to_tensors(images[dev_index], labels[dev_index]),
            "test": _to_tensors(images[test_index], labels[test_index]),
        },
    )


def load_kmnist(variant: str = "auto") -> KMNIST:
    """Load KMNIST as ``variant`` ("kmnist", "kmnist-t10k" or "auto").

    "auto" takes the course split when the 60,000 training images can be had (cache,
    mirror or upstream download), else the offline ``kmnist-t10k`` variant. The returned
    object's ``variant`` says which one it is.
    """
    if variant == "kmnist":
        return _load_course_split()
    if variant == "kmnist-t10k":
        return _load_t10k_split()
    if variant == "auto":
        try:
            fetch(FILES["train-images"])
        except DataError:
            return _load_t10k_split()
        return _load_course_split()
    raise ValueError(f"unknown KMNIST variant {variant!r}; choose one of {', '.join(VARIANTS)} or 'auto'")


def resolve_variant(variant: str = "auto", *, stored: Callable[[str], bool] | None = None) -> str:
    """The variant that ``load_kmnist(variant)`` would return, without loading the images.

    For "auto": a variant for which ``stored(variant)`` says the caller's run is already stored (the
    course split first), without touching the network; else "kmnist" when the training images are in
    the cache or the mirror folder; else the answer of a download of them (bounded by its deadline).
    """
    if variant in VARIANTS:
        return variant
    if variant != "auto":
        raise ValueError(f"unknown KMNIST variant {variant!r}; choose one of {', '.join(VARIANTS)} or 'auto'")
    if stored is not None:
        for candidate in VARIANTS:
            if stored(candidate):
                return candidate
    if cached_or_local(FILES["train-images"]):
        return "kmnist"
    try:
        fetch(FILES["train-images"])
    except DataError:
        return "kmnist-t10k"
    return "kmnist"

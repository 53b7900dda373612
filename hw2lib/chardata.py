"""Character-level Spanish -> English data: the course files, vocabularies, batches.

Explained in the introduction ("The data") and used in chapter 3.

Two variants:

* ``course`` -- the three files shipped with the homework's skeleton (``hw2-char-mt``):
  10,483 train / 1,000 val / 1,000 test pairs. The course published no download address;
  byte-identical copies sit in a student's public repository of the course, read at a fixed
  commit (:data:`COURSE_UPSTREAM`) and checked by sha256. A mirror (``HW2LIB_MIRROR``) wins.
* ``tatoeba`` -- built from the public Tatoeba ``spa-eng.zip`` (2018 release) with the
  course's normalisation and ``< 20`` characters filter, then a seeded split with 1,000
  validation and 1,000 test pairs. A different data set from the course's (an older
  Tatoeba release; the two share only part of their sentences), labelled as such.

``auto`` (:func:`resolve_variant`) takes ``course`` when its files can be had and otherwise
``tatoeba``, saying in one line which and why.

Each line of a file is ``english<TAB>spanish<TAB>42``. The source is Spanish, the target
English. Vocabularies are built per side from the training split: PAD=0, SOS=1, EOS=2,
UNK=3, then characters in order of first appearance. Targets are wrapped in SOS/EOS.
"""

from __future__ import annotations

import io
import re
import unicodedata
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .download import DataError, RemoteFile, cache_dir, fetch, mirror

PAD, SOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ["<pad>", "<sos>", "<eos>", "<unk>"]
MAX_LENGTH = 20  # the course kept pairs whose sides are both shorter than this
SPLITS = ("train", "val", "test")

# The skeleton's data/ folder as committed to goncalogalante/tecnico-deeplearning-2022: a raw
# address pinned to one commit, so the bytes cannot change under the checksums below.
#: Where the course's three files are published: a student repository of the course, pinned to a commit.
COURSE_UPSTREAM = ("https://raw.githubusercontent.com/goncalogalante/tecnico-deeplearning-2022/"
                   "9f371685c375aabf3995a8316aafb827e9451a9d/data/")
COURSE_FILES = {
    "train": RemoteFile("hw2-char-mt", "train-eng-spa.txt", COURSE_UPSTREAM,
                        "22e139492d80fbe3f1db9c0e83246c940b57fd577a339dc7e86ea2f4b39bb1a7", 375161),
    "val": RemoteFile("hw2-char-mt", "val-eng-spa.txt", COURSE_UPSTREAM,
                      "ec360c803bac81c6a8c0de9990d09d2d0e6f8a4476b44525d17c098c3029e6cb", 35986),
    "test": RemoteFile("hw2-char-mt", "test-eng-spa.txt", COURSE_UPSTREAM,
                       "0ec54d96d572fcb920b8d52fa8a985f1fa144f99b07859508d58c4ac20eb8a52", 35851),
}
TATOEBA_ZIP = RemoteFile("tatoeba-spa-eng", "spa-eng.zip", "http://storage.googleapis.com/download.tensorflow.org/data/",
                         "f80e581ae291aa34dd3aba7bd98b5e9505234da4318e2f3295df70a1520c7f61", 2767131)
VARIANTS = ("course", "tatoeba")


def normalise(text: str) -> str:
    """The course's normalisation: lower-case ASCII, accents stripped, a space before ``. ! ?``,
    every other run of characters outside ``[a-z.!?]`` turned into one space.

    Like the course's files, a leading ``¿``/``¡`` leaves a leading space (`` quien lo pinto ?``).
    """
    decomposed = unicodedata.normalize("NFD", text.lower().strip())
    ascii_text = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
    spaced = re.sub(r"([.!?])", r" \1", ascii_text)
    return re.sub(r"[^a-z.!?]+", " ", spaced)


class Vocabulary:
    """Characters <-> ids for one side: the four specials, then characters in order of first appearance."""

    def __init__(self, symbols: Sequence[str]):
        if list(symbols[:4]) != SPECIALS:
            raise ValueError(f"a vocabulary starts with {SPECIALS}, got {list(symbols[:4])}")
        self.symbols = list(symbols)
        self.index = {symbol: position for position, symbol in enumerate(self.symbols)}
        if len(self.index) != len(self.symbols):
            raise ValueError("a vocabulary's symbols must be distinct")

    @classmethod
    def from_texts(cls, texts: Sequence[str]) -> "Vocabulary":
        symbols = list(SPECIALS)
        seen = set(symbols)
        for text in texts:
            for character in text:
                if character not in seen:
                    seen.add(character)
                    symbols.append(character)
        return cls(symbols)

    def __len__(self) -> int:
        return len(self.symbols)

    def encode(self, text: str) -> list[int]:
        """Ids of the characters of ``text``; characters not in the vocabulary map to UNK."""
        return [self.index.get(character, UNK) for character in text]

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``, stopping at the first EOS and skipping PAD and SOS.

        UNK shows as the replacement character U+FFFD, so it cannot be mistaken for a real ``?``.
        """
        characters = []
        for token in ids:
            token = int(token)
            if token == EOS:
                break
            if token in (PAD, SOS):
                continue
            characters.append("\ufffd" if token == UNK else self.symbols[token])
        return "".join(characters)


class CharPairs(Dataset):
    """One split: (source ids, target ids) pairs as LongTensors; targets are [SOS] + chars + [EOS]."""

    def __init__(self, pairs: Sequence[tuple[str, str]], source_vocab: Vocabulary, target_vocab: Vocabulary):
        self.pairs = list(pairs)  # (spanish, english)
        self.sources = [torch.tensor(source_vocab.encode(spanish), dtype=torch.long) for spanish, _ in self.pairs]
        self.targets = [torch.tensor([SOS, *target_vocab.encode(english), EOS], dtype=torch.long) for _, english in self.pairs]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.sources[index], self.targets[index]


@dataclass
class CharBatch:
    """A right-padded batch: ``source`` (B, S) and ``target`` (B, T) with their true lengths."""

    source: torch.Tensor
    source_lengths: torch.Tensor
    target: torch.Tensor
    target_lengths: torch.Tensor

    def to(self, device: torch.device | str) -> "CharBatch":
        # Lengths stay on the CPU: pack_padded_sequence wants them there.
        return CharBatch(self.source.to(device), self.source_lengths, self.target.to(device), self.target_lengths)


def pad_sequences(sequences: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad 1-D LongTensors with PAD into (B, longest); returns the padded batch and the lengths."""
    lengths = torch.tensor([len(sequence) for sequence in sequences], dtype=torch.long)
    padded = torch.full((len(sequences), int(lengths.max()) if len(sequences) else 0), PAD, dtype=torch.long)
    for row, sequence in enumerate(sequences):
        padded[row, : len(sequence)] = sequence
    return padded, lengths


def collate_pairs(batch: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> CharBatch:
    """Collate (source, target) pairs into a :class:`CharBatch` (right padding with PAD)."""
    if len(batch) == 0:
        raise ValueError("cannot collate an empty batch")
    source, source_lengths = pad_sequences([pair[0] for pair in batch])
    target, target_lengths = pad_sequences([pair[1] for pair in batch])
    return CharBatch(source, source_lengths, target, target_lengths)


@dataclass
class CharMT:
    """A character MT data set: the splits and the two vocabularies."""

    variant: str
    description: str
    source_vocab: Vocabulary
    target_vocab: Vocabulary
    train: CharPairs
    val: CharPairs
    test: CharPairs

    def sizes(self) -> dict[str, int]:
        return {name: len(getattr(self, name)) for name in SPLITS}

    def __str__(self) -> str:
        sizes = ", ".join(f"{name} {count:,}" for name, count in self.sizes().items())
        return (f"{self.variant}: {sizes}; {len(self.source_vocab)} source / {len(self.target_vocab)} target symbols "
                f"-- {self.description}")


def read_text_file(path: Path) -> str:
    """The UTF-8 text of a data file, without a leading byte-order mark; a file that cannot be read or is
    not UTF-8 raises DataError naming the file (and the line of the first bad byte)."""
    try:
        raw = Path(path).read_bytes()
    except OSError as error:
        raise DataError(f"{Path(path).name} cannot be read ({error.strerror or error}); delete it and fetch it again") \
            from error
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise DataError(f"{Path(path).name}, line {line}: byte 0x{raw[error.start]:02x} is not UTF-8 text; the file "
                        "must be saved as UTF-8 (not Latin-1 or UTF-16)") from error


def read_pairs(path: str | Path) -> list[tuple[str, str]]:
    """Read a course file as (spanish, english) pairs; a malformed line is an error naming file and line."""
    path = Path(path)
    pairs = []
    lines = read_text_file(path).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines[-1] == "":  # the newline that ends the last line
        lines.pop()
    for number, line in enumerate(lines, start=1):
        columns = line.split("\t")
        if len(columns) < 2:
            raise DataError(f"{path.name}, line {number}: expected 'english<TAB>spanish<TAB>...', got {line[:60]!r}")
        english, spanish = columns[0], columns[1]
        pairs.append((spanish, english))
    if not pairs:
        raise DataError(f"{path.name} holds no sentence pairs")
    return pairs


def build_dataset(variant: str, description: str, split_pairs: dict[str, list[tuple[str, str]]]) -> CharMT:
    """Vocabularies from the training pairs, then the three :class:`CharPairs` splits."""
    source_vocab = Vocabulary.from_texts([spanish for spanish, _ in split_pairs["train"]])
    target_vocab = Vocabulary.from_texts([english for _, english in split_pairs["train"]])
    splits = {name: CharPairs(split_pairs[name], source_vocab, target_vocab) for name in SPLITS}
    return CharMT(variant, description, source_vocab, target_vocab, **splits)


def tatoeba_pairs(zip_path: str | Path) -> list[tuple[str, str]]:
    """Normalised (spanish, english) pairs from Tatoeba's ``spa-eng.zip``, both sides under 20 characters.

    Pairs are kept in file order. Of the 10,152 pairs that pass the filter, 51 repeat an
    earlier pair; they are dropped (10,101 remain) so no pair can sit in two splits.
    """
    try:
        with zipfile.ZipFile(zip_path) as archive:
            raw = archive.read("spa-eng/spa.txt").decode("utf-8-sig")
    except (zipfile.BadZipFile, KeyError, UnicodeDecodeError, OSError, EOFError) as error:
        raise DataError(f"{Path(zip_path).name} is not Tatoeba's spa-eng.zip ({error})") from error
    pairs, seen = [], set()
    for line in io.StringIO(raw):
        columns = line.rstrip("\n").split("\t")
        if len(columns) < 2:
            continue
        english, spanish = normalise(columns[0]), normalise(columns[1])
        if len(english) < MAX_LENGTH and len(spanish) < MAX_LENGTH and (spanish, english) not in seen:
            seen.add((spanish, english))
            pairs.append((spanish, english))
    return pairs


@dataclass(frozen=True)
class VariantChoice:
    """Which character MT variant :func:`resolve_variant` chose, and why; ``str()`` is one line.

    ``source`` says where the files came from (the mirror's path or the upstream address); it is kept
    out of ``str()``, which chapter 3 prints, so that the line reads the same on every machine."""

    variant: str
    reason: str
    source: str = ""

    def __str__(self) -> str:
        return f"character MT data: {self.variant} -- {self.reason}"


def resolve_variant(variant: str = "auto") -> VariantChoice:
    """The variant that ``load_char_mt(variant)`` loads, and why (introduction, chapter 3).

    ``auto`` fetches the course's three files (from the mirror when one is set, else from
    :data:`COURSE_UPSTREAM`; each checked by sha256) and chooses ``course`` when all three are
    had. Otherwise it chooses the labelled ``tatoeba`` variant, whose zip it fetches too, so
    that a choice is never one that cannot load. When neither can be had: one DataError naming both.
    """
    if variant in VARIANTS:
        return VariantChoice(variant, "asked for by name")
    if variant != "auto":
        raise ValueError(f"unknown character MT variant {variant!r}; choose one of {', '.join(VARIANTS)} or 'auto'")
    return _auto_choice(mirror(), str(cache_dir()))


@lru_cache(maxsize=8)
def _auto_choice(mirror_location: str | None, cache: str) -> VariantChoice:
    """``auto`` for one mirror and cache folder, decided once per process: a failing download is not
    tried again for every configuration that asks."""
    try:
        for remote in COURSE_FILES.values():
            fetch(remote)
    except DataError as course_error:
        try:
            fetch(TATOEBA_ZIP)
        except DataError as tatoeba_error:
            raise DataError(f"no character MT data: neither the course's files ({course_error}) nor Tatoeba's "
                            f"spa-eng.zip ({tatoeba_error}) could be had") from tatoeba_error
        return VariantChoice("tatoeba", f"the course's files could not be had ({course_error}); using the variant "
                             "built from Tatoeba's spa-eng.zip instead, whose numbers are not the course's")
    where = f"the mirror {mirror_location}" if mirror_location else COURSE_UPSTREAM
    return VariantChoice("course", "the homework's files, sha256-checked", f"{where} (or the cache)")


def load_char_mt(variant: str = "course", *, seed: int = 42) -> CharMT:
    """Load the character MT data: ``course`` (the homework's files), ``tatoeba`` (built from the
    public zip) or ``auto`` (the first of the two that can be had, see :func:`resolve_variant`)."""
    if variant == "auto":
        variant = resolve_variant("auto").variant
    if variant == "course":
        split_pairs = {name: read_pairs(fetch(COURSE_FILES[name])) for name in SPLITS}
        return build_dataset("course", "the homework's files (Tatoeba sentences, CC BY 2.0 FR)", split_pairs)
    if variant == "tatoeba":
        pairs = tatoeba_pairs(fetch(TATOEBA_ZIP))
        order = np.random.default_rng(seed).permutation(len(pairs))
        shuffled = [pairs[index] for index in order]
        split_pairs = {"val": shuffled[:1000], "test": shuffled[1000:2000], "train": shuffled[2000:]}
        return build_dataset("tatoeba", f"built from Tatoeba spa-eng.zip (2018), normalised, < 20 characters, "
                             f"seeded split (seed {seed}); not the course's files", split_pairs)
    raise ValueError(f"unknown character MT variant {variant!r}; choose one of {', '.join(VARIANTS)} or 'auto'")

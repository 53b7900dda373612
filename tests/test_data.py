"""The idx reader, both KMNIST variants and the character MT data, on the real mirror files."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch

from hw2lib import chardata, kmnist
from hw2lib.download import DataError, RemoteFile, fetch


# ---------------------------------------------------------------- idx reader

def test_idx_reader_on_real_files(use_mirror):
    images = kmnist.read_idx(fetch(kmnist.FILES["test-images"]))
    labels = kmnist.read_idx(fetch(kmnist.FILES["test-labels"]))
    train_labels = kmnist.read_idx(fetch(kmnist.FILES["train-labels"]))
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and set(np.unique(labels)) == set(range(10))
    assert train_labels.shape == (60000,)
    assert np.bincount(labels).tolist() == [1000] * 10
    assert images.max() == 255 and images.min() == 0


def _write_gz(path, raw: bytes):
    with gzip.open(path, "wb") as handle:
        handle.write(raw)
    return path


def test_idx_reader_rejects_truncated_file(use_mirror, tmp_path):
    raw = gzip.open(fetch(kmnist.FILES["test-labels"])).read()
    path = _write_gz(tmp_path / "cut.gz", raw[:-10])
    with pytest.raises(DataError, match="truncated or damaged"):
        kmnist.read_idx(path)


def test_idx_reader_rejects_foreign_magic(tmp_path):
    path = _write_gz(tmp_path / "foreign.gz", struct.pack(">II", 2050, 3) + b"abc")
    with pytest.raises(DataError, match="magic number 2050"):
        kmnist.read_idx(path)


def test_idx_reader_rejects_non_gzip(tmp_path):
    path = tmp_path / "plain.gz"
    path.write_bytes(b"this is not gzip at all")
    with pytest.raises(DataError, match="not a readable gzip"):
        kmnist.read_idx(path)


def test_idx_reader_rejects_cut_gzip_stream(use_mirror, tmp_path):
    compressed = fetch(kmnist.FILES["test-labels"]).read_bytes()
    path = tmp_path / "half.gz"
    path.write_bytes(compressed[: len(compressed) // 2])
    with pytest.raises(DataError):
        kmnist.read_idx(path)


def test_idx_reader_small_valid_images(tmp_path):
    pixels = np.arange(2 * 3 * 4, dtype=np.uint8)
    path = _write_gz(tmp_path / "tiny.gz", struct.pack(">IIII", 2051, 2, 3, 4) + pixels.tobytes())
    assert np.array_equal(kmnist.read_idx(path), pixels.reshape(2, 3, 4))


# ---------------------------------------------------------------- KMNIST variants

@pytest.fixture(scope="module")
def t10k(kmnist_t10k):
    return kmnist_t10k


def test_t10k_shapes_dtypes_range(t10k):
    assert t10k.variant == "kmnist-t10k"
    assert t10k.sizes() == {"train": 8000, "dev": 1000, "test": 1000}
    for images, labels in t10k.splits.values():
        assert images.dtype == torch.float32 and images.shape[1:] == (1, 28, 28)
        assert labels.dtype == torch.int64
        assert 0.0 <= float(images.min()) and float(images.max()) == 255 / 256


def test_t10k_is_stratified(t10k):
    for name, per_class in zip(("train", "dev", "test"), kmnist.T10K_SPLIT):
        counts = torch.bincount(t10k.splits[name][1], minlength=10)
        assert counts.tolist() == [per_class] * 10, name


def test_t10k_splits_do_not_overlap(t10k):
    # Images are distinct enough to identify them by their bytes.
    seen: dict[bytes, str] = {}
    for name, (images, _) in t10k.splits.items():
        for image in images:
            key = image.numpy().tobytes()
            assert key not in seen, f"an image of {name} is also in {seen.get(key)}"
            seen[key] = name
    assert len(seen) == 10000


def test_t10k_same_split_on_every_call(t10k, use_mirror):
    again = kmnist.load_kmnist("kmnist-t10k")
    for name in ("train", "dev", "test"):
        assert torch.equal(again.splits[name][0], t10k.splits[name][0])
        assert torch.equal(again.splits[name][1], t10k.splits[name][1])


def test_t10k_classes_are_interleaved(t10k):
    # The training order is shuffled, not sorted by class.
    labels = t10k.train[1][:100]
    assert len(torch.unique(labels)) == 10


@pytest.fixture
def no_training_images(monkeypatch):
    """The 60,000 training images out of reach, as offline, whether or not this machine has network."""
    remote = kmnist.FILES["train-images"]
    monkeypatch.setitem(kmnist.FILES, "train-images", RemoteFile(remote.dataset, remote.name, None, remote.sha256))


def test_auto_falls_back_to_t10k_without_training_images(use_mirror, no_training_images):
    # The mirror has no train-images file: auto must pick the offline variant and say so.
    assert kmnist.resolve_variant("auto") == "kmnist-t10k"
    assert "offline" in str(kmnist.load_kmnist("auto"))


def test_course_split_needs_the_training_images(use_mirror, no_training_images):
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz"):
        kmnist.load_kmnist("kmnist")


def test_unknown_variant():
    with pytest.raises(ValueError, match="unknown KMNIST variant 'mnist'"):
        kmnist.load_kmnist("mnist")


def test_course_split_from_synthetic_full_files(tmp_path, monkeypatch, use_mirror):
    """The full variant on a stand-in for the 60,000 training images (same format, made here)."""
    rng = np.random.default_rng(0)
    train_labels = kmnist.read_idx(fetch(kmnist.FILES["train-labels"]))
    # Each image encodes its own index in its first three pixels, so the split can be checked.
    index = np.arange(60000)
    images = np.zeros((60000, 28, 28), dtype=np.uint8)
    images[:, 0, 0], images[:, 0, 1], images[:, 0, 2] = index // 65536, (index // 256) % 256, index % 256
    images[:, 5:, :] = rng.integers(0, 256, size=(60000, 23, 28), dtype=np.uint8)
    folder = tmp_path / "cache" / "kmnist"
    folder.mkdir(parents=True)
    path = _write_gz(folder / "train-images-idx3-ubyte.gz", struct.pack(">IIII", 2051, 60000, 28, 28) + images.tobytes())
    for key in ("train-labels", "test-images", "test-labels"):
        (folder / kmnist.FILES[key].name).write_bytes(fetch(kmnist.FILES[key]).read_bytes())
    from hw2lib import download
    stand_in = download.RemoteFile("kmnist", path.name, None, download.sha256_of(path))
    monkeypatch.setitem(kmnist.FILES, "train-images", stand_in)
    monkeypatch.setenv("HW2LIB_CACHE", str(tmp_path / "cache"))

    data = kmnist.load_kmnist("auto")
    assert data.variant == "kmnist"
    assert data.sizes() == {"train": 50000, "dev": 10000, "test": 10000}

    def original_index(images_tensor):
        pixels = (images_tensor[:, 0, 0, :3] * 256).round().long()
        return (pixels[:, 0] * 65536 + pixels[:, 1] * 256 + pixels[:, 2]).numpy()

    train_index, dev_index = original_index(data.train[0]), original_index(data.dev[0])
    assert len(set(train_index) | set(dev_index)) == 60000
    expected = np.random.default_rng(kmnist.SPLIT_SEED).permutation(60000)
    assert np.array_equal(train_index, expected[:50000]) and np.array_equal(dev_index, expected[50000:])
    assert torch.equal(data.train[1], torch.from_numpy(train_labels[train_index].astype(np.int64)))


# ---------------------------------------------------------------- character MT data

@pytest.fixture(scope="module")
def course(char_mt_course):
    return char_mt_course


def test_course_sizes_and_vocabularies(course):
    assert course.sizes() == {"train": 10483, "val": 1000, "test": 1000}
    assert len(course.source_vocab) == 34 and len(course.target_vocab) == 34
    for vocab in (course.source_vocab, course.target_vocab):
        assert vocab.symbols[:4] == ["<pad>", "<sos>", "<eos>", "<unk>"]
    # Order of first appearance: the first training pair is ("tom fue despedido .", "tom was dismissed .").
    assert course.train.pairs[0] == ("tom fue despedido .", "tom was dismissed .")
    assert course.source_vocab.symbols[4:8] == ["t", "o", "m", " "]
    assert course.target_vocab.symbols[4:9] == ["t", "o", "m", " ", "w"]


def test_sources_are_spanish_and_targets_wrapped(course):
    source, target = course.train[0]
    assert course.source_vocab.decode(source) == "tom fue despedido ."
    assert target[0].item() == chardata.SOS and target[-1].item() == chardata.EOS
    assert course.target_vocab.decode(target) == "tom was dismissed ."
    assert len(target) == len("tom was dismissed .") + 2


def test_round_trip_on_every_split(course):
    for split in (course.train, course.val, course.test):
        for (source, target), (spanish, english) in zip(split, split.pairs):
            assert course.source_vocab.decode(source) == spanish
            assert course.target_vocab.decode(target) == english


def test_unknown_characters_map_to_unk(course):
    ids = course.source_vocab.encode("añ¿x")
    assert ids[1] == chardata.UNK and ids[2] == chardata.UNK and ids[0] != chardata.UNK
    assert course.source_vocab.decode(ids) == "a\ufffd\ufffdx"


def test_collate_shapes_and_padding(course):
    items = [course.train[index] for index in range(5)]
    batch = chardata.collate_pairs(items)
    longest_source = max(len(source) for source, _ in items)
    longest_target = max(len(target) for _, target in items)
    assert batch.source.shape == (5, longest_source) and batch.target.shape == (5, longest_target)
    for row, (source, target) in enumerate(items):
        assert batch.source_lengths[row] == len(source) and batch.target_lengths[row] == len(target)
        assert torch.equal(batch.source[row, : len(source)], source)
        assert (batch.source[row, len(source):] == chardata.PAD).all()
        assert (batch.target[row, len(target):] == chardata.PAD).all()
    with pytest.raises(ValueError, match="empty batch"):
        chardata.collate_pairs([])


def test_lengths_under_twenty(course):
    for split in (course.train, course.val, course.test):
        assert all(len(spanish) < 20 and len(english) < 20 for spanish, english in split.pairs)


@pytest.mark.parametrize("raw, expected", [
    ("¿Quién lo pintó?", " quien lo pinto ?"),
    ("Tom's here.", "tom s here ."),
    ("¡Hola!", " hola !"),
    ("  Ça va...  ", "ca va . . ."),
    ("Что это", " "),
])
def test_normalise_matches_the_course(raw, expected):
    assert chardata.normalise(raw) == expected


def test_normalise_reproduces_course_lines(course):
    # Already-normalised course sentences are fixed points of the normalisation.
    for spanish, english in course.val.pairs[:200]:
        assert chardata.normalise(spanish) == spanish.strip() or chardata.normalise(spanish) == spanish
        assert chardata.normalise(english) == english.strip() or chardata.normalise(english) == english


def test_tatoeba_variant(use_mirror):
    data = chardata.load_char_mt("tatoeba")
    assert data.variant == "tatoeba"
    assert data.sizes() == {"train": 8101, "val": 1000, "test": 1000}
    splits = [set(getattr(data, name).pairs) for name in ("train", "val", "test")]
    assert not (splits[0] & splits[1]) and not (splits[0] & splits[2]) and not (splits[1] & splits[2])
    assert all(len(spanish) < 20 and len(english) < 20 for spanish, english in data.train.pairs)
    assert chardata.load_char_mt("tatoeba").val.pairs == data.val.pairs  # seeded


def test_malformed_course_line_is_named(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("hello\tholas\t42\nno tab here\n")
    with pytest.raises(DataError, match=r"bad\.txt, line 2"):
        chardata.read_pairs(path)


def test_unknown_char_variant():
    with pytest.raises(ValueError, match="unknown character MT variant"):
        chardata.load_char_mt("europarl")

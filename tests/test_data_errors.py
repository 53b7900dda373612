"""Data files read within bounds, and every data failure one DataError naming the file (and the line):
gzip bombs, idx headers that overflow, text that is not UTF-8, a byte-order mark, and the KMNIST variant
chosen without the network when the run is stored. Each docstring names the case of the reliability list.
"""

from __future__ import annotations

import gzip
import http.server
import struct
import threading
import tracemalloc
from pathlib import Path

import pytest

from hw2lib.chardata import read_pairs
from hw2lib.download import DataError
from hw2lib.kmnist import read_idx, resolve_variant


def write_idx(path: Path, header: bytes, payload_size: int, chunk: int = 1 << 22) -> Path:
    with gzip.open(path, "wb", compresslevel=9) as handle:
        handle.write(header)
        zeros = bytes(chunk)
        for start in range(0, payload_size, chunk):
            handle.write(zeros[: min(chunk, payload_size - start)])
    return path


def test_a_gzip_bomb_is_refused_without_inflating_it(tmp_path):
    """Case 11: a small gzip announcing ten labels but holding 300 MB of zeros was inflated whole (3.4 GB
    for the 1.5 MB bomb of the report) before being refused; now at most the announced size plus one byte."""
    bomb = write_idx(tmp_path / "bomb-idx1-ubyte.gz", struct.pack(">II", 2049, 10), 300_000_000)
    assert bomb.stat().st_size < 1_000_000
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"bomb-idx1-ubyte\.gz: the header announces shape \(10,\) \(10 bytes of "
                                            r"data\) but the file holds more; the file is truncated or damaged"):
            read_idx(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000  # bytes held at once while reading


def test_an_idx_header_whose_sizes_overflow_is_a_data_error(tmp_path):
    """Case 11: sizes whose product overflows 64 bits raised ValueError; now a DataError naming the file."""
    huge = write_idx(tmp_path / "huge-idx3-ubyte.gz", struct.pack(">IIII", 2051, 2**32 - 1, 2**32 - 1, 2**32 - 1), 100)
    with pytest.raises(DataError, match=r"huge-idx3-ubyte\.gz: the header announces shape .* more than the "
                                        r"1,073,741,824 an idx file of this book can hold"):
        read_idx(huge)


def test_a_damaged_deflate_stream_is_a_data_error(tmp_path):
    """Case 11: a gzip file whose compressed bytes are damaged is a DataError too (zlib.error is no OSError)."""
    good = write_idx(tmp_path / "labels-idx1-ubyte.gz", struct.pack(">II", 2049, 5000), 5000)
    raw = bytearray(good.read_bytes())
    raw[20:40] = bytes(range(20))
    damaged = tmp_path / "damaged-idx1-ubyte.gz"
    damaged.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"damaged-idx1-ubyte\.gz"):
        read_idx(damaged)


def test_a_valid_idx_file_still_reads(tmp_path):
    """The bounds do not refuse a good file: 3 images of 28 x 28 read back with their shape."""
    path = write_idx(tmp_path / "images-idx3-ubyte.gz", struct.pack(">IIII", 2051, 3, 28, 28), 3 * 28 * 28)
    assert read_idx(path).shape == (3, 28, 28)


@pytest.mark.parametrize("encoding, line", [("latin-1", 2), ("utf-16", 1)])
def test_text_that_is_not_utf8_is_a_data_error_naming_file_and_line(tmp_path, encoding, line):
    """Case 11: Latin-1 or UTF-16 input raised UnicodeDecodeError without the file's name."""
    path = tmp_path / "train-eng-spa.txt"
    path.write_bytes("go .\tve .\t42\nhello .\tqué tal .\t42\n".encode(encoding))
    with pytest.raises(DataError, match=rf"train-eng-spa\.txt, line {line}: byte 0x[0-9a-f]{{2}} is not UTF-8 text"):
        read_pairs(path)


def test_a_byte_order_mark_is_not_a_symbol(tmp_path):
    """Case 11: a UTF-8 byte-order mark stayed in the first English sentence (and so in the vocabulary)."""
    path = tmp_path / "val-eng-spa.txt"
    path.write_bytes("\ufeffgo .\tve .\t42\r\nhi .\thola .\t42\r\n".encode("utf-8"))
    assert read_pairs(path) == [("ve .", "go ."), ("hola .", "hi .")]


def test_a_folder_where_a_text_file_belongs_is_a_data_error(tmp_path):
    """Case 6: reading a folder as a data file is a DataError naming it."""
    (tmp_path / "test-eng-spa.txt").mkdir()
    with pytest.raises(DataError, match=r"test-eng-spa\.txt cannot be read"):
        read_pairs(tmp_path / "test-eng-spa.txt")


class _Recorder(http.server.BaseHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self):  # noqa: N802
        type(self).requests.append(self.path)
        self.send_error(404, "Not Found")

    def log_message(self, *args):
        pass


@pytest.fixture
def recording_mirror():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    _Recorder.requests = []
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_auto_variant_resolves_without_the_network_when_the_run_is_stored(recording_mirror, tmp_path, monkeypatch,
                                                                          capsys, use_mirror):
    """Case 10: with --variant auto, even a stored run first asked the mirror or upstream for the 60,000
    training images (and hung there on a stalled connection). A stored run now decides the variant."""
    from hw2lib.cli import main

    monkeypatch.setenv("HW2LIB_RESULTS", str(tmp_path / "results"))
    arguments = ["cnn", "--lr", "1e-3", "--model", "fc", "--epochs", "1", "--profile", "quick", "--no-progress"]
    assert main([*arguments, "--variant", "kmnist-t10k"]) == 0  # stored once, from the course mirror
    capsys.readouterr()
    monkeypatch.setenv("HW2LIB_MIRROR", recording_mirror)  # now every data file would come from the network
    monkeypatch.setenv("HW2LIB_CACHE", str(tmp_path / "empty-cache"))
    assert main([*arguments, "--variant", "auto"]) == 0
    assert "fc-kmnist-t10k-lr0.001" in capsys.readouterr().out
    assert _Recorder.requests == []  # nothing was asked of the network


def test_auto_variant_without_a_stored_run_looks_locally_first(tmp_path, monkeypatch):
    """Case 10: the training images in the cache decide "kmnist" without a download; a stored run of a
    variant decides it before anything else."""
    from hw2lib.kmnist import FILES

    monkeypatch.setenv("HW2LIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HW2LIB_MIRROR", "http://127.0.0.1:9/never-asked")
    cached = tmp_path / "cache" / "kmnist" / FILES["train-images"].name
    cached.parent.mkdir(parents=True)
    with open(cached, "wb") as handle:
        handle.truncate(FILES["train-images"].size)
    assert resolve_variant("auto") == "kmnist"
    assert resolve_variant("auto", stored=lambda variant: variant == "kmnist-t10k") == "kmnist-t10k"
    with pytest.raises(ValueError, match="unknown KMNIST variant"):
        resolve_variant("emnist")

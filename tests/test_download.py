"""The downloader against a loopback HTTP server and a mirror folder."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import threading
import time
from pathlib import Path

import pytest

from hw2lib.download import DataError, RemoteFile, available, cache_dir, fetch

PAYLOAD = b"kuzushiji " * 5000
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves /data/good.bin, a truncated /data/short.bin, and 404 for anything else."""

    requests: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        type(self).requests.append(self.path)
        if self.path.endswith("/good.bin"):
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD)
        elif self.path.endswith("/short.bin"):
            # Announces the whole file, sends half of it, then closes the connection.
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD[: len(PAYLOAD) // 2])
            self.wfile.flush()
            self.close_connection = True
        elif self.path.endswith("/drip.bin"):
            # A server that never stalls long enough for a read timeout: one byte every 0.2 s.
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            try:
                for byte in PAYLOAD[:200]:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(0.2)
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.close_connection = True
        elif self.path.endswith("/huge.bin"):
            # Announces (and would send) far more than the published size.
            self.send_response(200)
            self.send_header("Content-Length", str(100 * len(PAYLOAD)))
            self.end_headers()
            try:
                self.wfile.write(PAYLOAD)
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.close_connection = True
        else:
            self.send_error(404, "Not Found")

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    _Handler.requests = []
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("HW2LIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HW2LIB_MIRROR", "")  # no mirror, not even the course's beside the checkout
    return tmp_path / "cache"


def _leftovers(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.rglob("*") if path.is_file()) if folder.exists() else []


def test_download_success_and_cache_hit(server, cache):
    remote = RemoteFile("demo", "good.bin", server + "/data/", SHA)
    path = fetch(remote)
    assert path == cache / "demo" / "good.bin"
    assert path.read_bytes() == PAYLOAD
    assert len(_Handler.requests) == 1
    fetch(remote)  # verified copy in the cache: no second request
    assert len(_Handler.requests) == 1
    assert _leftovers(cache) == ["good.bin"]


def test_checksum_mismatch_names_file_and_both_hashes(server, cache):
    wrong = "0" * 64
    with pytest.raises(DataError) as error:
        fetch(RemoteFile("demo", "good.bin", server + "/data/", wrong))
    message = str(error.value)
    assert "demo/good.bin" in message and "checksum mismatch" in message
    assert wrong in message and SHA in message
    assert _leftovers(cache) == []


def test_truncated_body_is_an_error_and_leaves_nothing(server, cache):
    with pytest.raises(DataError, match="short.bin"):
        fetch(RemoteFile("demo", "short.bin", server + "/data/", SHA))
    assert _leftovers(cache) == []


def test_404_names_the_file_and_the_status(server, cache):
    with pytest.raises(DataError, match=r"missing\.bin.*HTTP 404"):
        fetch(RemoteFile("demo", "missing.bin", server + "/data/", SHA))
    assert _leftovers(cache) == []


def test_no_network_says_how_to_set_the_mirror(cache):
    # Port 9 on loopback has no server: the connection is refused, as offline.
    with pytest.raises(DataError, match="HW2LIB_MIRROR"):
        fetch(RemoteFile("demo", "good.bin", "http://127.0.0.1:9/data/", SHA))
    assert _leftovers(cache) == []


def test_mirror_as_url_replaces_the_upstream_base(server, cache, monkeypatch):
    monkeypatch.setenv("HW2LIB_MIRROR", server + "/mirror")
    remote = RemoteFile("data", "good.bin", "http://127.0.0.1:9/never-used/", SHA)
    assert fetch(remote).read_bytes() == PAYLOAD
    assert _Handler.requests == ["/mirror/data/good.bin"]


def test_mirror_as_folder(tmp_path, cache, monkeypatch):
    mirror = tmp_path / "mirror"
    (mirror / "demo").mkdir(parents=True)
    (mirror / "demo" / "good.bin").write_bytes(PAYLOAD)
    monkeypatch.setenv("HW2LIB_MIRROR", str(mirror))
    remote = RemoteFile("demo", "good.bin", None, SHA)
    assert available(remote)
    assert fetch(remote).read_bytes() == PAYLOAD


def test_file_missing_from_mirror_folder(tmp_path, cache, monkeypatch):
    monkeypatch.setenv("HW2LIB_MIRROR", str(tmp_path))
    remote = RemoteFile("demo", "absent.bin", "http://example.invalid/", SHA)
    assert not available(remote)
    with pytest.raises(DataError, match=r"demo/absent\.bin is missing from the mirror"):
        fetch(remote)
    assert _leftovers(cache) == []


def test_corrupt_mirror_file_is_refused(tmp_path, cache, monkeypatch):
    mirror = tmp_path / "mirror"
    (mirror / "demo").mkdir(parents=True)
    (mirror / "demo" / "good.bin").write_bytes(PAYLOAD[:-1] + b"X")
    monkeypatch.setenv("HW2LIB_MIRROR", str(mirror))
    with pytest.raises(DataError, match="checksum mismatch"):
        fetch(RemoteFile("demo", "good.bin", None, SHA))
    assert _leftovers(cache) == []


def test_damaged_cached_copy_is_fetched_again(server, cache):
    remote = RemoteFile("demo", "good.bin", server + "/data/", SHA)
    path = fetch(remote)
    path.write_bytes(PAYLOAD[:100])  # truncated on disk after the fact
    assert fetch(remote).read_bytes() == PAYLOAD
    assert len(_Handler.requests) == 2


def test_no_public_address_without_mirror_is_explained(cache):
    with pytest.raises(DataError, match="no public download address.*HW2LIB_MIRROR"):
        fetch(RemoteFile("hw2-char-mt", "train-eng-spa.txt", None, SHA))


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_cache_folder(tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    monkeypatch.setenv("HW2LIB_CACHE", str(locked / "cache"))
    with pytest.raises(DataError, match="HW2LIB_CACHE"):
        fetch(RemoteFile("demo", "good.bin", "http://127.0.0.1:9/", SHA))


def test_unwritable_cache_path_is_a_clear_error(tmp_path, monkeypatch):
    # A file where the cache folder should be: no user, root included, can create it.
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("HW2LIB_CACHE", str(blocker))
    with pytest.raises(DataError, match=r"cannot write the data cache folder.*HW2LIB_CACHE"):
        fetch(RemoteFile("demo", "good.bin", "http://127.0.0.1:9/", SHA))


def test_cache_dir_default_and_override(monkeypatch, tmp_path):
    monkeypatch.delenv("HW2LIB_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "hw2lib"
    monkeypatch.setenv("HW2LIB_CACHE", str(tmp_path / "elsewhere"))
    assert cache_dir() == tmp_path / "elsewhere"


# --- deadlines and sizes ---------------------------------------------------------------------------------

def test_a_dripping_server_ends_at_the_overall_deadline(server, cache, monkeypatch):
    """Case 10: a server that sends one byte at a time never trips a per-read timeout; the download's overall
    deadline (HW2LIB_DOWNLOAD_DEADLINE) ends it with one line, and nothing is left in the cache."""
    monkeypatch.setenv("HW2LIB_DOWNLOAD_DEADLINE", "1")
    remote = RemoteFile("demo", "drip.bin", server + "/data/", SHA, len(PAYLOAD))
    outcome = {}

    def attempt():
        try:
            fetch(remote)
        except DataError as error:
            outcome["error"] = str(error)

    started = time.monotonic()
    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive(), "the download did not end at its deadline"
    assert time.monotonic() - started < 10
    assert "drip.bin: the download from" in outcome["error"] and "passed its deadline of 1 s" in outcome["error"]
    assert "HW2LIB_DOWNLOAD_DEADLINE" in outcome["error"]
    assert _leftovers(cache) == []


def test_the_default_deadline_grows_with_the_size_and_a_bad_setting_is_refused(monkeypatch):
    """Case 10: the deadline is one minute plus the file at 50 kB/s unless HW2LIB_DOWNLOAD_DEADLINE says."""
    from hw2lib.download import download_deadline

    monkeypatch.delenv("HW2LIB_DOWNLOAD_DEADLINE", raising=False)
    assert download_deadline(RemoteFile("d", "f", None, SHA, 18_165_135)) == pytest.approx(60 + 18_165_135 / 50_000)
    monkeypatch.setenv("HW2LIB_DOWNLOAD_DEADLINE", "soon")
    with pytest.raises(ValueError, match="HW2LIB_DOWNLOAD_DEADLINE must be a positive number of seconds"):
        download_deadline(RemoteFile("d", "f", None, SHA))


def test_a_content_length_of_the_wrong_size_is_refused_before_downloading(server, cache):
    """Case 11: the expected size is known, so a server announcing another size is refused at once, naming
    both sizes, instead of the whole body being downloaded and then failing its checksum."""
    with pytest.raises(DataError, match=rf"huge\.bin: .* announces {100 * len(PAYLOAD):,} bytes, not the "
                                        rf"published {len(PAYLOAD):,}; refused before downloading"):
        fetch(RemoteFile("demo", "huge.bin", server + "/data/", SHA, len(PAYLOAD)))
    assert _leftovers(cache) == []


def test_a_mirror_file_of_the_wrong_size_is_refused_before_copying(tmp_path, cache, monkeypatch):
    """Case 11: a 2 GB file in the mirror was copied whole into the cache before its checksum refused it."""
    import hw2lib.download as download

    mirror = tmp_path / "mirror"
    (mirror / "demo").mkdir(parents=True)
    with open(mirror / "demo" / "good.bin", "wb") as handle:
        handle.truncate(2 * 1024**3)  # 2 GB that take no disk space
    monkeypatch.setenv("HW2LIB_MIRROR", str(mirror))
    copies = []
    monkeypatch.setattr(download.shutil, "copyfileobj", lambda *args, **kwargs: copies.append(args))
    with pytest.raises(DataError, match=rf"demo/good\.bin: the mirror's copy .* is 2,147,483,648 bytes, not the "
                                        rf"published {len(PAYLOAD):,}; refused before copying"):
        fetch(RemoteFile("demo", "good.bin", None, SHA, len(PAYLOAD)))
    assert copies == [] and _leftovers(cache) == []


def test_a_download_shows_a_progress_bar_over_the_expected_bytes(server, cache, monkeypatch):
    """Case 10: downloads show progress (a tqdm bar over the file's bytes)."""
    import hw2lib.download as download

    bars = []

    class Recorder(download.tqdm):
        def __init__(self, *args, **kwargs):  # shown, as on a terminal (the captured output is not one)
            super().__init__(*args, **{**kwargs, "disable": False, "file": io.StringIO()})
            bars.append(self)

    monkeypatch.setattr(download, "tqdm", Recorder)
    fetch(RemoteFile("demo", "good.bin", server + "/data/", SHA, len(PAYLOAD)))
    (bar,) = bars
    assert bar.total == len(PAYLOAD) and bar.n == len(PAYLOAD) and "good.bin" in bar.desc


def test_a_killed_download_leaves_no_temporary_file_for_long(server, cache):
    """Case 5: a download killed mid-way left its temporary file in the cache; the next fetch removes the
    temporary files of writers that are gone."""
    import subprocess
    import sys

    from hw2lib.utils import _HOST

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    folder = cache / "demo"
    folder.mkdir(parents=True)
    stale = folder / f".good.bin.{_HOST}-{dead.pid}.k9x2.part"
    stale.write_bytes(PAYLOAD[:100])
    fetch(RemoteFile("demo", "good.bin", server + "/data/", SHA, len(PAYLOAD)))
    assert _leftovers(cache) == ["good.bin"]

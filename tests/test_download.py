"""The downloader against a loopback HTTP server and a mirror folder."""

from __future__ import annotations

import hashlib
import http.server
import os
import threading
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

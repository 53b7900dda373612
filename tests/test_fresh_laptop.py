"""A student's laptop: network, an empty cache, no mirror. The upstream addresses are served by a
loopback stand-in (tests/fresh_laptop/stand_in.py): urllib's opener sends every http:// and https://
upstream address to it and refuses any other host, so nothing leaves the machine, while the bytes,
lengths and status codes still pass through the library's own download code.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from fresh_laptop import stand_in
from hw2lib import chardata, kmnist
from hw2lib.download import DataError, RemoteFile, cache_dir, fetch

REPO = Path(__file__).resolve().parents[1]
STAND_IN_FOLDER = Path(stand_in.__file__).resolve().parent


@pytest.fixture
def upstream(mirror_dir, tmp_path, monkeypatch):
    """The stand-in, serving the mirror's files at their upstream addresses; an empty cache; no mirror."""
    if mirror_dir is None:
        pytest.skip("the stand-in serves the mirror's files; without a mirror the real upstream is used instead")
    monkeypatch.setenv("HW2LIB_MIRROR", "off")
    monkeypatch.setenv("HW2LIB_CACHE", str(tmp_path / "cache"))
    with stand_in.UpstreamStandIn(mirror_dir) as server:
        previous = urllib.request._opener
        stand_in.install(server.address)
        try:
            yield server
        finally:
            urllib.request.install_opener(previous)


def test_course_files_have_a_commit_pinned_https_address():
    for remote in chardata.COURSE_FILES.values():
        assert re.fullmatch(r"https://raw\.githubusercontent\.com/goncalogalante/tecnico-deeplearning-2022/"
                            r"[0-9a-f]{40}/data/(train|val|test)-eng-spa\.txt", remote.url), remote.url
        assert remote.size is not None and len(remote.sha256) == 64


def test_course_files_come_from_the_upstream_and_match_their_checksums(upstream):
    data = chardata.load_char_mt("course")
    assert data.sizes() == {"train": 10483, "val": 1000, "test": 1000}
    assert upstream.requests == [remote.url for remote in chardata.COURSE_FILES.values()]
    for remote in chardata.COURSE_FILES.values():
        cached = cache_dir() / remote.dataset / remote.name
        assert hashlib.sha256(cached.read_bytes()).hexdigest() == remote.sha256
        assert cached.stat().st_size == remote.size
    chardata.load_char_mt("course")  # now cached: no second download
    assert len(upstream.requests) == 3


def test_auto_chooses_the_course_files_when_the_upstream_answers(upstream):
    choice = chardata.resolve_variant("auto")
    assert choice.variant == "course"
    assert choice.source.startswith(chardata.COURSE_UPSTREAM) and "\n" not in str(choice)
    # what chapter 3 prints is the same wherever the files came from (nbval compares it)
    assert str(choice) == "character MT data: course -- the homework's files, sha256-checked"
    assert chardata.TATOEBA_ZIP.url not in upstream.requests  # no fallback was needed


@pytest.mark.parametrize("how", [404, 503, "corrupt", "refused"])
def test_auto_falls_back_to_tatoeba_and_says_why_in_one_line(upstream, how):
    upstream.fail(chardata.COURSE_UPSTREAM, how)
    choice = chardata.resolve_variant("auto")
    line = str(choice)
    assert choice.variant == "tatoeba"
    assert "\n" not in line and line.startswith("character MT data: tatoeba")
    assert "train-eng-spa.txt" in line and "not the course's" in line
    expected_cause = {404: "HTTP 404", 503: "HTTP 503", "corrupt": "checksum mismatch", "refused": "could not be downloaded"}
    assert expected_cause[how] in line
    data = chardata.load_char_mt("auto")
    assert data.variant == "tatoeba" and "not the course's files" in data.description
    assert data.sizes() == {"train": 8101, "val": 1000, "test": 1000}
    assert not (cache_dir() / "hw2-char-mt" / "train-eng-spa.txt").exists()  # nothing refused was kept


def test_no_data_at_all_is_one_clear_error(upstream):
    upstream.fail(chardata.COURSE_UPSTREAM, 404)
    upstream.fail(chardata.TATOEBA_ZIP.url, 503)
    with pytest.raises(DataError) as error:
        chardata.resolve_variant("auto")
    message = str(error.value)
    assert "\n" not in message
    assert "train-eng-spa.txt" in message and "spa-eng.zip" in message and "HTTP 503" in message


def test_the_mirror_takes_precedence_over_the_upstream(upstream, mirror_dir, monkeypatch):
    monkeypatch.setenv("HW2LIB_MIRROR", str(mirror_dir))
    assert chardata.resolve_variant("auto").variant == "course"
    choice = chardata.resolve_variant("auto")
    assert choice.source.startswith(f"the mirror {mirror_dir}") and str(mirror_dir) not in str(choice)
    assert upstream.requests == []


def test_hosts_other_than_the_upstream_are_refused(upstream):
    with pytest.raises(DataError, match="not reachable here"):
        fetch(RemoteFile("demo", "x.bin", "https://example.org/", "0" * 64))


def test_kmnist_test_images_come_from_the_upstream_and_auto_falls_back(upstream):
    # The stand-in has no 60,000 training images (neither has the mirror): a 404, as offline.
    assert kmnist.resolve_variant("auto") == "kmnist-t10k"
    assert kmnist.load_kmnist("kmnist-t10k").sizes() == {"train": 8000, "dev": 1000, "test": 1000}
    assert kmnist.FILES["test-images"].url in upstream.requests


def test_the_data_tests_pass_on_a_fresh_laptop(upstream, tmp_path):
    """The whole data suite in a new process: no mirror, an empty cache and home, the stand-in as network."""
    home = tmp_path / "home"
    home.mkdir()
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("HW2LIB_", "PYTEST_XDIST"))}
    environment.update({"HW2LIB_MIRROR": "off", "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"),
                        stand_in.ADDRESS_VARIABLE: upstream.address, "HW2LIB_PROFILE": "quick",
                        "PYTHONPATH": os.pathsep.join([str(STAND_IN_FOLDER), str(REPO)])})
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
         "tests/test_data.py", "tests/test_download.py"],
        cwd=REPO, env=environment, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert re.search(r"\d+ passed", result.stdout) and " failed" not in result.stdout, result.stdout[-800:]
    served = set(upstream.requests)
    assert {remote.url for remote in chardata.COURSE_FILES.values()} <= served
    assert {chardata.TATOEBA_ZIP.url, kmnist.FILES["test-images"].url, kmnist.FILES["test-labels"].url} <= served
    assert not (home / ".cache" / "hw2lib").exists()  # the suite kept to its temporary caches

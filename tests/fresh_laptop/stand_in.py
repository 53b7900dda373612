"""A stand-in for the data's upstream servers, so a laptop with network can be simulated offline.

Two parts:

* :class:`UpstreamStandIn` -- an HTTP server on 127.0.0.1 that serves every upstream address the
  library knows (``RemoteFile.url`` of KMNIST, the course's translation files, Tatoeba's zip) from
  a folder laid out like the mirror, under ``/<scheme>/<host>/<path>``. Files it lacks are a 404,
  as upstream; :meth:`UpstreamStandIn.fail` makes chosen addresses fail (an HTTP status, altered
  bytes, or a refused connection).
* :class:`LoopbackUpstream` -- a urllib handler that sends ``http://`` and ``https://`` requests
  for those hosts to the stand-in over real loopback HTTP (so headers, lengths and status codes
  go through the library's own download code) and refuses every other host: nothing leaves the
  machine. The library downloads with ``urllib.request.urlopen``, which uses the opener that
  :func:`install` puts in place. HTTPS cannot be served on loopback without a certificate the
  client trusts, which is why the redirection happens in urllib rather than in DNS.

Other processes (a test suite run as a subprocess, notebook kernels) get the same handler from
``sitecustomize.py`` in this folder: put the folder on ``PYTHONPATH`` and set
``HW2LIB_TEST_UPSTREAM`` to the stand-in's address. ``python tests/fresh_laptop/stand_in.py
MIRROR`` runs a stand-in until interrupted and prints that address.
"""

from __future__ import annotations

import http.server
import os
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

ADDRESS_VARIABLE = "HW2LIB_TEST_UPSTREAM"
LOOPBACK = ("127.0.0.1", "localhost")


def upstream_files(mirror: Path) -> dict[str, Path]:
    """Every upstream URL the library knows -> its copy in ``mirror`` (``<dataset>/<name>``), when there."""
    from hw2lib import chardata, kmnist

    remotes = [*kmnist.FILES.values(), *chardata.COURSE_FILES.values(), chardata.TATOEBA_ZIP]
    files = {}
    for remote in remotes:
        copy = Path(mirror) / remote.dataset / remote.name
        if remote.url is not None and copy.is_file():
            files[remote.url] = copy
    return files


def upstream_hosts() -> set[tuple[str, str]]:
    """(scheme, host) of every upstream address, whether or not the stand-in holds the file."""
    from hw2lib import chardata, kmnist

    remotes = [*kmnist.FILES.values(), *chardata.COURSE_FILES.values(), chardata.TATOEBA_ZIP]
    return {(urlsplit(remote.url).scheme, urlsplit(remote.url).netloc) for remote in remotes if remote.url}


class _Handler(http.server.BaseHTTPRequestHandler):
    stand_in: "UpstreamStandIn"

    def do_GET(self):  # noqa: N802 (http.server's name)
        scheme, _, rest = self.path.lstrip("/").partition("/")
        url = f"{scheme}://{rest}"
        self.stand_in.requests.append(url)
        failure = self.stand_in.failure_for(url)
        body = self.stand_in.files[url].read_bytes() if url in self.stand_in.files else None
        if failure == "refused":  # the connection closes without an answer, like a dropped network
            self.close_connection = True
            return
        if isinstance(failure, int):
            self.send_error(failure)
            return
        if body is None:
            self.send_error(404, "Not Found")
            return
        if failure == "corrupt":
            body = body[:-1] + bytes([body[-1] ^ 0xFF])
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class UpstreamStandIn:
    """The loopback server; a context manager that starts and stops it."""

    def __init__(self, mirror: Path):
        self.files = upstream_files(mirror)
        self.hosts = upstream_hosts()
        self.requests: list[str] = []
        self.failures: dict[str, int | str] = {}
        handler = type("Handler", (_Handler,), {"stand_in": self})
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def fail(self, url_prefix: str, how: int | str) -> None:
        """Make every address starting with ``url_prefix`` fail: an HTTP status code, "corrupt"
        (one byte altered) or "refused" (the connection closes without an answer)."""
        self.failures[url_prefix] = how

    def failure_for(self, url: str) -> int | str | None:
        return next((how for prefix, how in self.failures.items() if url.startswith(prefix)), None)

    def __enter__(self) -> "UpstreamStandIn":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


class LoopbackUpstream(urllib.request.BaseHandler):
    """Sends requests for the upstream hosts to the stand-in at ``address``, lets loopback ones
    through and refuses all others.

    The hosts are read from the library on the first request (not at start-up: sitecustomize
    must not import torch into every Python process).
    """

    handler_order = 100  # before urllib's own HTTP(S) handlers

    def __init__(self, address: str, hosts: set[tuple[str, str]] | None = None):
        self.address, self.hosts = address.rstrip("/"), hosts
        self._http = urllib.request.HTTPHandler()

    def _open(self, request: urllib.request.Request):
        if self.hosts is None:
            self.hosts = upstream_hosts()
        parts = urlsplit(request.full_url)
        if parts.hostname in LOOPBACK:  # already on this machine (a test's own server): urllib's own handler
            return None
        if (parts.scheme, parts.netloc) not in self.hosts:
            raise urllib.error.URLError(ConnectionRefusedError(111, f"{parts.netloc} is not reachable here (no network)"))
        target = f"{self.address}/{parts.scheme}/{parts.netloc}{parts.path}"
        redirected = urllib.request.Request(target, headers=dict(request.header_items()), method=request.get_method())
        redirected.timeout = request.timeout
        return self._http.http_open(redirected)

    def http_open(self, request):
        return self._open(request)

    def https_open(self, request):
        return self._open(request)


def install(address: str) -> None:
    """Make ``urllib.request.urlopen`` in this process use the stand-in at ``address``."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), LoopbackUpstream(address))
    urllib.request.install_opener(opener)


def install_from_environment() -> None:
    """Install the handler when ``HW2LIB_TEST_UPSTREAM`` names a stand-in (used by sitecustomize)."""
    address = os.environ.get(ADDRESS_VARIABLE, "").strip()
    if address:
        install(address)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    with UpstreamStandIn(Path(sys.argv[1])) as running:
        print(running.address, flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass

"""JupyterLab in headless Chromium, driven the way a student drives it.

:func:`start_lab` runs ``make lab`` (the command the README gives students) on 127.0.0.1, a free
port and a random token, serving a folder of notebooks, with every Jupyter and hw2lib folder it
could write to (settings, workspaces, runtime files, the data cache) moved into a scratch folder;
whatever happens, it shuts the server and its kernels down. :class:`LabNotebook` opens one
notebook in a JupyterLab tab, runs all cells from the Run menu, waits for the kernel to go idle,
reports every cell, widget and kernel message that shows an error, and works the ipywidgets
controls (slider handles by keyboard, buttons by click, text boxes by typing).

Chromium is Debian's (see ``tests/browser/check_book.py``, whose launcher this uses), and every
request to a host other than 127.0.0.1 is blocked and reported.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "browser"))

from check_book import is_local_url, open_browser  # noqa: E402  (the book's browser test owns the launcher)

SERVER_START_SECONDS = 120
SERVER_STOP_SECONDS = 20
KERNEL_START_MS = 120_000
CONTROL_MS = 30_000
# JupyterLab settings for a scripted session: no autosave (the notebooks are copies, but a test
# writes nothing it does not need), no news or update checks (nothing leaves the machine), every
# cell kept in the page so that a finished cell can be inspected wherever it is.
LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
}
LAB_FLAGS = ("--no-browser", "--ServerApp.port_retries=0", "--LabApp.expose_app_in_browser=True",
             "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate")


@dataclass
class LabServer:
    """A running JupyterLab: its address, token, served folder and log file."""

    base_url: str
    token: str
    root: Path
    log: Path
    stray_kernels: list[int] = field(default_factory=list)  # killed after shutdown: the server had left them

    def url(self, path: str, **query: str) -> str:
        parameters = "&".join([f"token={self.token}", *(f"{key}={value}" for key, value in query.items())])
        return f"{self.base_url}{path}?{parameters}"

    def api(self, path: str, method: str = "GET", timeout: float = 10) -> object:
        request = urllib.request.Request(self.base_url + path, method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback only
            body = response.read()
        return json.loads(body) if body else None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def lab_environment(scratch: Path, overrides: dict[str, str]) -> dict[str, str]:
    """The server's (and so its kernels') environment: this one, with every folder Jupyter, IPython
    and hw2lib write to moved under ``scratch``, the lab settings above written there, and
    ``overrides`` (HW2LIB_PROFILE, HW2LIB_RESULTS, ...) on top."""
    folders = {"JUPYTER_CONFIG_DIR": "config", "JUPYTER_RUNTIME_DIR": "runtime", "IPYTHONDIR": "ipython",
               "JUPYTERLAB_SETTINGS_DIR": "settings", "JUPYTERLAB_WORKSPACES_DIR": "workspaces",
               "HW2LIB_CACHE": "cache"}
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("JUPYTER", "JPY_"))}
    for variable, name in folders.items():
        (scratch / name).mkdir(parents=True, exist_ok=True)
        environment[variable] = str(scratch / name)
    for plugin, settings in LAB_SETTINGS.items():
        target = scratch / "settings" / f"{plugin}.jupyterlab-settings"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(settings), encoding="utf-8")
    environment["PYTHONUNBUFFERED"] = "1"
    environment.update(overrides)
    return environment


@contextlib.contextmanager
def start_lab(root: Path, scratch: Path, environment: dict[str, str]) -> Iterator[LabServer]:
    """``make lab`` serving ``root``; yields once the server answers, and stops it (kernels too)
    on the way out, whatever happened."""
    port, token = free_port(), secrets.token_hex(16)
    flags = [*LAB_FLAGS, f"--ServerApp.port={port}", f"--IdentityProvider.token={token}"]
    # -o setup: the environment is the one under test; never reinstall from inside a test.
    command = ["make", "--no-print-directory", "-o", "setup", "lab", f"LABDIR={root}", "LABFLAGS=" + " ".join(flags)]
    server = LabServer(f"http://127.0.0.1:{port}/", token, root, scratch / "server.log")
    with open(server.log, "w", encoding="utf-8") as log:
        process = subprocess.Popen(command, cwd=REPO, env=environment, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        _wait_until_ready(server, process)
        yield server
    finally:
        _stop(server, process, scratch / "runtime")


def _wait_until_ready(server: LabServer, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"`make lab` exited with status {process.returncode}:\n{server.log_tail()}")
        with contextlib.suppress(OSError):
            server.api("api/status", timeout=2)
            return
        time.sleep(0.5)
    raise RuntimeError(f"JupyterLab did not answer within {SERVER_START_SECONDS} s:\n{server.log_tail()}")


def _stop(server: LabServer, process: subprocess.Popen, runtime: Path) -> None:
    """Ask the server to shut down (it stops its kernels), then end `make lab`'s process group,
    then any kernel it started that is still alive (found by its connection file under ``runtime``)."""
    with contextlib.suppress(OSError, ValueError):
        server.api("api/shutdown", method="POST")
    try:
        process.wait(timeout=SERVER_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            try:
                process.wait(timeout=SERVER_STOP_SECONDS)
                break
            except subprocess.TimeoutExpired:
                continue
    for pid in processes_mentioning(str(runtime)):
        server.stray_kernels.append(pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def processes_mentioning(text: str) -> list[int]:
    """Processes whose command line contains ``text`` (kernels started with a connection file in
    the scratch runtime folder belong to this test and nothing else)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            if text in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                found.append(int(entry.name))
    return found


# --- what runs inside the page ------------------------------------------------------------

# The notebook panel showing a path, found among JupyterLab's main-area widgets.
_PANEL = """
const panel = Array.from(window.jupyterapp.shell.widgets('main'))
  .find(widget => widget.context && widget.context.path === name && widget.content && widget.content.widgets);
"""

_KERNEL_IDLE = "name => { if (!window.jupyterapp) return false;" + _PANEL + """
  const kernel = panel && panel.sessionContext.session && panel.sessionContext.session.kernel;
  return !!kernel && kernel.status === 'idle' && kernel.connectionStatus === 'connected';
}"""

# Kernel messages that no cell shows: output of widget callbacks, including their exceptions.
_LISTEN = "name => {" + _PANEL + """
  window.hw2Messages = [];
  panel.sessionContext.session.kernel.iopubMessage.connect((_, message) => {
    const type = message.header.msg_type, parent = (message.parent_header || {}).msg_type;
    if (type === 'error' || (type === 'stream' && message.content.name === 'stderr'))
      window.hw2Messages.push({type, parent, text: type === 'error'
        ? message.content.ename + ': ' + message.content.evalue : message.content.text});
  });
}"""

_CLEAR_ALL = "name => {" + _PANEL + """
  for (const cell of panel.content.widgets) if (cell.model.type === 'code') {
    cell.model.outputs.clear(); cell.model.executionCount = null; }
}"""

_RUN_DONE = "name => {" + _PANEL + """
  const kernel = panel.sessionContext.session.kernel;
  const cells = panel.content.widgets.filter(cell => cell.model.type === 'code');
  const failed = cells.some(cell => cell.model.outputs.toJSON().some(output => output.output_type === 'error'));
  return kernel.status === 'idle' && (failed || cells.every(cell => cell.model.executionCount !== null));
}"""

_CELL_PROBLEMS = "name => {" + _PANEL + r"""
  const problems = [];
  let notRun = 0;
  panel.content.widgets.forEach((cell, index) => {
    if (cell.model.type !== 'code') return;
    const source = cell.model.sharedModel.getSource();
    const where = `cell ${index + 1} (${JSON.stringify(source.split('\n')[0].slice(0, 60))})`;
    if (cell.model.executionCount === null && source.trim()) notRun += 1;
    for (const output of cell.model.outputs.toJSON())
      if (output.output_type === 'error') problems.push(`${where} raised ${output.ename}: ${output.evalue}`);
    // What a reader sees inside the cell's outputs, widgets included.
    for (const node of cell.node.querySelectorAll('.jp-OutputArea-output')) {
      const text = node.innerText || '';
      if (/Error displaying widget|Failed to (load|create) (model|view)|Could not create a view/.test(text))
        problems.push(`${where} shows a widget that did not render: ${text.trim().slice(0, 160)}`);
      // An Output widget shows its callback's exception as an error output of its own.
      else if (node.closest('.widget-output') && node.dataset.mimeType === 'application/vnd.jupyter.stderr'
               && /Traceback|Error\b/.test(text))
        problems.push(`${where} shows an error inside a widget: ${text.trim().split('\n').slice(-1)[0].slice(0, 160)}`);
    }
    for (const node of cell.node.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.widget-view+json"]')) {
      const widget = node.querySelector('.jupyter-widgets');
      const box = widget && widget.getBoundingClientRect();
      if (!widget || box.width === 0 || box.height === 0) problems.push(`${where} has a widget with nothing drawn`);
    }
  });
  if (notRun) problems.push(`${notRun} code cell(s) never ran`);
  return problems;
}"""

# Markdown cells that show MyST source instead of rendering it (JupyterLab needs jupyterlab-myst).
_RAW_MYST = "name => {" + _PANEL + r"""
  const raw = /```\{|\{(glue|ref|doc|cite|numref|eq)(:[a-z]+)?\}`|^:class: /m;
  return panel.content.widgets.map((cell, index) => [cell, index])
    .filter(([cell]) => cell.model.type === 'markdown')
    .map(([cell, index]) => [index, cell.node.innerText || ''])  // rendered: the editor is hidden
    .filter(([, text]) => raw.test(text))
    .map(([index, text]) => `markdown cell ${index + 1} shows MyST source instead of rendering it: `
                            + JSON.stringify(text.slice(text.search(raw), text.search(raw) + 60)));
}"""

# The cell the kernel is busy with (its prompt shows [*]).
_RUNNING = "name => {" + _PANEL + r"""
  const index = panel.content.widgets.findIndex(cell => cell.model.type === 'code'
    && /\*/.test((cell.node.querySelector('.jp-InputPrompt') || {}).innerText || ''));
  if (index < 0) return null;
  const source = panel.content.widgets[index].model.sharedModel.getSource();
  return `cell ${index + 1} (${JSON.stringify(source.split('\n')[0].slice(0, 60))})`;
}"""

# The widget's picture, once the browser has decoded it (so a screenshot shows it).
_PICTURE = ("element => { const image = element.querySelector('.widget-output img');"
            " return image && image.complete && image.naturalWidth > 0 ? image.src : null; }")
_TEXT = "element => { const out = element.querySelector('.widget-output'); return out ? out.innerText : ''; }"


class LabNotebook:
    """One notebook open in a JupyterLab tab of ``context`` (a Playwright BrowserContext)."""

    def __init__(self, context, server: LabServer, name: str) -> None:
        self.name, self.server = name, server
        self.outside: list[str] = []
        self.page_errors: list[str] = []
        self.unfinished = ""
        self.page = context.new_page()
        self.page.route("**/*", self._route)
        self.page.on("websocket", lambda socket: None if is_local_url(socket.url) else self.outside.append(socket.url))
        self.page.on("pageerror", lambda error: self.page_errors.append(str(error).splitlines()[0][:200]))
        # A new workspace of its own, so that no tab of an earlier page is restored (with its kernel).
        workspace = f"w{secrets.token_hex(6)}"
        self.page.goto(server.url(f"lab/workspaces/{workspace}/tree/{name}", reset=""), wait_until="load")
        self.page.wait_for_function(_KERNEL_IDLE, arg=name, timeout=KERNEL_START_MS, polling=250)
        self.page.evaluate(_LISTEN, name)
        # This notebook's panel: every locator below looks inside it, whatever else the window shows.
        self.panel = self.page.locator("#" + self.page.evaluate("name => {" + _PANEL + " return panel.id; }", name))

    def _route(self, route) -> None:
        if is_local_url(route.request.url):
            route.continue_()
        else:
            self.outside.append(route.request.url)
            route.abort("blockedbyclient")

    def run_all(self, timeout_s: float) -> float | None:
        """Clear every output, then Run > Run All Cells, as a student does; returns the seconds until
        the kernel is idle with every cell run (or one failed), or None when that took longer than
        ``timeout_s`` (:meth:`problems` then names the cell still running)."""
        self.page.evaluate(_CLEAR_ALL, self.name)
        started = time.perf_counter()
        run_menu = self.page.locator(".lm-MenuBar-item", has=self.page.locator(".lm-MenuBar-itemLabel",
                                                                                has_text=re.compile(r"^Run$")))
        run_menu.click()
        self.page.click(".lm-Menu-item[data-command='runmenu:run-all']")
        try:
            self.page.wait_for_function(_RUN_DONE, arg=self.name, timeout=timeout_s * 1000, polling=250)
        except Exception:  # noqa: BLE001 - Playwright's TimeoutError
            self.unfinished = f"the notebook was still running after {timeout_s:.0f} s"
            return None
        return time.perf_counter() - started

    def problems(self) -> list[str]:
        """Everything that shows an error: cells that raised or never ran, widgets that did not render,
        markdown shown as MyST source, errors the kernel sent outside any cell (widget callbacks),
        uncaught page errors, requests that tried to leave the machine."""
        found = list(self.page.evaluate(_CELL_PROBLEMS, self.name)) + list(self.page.evaluate(_RAW_MYST, self.name))
        if self.unfinished:
            found.insert(0, f"{self.unfinished}; running: {self.page.evaluate(_RUNNING, self.name) or 'no cell'}")
        found += [f"the kernel reported an error outside the cells (a widget callback?): {message['text'].strip()[-300:]}"
                  for message in self.kernel_messages() if _is_error(message)]
        found += [f"uncaught script error in the page: {error}" for error in dict.fromkeys(self.page_errors)]
        found += [f"request leaving the machine (blocked): {url}" for url in dict.fromkeys(self.outside)]
        return found

    def kernel_messages(self) -> list[dict]:
        return self.page.evaluate("() => window.hw2Messages || []")

    def cell_with(self, selector: str):
        """The first code cell whose outputs hold ``selector`` (a CSS selector)."""
        return self.panel.locator(".jp-CodeCell", has=self.page.locator(selector)).first

    def widget(self, label: str):
        """The outermost widget box of the cell that has a control labelled ``label``."""
        cell = self.cell_with(f".widget-label:text-is('{label}')")
        return cell.locator(".jp-OutputArea-output > .jupyter-widgets").first

    def slider_step(self, box, label: str, key: str = "ArrowRight", times: int = 1) -> str:
        """Move the slider labelled ``label`` in ``box`` by keyboard, as a student can; returns its readout."""
        slider = box.locator(".widget-slider", has=self.page.locator(f".widget-label:text-is('{label}')")).first
        slider.locator(".noUi-handle").focus()
        for _ in range(times):
            self.page.keyboard.press(key)
        return slider.locator(".widget-readout").inner_text()

    def picture(self, box, timeout_ms: int = CONTROL_MS) -> str | None:
        """The ``src`` (a data: URL) of the first image in the widget's output, once it has loaded;
        None when there is none within ``timeout_ms``."""
        return self.wait_for_change(box, None, timeout_ms=timeout_ms)

    def output_text(self, box) -> str:
        return box.evaluate(_TEXT)

    def wait_for_change(self, box, before: str | None, what: str = "picture", timeout_ms: int = CONTROL_MS) -> str | None:
        """The widget's new picture (or output text, ``what="text"``) once it differs from ``before``;
        None if it has not changed within ``timeout_ms``."""
        script = _PICTURE if what == "picture" else _TEXT
        try:
            handle = self.page.wait_for_function(
                f"([element, before]) => {{ const now = ({script})(element); return now && now !== before ? now : null; }}",
                arg=[box.element_handle(), before], timeout=timeout_ms, polling=200)
        except Exception:  # noqa: BLE001 - Playwright's TimeoutError: reported by the caller as "did not change"
            return None
        return handle.json_value()

    def wait_until_idle(self, timeout_ms: int = CONTROL_MS) -> None:
        self.page.wait_for_function(_KERNEL_IDLE, arg=self.name, timeout=timeout_ms, polling=250)

    def screenshot(self, locator, path: Path) -> Path:
        """A PNG of ``locator`` (scrolled into view), written whole or not at all."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".part")
        locator.scroll_into_view_if_needed()
        locator.screenshot(path=str(partial), type="png")
        os.replace(partial, path)
        return path

    def screenshot_top(self, path: Path) -> Path:
        """A PNG of the window with the notebook scrolled back to its first cell."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".part")
        self.panel.locator(".jp-Cell").first.scroll_into_view_if_needed()
        self.page.screenshot(path=str(partial), type="png")
        os.replace(partial, path)
        return path

    def close(self) -> None:
        """Shut the notebook's kernel down and close the tab."""
        with contextlib.suppress(Exception):
            self.page.evaluate("name => {" + _PANEL + " return panel.sessionContext.shutdown(); }", self.name)
        self.page.close()


def is_blank_picture(source: str | None) -> bool:
    """Whether a ``data:image/png;base64,...`` picture is one colour all over (a figure drawn empty)."""
    if not source or "," not in source:
        return True
    import numpy
    from matplotlib import image

    pixels = image.imread(io.BytesIO(base64.b64decode(source.split(",", 1)[1])), format="png")
    return bool(numpy.all(pixels == pixels[0, 0]))


def _is_error(message: dict) -> bool:
    if message["type"] == "error":
        return message["parent"] != "execute_request"  # a cell's own error is reported with its cell
    return message["parent"] != "execute_request" and bool(re.search(r"Traceback|Error\b", message["text"]))


__all__ = ["LabNotebook", "LabServer", "free_port", "is_blank_picture", "lab_environment", "open_browser",
           "processes_mentioning", "start_lab"]

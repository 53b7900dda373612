"""The browser check runs only when asked for by path: ``pytest tests/browser``.

It needs a built book (``make book``), Chromium and Playwright, so ``make test`` (``pytest tests``)
leaves this folder out: its files are collected only when the command line names this folder
or a file in it.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent


def _asked_for(config) -> bool:
    start = config.invocation_params.dir
    for argument in config.args:
        path = (start / argument.split("::")[0]).resolve()
        if path == HERE or HERE in path.parents:
            return True
    return False


def pytest_ignore_collect(collection_path, config):
    if not _asked_for(config):
        return True
    return None

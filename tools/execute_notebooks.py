"""Execute notebooks in place, so their committed outputs are those of the stored full runs.

    HW2LIB_PROFILE=full .venv/bin/python tools/execute_notebooks.py book/*.ipynb

Each notebook runs in its own folder, as Jupyter Book and nbval run it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def execute(path: Path, timeout: int = 3600) -> None:
    notebook = nbformat.read(path, as_version=4)
    started = time.perf_counter()
    NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    nbformat.write(notebook, path)
    print(f"{path}: executed in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: execute_notebooks.py NOTEBOOK.ipynb ...")
    for name in sys.argv[1:]:
        execute(Path(name))

"""The notebooks' setup cell (tools/colab_setup.py): where hw2lib is missing, as in Colab, it clones the
book's repository and installs hw2lib, and the chapter then loads its stored runs without training."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import colab_setup  # noqa: E402

CHAPTER = "book/ch3_translation.ipynb"


def test_the_cell_is_tagged_hidden_and_skipped_and_inserted_once():
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_markdown_cell("# Chapter"), nbformat.v4.new_code_cell("x = 1")]
    assert colab_setup.with_setup_cell(notebook, "https://github.com/example-org/hw2book-example", "main")
    first = notebook.cells[0]
    assert first.metadata["tags"] == ["remove-cell", "nbval-skip"]
    assert "'https://github.com/example-org/hw2book-example', 'main'" in first.source
    assert [cell.source for cell in notebook.cells[1:]] == ["# Chapter", "x = 1"]
    assert not colab_setup.with_setup_cell(notebook, "https://github.com/example-org/hw2book-example", "main")
    assert colab_setup.with_setup_cell(notebook, "https://github.com/other/fork", "course")  # updated in place
    assert len(notebook.cells) == 3 and "'https://github.com/other/fork', 'course'" in notebook.cells[0].source
    nbformat.validate(notebook)


def test_every_notebook_opens_with_the_setup_cell_made_from_the_one_template():
    notebooks = sorted((REPO / "book").glob("*.ipynb"))
    assert len(notebooks) >= 4
    for path in notebooks:
        first = nbformat.read(path, as_version=4).cells[0]
        assert first.cell_type == "code" and first.metadata.get(colab_setup.MARKER), path.name
        assert first.metadata["tags"] == colab_setup.TAGS, path.name
        repository, ref = re.search(r"^REPOSITORY, REF = ('.*?'), ('.*?')$", first.source, re.MULTILINE).groups()
        expected = colab_setup.setup_cell_source(ast.literal_eval(repository) or None, ast.literal_eval(ref))
        assert first.source == expected, f"{path.name}: the setup cell was edited by hand; run tools/colab_setup.py"


def test_without_a_repository_the_cell_explains_instead_of_failing(tmp_path):
    script = tmp_path / "cell.py"
    script.write_text("import importlib.util\nimportlib.util.find_spec = lambda name: None\n"
                      + colab_setup.setup_cell_source(None, "main"))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "hw2lib is not installed and this copy of the book names no repository to get it from: "
        "open the notebook from a checkout of the book (see its README)"]
    assert not (tmp_path / "hw2book").exists()


def _isolated_python(folder: Path) -> Path:
    """A new virtual environment without hw2lib that sees this one's other packages (torch, myst-nb,
    pip, setuptools): what Colab is, a Python with the libraries but not the book."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=300)
    python = folder / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # A path line in a .pth file adds the folder, but does not run that folder's own .pth files:
    # the editable hw2lib of this checkout stays invisible.
    Path(purelib, "shared-libraries.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


RUN_CELLS = textwrap.dedent('''
    import json, os, sys
    from IPython.core.interactiveshell import InteractiveShell

    setup, chapter_cells = json.loads(open(sys.argv[1]).read())
    shell = InteractiveShell.instance()
    shell.enable_gui = lambda gui=None: None  # no event loop to hook into: %matplotlib inline needs none
    shell.run_cell(setup).raise_error()
    import hw2lib.train

    def no_training(*args, **kwargs):
        raise AssertionError("the chapter trained instead of loading its stored runs")

    hw2lib.train.train = no_training
    for source in chapter_cells:
        shell.run_cell(source).raise_error()
    runs = shell.user_ns["runs"]
    print(json.dumps({"hw2lib": hw2lib.__file__, "cwd": os.getcwd(),
                      "runs": {str(key): str(run.path) for key, run in runs.items()}}))
''')


def test_the_setup_cell_makes_a_bare_python_load_the_chapters_stored_runs(tmp_path, mirror_dir):
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout: there is no repository to clone")
    origin = tmp_path / "hw2book.git"  # the "repository", served as a local git URL
    subprocess.run(["git", "clone", "--bare", "--quiet", str(REPO), str(origin)], check=True, timeout=300)
    commit = subprocess.run(["git", "-C", str(origin), "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
    python = _isolated_python(tmp_path / "venv")
    # The chapter as committed at that commit: every code cell up to the one that loads its runs.
    notebook = nbformat.reads(subprocess.run(["git", "-C", str(origin), "show", f"{commit}:{CHAPTER}"],
                                             capture_output=True, text=True, check=True).stdout, as_version=4)
    code = [cell.source for cell in notebook.cells
            if cell.cell_type == "code" and not cell.metadata.get(colab_setup.MARKER)]
    upto = next(index for index, source in enumerate(code) if "chapter_runs(" in source)
    cells = tmp_path / "cells.json"
    cells.write_text(json.dumps([colab_setup.setup_cell_source(origin.as_uri(), commit), code[: upto + 1]]))
    script = tmp_path / "run_cells.py"
    script.write_text(RUN_CELLS)
    work = tmp_path / "content"  # Colab's working folder
    work.mkdir()
    # This checkout's settings stay out; a simulated network (tests/fresh_laptop) stays in.
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith(("HW2LIB_", "VIRTUAL_ENV", "PIP_")) or key == "HW2LIB_TEST_UPSTREAM"}
    # The data from the mirror if any (tests/test_fresh_laptop.py covers the upstream); pip offline, from
    # what this environment already has.
    environment.update({"HOME": str(tmp_path / "home"), "HW2LIB_MIRROR": str(mirror_dir or "off"),
                        "HW2LIB_CACHE": str(tmp_path / "cache"), "PIP_NO_INDEX": "1",
                        "PIP_NO_BUILD_ISOLATION": "false", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "MPLBACKEND": "Agg"})
    result = subprocess.run([str(python), str(script), str(cells)], cwd=work, env=environment,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    checkout = work / "hw2book"
    assert Path(report["hw2lib"]).resolve().is_relative_to(checkout.resolve())
    assert Path(report["cwd"]).resolve() == (checkout / "book").resolve()
    assert subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True
                          ).stdout.strip() == commit
    stored = (checkout / "results" / "full").resolve()
    assert len(report["runs"]) == 2
    for path in report["runs"].values():
        assert Path(path).resolve().parent == stored and Path(path).name.startswith("seq2seq-")
    assert not (checkout / "results" / "quick").exists()
    tracked = subprocess.run(["git", "-C", str(checkout), "ls-tree", "--name-only", "HEAD", "results/full/"],
                             capture_output=True, text=True, check=True).stdout.split()
    assert sorted(path.name for path in stored.iterdir()) == sorted(Path(name).name for name in tracked)  # none new

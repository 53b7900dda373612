"""The setup cell that opens every notebook of the book, and a command that puts it there.

In a checkout (and on Binder, which installs the repository from environment.yml) hw2lib is
importable and the cell does nothing. Anywhere else -- Colab, a notebook downloaded on its own --
it clones the book's repository, checks out the branch the launch buttons open, installs hw2lib
from it (with myst-nb, whose ``glue`` the chapters use) and moves into its ``book`` folder, so the
chapter finds the stored runs of ``results/full`` instead of training. The cell is self-contained
(it runs before hw2lib exists), tagged ``remove-cell`` (not shown in the book) and ``nbval-skip``.

    python tools/colab_setup.py book/*.ipynb [--repository URL] [--ref BRANCH]   # insert or update
    python tools/colab_setup.py book/*.ipynb --check                             # exit 1 if out of date

The repository and branch default to those of `make book` (tools/book_config.py): the origin
remote when it is on GitHub. A notebook cannot name the commit it is committed in, so the cell
follows the branch, the same one the Colab and Binder buttons open: notebook, library and
stored runs then come from one commit.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
import book_config  # noqa: E402 (a sibling tool)

MARKER = "hw2book-setup"  # cell metadata key that identifies the setup cell
TAGS = ["remove-cell", "nbval-skip"]

TEMPLATE = '''\
# Outside a copy of the book's repository (Colab, a notebook downloaded on its own): fetch it and
# install hw2lib, so this chapter loads the stored runs instead of training. In a checkout: nothing.
import importlib.util, os, subprocess, sys
REPOSITORY, REF = {repository!r}, {ref!r}
if importlib.util.find_spec("hw2lib") is None:
    if not REPOSITORY:
        raise SystemExit("hw2lib is not installed and this copy of the book names no repository to get it "
                         "from: open the notebook from a checkout of the book (see its README)")
    checkout = os.path.abspath("hw2book")
    if not os.path.isdir(os.path.join(checkout, ".git")):
        subprocess.run(["git", "clone", "--quiet", REPOSITORY, checkout], check=True)
        subprocess.run(["git", "-C", checkout, "checkout", "--quiet", REF], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "-e", checkout, "myst-nb"], check=True)
    sys.path.insert(0, checkout)
    os.chdir(os.path.join(checkout, "book"))
    print(f"hw2lib installed from {{REPOSITORY}} ({{REF}}) in {{checkout}}; stored runs in {{checkout}}/results")
'''


def setup_cell_source(repository: str | None, ref: str) -> str:
    """The cell's code for ``repository`` (a git URL, or None: the cell then explains) at ``ref``."""
    return TEMPLATE.format(repository=repository or "", ref=ref)


def setup_cell(repository: str | None, ref: str) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(setup_cell_source(repository, ref))
    cell.metadata = {"tags": list(TAGS), MARKER: True}
    cell.id = MARKER
    return cell


def has_setup_cell(notebook: nbformat.NotebookNode) -> bool:
    return bool(notebook.cells) and bool(notebook.cells[0].get("metadata", {}).get(MARKER))


def with_setup_cell(notebook: nbformat.NotebookNode, repository: str | None, ref: str) -> bool:
    """Make ``notebook``'s first cell the setup cell (replacing an older one anywhere); True if it changed."""
    wanted = setup_cell(repository, ref)
    existing = [index for index, cell in enumerate(notebook.cells) if cell.get("metadata", {}).get(MARKER)]
    if existing == [0] and notebook.cells[0].source == wanted.source \
            and notebook.cells[0].metadata.get("tags") == wanted.metadata["tags"]:
        return False
    notebook.cells = [wanted] + [cell for cell in notebook.cells if not cell.get("metadata", {}).get(MARKER)]
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--repository", default="", help="git URL to clone (default: as `make book`)")
    parser.add_argument("--ref", default="", help="branch or commit to check out (default: as `make book`)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a notebook is out of date")
    args = parser.parse_args(argv)
    repository = args.repository or book_config.repository_address()[0]
    ref = args.ref or book_config.launch_branch()
    stale = []
    for path in args.notebooks:
        notebook = nbformat.read(path, as_version=4)
        if not with_setup_cell(notebook, repository, ref):
            continue
        stale.append(path)
        if not args.check:
            partial = path.with_name(f".{path.name}.part")
            nbformat.write(notebook, partial)
            partial.replace(path)
    verb = "out of date" if args.check else "updated"
    print(f"setup cell ({repository or 'no repository'}, {ref}): {len(stale)} of {len(args.notebooks)} notebooks {verb}"
          + (": " + ", ".join(str(path) for path in stale) if stale else ""))
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())

"""Write the configuration `make book` builds with: `_config.yml` plus where the book's repository is.

The repository's address lives in one place: the `REPOSITORY` variable of `make book` when given,
else the `origin` remote when it is a GitHub address. With an address the notebook pages get
Binder and Colab buttons (opening the same branch); without one they get none, and nothing links
to a repository that may not exist. `--pdf NAME` makes the download menu link the whole book as a
PDF at NAME in the HTML folder (`make pdf` writes it there).

    python tools/book_config.py --output _build/_config.yml [--repository URL] [--branch NAME] [--pdf hw2book.pdf]
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BASE_CONFIG = ROOT / "_config.yml"
BOOK_FOLDER = "book"
DEFAULT_BRANCH = "main"
# Where the buttons send a reader; set only together with an address (the theme fails on services
# without a repository).
LAUNCH_SERVICES = {"binderhub_url": "https://mybinder.org", "colab_url": "https://colab.research.google.com"}
_GITHUB = re.compile(r"^(?:https://github\.com/|git@github\.com:|ssh://git@github\.com/)"
                     r"(?P<owner>[A-Za-z0-9](?:[A-Za-z0-9-]{0,38}))/(?P<name>[A-Za-z0-9._-]+?)(?:\.git)?/?$")


def github_address(url: str) -> str | None:
    """``https://github.com/OWNER/NAME`` for any of GitHub's https or ssh forms of it, else None."""
    match = _GITHUB.match(url.strip())
    return f"https://github.com/{match['owner']}/{match['name']}" if match else None


def _git(*arguments: str, root: Path = ROOT) -> str | None:
    try:
        result = subprocess.run(["git", "-C", str(root), *arguments], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 and result.stdout.strip() else None


def repository_address(explicit: str | None = None, root: Path = ROOT) -> tuple[str | None, str]:
    """The book's GitHub address and where it came from (or None and why there is none)."""
    if explicit:
        address = github_address(explicit)
        if address is None:
            raise ValueError(f"REPOSITORY={explicit} is not a GitHub address; give https://github.com/OWNER/NAME "
                             "(Binder and Colab open notebooks from GitHub)")
        return address, "REPOSITORY"
    origin = _git("remote", "get-url", "origin", root=root)
    if origin is None:
        return None, "this checkout has no origin remote"
    address = github_address(origin)
    if address is None:
        return None, f"the origin remote ({origin}) is not a GitHub address"
    return address, "the origin remote"


def launch_branch(explicit: str | None = None, root: Path = ROOT) -> str:
    """The branch the buttons open: BRANCH when given, else the branch this one tracks, else this one."""
    if explicit:
        return explicit
    upstream = _git("rev-parse", "--abbrev-ref", "--symbolic-full-name", "@{upstream}", root=root)
    if upstream and "/" in upstream:
        return upstream.split("/", 1)[1]
    return _git("symbolic-ref", "--short", "-q", "HEAD", root=root) or DEFAULT_BRANCH  # detached: main


def book_config(address: str | None, branch: str, pdf: str | None = None, base: Path = BASE_CONFIG) -> dict:
    """`_config.yml` with the repository, the launch buttons and the PDF link filled in."""
    config = yaml.safe_load(base.read_text(encoding="utf-8"))
    config = copy.deepcopy(config)
    config["repository"] = {"url": address or "", "path_to_book": BOOK_FOLDER, "branch": branch}
    services = LAUNCH_SERVICES if address else {key: "" for key in LAUNCH_SERVICES}
    config["launch_buttons"] = {**(config.get("launch_buttons") or {}), **services}
    sphinx = config.setdefault("sphinx", {})
    # Paths of local extensions are relative to the configuration file: keep them pointing into the checkout.
    local = sphinx.get("local_extensions") or {}
    sphinx["local_extensions"] = {name: str((base.parent / path).resolve()) for name, path in local.items()}
    sphinx.setdefault("config", {})["hw2book_pdf"] = pdf or ""
    return config


def describe(address: str | None, source: str, branch: str) -> str:
    if address is None:
        return (f"launch buttons: none ({source}); to add Binder and Colab buttons: "
                "make book REPOSITORY=https://github.com/OWNER/NAME")
    return f"launch buttons: Binder and Colab for {address}, branch {branch} (from {source})"


def stale_setup_cells(address: str, branch: str) -> list[str]:
    """Notebooks whose setup cell (tools/colab_setup.py) does not clone ``address`` at ``branch``."""
    import nbformat

    from colab_setup import setup_cell_source

    wanted = setup_cell_source(address, branch)
    notebooks = {path.name: nbformat.read(path, as_version=4) for path in sorted((ROOT / BOOK_FOLDER).glob("*.ipynb"))}
    return [name for name, notebook in notebooks.items() if not notebook.cells or notebook.cells[0].source != wanted]


def write_yaml(config: dict, output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile("w", dir=output.parent, prefix=f".{output.name}.", suffix=".part",
                                         delete=False, encoding="utf-8")
    try:
        with handle:
            handle.write("# Generated by tools/book_config.py from _config.yml; edit that file instead.\n")
            yaml.safe_dump(config, handle, sort_keys=False, allow_unicode=True)
        os.replace(handle.name, output)
    finally:
        if os.path.exists(handle.name):
            os.unlink(handle.name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, required=True, help="where to write the configuration")
    parser.add_argument("--repository", default="", help="the book's GitHub address (default: the origin remote)")
    parser.add_argument("--branch", default="", help="the branch the buttons open (default: the tracked one)")
    parser.add_argument("--pdf", default="", help="link the download menu's PDF entry to this file of the HTML folder")
    args = parser.parse_args(argv)
    try:
        address, source = repository_address(args.repository or None)
    except ValueError as error:
        print(f"book_config: {error}", file=sys.stderr)
        return 2
    branch = launch_branch(args.branch or None)
    write_yaml(book_config(address, branch, args.pdf or None), args.output)
    print(describe(address, source, branch))
    stale = stale_setup_cells(address, branch) if address else []
    if stale:
        print(f"warning: the setup cell of {', '.join(stale)} does not clone {address} ({branch}), so those "
              f"notebooks cannot set themselves up in Colab: python tools/colab_setup.py book/*.ipynb", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

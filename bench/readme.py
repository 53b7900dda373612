"""Copy the measured tables into the README: ``python -m bench.readme``.

The README's "Performance" section holds two blocks, each between ``<!-- bench:NAME -->`` and
``<!-- /bench:NAME -->``: ``speed`` (from ``bench/RESULTS.md``, written by ``make bench``) and
``reproduce`` (from ``bench/REPRODUCE.md``, written by ``python -m bench.end_to_end --reproduce``).
Each block is the file's text with its title demoted, so the README shows exactly the last run.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from .common import REPOSITORY, write_text_atomically

README = REPOSITORY / "README.md"
SOURCES = {"speed": REPOSITORY / "bench" / "RESULTS.md", "reproduce": REPOSITORY / "bench" / "REPRODUCE.md"}


def block_text(source: Path) -> str:
    """The README block for a results file: its Markdown with the top heading made a level-4 heading."""
    text = source.read_text(encoding="utf-8").strip()
    return re.sub(r"^# ", "#### ", text, count=1)


def _block_pattern(name: str) -> re.Pattern:
    return re.compile(rf"<!-- bench:{name} -->\n(.*?)<!-- /bench:{name} -->", re.DOTALL)


def replace_block(readme_text: str, name: str, content: str) -> str:
    pattern = _block_pattern(name)
    if not pattern.search(readme_text):
        raise ValueError(f"README.md has no block <!-- bench:{name} --> ... <!-- /bench:{name} -->")
    return pattern.sub(lambda match: f"<!-- bench:{name} -->\n{content}\n<!-- /bench:{name} -->", readme_text)


def current_block(readme_text: str, name: str) -> str:
    match = _block_pattern(name).search(readme_text)
    if match is None:
        raise ValueError(f"README.md has no block <!-- bench:{name} -->")
    return match.group(1).rstrip("\n")


def main() -> int:
    text = README.read_text(encoding="utf-8")
    for name, source in SOURCES.items():
        if source.is_file():
            text = replace_block(text, name, block_text(source))
        else:
            print(f"{source.relative_to(REPOSITORY)} is missing: the README's {name} block is left as it is",
                  file=sys.stderr)
    write_text_atomically(text, README)
    print("README.md: performance tables copied from bench/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

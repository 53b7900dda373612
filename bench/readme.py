"""Copy the measured tables into the README: ``python -m bench.readme``.

The README's "Performance" section holds two blocks, each between ``<!-- bench:NAME -->`` and
``<!-- /bench:NAME -->``: ``speed`` (from ``bench/RESULTS.md``, written by ``make bench``) and
``reproduce`` (from ``bench/REPRODUCE.md``, written by ``python -m bench.end_to_end --reproduce``).
Each block is the file's text with its headings demoted, so the README shows exactly the last run:
each ratio is the median of its rounds, and beside it the spread, the lowest and highest ratio of a
single round (:func:`spread_problems` names a ratio shown without one, or outside it).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from .common import REPOSITORY, write_text_atomically

README = REPOSITORY / "README.md"
SOURCES = {"speed": REPOSITORY / "bench" / "RESULTS.md", "reproduce": REPOSITORY / "bench" / "REPRODUCE.md"}


def block_text(source: Path) -> str:
    """The README block for a results file: its Markdown with every heading three levels lower (the
    title a level-4 heading, under the README's "Performance")."""
    text = source.read_text(encoding="utf-8").strip()
    return re.sub(r"^(#+) ", lambda match: "#" * min(len(match[1]) + 3, 6) + " ", text, flags=re.MULTILINE)


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


_SPREAD = re.compile(r"^(?P<low>\d+\.\d+)(?P<unit>%?)-(?P<high>\d+\.\d+)%? \((?P<rounds>\d+) rounds?\)$")
_RATIO = re.compile(r"^(?P<value>\d+\.\d+)(?P<unit>x|% of peak)$")


def table_rows(markdown: str) -> list[dict[str, str]]:
    """The rows of every Markdown table in ``markdown``, in order, each as {column: cell} under its
    own table's header."""
    split = lambda line: [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip().strip("|"))]  # noqa: E731
    rows, header, previous = [], None, ""
    for line in markdown.splitlines():
        if not line.strip().startswith("|"):
            header, previous = None, ""
        elif header is None and re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", line.strip()) and previous:
            header = split(previous)
        elif header is not None:
            rows.append(dict(zip(header, split(line))))
        else:
            previous = line
    return rows


def spread_problems(markdown: str) -> list[str]:
    """The rows of a results table whose ratio is measured over rounds (a speed-up ``1.52x`` or a
    share of peak ``22.0% of peak``) but shows no spread, or a spread that does not hold the ratio."""
    problems = []
    for row in table_rows(markdown):
        ratio = _RATIO.match(row.get("ratio", ""))
        if ratio is None:
            continue
        spread = _SPREAD.match(row.get("spread", ""))
        if spread is None:
            problems.append(f"{row['benchmark']}: ratio {row['ratio']} without a spread ({row.get('spread', '')!r})")
        elif not float(spread["low"]) - 0.005 <= float(ratio["value"]) <= float(spread["high"]) + 0.005:
            problems.append(f"{row['benchmark']}: ratio {row['ratio']} outside its spread {row['spread']}")
    return problems


def main() -> int:
    text = README.read_text(encoding="utf-8")
    for name, source in SOURCES.items():
        if source.is_file():
            text = replace_block(text, name, block_text(source))
            for problem in spread_problems(source.read_text(encoding="utf-8")):
                print(f"{source.relative_to(REPOSITORY)}: {problem}", file=sys.stderr)
        else:
            print(f"{source.relative_to(REPOSITORY)} is missing: the README's {name} block is left as it is",
                  file=sys.stderr)
    write_text_atomically(text, README)
    print("README.md: performance tables copied from bench/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

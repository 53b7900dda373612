"""The README's performance tables are exactly the last measured ones in bench/."""

from __future__ import annotations

import pytest

from bench.readme import README, SOURCES, block_text, current_block, replace_block


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_readme_block_matches_the_measured_table(name):
    source = SOURCES[name]
    assert source.is_file(), f"{source} is missing: run the benchmark that writes it"
    assert current_block(README.read_text(encoding="utf-8"), name) == block_text(source), (
        f"README.md's {name} table differs from {source.name}: run `python -m bench.readme`")


def test_replace_block_only_touches_its_block():
    text = "a\n<!-- bench:speed -->\nold\n<!-- /bench:speed -->\nb\n"
    assert replace_block(text, "speed", "new table") == "a\n<!-- bench:speed -->\nnew table\n<!-- /bench:speed -->\nb\n"
    with pytest.raises(ValueError, match="no block"):
        replace_block(text, "reproduce", "x")

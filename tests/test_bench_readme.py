"""The README's performance tables are exactly the last measured ones in bench/."""

from __future__ import annotations

import pytest

from bench.readme import README, SOURCES, block_text, current_block, replace_block, spread_problems, table_rows


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


def test_every_measured_ratio_in_the_readme_shows_its_spread():
    text = README.read_text(encoding="utf-8")
    for name in sorted(SOURCES):  # a table without a spread column fails here at its first measured ratio
        assert spread_problems(current_block(text, name)) == [], name


def test_spread_problems_names_a_missing_or_inconsistent_spread():
    table = ("| benchmark | measured | reference | ratio | spread | goal | verdict |\n"
             "| --- | --- | --- | --- | --- | --- | --- |\n"
             "| a | 1 | 1 | 1.50x | 1.20-1.80 (9 rounds) | >= 1.5x | PASS |\n"
             "| b | 1 | 1 | 1.50x |  |  |  |\n"
             "| c | 1 | 1 | 2.00x | 1.20-1.80 (9 rounds) |  |  |\n"
             "| d | 1 | 1 | 22.0% of peak | 18.0%-22.0% (9 rounds) |  |  |\n"
             "| e | 1 s | budget 2 s | 0.50 of budget |  | < 2 s | PASS |\n")
    assert [row["benchmark"] for row in table_rows(table)] == ["a", "b", "c", "d", "e"]
    problems = spread_problems(table)
    assert len(problems) == 2 and problems[0].startswith("b: ratio 1.50x without a spread")
    assert problems[1] == "c: ratio 2.00x outside its spread 1.20-1.80 (9 rounds)"


def test_results_markdown_puts_goals_first_and_folds_the_notes():
    from bench.common import Row, budget_row, markdown_table, speed_row

    rows = [speed_row("a", "2 img/s", "1 img/s", 2.0, at_least=1.5, spread="1.90-2.10 (9 rounds)", note="how a"),
            Row("b", "3 ms", "4 ms", 1.33, "1.33x", spread="1.20-1.40 (9 rounds)"),
            budget_row("c", 30.0, 60.0, note="how c")]
    text = markdown_table(rows)
    goals, others = text.index("## Goals"), text.index("## Other measurements")
    folded, unfolded = text.index("<details><summary>"), text.index("</details>")
    rows_read = table_rows(text)
    assert [row["benchmark"] for row in rows_read] == ["a", "c", "b"]  # goals first, then the rest
    assert "verdict" in rows_read[0] and "reference" not in rows_read[0]
    assert rows_read[2]["reference"] == "4 ms" and "verdict" not in rows_read[2]
    assert goals < text.index("| a |") < text.index("| c |") < others < text.index("| b |") < folded
    assert folded < text.index("- **a**: how a") < text.index("- **c**: how c") < unfolded
    assert "**b**" not in text  # a row without a note has no line under the fold
    assert spread_problems(text) == []


def test_a_results_file_whose_rows_all_have_goals_is_one_table(tmp_path):
    from bench.common import budget_row, markdown_document

    text = markdown_document([budget_row("r", 60.0, 120.0)], {"cores": "2"}, "make x", "End-to-end")
    assert "## Goals" not in text and [row["benchmark"] for row in table_rows(text)] == ["r"]
    source = tmp_path / "r.md"
    source.write_text("# Title\n\n## Goals\n\ntext\n", encoding="utf-8")
    assert block_text(source) == "#### Title\n\n##### Goals\n\ntext"  # every heading under the README's level 3

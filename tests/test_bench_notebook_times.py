"""bench/notebook_times.py: what its rows say (not the timings themselves)."""

from __future__ import annotations

import shutil

import nbformat

from bench import notebook_times
from bench.end_to_end import stored_runs
from bench.notebook_times import NOTEBOOK_BUDGET, execute, nothing_trained


def test_quick_lists_every_notebook_against_one_minute_unmeasured():
    rows = notebook_times.run(quick=True)
    assert [row.benchmark.split(": ")[1] for row in rows] == [f"{path.stem} (full profile)"
                                                             for path in notebook_times.notebooks()]
    assert {"ch1_convolutions (full profile)", "ch3_translation (full profile)"} <= {
        row.benchmark.split(": ")[1] for row in rows}
    assert NOTEBOOK_BUDGET == 60
    assert all(row.measured == "not measured" and row.goal == "< 60.0 s" and row.passed is None for row in rows)


def test_a_run_the_notebook_trained_is_named(tmp_path):
    complete = stored_runs(notebook_times.REPOSITORY / "results" / "full")[0]
    shutil.copytree(complete[0], tmp_path / complete[0].name)
    assert nothing_trained(tmp_path) == "nothing trained"
    extra = tmp_path / "cnn-kmnist-t10k-lr0.1-0badc0de"
    extra.mkdir()
    (extra / "config.json").write_text("{}")
    (extra / "metrics.json").write_text("{}")
    assert nothing_trained(tmp_path) == "TRAINED 1 run(s): cnn-kmnist-t10k-lr0.1-0badc0de"


def test_execute_reports_a_failing_cell_and_passes_a_working_notebook(tmp_path, capsys):
    for name, source in (("works", "x = 1 + 1"), ("fails", "raise ValueError('broken on purpose')")):
        document = nbformat.v4.new_notebook()
        document.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        document.cells = [nbformat.v4.new_code_cell(source)]
        nbformat.write(document, tmp_path / f"{name}.ipynb")
    assert execute(tmp_path / "works.ipynb") == 0
    assert execute(tmp_path / "fails.ipynb") == 1
    printed = capsys.readouterr().out
    assert "works.ipynb: every cell ran in" in printed
    assert "fails.ipynb: a cell failed: ValueError: broken on purpose" in printed
    assert nbformat.read(tmp_path / "works.ipynb", as_version=4).cells[0].outputs == []  # nothing written back

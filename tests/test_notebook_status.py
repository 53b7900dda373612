"""Tests for hw2lib.notebook_status: the "where you are" cell of every chapter notebook."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hw2lib import cnn_runs, notebook_status, seq2seq_runs
from hw2lib.download import DataError
from hw2lib.notebook_status import about, chapter_plan, chapter_status, format_status
from hw2lib.runs import comparable_run, load_run, run_folder

REPO = Path(__file__).resolve().parents[1]
STORED = REPO / "results" / "full"
CHAPTERS_WITH_RUNS = ("ch2", "ch3", "appendix")


def said(status) -> str:
    """What the cell prints, on one line (its sentences wrap at 100 characters)."""
    return " ".join(format_status(status).split())


def stored_folders() -> set[str]:
    return {path.name for path in STORED.iterdir() if (path / "metrics.json").is_file()}


@pytest.fixture
def results(tmp_path, monkeypatch) -> Path:
    """An empty results folder in place of results/<profile>."""
    folder = tmp_path / "results"
    folder.mkdir()
    monkeypatch.setenv("HW2LIB_RESULTS", str(folder))
    return folder


def test_the_chapters_plans_are_exactly_the_stored_full_runs(use_mirror, monkeypatch):
    """Every stored run belongs to a chapter's plan and every planned run is stored, so the cell
    that says "nothing will be trained" in the full profile says so for every chapter, truthfully."""
    monkeypatch.delenv("HW2LIB_RESULTS", raising=False)
    planned = set()
    for chapter in CHAPTERS_WITH_RUNS:
        status = chapter_status(chapter, profile_name="full")
        assert status.problem is None and status.missing == [], (
            f"{chapter}: its code asks for runs results/full does not hold (retrain them, or undo the "
            f"configuration change): {[run.folder for run in status.missing]}")
        assert status.results == STORED
        planned |= set(status.found)
        assert "nothing will be trained" in said(status)
        assert max(len(line) for line in format_status(status).splitlines()) <= 100  # no line wraps in a notebook
    assert planned == stored_folders()
    assert len(chapter_status("ch2", profile_name="full").found) == 9  # 3 rates + 3 more Q2.3 runs + 3 probes


@pytest.mark.parametrize("profile_name", ["full", "quick"])
def test_chapter_2s_plan_is_what_its_experiments_ask_the_store_for(profile_name, monkeypatch):
    """The runs the cell lists are the runs the chapter's code asks get_or_train for (the sweep, the
    comparison, the dead-unit probes), so "found" and "missing" speak of what the notebook loads."""
    asked = []

    def record(name, config, train_fn, **options):
        asked.append((name, {"profile": profile_name, **config}))
        return load_run(STORED / "cnn-kmnist-t10k-lr0.0005-f414e70a")  # any Run: nothing is trained

    monkeypatch.setattr(cnn_runs, "get_or_train", record)
    variant = "kmnist-t10k"
    cnn_runs.learning_rate_sweep(variant=variant, profile=profile_name)
    cnn_runs.comparison_runs(variant=variant, profile=profile_name)
    for rate in cnn_runs.LEARNING_RATES:
        cnn_runs.dead_unit_probe(rate, variant=variant, profile=profile_name)
    unique = {run_folder(name, config).name: (name, config) for name, config in asked}
    plan = chapter_plan("ch2", profile_name, variant=variant)
    assert {run_folder(name, config).name: (name, config) for name, config in plan} == unique
    assert len(plan) == len(unique) == 9


def test_missing_runs_are_named_with_their_epochs_and_time(use_mirror, results):
    """An empty results folder: every chapter 2 run is missing; the time of each is its epochs times
    the seconds per epoch of the most similar stored full run."""
    status = chapter_status("ch2", profile_name="full", variant="kmnist-t10k")
    assert status.found == [] and len(status.missing) == 9
    for run in status.missing:
        config = dict(chapter_plan("ch2", "full", variant="kmnist-t10k"))[run.folder.rsplit("-", 1)[0]]
        name, seconds = comparable_run(STORED / run.folder, config)
        assert (run.like, run.epochs, run.at_most) == (name, config["epochs"], False)
        assert run.seconds == pytest.approx(config["epochs"] * seconds)
    text = said(status)
    assert "0 of its 9 stored runs are there; running the notebook will train the 9 missing" in text
    assert "cnn-kmnist-t10k-lr0.0005-f414e70a: 20 epochs, about 45 seconds" in text
    assert "nothing will be trained" not in text
    assert "In all about 4 minutes" in text and "1 CPU thread" in text
    assert sorted(path.name for path in results.iterdir()) == []  # reading wrote nothing


def test_one_missing_run_is_estimated_from_its_neighbours(use_mirror, results):
    """All runs but the best CNN copied: 8 found, that one missing, its time from a run beside it."""
    plan = chapter_plan("ch2", "full", variant="kmnist-t10k")
    gone = run_folder(*plan[1]).name
    for name, config in plan:
        folder = run_folder(name, config)
        if folder.name != gone:
            shutil.copytree(STORED / folder.name, folder)
    status = chapter_status("ch2", profile_name="full", variant="kmnist-t10k")
    assert len(status.found) == 8 and [run.folder for run in status.missing] == [gone]
    missing = status.missing[0]
    like = load_run(results / missing.like)
    assert missing.seconds == pytest.approx(20 * like.metrics["seconds_per_epoch"])
    assert f"{gone}: 20 epochs, about" in said(status)


def test_quick_runs_are_estimated_from_the_full_runs_scaled_to_their_size(use_mirror, results):
    """No quick run stored: the CNN's time scales with its 2,000 of 8,000 images; the translator's
    training size in the full runs is not stored, so its time is an upper bound ("at most")."""
    cnn = chapter_status("ch2", profile_name="quick", variant="kmnist-t10k").missing[0]
    full_like = load_run(STORED / cnn.like)
    assert cnn.seconds == pytest.approx(2 * full_like.metrics["seconds_per_epoch"] * 2000 / 8000)
    assert not cnn.at_most
    translators = chapter_status("ch3", profile_name="quick")
    assert all(run.at_most and run.epochs == 3 for run in translators.missing)
    text = said(translators)
    assert "3 epochs, at most" in text and "In all at most" in text
    assert "`%env HW2LIB_PROFILE=full`" in text and "HW2LIB_PROFILE=full make lab" in text


def test_the_appendix_says_its_replay_trains_on_purpose(use_mirror, monkeypatch):
    monkeypatch.delenv("HW2LIB_RESULTS", raising=False)
    status = chapter_status("appendix", profile_name="full")
    cnn = load_run(STORED / "cnn-kmnist-t10k-lr0.0005-f414e70a")
    assert status.replay_seconds == pytest.approx(2 * cnn.metrics["seconds_per_epoch"])
    assert "nothing will be trained but the reproducibility check at the end" in said(status)


def test_chapter_1_trains_nothing_and_other_names_are_refused():
    assert chapter_plan("ch1", "full") == []
    assert said(chapter_status("ch1", profile_name="quick")).startswith("Chapter 1: nothing will be trained")
    with pytest.raises(ValueError, match="unknown chapter 'ch4'; choose one of ch1, ch2, ch3, appendix"):
        chapter_status("ch4")


def test_data_that_cannot_be_had_is_one_line_not_a_traceback(monkeypatch):
    def no_data(*args, **kwargs):
        raise DataError("hw2-char-mt/train-eng-spa.txt: no mirror and no network")

    monkeypatch.setattr(seq2seq_runs, "seq2seq_config", no_data)
    status = chapter_status("ch3", profile_name="full")
    assert status.problem and status.found == [] and status.missing == []
    assert format_status(status).splitlines()[-1] == (
        "This chapter cannot run here: hw2-char-mt/train-eng-spa.txt: no mirror and no network")


def test_where_you_are_prints_the_profile_of_the_environment(use_mirror, monkeypatch, capsys):
    monkeypatch.delenv("HW2LIB_RESULTS", raising=False)
    monkeypatch.setenv("HW2LIB_PROFILE", "full")
    notebook_status.where_you_are("ch3")
    printed = " ".join(capsys.readouterr().out.split())
    assert printed.startswith("Chapter 3, profile 'full'") and "read from results/full." in printed
    assert "Both of its stored runs are there, so nothing will be trained" in printed


@pytest.mark.parametrize(("seconds", "said"), [
    (3, "a few seconds"), (42, "about 40 seconds"), (89, "about 90 seconds"), (95, "about 2 minutes"),
    (7 * 60 + 10, "about 7 minutes"), (2.5 * 3600, "about 2.5 hours")])
def test_durations_read_as_a_person_says_them(seconds, said):
    assert about(seconds) == said

"""Tests for hw2lib.runs: profiles, folders, the load-or-train round trip, crashes and weights."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from hw2lib import runs
from hw2lib.runs import (Run, config_hash, get_or_train, load_run, profile, results_dir, run_folder, save_weights,
                         write_json_atomically)


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("HW2LIB_RESULTS", str(tmp_path / "results"))
    monkeypatch.delenv("HW2LIB_PROFILE", raising=False)
    return tmp_path / "results"


def test_profile_reads_the_environment(monkeypatch):
    monkeypatch.delenv("HW2LIB_PROFILE", raising=False)
    assert profile() == "full"
    monkeypatch.setenv("HW2LIB_PROFILE", "quick")
    assert profile() == "quick"
    monkeypatch.setenv("HW2LIB_PROFILE", "fast")
    with pytest.raises(ValueError, match="HW2LIB_PROFILE must be 'full' or 'quick', not 'fast'"):
        profile()


def test_results_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("HW2LIB_RESULTS", raising=False)
    monkeypatch.setenv("HW2LIB_PROFILE", "quick")
    assert results_dir() == runs.REPOSITORY_ROOT / "results" / "quick"
    assert results_dir("full") == runs.REPOSITORY_ROOT / "results" / "full"
    with pytest.raises(ValueError, match="unknown profile"):
        results_dir("medium")
    monkeypatch.setenv("HW2LIB_RESULTS", str(tmp_path))
    assert results_dir() == tmp_path


def test_config_hash_ignores_key_order_and_sees_values():
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})
    with pytest.raises(ValueError, match="plain JSON"):
        config_hash({"a": object()})
    with pytest.raises(ValueError, match="plain JSON"):
        config_hash({"lr": math.nan})


def test_second_call_loads_instead_of_training(store):
    calls = []

    def train_fn(config, run_dir):
        calls.append(run_dir)
        return {"history": [{"epoch": 1, "loss": 0.5}], "dev_accuracy": 0.9, "device": "cpu"}

    config = {"model": "toy", "learning_rate": 0.1, "seed": 1}
    first = get_or_train("toy", config, train_fn)
    assert len(calls) == 1 and calls[0] == runs.store_paths(first.path)[1]  # trained aside, then renamed into place
    assert first.trained and not calls[0].exists()
    assert first.path.parent == store and first.path.name == f"toy-{config_hash({**config, 'profile': 'full'})}"
    assert first.config == {**config, "profile": "full"}
    assert {"wall_seconds", "torch_version", "device", "resumed_from_checkpoint"} <= set(first.metrics)
    assert first.metrics["torch_version"] == torch.__version__

    def must_not_train(config, run_dir):
        raise AssertionError("a stored run was trained again")

    second = get_or_train("toy", config, must_not_train)
    assert second.metrics == first.metrics and second.path == first.path and not second.trained

    other = get_or_train("toy", {**config, "learning_rate": 0.2}, train_fn)  # another config, another folder
    assert len(calls) == 2 and other.path != first.path
    get_or_train("toy", config, train_fn, retrain=True)
    assert len(calls) == 3


def test_crashed_run_is_not_complete_and_resumes(store):
    def crashing(config, run_dir):
        (run_dir / "checkpoint.pt").write_bytes(b"progress")
        raise RuntimeError("power cut")

    config = {"model": "toy", "seed": 2}
    with pytest.raises(RuntimeError, match="power cut"):
        get_or_train("toy", config, crashing)
    folder = run_folder("toy", {**config, "profile": "full"})
    training = runs.store_paths(folder)[1]
    assert not folder.exists() and load_run(folder) is None  # only complete runs have a run folder
    assert (training / "config.json").is_file() and (training / "checkpoint.pt").is_file()

    seen = []

    def resuming(config, run_dir):
        seen.append((run_dir / "checkpoint.pt").read_bytes())
        return {"dev_accuracy": 0.5, "device": "cpu"}

    run = get_or_train("toy", config, resuming)
    assert seen == [b"progress"]  # the second call found the checkpoint
    assert run.metrics["resumed_from_checkpoint"] is True
    assert not (folder / "checkpoint.pt").exists() and not training.exists()  # deleted once the run is complete


def test_a_run_failing_before_its_first_checkpoint_leaves_no_folder(store):
    def failing(config, run_dir):
        raise FileNotFoundError("no data")

    with pytest.raises(FileNotFoundError):
        get_or_train("toy", {"seed": 4}, failing)
    folder = run_folder("toy", {"seed": 4, "profile": "full"})
    assert not folder.exists() and not runs.store_paths(folder)[1].exists()


def test_profile_in_config_chooses_the_folder(store, monkeypatch):
    monkeypatch.delenv("HW2LIB_RESULTS")
    monkeypatch.setattr(runs, "REPOSITORY_ROOT", store)
    (store / "pyproject.toml").parent.mkdir(parents=True, exist_ok=True)
    (store / "pyproject.toml").write_text("")
    run = get_or_train("toy", {"seed": 1, "profile": "quick"}, lambda config, run_dir: {"x": 1})
    assert run.path.parent == store / "results" / "quick"


def test_nan_is_stored_as_null_and_read_back_as_nan(store):
    run = get_or_train("diverged", {"seed": 3},
                       lambda config, run_dir: {"history": [{"epoch": 1, "train_loss": math.nan}], "dev_accuracy": 0.1})
    text = (run.path / "metrics.json").read_text()
    assert "NaN" not in text and json.loads(text)["history"][0]["train_loss"] is None
    assert math.isnan(run.history[0]["train_loss"])


def test_weights_round_trip_and_missing_weights(store):
    torch.manual_seed(0)
    model = nn.Linear(3, 2)

    def train_fn(config, run_dir):
        save_weights(model, run_dir)
        return {"dev_accuracy": 1.0}

    run = get_or_train("linear", {"seed": 0}, train_fn)
    assert run.has_weights()
    restored = run.load_weights(nn.Linear(3, 2))
    assert torch.equal(restored.weight, model.weight) and torch.equal(restored.bias, model.bias)
    bare = get_or_train("bare", {"seed": 0}, lambda config, run_dir: {"dev_accuracy": 1.0})
    with pytest.raises(FileNotFoundError, match="has no stored weights"):
        bare.load_weights(nn.Linear(3, 2))


def test_bad_names_and_bad_results(store):
    with pytest.raises(ValueError, match="run name"):
        get_or_train("../escape", {"seed": 0}, lambda config, run_dir: {})
    with pytest.raises(TypeError, match="must return a dict"):
        get_or_train("toy", {"seed": 9}, lambda config, run_dir: [1, 2])


def test_write_json_atomically_leaves_no_partial_file(tmp_path):
    target = tmp_path / "data.json"
    write_json_atomically({"a": 1}, target)
    with pytest.raises(TypeError):
        write_json_atomically({"a": object()}, target)  # not serialisable: the old file must survive
    assert json.loads(target.read_text()) == {"a": 1}
    assert [path.name for path in tmp_path.iterdir()] == ["data.json"]


def test_run_is_a_plain_record(tmp_path):
    run = Run(name="x", config={}, metrics={"history": [{"epoch": 1, "loss": None}]}, path=tmp_path)
    assert run.weights_path == tmp_path / "weights.pt" and not run.has_weights()
    assert math.isnan(run.history[0]["loss"])


def test_without_timings_drops_machine_dependent_keys_at_any_depth():
    from hw2lib.runs import without_timings

    metrics = {"wall_seconds": 9.0, "cpu_threads": 2, "test_accuracy": 0.93,
               "history": [{"epoch": 1, "seconds": 3.1, "train_loss": 0.5}],
               "final_val": {"seconds": 0.2, "error_rate": 0.37}}
    assert without_timings(metrics) == {"test_accuracy": 0.93, "history": [{"epoch": 1, "train_loss": 0.5}],
                                        "final_val": {"error_rate": 0.37}}

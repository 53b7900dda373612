"""Soak tests of the results store (cases 1, 4 and 5 of the reliability list, and its guarantees as a whole):
a run killed with SIGKILL at 20 random moments, mid-epoch and mid-write, and resumed each time ends with
exactly the history, metrics and weights of an uninterrupted run; two processes racing on one configuration
ten times never leave a broken or mixed run. The children are forked from one warmed driver process
(tests/store_soak_driver.py), so a restart costs milliseconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hw2lib import cnn_runs
from hw2lib.cnn import accuracy, build_model
from hw2lib.runs import STORE_FOLDER, get_or_train, load_run, run_folder, without_timings

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the driver forks its children")

REPOSITORY = Path(__file__).resolve().parents[1]
DRIVER = Path(__file__).with_name("store_soak_driver.py")
SEED = 20240611  # the kill moments; a failure names it


def tiny_config(epochs: int) -> dict:
    """The quick-profile run of chapter 2's fully connected network, cut to 512 training images: a few
    hundredths of a second an epoch."""
    config = cnn_runs.cnn_config(5e-4, model="fc", variant="kmnist-t10k", profile="quick", epochs=epochs)
    config.update(train_examples=512)
    return config


def drive(mode: str, results: Path, config: dict, count: int, *extra: str) -> dict:
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY), "HW2LIB_RESULTS": str(results)}
    result = subprocess.run([sys.executable, str(DRIVER), mode, str(results), json.dumps(config), str(count),
                             str(SEED), *extra], capture_output=True, text=True, cwd=REPOSITORY, env=environment,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def without_trainer(metrics: dict) -> dict:
    return {key: value for key, value in without_timings(dict(metrics)).items() if key != "trainer"}


def weights_of(run) -> dict[str, torch.Tensor]:
    return torch.load(run.weights_path, weights_only=True)


def test_a_run_killed_20_times_resumes_to_the_uninterrupted_run(tmp_path, monkeypatch, use_mirror):
    """20 SIGKILLs at random moments (a time into the training, the k-th rename, half of the k-th file
    written), the last three at the run's last writes (half of its weights, before its metrics are
    renamed into place, before its folder is); after each one the store shows no run and no half-made
    folder, and the run finished in the end is the uninterrupted one exactly (timings aside), with nothing
    left over."""
    config = tiny_config(epochs=60)
    monkeypatch.setenv("HW2LIB_RESULTS", str(tmp_path / "uninterrupted"))
    reference = get_or_train(cnn_runs.run_name(config), config,
                             lambda config, run_dir: {**cnn_runs.train_kmnist_run(config, run_dir, device="cpu",
                                                                                    progress=False), "trainer": 0})
    summary = drive("kill", tmp_path / "killed", config, 20)
    steps = summary["steps"]
    assert sum(step["killed"] for step in steps) == 20, f"seed {SEED}: a child exited by itself: {steps[-1]}"
    assert {step["plan"][0] for step in steps} == {"time", "rename", "half", "weights", "metrics", "publish"}
    for step in steps:
        assert step["run"] == "absent" and step["results"] == [STORE_FOLDER], (SEED, step)
    assert summary["final_exit"] == 0 and summary["final"]["run"] == "complete"
    folder = run_folder(cnn_runs.run_name(config), config).name
    assert summary["final"]["results"] == [STORE_FOLDER, folder]
    assert summary["final"]["store"] == [f"{folder}.lock"]  # no unfinished run, no temporary file

    resumed = load_run(tmp_path / "killed" / folder)
    assert resumed.metrics["resumed_from_checkpoint"] is True
    assert without_timings(resumed.history) == without_timings(reference.history)
    assert without_trainer(resumed.metrics) == without_trainer(reference.metrics)
    reference_weights, resumed_weights = weights_of(reference), weights_of(resumed)
    assert all(torch.equal(reference_weights[key], resumed_weights[key]) for key in reference_weights)
    assert not [path for path in (tmp_path / "killed").rglob("*") if path.name.endswith(".part")]


def test_two_processes_racing_on_one_run_ten_times_never_break_or_mix_it(tmp_path, monkeypatch, use_mirror):
    """Ten rounds of two processes asking for the same run at once (even rounds: nothing stored; odd
    rounds: both retrain the stored run; from round 2 on, one of them may be killed at a random moment).
    After every round the run is complete, it is the uninterrupted run exactly, its weights are the ones
    its metrics were measured on, and the store holds nothing but its lock."""
    config = tiny_config(epochs=3)
    monkeypatch.setenv("HW2LIB_RESULTS", str(tmp_path / "uninterrupted"))
    reference = get_or_train(cnn_runs.run_name(config), config,
                             lambda config, run_dir: {**cnn_runs.train_kmnist_run(config, run_dir, device="cpu",
                                                                                    progress=False), "trainer": 0})
    results = tmp_path / "raced"
    summary = drive("race", results, config, 10)
    folder = run_folder(cnn_runs.run_name(config), config).name
    test_images, test_labels = cnn_runs.kmnist_data("kmnist-t10k").test
    for round_ in summary["rounds"]:
        where = f"seed {SEED}, round {round_}"
        assert round_["run"] == "complete", where
        assert round_["results"] == [STORE_FOLDER, folder] and round_["store"] == [f"{folder}.lock"], where
        survivors = [side for side in (0, 1) if side != round_["victim"]]
        assert all(round_["exits"][side] == 0 and round_["reports"][side] is not None for side in survivors), \
            where  # a racer that was not killed succeeded (and did not hang)
        if round_["victim"] is None:
            trained = [report["trained"] for report in round_["reports"]]
            assert trained == [True, True] if round_["retrain"] else sorted(trained) == [False, True], where
        assert round_["one_trainer"] and round_["weights_match_metrics"], where  # nothing mixed
        assert round_["history"] == without_timings(reference.history), where
    run = load_run(results / folder)
    assert without_trainer(run.metrics) == without_trainer(reference.metrics)
    model = run.load_weights(build_model(config["model"], dropout=config["dropout"]))
    assert accuracy(model, test_images, test_labels) == run.metrics["test_accuracy"]

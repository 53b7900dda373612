"""Reliability of the real pipelines: seeds, repeatability, a killed run, hostile files, damaged data.

Every run here is a quick-profile run shrunk further (a few hundred examples), stored in a
temporary results folder through ``HW2LIB_RESULTS``.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from hw2lib import cli, cnn_runs, seed_runs, seq2seq_runs
from hw2lib.plots import plot_seed_spread
from hw2lib.chardata import COURSE_FILES, load_char_mt
from hw2lib.download import sha256_of
from hw2lib.kmnist import FILES, load_kmnist
from hw2lib.runs import (BEST_WEIGHTS_FILE, CHECKPOINT_FILE, Run, get_or_train, load_run, run_folder, store_paths,
                         without_timings)
from hw2lib.train import load_checkpoint

REPO = Path(__file__).resolve().parents[1]


def tiny_config(model: str, seed: int = 42, epochs: int = 2) -> dict:
    """The chapter's quick configuration of ``model`` with ``seed``, shrunk to well under a second an epoch."""
    config = seed_runs.with_seed(seed_runs.base_config(model, profile="quick"), seed)
    config["epochs"] = epochs
    if model == "cnn":
        config["train_examples"] = 256
    else:
        config.update(train_pairs=128, eval_pairs=40)
    return config


def train_function(model: str):
    if model == "cnn":
        return lambda config, run_dir: cnn_runs.train_kmnist_run(config, run_dir, progress=False)
    return lambda config, run_dir: seq2seq_runs.train_seq2seq_run(config, run_dir, progress=False)


@pytest.fixture
def results(tmp_path, monkeypatch, use_mirror) -> Path:
    monkeypatch.setenv("HW2LIB_PROFILE", "quick")
    monkeypatch.setenv("HW2LIB_RESULTS", str(tmp_path / "results"))
    return tmp_path / "results"


# --- 1. seeds -------------------------------------------------------------------------------

def test_with_seed_changes_only_the_seed_and_keeps_the_chapters_runs():
    for model in seed_runs.MODELS:
        base = seed_runs.base_config(model, profile="full")
        other = seed_runs.with_seed(base, 43)
        assert other["seed"] == 43 and base["seed"] == 42
        assert {key: value for key, value in other.items() if key != "seed"} == \
               {key: value for key, value in base.items() if key != "seed"}
        # seed 42 is the chapter's own run: same name, same folder as the chapters ask for
        assert seed_runs.seed_run_name(model, seed_runs.with_seed(base, 42)) == (
            cnn_runs.run_name(base) if model == "cnn" else seq2seq_runs.run_name(base))
        assert seed_runs.seed_run_name(model, other).endswith("-seed43")
    assert seed_runs.base_config("cnn", profile="full") == cnn_runs.cnn_config(5e-4, profile="full")
    with pytest.raises(ValueError, match="unknown model"):
        seed_runs.base_config("rnn")
    with pytest.raises(ValueError, match="whole number"):
        seed_runs.with_seed(seed_runs.base_config("cnn", profile="quick"), -1)


class _FirstStep(Exception):
    """Raised by the spy at the first loss: everything random has been drawn once by then."""


@pytest.mark.parametrize("model", ["cnn", "seq2seq-attention"])
def test_the_config_seed_sets_initial_weights_batch_order_and_dropout(model, results, monkeypatch):
    module = cnn_runs if model == "cnn" else seq2seq_runs
    real_train = module.train
    seen = {}

    class SpyTask:
        """Passes everything to the real task; records the first batch and the RNG dropout draws from."""

        def __init__(self, task):
            self.task = task

        def training_batches(self, generator):
            for batch in self.task.training_batches(generator):
                seen["first_batch"] = batch[1] if model == "cnn" else batch.target
                yield batch

        def loss(self, model_, batch):
            seen["dropout_rng"] = torch.get_rng_state()  # nn.Dropout draws from torch's global generator
            raise _FirstStep

        def evaluate(self, model_):
            return self.task.evaluate(model_)

    def spy_train(model_, task, **options):
        seen["initial_weights"] = {key: value.clone() for key, value in model_.state_dict().items()}
        return real_train(model_, SpyTask(task), **options)

    monkeypatch.setattr(module, "train", spy_train)
    observed = []
    for index, seed in enumerate((42, 42, 43)):
        seen.clear()
        with pytest.raises(_FirstStep):
            train_function(model)(tiny_config(model, seed), results / f"run{index}")
        observed.append(dict(seen))
    same, again, other = observed
    for key in ("first_batch", "dropout_rng"):
        assert torch.equal(same[key], again[key]), key
        assert not torch.equal(same[key], other[key]), f"{key} does not depend on the seed"
    for name, value in same["initial_weights"].items():
        assert torch.equal(value, again["initial_weights"][name]), name
    assert any(not torch.equal(value, other["initial_weights"][name])
               for name, value in same["initial_weights"].items()), "initial weights do not depend on the seed"


def test_extra_seed_runs_keep_metrics_but_no_weights(results, capsys):
    chapter = seed_runs.get_seed_run("seq2seq-no-attention", 42, progress=False)
    assert cli.main(["seeds", "seq2seq-no-attention", "--seeds", "43", "--no-progress"]) == 0  # as make reproduce runs it
    assert torch.get_num_threads() == 1
    extra = seed_runs.get_seed_run("seq2seq-no-attention", 43)
    assert f"seq2seq-no-attention seed 43: val_error {extra.metrics['val_error']:.4f}" in capsys.readouterr().out
    assert chapter.has_weights() and (chapter.path / BEST_WEIGHTS_FILE).is_file()
    assert sorted(path.name for path in extra.path.iterdir()) == ["config.json", "metrics.json"]
    assert extra.config["seed"] == 43 and extra.path.name.startswith("seq2seq-no-attention-seed43-")
    assert extra.metrics["val_error"] != chapter.metrics["val_error"]
    assert not extra.metrics["resumed_from_checkpoint"]


def test_summary_rows_mean_std_and_published_range(tmp_path):
    def fake_run(seed, dev, test):
        config = {**seed_runs.base_config("cnn", profile="full"), "seed": seed}
        return Run("cnn", config, {"dev_accuracy": dev, "test_accuracy": test}, tmp_path / str(seed))

    runs = {43: fake_run(43, 0.95, 0.93), 42: fake_run(42, 0.96, 0.94), 44: fake_run(44, 0.97, 0.92)}
    dev_row, test_row = seed_runs.summary_rows({"cnn": runs})
    assert dev_row["chapter_value"] == 0.96 and dev_row["seeds"] == [42, 43, 44]
    assert dev_row["mean"] == pytest.approx(0.96) and dev_row["std"] == pytest.approx(0.01)  # n - 1
    assert test_row["mean"] == pytest.approx(0.93) and test_row["std"] == pytest.approx(0.01)
    assert (dev_row["reference_low"], dev_row["reference_high"]) == (0.9843, 0.9857)
    assert seed_runs.reference_range("seq2seq-attention", "test") == (0.3488, 0.3862)
    assert dev_row["published_position"] == "below" and dev_row["published_distance"] == pytest.approx(0.0243)
    assert dev_row["seeds_in_published"] == 0 and dev_row["chapter_rank"] == "middle"
    assert test_row["chapter_rank"] == "highest"
    table = seed_runs.format_rows([dev_row, test_row])
    assert "0.9600 +- 0.0100 (3)" in table and "0.9843-0.9857" in table
    import matplotlib
    matplotlib.use("Agg")
    figure = plot_seed_spread([dev_row, test_row])
    (axis,) = figure.axes
    from matplotlib.collections import PathCollection

    plotted = sorted(float(y) for collection in axis.collections if isinstance(collection, PathCollection)
                     for _, y in collection.get_offsets())
    # three seeds and the chapter's star per figure, on the value axis
    assert plotted == pytest.approx(sorted([0.95, 0.96, 0.97, 0.96, 0.93, 0.94, 0.92, 0.94]))
    assert axis.get_ylabel() == "accuracy (higher is better)"
    assert [label.get_text() for label in axis.get_xticklabels()] == ["dev accuracy", "test accuracy"]
    with pytest.raises(ValueError, match="NaN"):
        seed_runs.mean_and_std([0.5, math.nan])
    with pytest.raises(ValueError, match="distinct"):
        seed_runs.seed_runs("cnn", [42, 42])


def test_attention_gain_and_binomial_error():
    def row(model, values):
        mean, std = seed_runs.mean_and_std(values)
        return {"model": model, "split": "test", "mean": mean, "std": std, "values": values}

    separated = [row("seq2seq-attention", [0.36, 0.37, 0.38]), row("seq2seq-no-attention", [0.49, 0.50, 0.51])]
    gain = seed_runs.attention_gain(separated)
    assert gain["gain"] == pytest.approx(0.13) and gain["gain_in_stds"] == pytest.approx(13.0)
    assert gain["separated"]
    overlapping = [row("seq2seq-attention", [0.36, 0.40, 0.52]), row("seq2seq-no-attention", [0.49, 0.50, 0.51])]
    assert not seed_runs.attention_gain(overlapping)["separated"]
    with pytest.raises(ValueError, match="both translators"):
        seed_runs.attention_gain(separated[:1])
    assert seed_runs.binomial_standard_error(0.95, 1000) == pytest.approx(0.006892, abs=1e-6)
    assert seed_runs.binomial_standard_error(1.0, 1000) == 0.0
    with pytest.raises(ValueError, match="between 0 and 1"):
        seed_runs.binomial_standard_error(95.0, 1000)


# --- 2. determinism ------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["cnn", "seq2seq-attention"])
def test_same_config_and_seed_give_the_same_metrics(model, results, monkeypatch):
    stored = []
    for index in range(2):
        monkeypatch.setenv("HW2LIB_RESULTS", str(results / f"store{index}"))
        config = tiny_config(model)
        stored.append(get_or_train(f"{model}-tiny", config, train_function(model)))
    first, second = stored
    assert first.path != second.path  # trained twice, not loaded
    assert len(first.history) == 2
    assert without_timings(first.metrics) == without_timings(second.metrics)  # history and final figures, exactly


def test_replay_reproduces_a_stored_run_and_notices_a_changed_one(results):
    run = get_or_train("seq2seq-tiny", tiny_config("seq2seq-attention", epochs=2),
                       train_function("seq2seq-attention"))
    stored_folders = sorted(results.iterdir())
    report = seed_runs.replay(run, epochs=2)
    assert report["identical"] and report["max_difference"] == 0.0
    assert len(report["replayed"]) == 2 and "seconds" not in report["replayed"][0]
    assert sorted(results.iterdir()) == stored_folders  # the replay stores nothing
    run.metrics["history"][1]["val_error"] += 0.01  # as if the stored numbers came from elsewhere
    changed = seed_runs.replay(run, epochs=2)
    assert not changed["identical"] and changed["max_difference"] == pytest.approx(0.01)
    with pytest.raises(ValueError, match="between 1 and"):
        seed_runs.replay(run, epochs=3)


def test_replay_uses_the_stored_thread_count(results):
    run = get_or_train("cnn-tiny", tiny_config("cnn", epochs=1), train_function("cnn"))
    assert run.metrics["cpu_threads"] == 1 == torch.get_num_threads()
    try:
        torch.set_num_threads(2)  # the caller's count differs from the stored run's
        report = seed_runs.replay(run)
        assert torch.get_num_threads() == 2  # and is restored afterwards
    finally:
        torch.set_num_threads(1)
    assert report["threads"] == 1 and report["identical"]


# --- 3. a run killed mid-way -----------------------------------------------------------------

_TRAIN_SCRIPT = """
import json, sys, torch
torch.set_num_threads(1)
from hw2lib import cnn_runs, seq2seq_runs
from hw2lib.runs import get_or_train
model, config = sys.argv[1], json.loads(sys.argv[2])
module = cnn_runs if model == "cnn" else seq2seq_runs
train_fn = cnn_runs.train_kmnist_run if model == "cnn" else seq2seq_runs.train_seq2seq_run
get_or_train(module.run_name(config), config, lambda config, run_dir: train_fn(config, run_dir, progress=False))
"""


def epochs_in(checkpoint: Path) -> int:
    """Epochs saved in ``checkpoint`` so far, 0 when there is none yet (it is replaced atomically)."""
    return load_checkpoint(checkpoint)["epochs_done"] if checkpoint.is_file() else 0


@pytest.mark.parametrize("model", ["cnn", "seq2seq-attention"])
def test_a_killed_run_is_incomplete_and_resumes_to_the_uninterrupted_result(model, results, monkeypatch, tmp_path):
    # Seed 45 gives the tiny translator its lowest validation error before its last epoch, so the kill
    # can come after that epoch: the resumed run must then carry over which epoch was best.
    config = tiny_config(model, seed=45 if model != "cnn" else 42, epochs=5)
    name = cnn_runs.run_name(config) if model == "cnn" else seq2seq_runs.run_name(config)
    monkeypatch.setenv("HW2LIB_RESULTS", str(tmp_path / "uninterrupted"))
    uninterrupted = get_or_train(name, config, train_function(model))
    assert uninterrupted.metrics["resumed_from_checkpoint"] is False
    kill_after = min(max(uninterrupted.metrics.get("best_epoch", 2), 2), config["epochs"] - 1)

    monkeypatch.setenv("HW2LIB_RESULTS", str(results))
    folder = run_folder(name, config)
    checkpoint = store_paths(folder)[1] / CHECKPOINT_FILE  # a run trains aside until it is complete
    process = subprocess.Popen([sys.executable, "-c", _TRAIN_SCRIPT, model, json.dumps(config)], cwd=REPO,
                               env={**os.environ, "PYTHONPATH": str(REPO)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    try:
        while epochs_in(checkpoint) < kill_after:
            assert process.poll() is None, f"training exited early: {process.stderr.read().decode()[-2000:]}"
            assert time.monotonic() < deadline, f"no checkpoint of epoch {kill_after} within 60 s"
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait(timeout=30)
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL

    saved = load_checkpoint(checkpoint)
    epochs_done = saved["epochs_done"]
    assert kill_after <= epochs_done < config["epochs"], "the kill came too late to test anything"
    assert not folder.exists() and load_run(folder) is None  # does not look complete

    resumed = get_or_train(name, config, train_function(model))
    assert resumed.metrics["resumed_from_checkpoint"] is True
    assert not checkpoint.exists()
    # the epochs before the kill were not trained again: their rows, timings included, come from the checkpoint
    assert resumed.history[:epochs_done] == saved["history"]
    assert without_timings(resumed.history) == without_timings(uninterrupted.history)
    assert without_timings(resumed.metrics) == without_timings(uninterrupted.metrics)  # best epoch and test figures too


# --- 4. files that would run code when loaded ------------------------------------------------

class _Payload:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def plant(path: Path, marker: Path, **entries) -> Path:
    """A torch file at ``path`` that looks like a checkpoint / state dict and carries the payload."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({**entries, "payload": _Payload(marker)}, path)
    return path


def test_the_payload_is_live_without_weights_only(tmp_path):
    marker = tmp_path / "marker"
    evil = plant(tmp_path / "evil.pt", marker, format=1)
    torch.load(evil, weights_only=False)  # what a careless loader would do
    assert marker.exists()  # so the tests below, where it must stay absent, can fail


def test_load_checkpoint_refuses_code(tmp_path):
    marker = tmp_path / "marker"
    evil = plant(tmp_path / "checkpoint.pt", marker, format=1, epochs_done=1)
    with pytest.raises(ValueError, match=r"(?s)checkpoint .*checkpoint\.pt cannot be read.*never unpickled.*delete it"):
        load_checkpoint(evil)
    assert not marker.exists()


@pytest.mark.parametrize("model", ["cnn", "seq2seq-attention"])
def test_resuming_from_a_planted_checkpoint_refuses_it(model, results, tmp_path):
    marker = tmp_path / "marker"
    config = tiny_config(model)
    name = f"{model}-planted"
    plant(store_paths(run_folder(name, {**config, "profile": "quick"}))[1] / CHECKPOINT_FILE, marker, format=1,
          epochs_done=1)
    with pytest.raises(ValueError, match="cannot be read"):
        get_or_train(name, config, train_function(model))
    assert not marker.exists()
    assert load_run(run_folder(name, config)) is None


def test_stored_weights_that_carry_code_are_refused(results, tmp_path):
    marker = tmp_path / "marker"
    config = seed_runs.base_config("seq2seq-attention", profile="quick")
    folder = tmp_path / "run"
    run = Run("seq2seq-attention", config, {}, folder)
    plant(folder / "weights.pt", marker)
    plant(folder / BEST_WEIGHTS_FILE, marker)
    with pytest.raises(ValueError, match=r"weights\.pt cannot be read \(it holds Python objects besides tensors, which are never unpickled"):
        run.load_weights(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match=r"/weights\.pt cannot be read \(it holds Python objects"):
        seq2seq_runs.load_seq2seq(run, weights="final")
    with pytest.raises(ValueError, match=r"best_weights\.pt cannot be read \(it holds Python objects"):
        seq2seq_runs.load_seq2seq(run, weights="best")
    assert not marker.exists()


# --- 5. damaged data files ----------------------------------------------------------------

def test_a_truncated_cached_kmnist_file_is_fetched_again_from_the_mirror(use_mirror, monkeypatch, tmp_path):
    monkeypatch.setenv("HW2LIB_CACHE", str(tmp_path / "cache"))
    first = load_kmnist("kmnist-t10k")
    cached_labels = tmp_path / "cache" / "kmnist" / FILES["test-labels"].name
    cached_images = tmp_path / "cache" / "kmnist" / FILES["test-images"].name
    cached_labels.write_bytes(cached_labels.read_bytes()[:1000])  # cut short on disk
    damaged = bytearray(cached_images.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF  # one byte flipped: same size, different content
    cached_images.write_bytes(bytes(damaged))
    again = load_kmnist("kmnist-t10k")
    for split in ("train", "dev", "test"):
        assert torch.equal(first.splits[split][0], again.splits[split][0])
        assert torch.equal(first.splits[split][1], again.splits[split][1])
    assert sha256_of(cached_labels) == FILES["test-labels"].sha256
    assert sha256_of(cached_images) == FILES["test-images"].sha256


def test_a_damaged_cached_translation_file_is_fetched_again(use_mirror, monkeypatch, tmp_path):
    monkeypatch.setenv("HW2LIB_CACHE", str(tmp_path / "cache"))
    first = load_char_mt("course")
    cached = tmp_path / "cache" / "hw2-char-mt" / COURSE_FILES["val"].name
    cached.write_text("hello\thola\t42\n", encoding="utf-8")  # a readable file, but not the right one
    again = load_char_mt("course")
    assert again.val.pairs == first.val.pairs and len(again.val) == 1000
    assert sha256_of(cached) == COURSE_FILES["val"].sha256


def test_a_copy_interrupted_mid_way_leaves_no_file(use_mirror, monkeypatch, tmp_path):
    import hw2lib.download as download

    monkeypatch.setenv("HW2LIB_CACHE", str(tmp_path / "cache"))
    real_copy = download._copy_into

    def half_then_interrupt(source, handle, remote):
        handle.write(b"\0" * 1000)  # from the mirror or from upstream alike: part of the file is on disk
        raise KeyboardInterrupt  # Ctrl-C (or a kill) in the middle of the copy

    monkeypatch.setattr(download, "_copy_into", half_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        download.fetch(FILES["test-labels"])
    assert [path.name for path in (tmp_path / "cache").rglob("*") if path.is_file()] == []
    monkeypatch.setattr(download, "_copy_into", real_copy)
    assert sha256_of(download.fetch(FILES["test-labels"])) == FILES["test-labels"].sha256


# --- 6. the test suite keeps to temporary folders ----------------------------------------------------------

def test_the_suite_never_uses_the_user_cache(tmp_path):
    """Case 14: tests created folders in the real user cache (~/.cache/hw2lib). tests/conftest.py gives this
    process, and every process a test starts, a temporary cache instead."""
    import tempfile

    from hw2lib.download import cache_dir

    user_cache = (Path.home() / ".cache" / "hw2lib").resolve()
    here = cache_dir().resolve()
    assert here != user_cache and Path(tempfile.gettempdir()).resolve() in here.parents
    started = subprocess.run([sys.executable, "-c", "from hw2lib.download import cache_dir; print(cache_dir())"],
                             capture_output=True, text=True, cwd=REPO, timeout=120,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    assert Path(started.stdout.strip()).resolve() == here

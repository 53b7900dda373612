"""Tests for the command line: bad input gives one clear line and a non-zero status; a quick run works."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hw2lib.cli import build_parser, main

REPOSITORY = Path(__file__).resolve().parents[1]


def run_cli(*arguments: str, tmp_path: Path, mirror: str | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "HW2LIB_RESULTS": str(tmp_path / "results"), "HW2LIB_CACHE": str(tmp_path / "cache"),
                   "HW2LIB_PROFILE": "quick"}
    if mirror is not None:
        environment["HW2LIB_MIRROR"] = mirror
    return subprocess.run([sys.executable, "-m", "hw2lib", *arguments], capture_output=True, text=True,
                          env=environment, cwd=REPOSITORY, timeout=120)


def run_folders(results: Path) -> list[Path]:
    """The run folders in ``results`` (the store keeps its locks and unfinished runs in a hidden folder)."""
    return sorted(path for path in results.iterdir() if not path.name.startswith(".")) if results.is_dir() else []


def stored_files(results: Path) -> list[str]:
    """Every file in ``results`` but the store's lock files."""
    return sorted(str(path.relative_to(results)) for path in results.rglob("*")
                  if path.is_file() and path.suffix != ".lock") if results.is_dir() else []


# The line the store prints before it trains, and the busy-machine hint (a loaded test machine gets it).
NOTICES = ("no stored run for ", "resuming ", "retraining ", "note: other processes keep ")


def error_lines(stderr: str) -> list[str]:
    """stderr without the store's notice that a run is about to train or the busy-machine hint."""
    return [line for line in stderr.strip().splitlines() if not line.startswith(NOTICES)]


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode != 0
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize("arguments, fragments", [
    (["cnn", "--lr", "0"], ["--lr", "must be a positive number, got 0"]),
    (["cnn", "--lr", "-5e-4"], ["--lr", "must be a positive number"]),
    (["cnn", "--lr", "fast"], ["--lr", "'fast' is not a number"]),
    (["cnn", "--variant", "emnist"], ["--variant", "invalid choice: 'emnist'"]),
    (["cnn", "--model", "resnet"], ["--model", "invalid choice: 'resnet'"]),
    (["cnn", "--epochs", "0"], ["--epochs", "from 1 to 1000, got 0"]),
    (["cnn", "--threads", "100000"], ["--threads", "got 100000"]),
    (["cnn", "--threads", "99999999999999999999"], ["--threads", "got 99999999999999999999"]),
    (["seeds", "cnn", "--seeds", "-1"], ["--seeds", "got -1"]),
    (["seeds", "rnn"], ["invalid choice: 'rnn'"]),
    (["translate"], ["invalid choice: 'translate'"]),
    ([], ["the following arguments are required: command"]),
])
def test_bad_arguments_exit_with_status_2_and_one_line(arguments, fragments, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(arguments)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and all(fragment in error[0] for fragment in fragments), error


def test_bad_lr_in_a_real_process(tmp_path):
    assert_one_line_error(run_cli("cnn", "--lr", "-1", tmp_path=tmp_path), "--lr", "positive")


def test_missing_data_without_a_mirror_copy_is_one_line(tmp_path):
    empty_mirror = tmp_path / "empty-mirror"
    empty_mirror.mkdir()
    result = run_cli("cnn", "--variant", "kmnist-t10k", tmp_path=tmp_path, mirror=str(empty_mirror))
    assert result.returncode == 3
    assert_one_line_error(result, "data error", "t10k-images-idx3-ubyte.gz is missing from the mirror")
    assert run_folders(tmp_path / "results") == [] and stored_files(tmp_path / "results") == []  # nothing half-made


def test_unavailable_device_is_one_line(tmp_path, capsys, monkeypatch):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    monkeypatch.setenv("HW2LIB_RESULTS", str(tmp_path))
    assert main(["cnn", "--device", "cuda", "--profile", "quick"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_quick_run_trains_stores_and_then_loads(tmp_path, capsys, monkeypatch, use_mirror):
    monkeypatch.setenv("HW2LIB_RESULTS", str(tmp_path))
    arguments = ["cnn", "--lr", "1e-3", "--epochs", "1", "--profile", "quick", "--model", "fc", "--no-progress"]
    assert main(arguments) == 0
    output = capsys.readouterr().out
    assert "fc-kmnist-t10k-lr0.001" in output and "dev accuracy" in output
    (folder,) = run_folders(tmp_path)
    metrics = json.loads((folder / "metrics.json").read_text())
    config = json.loads((folder / "config.json").read_text())
    assert config["epochs"] == 1 and config["profile"] == "quick" and config["learning_rate"] == 1e-3
    assert len(metrics["history"]) == 1 and metrics["dev_accuracy"] > 0.3  # chance is 0.1
    stamp = (folder / "metrics.json").stat().st_mtime_ns
    assert main(arguments) == 0  # the second call loads the stored run
    assert (folder / "metrics.json").stat().st_mtime_ns == stamp


def test_commands_can_be_added():
    parser = build_parser()
    subcommands = next(action for action in parser._actions if action.dest == "command")
    assert {"cnn", "sweep"} <= set(subcommands.choices)


def test_threads_default_keeps_torch_choice_and_the_option_sets_it(tmp_path, monkeypatch, use_mirror):
    import torch

    monkeypatch.setenv("HW2LIB_RESULTS", str(tmp_path))
    before = torch.get_num_threads()
    base = ["cnn", "--epochs", "1", "--profile", "quick", "--model", "fc", "--no-progress"]
    try:
        torch.set_num_threads(2)
        assert main([*base, "--lr", "1e-3"]) == 0
        assert torch.get_num_threads() == 2  # no --threads: the process's count is left alone
        assert main([*base, "--lr", "2e-3", "--threads", "1"]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    recorded = {json.loads((folder / "config.json").read_text())["learning_rate"]:
                json.loads((folder / "metrics.json").read_text())["cpu_threads"] for folder in run_folders(tmp_path)}
    assert recorded == {1e-3: 2, 2e-3: 1}  # each run records the thread count it was trained with


def test_a_busy_machine_gets_a_one_line_threads_hint_unless_threads_are_given(tmp_path, monkeypatch, capsys,
                                                                               use_mirror):
    import os

    import torch

    monkeypatch.setenv("HW2LIB_RESULTS", str(tmp_path))
    monkeypatch.setattr(os, "getloadavg", lambda: (1.9, 1.5, 1.0), raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    before = torch.get_num_threads()
    base = ["cnn", "--epochs", "1", "--profile", "quick", "--model", "fc", "--no-progress"]
    try:
        torch.set_num_threads(2)
        assert main([*base, "--lr", "1e-3"]) == 0
        hints = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note: ")]
        assert hints == ["note: other processes keep about 1 of the 2 cores busy (load average 1.9); torch's 2 "
                         "threads would wait on each other: --threads 1 is likely faster"]
        assert main([*base, "--lr", "2e-3", "--threads", "2"]) == 0  # asked for: no second-guessing
        assert "note: " not in capsys.readouterr().err
    finally:
        torch.set_num_threads(before)


# --- every failure is one line with the exit status of its kind ------------------------------------------

QUICK_FC = ["cnn", "--lr", "1e-3", "--model", "fc", "--variant", "kmnist-t10k", "--epochs", "1", "--profile", "quick",
            "--no-progress"]


def fc_run_folder(learning_rate: float = 1e-3) -> Path:
    from hw2lib.cnn_runs import cnn_config, run_name
    from hw2lib.runs import run_folder

    config = cnn_config(learning_rate, model="fc", variant="kmnist-t10k", profile="quick", epochs=1)
    return run_folder(run_name(config), config)


def store_fake_run(metrics_text: str, learning_rate: float = 1e-3) -> Path:
    """A stored quick fc run (written by hand, nothing trained) whose metrics.json holds ``metrics_text``."""
    from hw2lib.cnn_runs import cnn_config

    folder = fc_run_folder(learning_rate)
    folder.mkdir(parents=True)
    config = cnn_config(learning_rate, model="fc", variant="kmnist-t10k", profile="quick", epochs=1)
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "metrics.json").write_text(metrics_text)
    return folder


def one_error_line(capsys) -> str:
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1, lines
    return lines[0]


def test_the_help_documents_one_exit_status_per_kind(capsys):
    """Case 6/9: distinct non-zero statuses for bad arguments, bad data, a bad stored run and an interrupt,
    documented in `python -m hw2lib --help`."""
    from hw2lib.cli import EXIT_STATUS

    with pytest.raises(SystemExit):
        main(["--help"])
    help_text = capsys.readouterr().out
    assert sorted(EXIT_STATUS) == [0, 2, 3, 4, 130]
    for status, meaning in EXIT_STATUS.items():
        assert f"{status:<4} {meaning.split(':')[0]}" in help_text
    assert "bad data" in help_text and "bad stored run" in help_text and "interrupted" in help_text


@pytest.mark.parametrize("metrics_text, fragment", [
    ("[1, 2]", "holds list, not a JSON object"),
    ("null", "holds null, not a JSON object"),
    ("{}", "has no 'dev_accuracy'"),
    ('{"dev_accuracy": "high", "test_accuracy": 0.5, "seconds_per_epoch": 1}',
     "'dev_accuracy' is 'high', not a number"),
    ('{"dev_accuracy": 0.5,', "is not valid JSON (line 1, column 22"),
    ('{"history": 3}', "'history' is not a list of rows"),
])
def test_a_damaged_stored_run_is_one_line_naming_its_file(metrics_text, fragment, tmp_path, monkeypatch, capsys):
    """Case 6 and 9: metrics.json holding a list, null, missing keys or invalid JSON gave a TypeError traceback
    or exit status 2 without the file's name; now one line naming the file and what to do, status 4."""
    monkeypatch.setenv("HW2LIB_RESULTS", str(tmp_path))
    folder = store_fake_run(metrics_text)
    assert main(QUICK_FC) == 4
    line = one_error_line(capsys)
    assert line.startswith("python -m hw2lib cnn: stored run error: ") and fragment in line
    assert str(folder / "metrics.json") in line and "--retrain" in line


def test_retrain_replaces_a_damaged_stored_run(tmp_path, monkeypatch, capsys, use_mirror):
    """Case 6: the way out the message offers works: --retrain trains aside and replaces the damaged run."""
    monkeypatch.setenv("HW2LIB_RESULTS", str(tmp_path))
    folder = store_fake_run("[1, 2]")
    assert main([*QUICK_FC, "--retrain"]) == 0
    assert isinstance(json.loads((folder / "metrics.json").read_text())["dev_accuracy"], float)


def test_a_checkpoint_from_another_model_is_a_stored_run_error(tmp_path, monkeypatch, capsys, use_mirror):
    """Case 6 and 9: a checkpoint of another model gave a RuntimeError traceback (later status 2, the bad
    arguments status); now one line naming the checkpoint and what to do, status 4."""
    from torch import nn

    from hw2lib.runs import store_paths
    from hw2lib.train import train

    monkeypatch.setenv("HW2LIB_RESULTS", str(tmp_path))
    checkpoint = store_paths(fc_run_folder())[1] / "checkpoint.pt"
    checkpoint.parent.mkdir(parents=True)

    class Task:
        def training_batches(self, generator):
            yield torch.ones(2, 3), torch.zeros(2, 1)

        def loss(self, model, batch):
            return nn.functional.mse_loss(model(batch[0]), batch[1])

        def evaluate(self, model):
            return {}

    import torch

    train(nn.Linear(3, 1), Task(), epochs=1, learning_rate=0.1, seed=0, device="cpu", checkpoint_path=checkpoint)
    capsys.readouterr()
    assert main(QUICK_FC) == 4
    line = one_error_line(capsys)
    assert f"checkpoint {checkpoint} belongs to another model" in line and "delete it to start over" in line


def test_an_unreadable_checkpoint_never_suggests_weights_only_false(tmp_path, monkeypatch, capsys, use_mirror):
    """Case 9: torch's own message suggests retrying with weights_only=False, which this project never does."""
    import argparse

    import torch

    from hw2lib.runs import store_paths

    monkeypatch.setenv("HW2LIB_RESULTS", str(tmp_path))
    checkpoint = store_paths(fc_run_folder())[1] / "checkpoint.pt"
    checkpoint.parent.mkdir(parents=True)
    torch.save({"format": 1, "note": argparse.Namespace(a=1)}, checkpoint)
    assert main(QUICK_FC) == 4
    line = one_error_line(capsys)
    assert "cannot be read (it holds Python objects besides tensors" in line and "weights_only" not in line


def test_results_variable_pointing_at_a_file_is_one_line(tmp_path, monkeypatch, capsys, use_mirror):
    """Case 6: HW2LIB_RESULTS naming a file gave an OSError traceback."""
    blocker = tmp_path / "results.txt"
    blocker.write_text("not a folder")
    monkeypatch.setenv("HW2LIB_RESULTS", str(blocker))
    assert main(QUICK_FC) == 4
    line = one_error_line(capsys)
    assert f"the results folder {blocker} is a file, not a folder; point HW2LIB_RESULTS at a folder" in line
    assert blocker.read_text() == "not a folder"


def test_a_read_only_results_folder_loads_stored_runs_and_refuses_training_in_one_line(tmp_path, monkeypatch, capsys,
                                                                                      use_mirror):
    """Case 6: a read-only results folder gave a PermissionError traceback. Loading a stored run writes
    nothing, so it still works; training says in one line where to point HW2LIB_RESULTS. (Root ignores file
    modes, so the folder's writes are refused by a stand-in for the operating system.)"""
    import hw2lib.utils as utils

    monkeypatch.setenv("HW2LIB_RESULTS", str(tmp_path))
    store_fake_run('{"dev_accuracy": 0.5, "test_accuracy": 0.4, "seconds_per_epoch": 1.0}')
    real_open, real_mkdir = os.open, os.mkdir

    def refuse(real):
        def call(path, *args, **kwargs):
            if Path(path).absolute().is_relative_to(tmp_path):
                raise PermissionError(13, "Permission denied", str(path))
            return real(path, *args, **kwargs)
        return call

    monkeypatch.setattr(utils.os, "open", refuse(real_open))
    monkeypatch.setattr(utils.os, "mkdir", refuse(real_mkdir))
    assert main(QUICK_FC) == 0  # stored: loaded, nothing written
    assert "dev accuracy 0.5000" in capsys.readouterr().out
    assert main([*QUICK_FC[:2], "2e-3", *QUICK_FC[3:]]) == 4  # not stored: must train
    line = one_error_line(capsys)
    assert f"cannot write the results folder {tmp_path} (Permission denied); set HW2LIB_RESULTS" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_a_really_read_only_results_folder(tmp_path, monkeypatch, capsys, use_mirror):
    """Case 6, with real file modes."""
    monkeypatch.setenv("HW2LIB_RESULTS", str(tmp_path))
    tmp_path.chmod(0o500)
    try:
        assert main(QUICK_FC) == 4
    finally:
        tmp_path.chmod(0o700)
    assert "cannot write the results folder" in one_error_line(capsys)


def test_a_cache_entry_that_is_a_folder_is_one_line(tmp_path, monkeypatch, capsys, use_mirror):
    """Case 6: a folder where a cached data file belongs gave an IsADirectoryError traceback."""
    from hw2lib.cnn_runs import kmnist_data
    from hw2lib.kmnist import FILES

    kmnist_data.cache_clear()  # read the files again, not this process's copy
    monkeypatch.setenv("HW2LIB_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("HW2LIB_CACHE", str(tmp_path / "cache"))
    entry = tmp_path / "cache" / "kmnist" / FILES["test-images"].name
    entry.mkdir(parents=True)
    assert main(QUICK_FC) == 3
    line = one_error_line(capsys)
    assert line.startswith("python -m hw2lib cnn: data error: ") and f"the cache entry {entry} is not a file" in line
    assert entry.is_dir()  # not deleted: it is not the library's to delete


@pytest.mark.parametrize("arguments, environment, fragment", [
    (["seeds", "cnn"], {"HW2LIB_PROFILE": "fast"}, "HW2LIB_PROFILE must be 'full' or 'quick', not 'fast'"),
    (["seeds", "cnn", "--device", "tpu"], {}, "unknown device 'tpu'"),
    (["seeds", "cnn", "--seeds", "-1"], {}, "--seeds: must be a whole number from 0 to"),
    (["seeds", "cnn", "--seeds", str(2**64)], {}, f"got {2**64}"),
    (["cnn", "--threads", "100000"], {}, "--threads: must be a whole number from 1 to"),
    (["cnn", "--lr", "-inf"], {}, "--lr: must be a positive number, got -inf"),
    (["cnn", "--lr", "nan"], {}, "--lr: must be a positive number, got nan"),
    (["cnn", "--epochs", "1001"], {}, "--epochs: must be a whole number from 1 to 1000"),
])
def test_impossible_arguments_exit_2_with_one_line_and_leave_nothing(arguments, environment, fragment, tmp_path,
                                                                      monkeypatch, capsys):
    """Cases 7, 8 and 9: a bad profile, device, seed, thread count, learning rate or epoch count is one line
    naming it, status 2, and no results folder (`--threads 100000` crashed torch and left a folder)."""
    monkeypatch.setenv("HW2LIB_RESULTS", str(tmp_path / "results"))
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    try:
        status = main(arguments)
    except SystemExit as exit_info:  # argparse's own refusal
        status = exit_info.code
    assert status == 2
    assert fragment in one_error_line(capsys)
    assert not (tmp_path / "results").exists()


def test_the_thread_bound_holds_in_the_library_too():
    """Case 8: torch crashes on absurd thread counts; hw2lib.utils.set_threads refuses them."""
    from hw2lib.utils import MAX_THREADS, set_threads

    for bad in (0, MAX_THREADS + 1, 100_000, 2.5, True):
        with pytest.raises(ValueError, match=f"threads must be a whole number from 1 to {MAX_THREADS}"):
            set_threads(bad)


def test_the_busy_machine_hint_counts_busy_cores_from_the_load_average():
    from hw2lib.utils import busy_machine_hint

    assert busy_machine_hint(threads=2, load=0.5, cores=2) is None  # a core busy half the minute: not yet
    assert busy_machine_hint(threads=2, load=0.8, cores=2).endswith("--threads 1 is likely faster")
    assert "--threads 5 " in busy_machine_hint(threads=8, load=2.8, cores=8)  # three of eight cores taken
    assert "--threads 1 " in busy_machine_hint(threads=2, load=6.0, cores=2)  # never fewer than one thread
    assert busy_machine_hint(threads=1, load=6.0, cores=2) is None  # one thread has nobody to wait for
    assert busy_machine_hint(threads=4, load=1.0, cores=8) is None  # enough free cores for every thread


def test_a_huge_learning_rate_names_a_folder_instead_of_blaming_the_run_name(tmp_path, monkeypatch, capsys):
    """Case 9: `--lr 1e15` failed with an error about the run name (the '+' of 1e+15)."""
    monkeypatch.setenv("HW2LIB_RESULTS", str(tmp_path))
    folder = store_fake_run('{"dev_accuracy": null, "test_accuracy": null, "seconds_per_epoch": 1.0}', 1e15)
    assert folder.name.startswith("fc-kmnist-t10k-lr1e+15-")
    assert main([*QUICK_FC[:2], "1e15", *QUICK_FC[3:]]) == 0
    assert "dev accuracy nan, test accuracy nan" in capsys.readouterr().out


def test_an_interrupt_is_status_130_and_one_line(monkeypatch, capsys, tmp_path):
    """Case 1: Ctrl-C gives status 130 and one line saying what was kept (no claim of a checkpoint that
    does not exist)."""
    from hw2lib import cnn_runs
    from hw2lib.runs import TrainingInterrupted

    monkeypatch.setenv("HW2LIB_RESULTS", str(tmp_path))

    def interrupted(*args, **kwargs):
        raise TrainingInterrupted("training x was interrupted; nothing of it was stored")

    monkeypatch.setattr(cnn_runs, "get_cnn_run", interrupted)
    assert main(QUICK_FC) == 130
    assert one_error_line(capsys) == ("python -m hw2lib cnn: interrupted: training x was interrupted; "
                                      "nothing of it was stored")

    def waiting(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cnn_runs, "get_cnn_run", waiting)
    assert main(QUICK_FC) == 130
    assert "resume" not in one_error_line(capsys)


def test_the_sweep_command_prints_its_table_from_stored_figures(tmp_path, monkeypatch, capsys):
    """Case 6 for `sweep`: its summary reads every figure through the checks that turn a damaged stored run
    into one line; with good runs (fakes, trained in no time) it prints the table, the best rate and the
    dead units."""
    from hw2lib import cnn_runs
    from hw2lib.runs import Run

    monkeypatch.setenv("HW2LIB_RESULTS", str(tmp_path))

    def fake(config, run_dir, *, device="auto", progress=True):
        accuracy = {1e-5: 0.5, 5e-4: 0.9, 1e-2: 0.1}[config["learning_rate"]]
        return {"history": [], "dev_accuracy": accuracy, "test_accuracy": accuracy, "seconds_per_epoch": 0.5}

    def probe(rate, **options):
        return Run("probe", {}, {"dead_units": {"conv1": 0.25, "conv2": None}, "steps": 63, "wall_seconds": 6.0},
                   tmp_path / f"probe{rate:g}")

    monkeypatch.setattr(cnn_runs, "train_kmnist_run", fake)
    monkeypatch.setattr(cnn_runs, "dead_unit_probe", probe)
    assert main(["sweep", "--variant", "kmnist-t10k", "--profile", "quick", "--no-progress"]) == 0
    output = capsys.readouterr().out
    assert "best learning rate on dev: 0.0005" in output
    assert "dead ReLU units after 63 steps at lr 0.01: conv1 25%, conv2 nan" in output

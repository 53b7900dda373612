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


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
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
    assert result.returncode == 1
    assert_one_line_error(result, "data error", "t10k-images-idx3-ubyte.gz is missing from the mirror")
    assert not (tmp_path / "results").exists() or not list((tmp_path / "results").iterdir())  # nothing half-made


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
    (folder,) = tmp_path.iterdir()
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
                json.loads((folder / "metrics.json").read_text())["cpu_threads"] for folder in tmp_path.iterdir()}
    assert recorded == {1e-3: 2, 2e-3: 1}  # each run records the thread count it was trained with

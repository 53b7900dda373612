"""The results store's guarantees, one test per way it used to lose or mix a run (each docstring names
the case of the reliability list it covers): processes racing on one run, Ctrl-C, a failed retrain,
pruning, leftovers of killed writers, and the line printed before a run trains.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from hw2lib import cnn_runs, runs
from hw2lib.download import DataError
from hw2lib.runs import (METRICS_FILE, WEIGHTS_FILE, Run, TrainingInterrupted, get_or_train, load_run, prune_weights,
                         run_folder, save_weights, store_paths)
from hw2lib.train import train
from hw2lib.utils import remove_stale_parts, write_json_atomically

REPOSITORY = Path(__file__).resolve().parents[1]

# A process that asks the store for the toy run "toy" (seed 1). Its training writes <mark>.training, waits
# until the file <mark>.go exists, writes weights that name the process, and returns metrics that do too.
_WORKER = """
import json, os, sys, time
from pathlib import Path
from hw2lib.runs import TrainingInterrupted, get_or_train, save_weights
import torch

results, mark = sys.argv[1], sys.argv[2]
os.environ["HW2LIB_RESULTS"] = results

def train_fn(config, run_dir):
    Path(mark + ".training").write_text(str(os.getpid()))
    while not Path(mark + ".go").exists():
        time.sleep(0.01)
    save_weights(_marked(), run_dir)
    return {"trainer": os.getpid(), "history": [{"epoch": 1, "loss": 0.5}]}

def _marked():
    layer = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        layer.weight.fill_(float(os.getpid()))
    return layer

try:
    run = get_or_train("toy", {"seed": 1}, train_fn)
except TrainingInterrupted as error:
    print(f"interrupted: {error}", flush=True)
    sys.exit(130)
print(json.dumps({"trainer": run.metrics["trainer"], "trained": run.trained, "path": str(run.path),
                  "resumed": run.metrics["resumed_from_checkpoint"]}), flush=True)
"""


_STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_worker_outlives_its_test():
    yield
    while _STARTED:
        process = _STARTED.pop()
        process.kill()
        process.communicate()


def _as_from_a_terminal() -> None:
    # A suite started in the background (`make test &`, nohup) runs with SIGINT ignored, and a child
    # inherits that: Python would then never raise KeyboardInterrupt. A user's Ctrl-C reaches a
    # process started from a terminal, so the worker gets the default disposition back.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_worker(results: Path, mark: Path) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", _WORKER, str(results), str(mark)], cwd=REPOSITORY,
                               env={**os.environ, "PYTHONPATH": str(REPOSITORY), "HW2LIB_PROFILE": "quick"},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=_as_from_a_terminal)
    _STARTED.append(process)
    return process


def wait_for(condition, what: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def first_line(process: subprocess.Popen, seconds: float = 60.0) -> str:
    """The process's first line on stderr (where the store's notices go), or "" when none comes within
    ``seconds``."""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stderr, selectors.EVENT_READ)
        return process.stderr.readline() if selector.select(timeout=seconds) else ""


def finish(process: subprocess.Popen, timeout: float = 60) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=timeout)
    finally:
        process.kill()
    return process.returncode, out, err


@pytest.fixture
def store(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("HW2LIB_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("HW2LIB_PROFILE", "quick")
    return tmp_path / "results"


def toy_folder(store: Path) -> Path:
    return run_folder("toy", {"seed": 1, "profile": "quick"})


def stored_weight(folder: Path) -> float:
    return float(torch.load(folder / WEIGHTS_FILE, weights_only=True)["weight"].item())


def test_a_second_process_waits_for_the_first_and_loads_its_run(store, tmp_path):
    """Case 4 (no lock on one configuration): the second process neither trains nor resumes the first's
    checkpoint; it says that it waits, then loads the run the first one stored."""
    first = start_worker(store, tmp_path / "a")
    wait_for(lambda: (tmp_path / "a.training").exists(), "the first process to train")
    second = start_worker(store, tmp_path / "b")
    waiting = first_line(second)  # printed (to stderr) before it blocks on the lock
    assert f"toy-{toy_folder(store).name.rsplit('-', 1)[1]} is being trained by process {first.pid}; waiting" in waiting
    (tmp_path / "a.go").touch()
    (tmp_path / "b.go").touch()
    code_a, out_a, _ = finish(first)
    code_b, out_b, err_b = finish(second)
    assert code_a == 0 and code_b == 0, err_b
    result_a, result_b = json.loads(out_a.splitlines()[-1]), json.loads(out_b.splitlines()[-1])
    assert result_a["trained"] and not result_b["trained"] and not (tmp_path / "b.training").exists()
    assert result_a["trainer"] == result_b["trainer"] == first.pid and not result_b["resumed"]
    assert stored_weight(toy_folder(store)) == first.pid


def test_ctrl_c_in_one_process_leaves_the_other_process_run_alone(store, tmp_path):
    """Case 1: interrupting the process that started a run removes only what it wrote (here, nothing
    had a checkpoint yet) and says so; the waiting process then trains and stores a complete run."""
    first = start_worker(store, tmp_path / "a")
    wait_for(lambda: (tmp_path / "a.training").exists(), "the first process to train")
    second = start_worker(store, tmp_path / "b")
    assert "waiting" in first_line(second)
    first.send_signal(signal.SIGINT)
    code_a, out_a, _ = finish(first)
    assert code_a == 130 and "was interrupted; nothing of it was stored" in out_a
    assert "resume" not in out_a  # there is no checkpoint to resume from, and it does not claim one
    wait_for(lambda: (tmp_path / "b.training").exists(), "the second process to take over")
    (tmp_path / "b.go").touch()
    code_b, out_b, err_b = finish(second)
    assert code_b == 0, err_b
    run = load_run(toy_folder(store))
    assert run is not None and run.metrics["trainer"] == second.pid == stored_weight(run.path)
    assert sorted(path.name for path in run.path.iterdir()) == ["config.json", "metrics.json", "weights.pt"]


def test_a_killed_lock_holder_releases_the_run(store, tmp_path):
    """Case 4: the lock is the operating system's, so a holder killed with SIGKILL releases it at once."""
    first = start_worker(store, tmp_path / "a")
    wait_for(lambda: (tmp_path / "a.training").exists(), "the first process to train")
    second = start_worker(store, tmp_path / "b")
    assert "waiting" in first_line(second)
    first.kill()
    finish(first)
    wait_for(lambda: (tmp_path / "b.training").exists(), "the second process to take over", seconds=30)
    (tmp_path / "b.go").touch()
    code, out, err = finish(second)
    assert code == 0, err
    assert json.loads(out.splitlines()[-1])["trainer"] == second.pid


def _marked_weights(run_dir: Path, value: float) -> None:
    layer = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        layer.weight.fill_(value)
    save_weights(layer, run_dir)


@pytest.mark.parametrize("failure", [DataError("no data"), KeyboardInterrupt()])
def test_a_failed_retrain_keeps_the_stored_run(store, failure):
    """Case 2: --retrain trains aside and swaps the new run in only on success; a data error or Ctrl-C
    leaves the stored run, metrics and weights, exactly as it was."""
    def first(config, run_dir):
        _marked_weights(run_dir, 1.0)
        return {"dev_accuracy": 0.5}

    stored = get_or_train("toy", {"seed": 1}, first)
    before = {path.name: path.read_bytes() for path in stored.path.iterdir()}

    def failing(config, run_dir):
        _marked_weights(run_dir, 2.0)
        raise failure

    with pytest.raises(type(failure)) as raised:
        get_or_train("toy", {"seed": 1}, failing, retrain=True)
    if isinstance(failure, KeyboardInterrupt):
        assert isinstance(raised.value, TrainingInterrupted)
        assert f"the stored run {stored.path} is unchanged" in str(raised.value)
    assert {path.name: path.read_bytes() for path in stored.path.iterdir()} == before
    assert not store_paths(stored.path)[1].exists()  # the attempt left nothing behind

    def second(config, run_dir):
        _marked_weights(run_dir, 3.0)
        return {"dev_accuracy": 0.7}

    replaced = get_or_train("toy", {"seed": 1}, second, retrain=True)
    assert replaced.path == stored.path and replaced.metrics["dev_accuracy"] == 0.7
    assert stored_weight(replaced.path) == 3.0
    assert sorted(path.name for path in (store / runs.STORE_FOLDER).iterdir()) == [f"{stored.path.name}.lock"]


def test_a_retrain_killed_between_its_two_renames_is_finished_by_the_next_call(store):
    """Case 2: the swap is two renames; a process killed between them (the old run moved aside, the new one
    complete but not in place) leaves a state that the next call completes, never a missing run."""
    stored = get_or_train("toy", {"seed": 1}, lambda config, run_dir: {"dev_accuracy": 0.5})
    _, training, replaced = store_paths(stored.path)
    # As the killed retrain left things: a complete new run aside, the old one renamed away.
    training.mkdir(parents=True)
    write_json_atomically(stored.config, training / "config.json")
    write_json_atomically({"dev_accuracy": 0.9}, training / METRICS_FILE)
    os.replace(stored.path, replaced)
    assert load_run(stored.path) is None
    run = get_or_train("toy", {"seed": 1}, lambda config, run_dir: pytest.fail("trained again"))
    assert run.metrics["dev_accuracy"] == 0.9 and not replaced.exists() and not training.exists()
    # And a killed retrain whose new run was not complete: the old run is put back.
    os.replace(stored.path, replaced)
    training.mkdir()
    run = get_or_train("toy", {"seed": 1}, lambda config, run_dir: pytest.fail("trained again"))
    assert run.metrics["dev_accuracy"] == 0.9 and not replaced.exists()


def _fake_kmnist_run(config: dict, run_dir: Path, *, device: str = "auto", progress: bool = True) -> dict:
    """Stands in for cnn_runs.train_kmnist_run: weights and figures in no time (0.5 lr 1e-5, 0.9 lr 5e-4, ...)."""
    _marked_weights(run_dir, config["learning_rate"])
    accuracy = {1e-5: 0.5, 5e-4: 0.9, 1e-2: 0.1}[config["learning_rate"]]
    return {"history": [{"epoch": 1, "seconds": 0.1}], "dev_accuracy": accuracy, "test_accuracy": accuracy,
            "seconds_per_epoch": 0.1, "device": "cpu"}


def test_the_sweep_prunes_only_weights_of_runs_it_trained(store, monkeypatch):
    """Case 3: `sweep` deleted the weights of runs the user had trained before with `cnn`. Now it prunes
    only runs it trains itself (the best rate's CNN keeps its weights), and its help says so."""
    monkeypatch.setattr(cnn_runs, "train_kmnist_run", _fake_kmnist_run)
    monkeypatch.setattr(cnn_runs, "dead_unit_probe", lambda rate, **options: None)
    mine = {key: cnn_runs.get_cnn_run(rate, model=model, variant="kmnist-t10k")
            for key, (rate, model) in {"cnn lr 1e-2": (1e-2, "cnn"), "fc": (5e-4, "fc")}.items()}
    sweep, comparison, _ = cnn_runs.chapter_sweep(variant="kmnist-t10k", progress=False)
    assert all(run.has_weights() for run in mine.values())  # trained before the sweep: untouched
    assert sweep[5e-4].has_weights()  # the best rate's CNN
    assert not sweep[1e-5].has_weights() and not comparison["fc", "permuted"].has_weights()  # trained by the sweep
    assert prune_weights(load_run(mine["fc"].path)) == [] and mine["fc"].has_weights()  # a loaded run: never
    from hw2lib.cli import build_parser

    sweep_parser = build_parser()._subparsers._group_actions[0].choices["sweep"]
    assert "runs stored before, for instance by the cnn command, keep theirs" in " ".join(
        sweep_parser.format_help().split())


def test_temporary_files_of_killed_writers_are_removed(store, tmp_path):
    """Case 5: a `kill -9` in the middle of a write left `*.part` files forever. Their names carry the
    writer's process, and the store (and the download cache) remove those whose writer is gone."""
    from hw2lib import utils

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live_part = f".checkpoint.pt.{utils._writer()}.x1.part"
    dead_part = f".checkpoint.pt.{utils._HOST}-{dead.pid}.x2.part"
    folder = toy_folder(store)
    training = store_paths(folder)[1]
    training.mkdir(parents=True)
    (training / "checkpoint.pt").write_bytes(b"x")  # a resumable run, so the folder is kept and cleaned
    for name in (live_part, dead_part):
        (training / name).write_bytes(b"half a file")
    assert remove_stale_parts(training) == [dead_part]
    assert sorted(path.name for path in training.glob("*.part")) == [live_part]
    (training / live_part).unlink()  # (it stood for a writer still at work)
    (training / dead_part).write_bytes(b"half a file")
    seen = []
    run = get_or_train("toy", {"seed": 1}, lambda config, run_dir: seen.extend(run_dir.glob("*.part")) or {})
    assert seen == [] and run.metrics["resumed_from_checkpoint"]  # the store removed it before resuming
    assert sorted(path.name for path in run.path.iterdir()) == ["config.json", "metrics.json"]


def test_a_training_call_says_what_it_trains_and_for_how_long(store, capsys):
    """Case 13: a call that trains instead of loading prints one line first (which run, how many epochs,
    about how long, from a comparable stored run), and the epoch bar shows even with progress=False."""
    class Task:
        def training_batches(self, generator):
            yield torch.ones(4, 2), torch.zeros(4, 1)

        def loss(self, model, batch):
            return nn.functional.mse_loss(model(batch[0]), batch[1])

        def evaluate(self, model):
            return {"dev_loss": 0.0}

    def train_fn(config, run_dir):
        history = train(nn.Linear(2, 1), Task(), epochs=config["epochs"], learning_rate=0.1, seed=0, device="cpu",
                        progress=False, description="toy-bar")
        return {"history": history, "seconds_per_epoch": 30.0 if config["seed"] == 1 else 1.0}

    config = {"task": "toy", "model": "linear", "epochs": 3, "seed": 1}
    first = get_or_train("toy", config, train_fn)
    output = capsys.readouterr()
    assert output.err.splitlines()[0] == (f"no stored run for {first.path.name}: training, 3 epochs "
                                          "(no comparable stored run to estimate the time from)")
    assert "toy-bar" in output.err and "3/3" in output.err  # the epoch bar, although progress=False
    get_or_train("toy", {**config, "seed": 2, "epochs": 10}, train_fn)
    line = capsys.readouterr().err.splitlines()[0]
    assert line.endswith(f"training, 10 epochs, about 5 minutes (like {first.path.name}: 30.0 s per epoch)")
    get_or_train("toy", config, train_fn)
    assert capsys.readouterr() == ("", "")  # loading prints nothing


def test_run_is_still_a_plain_record(tmp_path):
    """The Run record keeps its fields; ``trained`` defaults to False (a loaded run)."""
    run = Run(name="x", config={}, metrics={}, path=tmp_path)
    assert run.trained is False and prune_weights(run) == []


def test_in_a_notebook_a_damaged_stored_run_is_one_line_without_a_traceback(store):
    """Case 6, a notebook call: IPython shows the one line that names the file, not a traceback."""
    folder = toy_folder(store)
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"seed": 1, "profile": "quick"}))
    (folder / "metrics.json").write_text("[]")
    cell = "from hw2lib.runs import get_or_train\nget_or_train('toy', {'seed': 1}, lambda config, run_dir: {})"
    script = ("from IPython.core.interactiveshell import InteractiveShell\n"
              f"InteractiveShell.instance().run_cell({cell!r})")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPOSITORY,
                            timeout=120, env={**os.environ, "PYTHONPATH": str(REPOSITORY), "HW2LIB_PROFILE": "quick"})
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"StoredFileError: {folder / 'metrics.json'} holds list, not a JSON object; "
                               "train it again")

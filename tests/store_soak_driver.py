"""Soak driver for tests/test_store_soak.py, run as its own process: it loads torch, hw2lib and the data
once, then forks children that train one tiny quick-profile CNN run through the results store, and kills
them. Forking a warmed process makes each restart take milliseconds instead of seconds.

    python tests/store_soak_driver.py kill RESULTS CONFIG_JSON KILLS SEED
    python tests/store_soak_driver.py race RESULTS CONFIG_JSON ROUNDS SEED

prints one JSON object: what happened at every step, for the test to check.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sys
import time
from pathlib import Path

import torch

torch.set_num_threads(1)

from hw2lib import cnn_runs  # noqa: E402
from hw2lib.runs import STORE_FOLDER, get_or_train, load_run, run_folder  # noqa: E402


def train_fn(config: dict, run_dir: Path) -> dict:
    (run_dir / "trainer.txt").write_text(str(os.getpid()))
    metrics = cnn_runs.train_kmnist_run(config, run_dir, device="cpu", progress=False)
    return {**metrics, "trainer": os.getpid()}


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def arm(plan: tuple[str, float]) -> None:
    """In a child: kill this process at the ``plan``'s moment of writing: the k-th file or folder rename
    ("rename", k), halfway through the k-th torch file ("half", k), halfway through the final weights
    ("weights"), just before metrics.json is renamed into place ("metrics"), or just before the finished
    run's folder is ("publish")."""
    kind, number = plan
    calls = {"count": 0}
    real_replace, real_save = os.replace, torch.save

    def due(source=None, state=None) -> bool:
        if kind == "metrics":
            return Path(source).name.startswith(".metrics.json.")
        if kind == "publish":
            return Path(source).is_dir()
        if kind == "weights":
            return not (isinstance(state, dict) and "format" in state)
        calls["count"] += 1
        return calls["count"] == int(number)

    def replace(source, *args, **kwargs):
        if kind in ("rename", "metrics", "publish") and due(source=source):
            _die()
        return real_replace(source, *args, **kwargs)

    def save(state, handle, *args, **kwargs):
        if kind not in ("half", "weights") or not due(state=state):
            return real_save(state, handle, *args, **kwargs)
        import io

        buffer = io.BytesIO()
        real_save(state, buffer, *args, **kwargs)
        handle.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        handle.flush()
        _die()

    os.replace, torch.save = replace, save


def child(results: Path, config: dict, *, retrain: bool = False, plan: tuple | None = None,
          report: Path | None = None) -> None:
    """The body of a forked child: train (or load) the run, write what it got to ``report``, exit."""
    try:
        os.environ["HW2LIB_RESULTS"] = str(results)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        if plan is not None and plan[0] != "time":
            arm(plan)
        run = get_or_train(cnn_runs.run_name(config), config, train_fn, retrain=retrain)
        if report is not None:
            report.write_text(json.dumps({"pid": os.getpid(), "trained": run.trained, "path": str(run.path),
                                          "trainer": run.metrics["trainer"]}))
        os._exit(0)
    except BaseException:  # noqa: BLE001 - a child never returns into the driver
        os._exit(1)


def fork(function, *args, **kwargs) -> int:
    pid = os.fork()
    if pid == 0:
        function(*args, **kwargs)
        os._exit(2)
    return pid


CHILD_DEADLINE = 120.0  # seconds; a child still alive then has hung, which the test reports


def wait_child(pid: int) -> int:
    """The child's exit status (negative: the signal that ended it); one that hangs is killed, status -999."""
    deadline = time.monotonic() + CHILD_DEADLINE
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return -999


def store_state(results: Path, config: dict) -> dict:
    """What a reader sees right now: the run complete or absent (load_run must not raise), and the names of
    every entry of the results folder and of its store folder."""
    folder = run_folder(cnn_runs.run_name(config), config)
    try:
        run = load_run(folder)
        seen = "complete" if run is not None else "absent"
    except Exception as error:  # noqa: BLE001 - reported, the test fails on it
        seen = f"broken: {error}"
    if folder.exists() and not (folder / "metrics.json").is_file():
        seen = "broken: a run folder without metrics.json"
    store = results / STORE_FOLDER
    return {"run": seen, "results": sorted(path.name for path in results.iterdir()) if results.is_dir() else [],
            "store": sorted(path.name for path in store.iterdir()) if store.is_dir() else []}


FINAL_PLANS = [("weights", 0), ("metrics", 0), ("publish", 0)]  # the last kills: at the run's last writes


def next_plan(steps: list[dict], kills: int, seconds_per_epoch: float, rng: random.Random) -> tuple[str, float]:
    """How the next child dies. The first dies at its first write (the start of training), which measures
    how long a child takes to start; a timed kill then falls in the first epochs after that moment. The
    last ones die at the run's last writes: its weights, its metrics, its folder renamed into place."""
    if not steps:
        return ("rename", 1)
    if len(steps) >= kills - len(FINAL_PLANS):
        return FINAL_PLANS[len(steps) - (kills - len(FINAL_PLANS))]
    startup = steps[0]["seconds"]
    return rng.choices([("time", rng.uniform(0.5 * startup, startup + 2 * seconds_per_epoch)),
                        ("rename", rng.randint(1, 3)), ("half", rng.randint(1, 2))], weights=(2, 1, 1))[0]


def kill_soak(results: Path, config: dict, kills: int, rng: random.Random, seconds_per_epoch: float) -> dict:
    steps = []
    while len([step for step in steps if step["killed"]]) < kills:
        plan = next_plan(steps, kills, seconds_per_epoch, rng)
        started = time.monotonic()
        pid = fork(child, results, config, plan=plan)
        if plan[0] == "time":
            time.sleep(plan[1])
            os.kill(pid, signal.SIGKILL)
        status = wait_child(pid)
        killed = status == -signal.SIGKILL
        steps.append({"plan": list(plan), "killed": killed, "exit": status,
                      "seconds": time.monotonic() - started, **store_state(results, config)})
        if not killed:
            break  # the run completed (or hung) before the kill came: the test reports it
    status = wait_child(fork(child, results, config))
    return {"steps": steps, "final_exit": status, "final": store_state(results, config)}


def race_soak(results: Path, config: dict, rounds: int, rng: random.Random) -> dict:
    outcome = []
    folder = run_folder(cnn_runs.run_name(config), config)
    for number in range(rounds):
        retrain = number % 2 == 1  # odd rounds: a run is stored, both racers retrain it
        if not retrain and folder.exists():
            shutil.rmtree(folder)  # even rounds: nothing stored, both racers ask for it
        victim = rng.choice([None, 0, 1]) if number >= 2 else None
        reports = [results.parent / f"round{number}-{side}.json" for side in (0, 1)]
        pids = [fork(child, results, config, retrain=retrain, report=report) for report in reports]
        if victim is not None:
            time.sleep(rng.uniform(0.0, 0.5))
            try:
                os.kill(pids[victim], signal.SIGKILL)
            except ProcessLookupError:
                pass
        exits = [wait_child(pid) for pid in pids]
        got = [json.loads(report.read_text()) if report.is_file() else None for report in reports]
        outcome.append({"round": number, "retrain": retrain, "victim": victim, "pids": pids, "exits": exits,
                        "reports": got, **store_state(results, config), **consistency(config)})
    return {"rounds": outcome}


def consistency(config: dict) -> dict:
    """Whether the stored run's files come from one training: the trainer named by its metrics wrote its
    trainer.txt, and its weights give the test accuracy its metrics hold; and its history, timings aside."""
    from hw2lib.cnn import accuracy, build_model
    from hw2lib.runs import without_timings

    run = load_run(run_folder(cnn_runs.run_name(config), config))
    if run is None:
        return {"one_trainer": False, "weights_match_metrics": False, "history": None}
    model = build_model(config["model"], dropout=config["dropout"])
    if config["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    model = run.load_weights(model)
    test_images, test_labels = cnn_runs.kmnist_data(config["variant"], config["pixels"]).test
    return {"one_trainer": (run.path / "trainer.txt").read_text() == str(run.metrics["trainer"]),
            "weights_match_metrics": accuracy(model, test_images, test_labels) == run.metrics["test_accuracy"],
            "history": without_timings(run.history)}


def warm_up(config: dict) -> float:
    """Load the data and train two epochs of the run elsewhere, before any fork: the children inherit the
    data and torch's first-call set-up (seconds) instead of each paying for it. Returns the second epoch's
    seconds: how long an epoch takes on this machine now."""
    import tempfile

    from tqdm import auto, std

    std.tqdm.monitor_interval = 0  # no monitor thread: a fork must not copy a process with other threads
    # tqdm's lock holds a semaphore that forked children share: one killed while holding it would leave it
    # taken for every later child. Each child keeps to a thread lock of its own instead.
    std.TqdmDefaultWriteLock.mp_lock = None
    for bar in {std.tqdm, auto.tqdm}:
        bar.set_lock(std.TqdmDefaultWriteLock())
    cnn_runs.kmnist_data(config["variant"], config["pixels"])
    with tempfile.TemporaryDirectory() as folder:
        metrics = cnn_runs.train_kmnist_run({**config, "epochs": 2}, Path(folder), device="cpu", progress=False)
    return metrics["history"][1]["seconds"]


def main() -> None:
    mode, results, config, count, seed = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3]), int(sys.argv[4]), \
        int(sys.argv[5])
    os.environ["HW2LIB_RESULTS"] = str(results)  # the driver reads the store its children write
    seconds_per_epoch = warm_up(config)
    started = time.monotonic()
    rng = random.Random(seed)
    summary = kill_soak(results, config, count, rng, seconds_per_epoch) if mode == "kill" else \
        race_soak(results, config, count, rng)
    summary["seconds_per_epoch"] = seconds_per_epoch
    summary["driver_seconds"] = time.monotonic() - started
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

"""Where a CNN training step's time goes, in the project's loop and in the skeleton's: data,
forward (model and loss), backward, optimizer (zero_grad and step), and the rest (the loop's
Python, the loss bookkeeping, the dev evaluation after the epoch), in milliseconds per step.

Both loops are copies of the measured ones (:class:`bench.cnn_speed.ProjectLoop` runs
:func:`hw2lib.train.train`, whose per-step code the project side copies; the skeleton side is
:class:`bench.cnn_speed.SkeletonLoop`) with a clock read between the parts. They run interleaved,
an epoch each per round, and each part's median over the rounds is reported. The forward and
backward passes are the same network on the same batches on both sides, so their sum bounds what
any loop can gain: the last row divides the skeleton's whole step by the project's forward plus
backward.

Run alone: ``python -m bench.cnn_steps [--quick]``.
"""

from __future__ import annotations

import statistics
import time

import torch

from hw2lib.cnn import build_model
from hw2lib.cnn_runs import KMNISTTask
from hw2lib.kmnist import load_kmnist
from hw2lib.optim import LeanFusedAdam
from hw2lib.utils import to_device

from .cnn_speed import DEV_IMAGES, FULL, LEARNING_RATE, QUICK, SEED, SkeletonLoop
from .common import Row, competing_load, machine_description, prepare_environment, report, speed_row, \
    spread_text, standard_arguments

PARTS = ("data", "forward", "backward", "optimizer", "rest")
PART_NAMES = {"data": "data (next batch, to device)", "forward": "forward (model and loss)",
              "backward": "backward", "optimizer": "optimizer (zero_grad and step)",
              "rest": "rest (loop, loss bookkeeping, dev evaluation)"}


class TimedProjectStep:
    """The per-step code of hw2lib.train.train (channels_last, LeanFusedAdam, the loss summed on
    the device), one epoch per call; returns milliseconds per step for each part."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, dev: tuple[torch.Tensor, torch.Tensor],
                 batch_size: int) -> None:
        self.task = KMNISTTask(images, labels, *dev, batch_size=batch_size, channels_last=True)
        torch.manual_seed(SEED)
        self.model = build_model("cnn").to(memory_format=torch.channels_last)
        self.optimizer = LeanFusedAdam(self.model.parameters(), lr=LEARNING_RATE)
        self.generator = torch.Generator().manual_seed(SEED)

    def __call__(self) -> dict[str, float]:
        clock, spent, steps = time.perf_counter, dict.fromkeys(PARTS, 0.0), 0
        started = clock()
        self.model.train()
        loss_sum = torch.zeros((), dtype=torch.float64)
        batches = iter(self.task.training_batches(self.generator))
        while True:
            before_data = clock()
            batch = next(batches, None)
            if batch is None:
                break
            batch = to_device(batch, "cpu")
            before_zero = clock()
            self.optimizer.zero_grad(set_to_none=True)
            before_forward = clock()
            loss = self.task.loss(self.model, batch)
            before_backward = clock()
            loss.backward()
            before_step = clock()
            self.optimizer.step()
            after_step = clock()
            loss_sum += loss.detach()
            steps += 1
            _add(spent, before_data, before_zero, before_forward, before_backward, before_step, after_step)
        loss_sum.item()
        self.model.eval()
        with torch.no_grad():
            self.task.evaluate(self.model)
        return _per_step(spent, clock() - started, steps)


class TimedSkeletonStep(SkeletonLoop):
    """:class:`bench.cnn_speed.SkeletonLoop` with the same clock readings."""

    def __call__(self) -> dict[str, float]:  # type: ignore[override]
        clock, spent, steps = time.perf_counter, dict.fromkeys(PARTS, 0.0), 0
        started = clock()
        self.model.train()
        batches = iter(self.loader)
        while True:
            before_data = clock()
            batch = next(batches, None)
            if batch is None:
                break
            images, labels = batch
            before_zero = clock()
            self.optimizer.zero_grad()
            before_forward = clock()
            loss = self.criterion(self.model(images), labels)
            before_backward = clock()
            loss.backward()
            before_step = clock()
            self.optimizer.step()
            after_step = clock()
            self.losses.append(loss.item())
            steps += 1
            _add(spent, before_data, before_zero, before_forward, before_backward, before_step, after_step)
        self.model.eval()
        with torch.no_grad():
            (self.model(self.dev_images).argmax(dim=1) == self.dev_labels).sum().item()
        return _per_step(spent, clock() - started, steps)


def _add(spent: dict[str, float], before_data: float, before_zero: float, before_forward: float,
         before_backward: float, before_step: float, after_step: float) -> None:
    spent["data"] += before_zero - before_data
    spent["optimizer"] += (before_forward - before_zero) + (after_step - before_step)
    spent["forward"] += before_backward - before_forward
    spent["backward"] += before_step - before_backward


def _per_step(spent: dict[str, float], total: float, steps: int) -> dict[str, float]:
    spent["rest"] = total - sum(spent[part] for part in PARTS if part != "rest")
    return {part: 1000 * seconds / steps for part, seconds in spent.items()}


def breakdown(images: torch.Tensor, labels: torch.Tensor, dev: tuple[torch.Tensor, torch.Tensor], batch_size: int,
              rounds: int) -> dict[str, dict[str, list[float]]]:
    """Milliseconds per step of every part, every round: ``{"project"|"skeleton": {part: [ms, ...]}}``."""
    loops = {"project": TimedProjectStep(images, labels, dev, batch_size),
             "skeleton": TimedSkeletonStep(images, labels, dev, batch_size)}
    for loop in loops.values():  # warm-up: oneDNN primitives, the allocator, Adam's state
        loop()
    measured: dict[str, dict[str, list[float]]] = {name: {part: [] for part in PARTS} for name in loops}
    for _ in range(rounds):
        for name, loop in loops.items():
            for part, milliseconds in loop().items():
                measured[name][part].append(milliseconds)
    return measured


def breakdown_rows(measured: dict[str, dict[str, list[float]]], batch_size: int, threads: int,
                   load: str = "") -> list[Row]:
    """One row per part (project ms vs skeleton ms, ratio = skeleton / project), a total, and the bound;
    ``load``: the competing load it was measured under (:func:`bench.common.competing_load`), if any."""
    condition = ", busy machine" if load else ""
    project, skeleton = measured["project"], measured["skeleton"]
    rounds = len(project["data"])
    totals = {name: [sum(parts[part][index] for part in PARTS) for index in range(rounds)]
              for name, parts in measured.items()}
    rows = []
    for part in (*PARTS, "total"):
        mine = totals["project"] if part == "total" else project[part]
        theirs = totals["skeleton"] if part == "total" else skeleton[part]
        ratios = [reference / value for reference, value in zip(theirs, mine)]
        rows.append(speed_row(
            f"CNN batch {batch_size}{condition}, per step: {PART_NAMES.get(part, 'whole step')}",
            f"{statistics.median(mine):.3f} ms", f"{statistics.median(theirs):.3f} ms", statistics.median(ratios),
            spread=spread_text(ratios),
            note=(f"project loop (measured) vs skeleton loop (reference), median ms per step over {rounds} "
                  f"interleaved epochs, {threads} thread(s); ratio = skeleton / project"
                  + (f"; {load}" if load else "")) if part == "data" else ""))
    passes = [forward + backward for forward, backward in zip(project["forward"], project["backward"])]
    bound = [total / work for total, work in zip(totals["skeleton"], passes)]
    rows.append(speed_row(
        f"CNN batch {batch_size}{condition}: the most any loop could gain (skeleton step / project forward + backward)",
        f"{statistics.median(passes):.3f} ms", f"{statistics.median(totals['skeleton']):.3f} ms",
        statistics.median(bound), spread=spread_text(bound),
        note=("informational: a loop whose data, optimizer and Python cost nothing would still run the forward and "
              "backward passes, the same network's on both sides; the goal of 1.5x needs the project's data, "
              "optimizer and rest to fit in what separates this bound from 1.5x")))
    return rows


def run(quick: bool = False, batch_size: int = 8, busy: bool = False) -> list[Row]:
    """Measure (``busy``: while another process keeps one core busy); return the table's rows."""
    settings = QUICK if quick else FULL
    data = load_kmnist("kmnist-t10k")
    images, labels = (tensor[:settings.train_images].contiguous() for tensor in data.train)
    dev = tuple(tensor[:DEV_IMAGES].contiguous() for tensor in data.dev)
    if not busy:
        return breakdown_rows(breakdown(images, labels, dev, batch_size, settings.rounds), batch_size,
                              torch.get_num_threads())
    with competing_load(1) as load:
        measured = breakdown(images, labels, dev, batch_size, settings.rounds)
    return breakdown_rows(measured, batch_size, torch.get_num_threads(), load)


def main() -> int:
    arguments = standard_arguments("Where a CNN training step's time goes, project loop vs skeleton").parse_args()
    threads = prepare_environment(arguments.threads)
    machine = machine_description()
    rows = run(arguments.quick) + run(arguments.quick, busy=True)
    report(rows, machine, arguments.markdown, f"CNN training step, part by part ({threads} threads)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

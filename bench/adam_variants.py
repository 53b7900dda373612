"""Which Adam implementation should the training loop use on the CPU? A measurement, not part of
``python -m bench``: ``python -m bench.adam_variants [--quick] [--threads N]``.

torch's Adam has three implementations: a Python loop over the parameters (the default on the
CPU), ``foreach=True`` (multi-tensor ops) and ``fused=True`` (one kernel per step; CPU support
since torch 2.4); :class:`hw2lib.optim.LeanFusedAdam` is the fused one with less Python per step.
The CNN's first linear layer holds 345,600 of its 420,906 weights, so Adam's
update, several passes over every weight per step, costs about as much as the forward pass at
batch 8. Each variant runs the per-step code of :func:`hw2lib.train.train` (the batch moved with
``to_device``, ``zero_grad(set_to_none=True)``, ``task.loss``, backward, step, the loss summed on
the device), the skeleton-style loop of :mod:`bench.cnn_speed` is the reference.

The three torch variants do not give bit-identical weights (the same formula, rounded in another
order), so switching between them changes a stored run's last digits: retrain the stored runs after
switching. LeanFusedAdam and ``fused=True`` give the same bits.
"""

from __future__ import annotations

import time
from typing import Callable

import torch

from hw2lib.cnn import build_model
from hw2lib.cnn_runs import KMNISTTask
from hw2lib.kmnist import load_kmnist
from hw2lib.optim import LeanFusedAdam
from hw2lib.utils import to_device

from .cnn_speed import DEV_IMAGES, FULL, LEARNING_RATE, QUICK, SEED, SkeletonLoop
from .common import Row, format_rate, interleaved, machine_description, prepare_environment, report, speed_row, \
    standard_arguments

VARIANTS: dict[str, Callable] = {
    "Adam (default: for-loop)": lambda parameters: torch.optim.Adam(parameters, lr=LEARNING_RATE),
    "Adam foreach=True": lambda parameters: torch.optim.Adam(parameters, lr=LEARNING_RATE, foreach=True),
    "Adam fused=True": lambda parameters: torch.optim.Adam(parameters, lr=LEARNING_RATE, fused=True),
    # the same kernel and weights as fused=True, less Python per step: what train() uses
    "LeanFusedAdam": lambda parameters: LeanFusedAdam(parameters, lr=LEARNING_RATE),
}


class TrainStepLoop:
    """The per-step code of hw2lib.train.train with a chosen optimizer; one call = one epoch."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, dev: tuple[torch.Tensor, torch.Tensor],
                 batch_size: int, make_optimizer: Callable) -> None:
        self.task = KMNISTTask(images, labels, *dev, batch_size=batch_size, channels_last=True)
        torch.manual_seed(SEED)
        self.model = build_model("cnn").to(memory_format=torch.channels_last)
        self.optimizer = make_optimizer(self.model.parameters())
        self.generator = torch.Generator().manual_seed(SEED)
        self.samples = len(labels)

    def __call__(self) -> float:
        started = time.perf_counter()
        self.model.train()
        loss_sum = torch.zeros((), dtype=torch.float64)
        for batch in self.task.training_batches(self.generator):
            batch = to_device(batch, "cpu")
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.task.loss(self.model, batch)
            loss.backward()
            self.optimizer.step()
            loss_sum += loss.detach()
        loss_sum.item()
        self.model.eval()
        with torch.no_grad():
            self.task.evaluate(self.model)
        return self.samples / (time.perf_counter() - started)


def run(quick: bool = False) -> list[Row]:
    settings = QUICK if quick else FULL
    data = load_kmnist("kmnist-t10k")
    images, labels = (tensor[:settings.train_images].contiguous() for tensor in data.train)
    dev = tuple(tensor[:DEV_IMAGES].contiguous() for tensor in data.dev)
    rows = []
    for batch_size in (8, 64):
        candidates: dict[str, Callable[[], float]] = {"reference": SkeletonLoop(images, labels, dev, batch_size)}
        for name, make_optimizer in VARIANTS.items():
            candidates[name] = TrainStepLoop(images, labels, dev, batch_size, make_optimizer)
        measured = interleaved(candidates, settings.rounds)
        for name in VARIANTS:
            rows.append(speed_row(f"CNN training, batch {batch_size}: train()'s step with {name} vs skeleton",
                                  format_rate(measured.speeds[name], "img"),
                                  format_rate(measured.speeds["reference"], "img"), measured.ratios[name],
                                  at_least=1.5 if batch_size == 8 else None,
                                  note=f"median of {settings.rounds} interleaved epochs ({measured.spread(name)})"))
    return rows


def main() -> int:
    arguments = standard_arguments("Adam's implementations in the CNN training loop").parse_args()
    threads = prepare_environment(arguments.threads)
    rows = run(arguments.quick)
    report(rows, machine_description(), arguments.markdown, f"Adam implementations, CNN training ({threads} threads)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

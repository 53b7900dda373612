"""Tests for hw2lib.train: devices, batch moving, the loop, checkpoints and exact resumption."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hw2lib.runs import without_timings
from hw2lib.train import load_checkpoint, train
from hw2lib.utils import choose_device, model_device, to_device

torch.set_num_threads(1)  # tiny models: extra threads only slow them down on a shared machine


class ToyTask:
    """Noisy two-class problem in 2-D: small enough to train in milliseconds, with shuffling and dropout."""

    def __init__(self, size: int = 96, batch_size: int = 8, interrupt_at: int | None = None) -> None:
        generator = torch.Generator().manual_seed(0)
        self.inputs = torch.randn(size, 2, generator=generator)
        self.labels = (self.inputs[:, 0] + 0.5 * self.inputs[:, 1] > 0).long()
        self.batch_size = batch_size
        self.interrupt_at = interrupt_at  # raise after this many batches in total (simulated crash)
        self.batches_seen = 0

    def training_batches(self, generator):
        order = torch.randperm(len(self.labels), generator=generator)
        for start in range(0, len(order), self.batch_size):
            if self.interrupt_at is not None and self.batches_seen == self.interrupt_at:
                raise KeyboardInterrupt
            self.batches_seen += 1
            index = order[start:start + self.batch_size]
            yield self.inputs[index], self.labels[index]

    def loss(self, model, batch):
        inputs, labels = batch
        return F.cross_entropy(model(inputs), labels)

    def evaluate(self, model):
        predictions = model(self.inputs).argmax(dim=1)
        return {"dev_accuracy": (predictions == self.labels).float().mean().item()}


def toy_model(seed: int = 3) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 2))




def test_choose_device():
    assert choose_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert choose_device("auto").type == expected
    with pytest.raises(ValueError, match="unknown device"):
        choose_device("tpu-please")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            choose_device("cuda")


@dataclass
class Pair:
    source: torch.Tensor
    lengths: list


class Named(NamedTuple):
    images: torch.Tensor
    label: int


def test_to_device_moves_nested_tensors_and_keeps_types():
    batch = {"pair": Pair(torch.ones(2), [1, 2]), "named": Named(torch.zeros(3), 7), "list": [torch.arange(2)]}
    moved = to_device(batch, "meta")  # the meta device exists everywhere, so the move is observable
    assert isinstance(moved["pair"], Pair) and moved["pair"].source.device.type == "meta"
    assert moved["pair"].lengths == [1, 2]
    assert isinstance(moved["named"], Named) and moved["named"].images.device.type == "meta" and moved["named"].label == 7
    assert isinstance(moved["list"], list) and moved["list"][0].device.type == "meta"
    assert model_device(nn.Linear(1, 1)).type == "cpu"


def test_training_lowers_the_loss_and_rows_are_consistent():
    task = ToyTask()
    history = train(toy_model(), task, epochs=4, learning_rate=0.05, seed=1, device="cpu", progress=False)
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    assert history[-1]["train_loss"] < 0.6 * history[0]["train_loss"]
    assert history[-1]["dev_accuracy"] > 0.85
    # The running mean is the mean over all batches so far (every epoch has 12 batches here).
    for index, row in enumerate(history):
        expected = sum(previous["train_loss"] for previous in history[:index + 1]) / (index + 1)
        assert row["train_loss_running"] == pytest.approx(expected, rel=1e-12)
    assert all(row["seconds"] > 0 for row in history)


def test_same_seed_same_history_and_other_seed_differs():
    first = train(toy_model(), ToyTask(), epochs=2, learning_rate=0.01, seed=5, device="cpu", progress=False)
    second = train(toy_model(), ToyTask(), epochs=2, learning_rate=0.01, seed=5, device="cpu", progress=False)
    other = train(toy_model(), ToyTask(), epochs=2, learning_rate=0.01, seed=6, device="cpu", progress=False)
    assert without_timings(first) == without_timings(second)
    assert without_timings(first) != without_timings(other)


def test_interrupted_run_resumes_to_the_same_history_and_weights(tmp_path):
    reference_model = toy_model()
    reference = train(reference_model, ToyTask(), epochs=4, learning_rate=0.01, seed=7, device="cpu", progress=False)

    checkpoint = tmp_path / "checkpoint.pt"
    # 12 batches per epoch: the crash comes in the middle of epoch 3, after two checkpoints.
    with pytest.raises(KeyboardInterrupt):
        train(toy_model(), ToyTask(interrupt_at=30), epochs=4, learning_rate=0.01, seed=7, device="cpu",
              checkpoint_path=checkpoint, progress=False)
    assert load_checkpoint(checkpoint)["epochs_done"] == 2
    resumed_model = toy_model()
    resumed = train(resumed_model, ToyTask(), epochs=4, learning_rate=0.01, seed=7, device="cpu",
                    checkpoint_path=checkpoint, progress=False)

    assert without_timings(resumed) == without_timings(reference)  # exactly, not approximately
    for name, value in reference_model.state_dict().items():
        assert torch.equal(value, resumed_model.state_dict()[name]), name


def test_checkpoint_is_weights_only_and_guards_its_use(tmp_path):
    checkpoint = tmp_path / "checkpoint.pt"
    train(toy_model(), ToyTask(), epochs=2, learning_rate=0.01, seed=7, device="cpu", checkpoint_path=checkpoint,
          progress=False)
    state = torch.load(checkpoint, weights_only=True)  # loads without executing code
    assert state["epochs_done"] == 2 and len(state["history"]) == 2
    assert not list(tmp_path.glob("*.part"))  # no temporary file left behind
    with pytest.raises(ValueError, match="already holds 2 epochs"):
        train(toy_model(), ToyTask(), epochs=1, learning_rate=0.01, seed=7, device="cpu", checkpoint_path=checkpoint,
              progress=False)
    foreign = tmp_path / "foreign.pt"
    foreign.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot be read"):
        load_checkpoint(foreign)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="learning_rate"):
        train(toy_model(), ToyTask(), epochs=1, learning_rate=0.0, seed=1, device="cpu", progress=False)
    with pytest.raises(ValueError, match="learning_rate"):
        train(toy_model(), ToyTask(), epochs=1, learning_rate=math.nan, seed=1, device="cpu", progress=False)
    with pytest.raises(ValueError, match="epochs"):
        train(toy_model(), ToyTask(), epochs=0, learning_rate=0.01, seed=1, device="cpu", progress=False)
    with pytest.raises(ValueError, match="no batch"):
        train(toy_model(), ToyTask(size=0), epochs=1, learning_rate=0.01, seed=1, device="cpu", progress=False)


def test_resuming_with_another_thread_count_warns(tmp_path):
    checkpoint = tmp_path / "checkpoint.pt"
    train(toy_model(), ToyTask(), epochs=1, learning_rate=0.01, seed=7, device="cpu", checkpoint_path=checkpoint,
          progress=False)
    assert load_checkpoint(checkpoint)["threads"] == torch.get_num_threads()
    threads = torch.get_num_threads()
    torch.set_num_threads(threads + 1)
    try:
        with pytest.warns(UserWarning, match=f"written with {threads} CPU threads"):
            train(toy_model(), ToyTask(), epochs=2, learning_rate=0.01, seed=7, device="cpu",
                  checkpoint_path=checkpoint, progress=False)
    finally:
        torch.set_num_threads(threads)

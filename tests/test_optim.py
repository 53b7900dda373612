"""Tests for hw2lib.optim: LeanFusedAdam must be torch's fused Adam, bit for bit, only faster."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import hw2lib.train as train_module
from hw2lib.cnn import build_model
from hw2lib.cnn_runs import KMNISTTask
from hw2lib.optim import LeanFusedAdam

torch.set_num_threads(1)


def small_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model("cnn")


def batches(count: int, batch_size: int = 8, seed: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return [(torch.rand(batch_size, 1, 28, 28, generator=generator),
             torch.randint(0, 10, (batch_size,), generator=generator)) for _ in range(count)]


def run_steps(model: nn.Module, optimizer: torch.optim.Optimizer, data, *, before_step=None) -> None:
    """Plain training steps (dropout seeded identically for every optimiser under test)."""
    torch.manual_seed(123)
    for index, (images, labels) in enumerate(data):
        optimizer.zero_grad(set_to_none=True)
        F.nll_loss(model(images), labels).backward()
        if before_step is not None:
            before_step(index, model, optimizer)
        optimizer.step()


def assert_same_weights_and_state(model_a, optimizer_a, model_b, optimizer_b) -> None:
    for (name, a), b in zip(model_a.named_parameters(), model_b.parameters()):
        assert torch.equal(a, b), f"{name} differs"
    state_a, state_b = optimizer_a.state_dict(), optimizer_b.state_dict()
    assert state_a["param_groups"] == state_b["param_groups"]
    for key, entry in state_a["state"].items():
        for field, value in entry.items():
            assert torch.equal(value, state_b["state"][key][field]), f"state {key}.{field} differs"


def pair(**options):
    """(model, torch's fused Adam) and an identical (model, LeanFusedAdam)."""
    reference_model, lean_model = small_cnn(), small_cnn()
    reference = torch.optim.Adam(reference_model.parameters(), fused=True, **options)
    lean = LeanFusedAdam(lean_model.parameters(), **options)
    return reference_model, reference, lean_model, lean


@pytest.mark.parametrize("options", [{"lr": 5e-4}, {"lr": 1e-2, "weight_decay": 1e-3, "betas": (0.8, 0.99)}])
def test_bit_identical_to_fused_adam_and_takes_the_short_path(options):
    reference_model, reference, lean_model, lean = pair(**options)
    data = batches(12)
    run_steps(reference_model, reference, data)
    run_steps(lean_model, lean, data)
    assert_same_weights_and_state(reference_model, reference, lean_model, lean)
    assert lean.fast_steps == 11  # the first step creates the state through Adam itself
    assert all(state["step"].item() == 12 for state in lean.state.values())


def test_learning_rate_changes_and_frozen_parameters_follow_adam():
    reference_model, reference, lean_model, lean = pair(lr=1e-3)

    def schedule(index, model, optimizer):
        for group in optimizer.param_groups:
            group["lr"] = 1e-3 / (1 + index)
        if index in (3, 4):  # conv1 gets no gradient in these steps: Adam skips it, so must the short path
            model.conv1.weight.grad = None
            model.conv1.bias.grad = None

    data = batches(8)
    run_steps(reference_model, reference, data, before_step=schedule)
    run_steps(lean_model, lean, data, before_step=schedule)
    assert_same_weights_and_state(reference_model, reference, lean_model, lean)
    assert lean.state[lean_model.conv1.weight]["step"].item() == 6 and lean.fast_steps == 7


def test_two_parameter_groups():
    reference_model, lean_model = small_cnn(), small_cnn()

    def groups(model):
        return [{"params": list(model.conv1.parameters()) + list(model.conv2.parameters()), "lr": 1e-2},
                {"params": [p for name, p in model.named_parameters() if name.startswith("fc")]}]
    reference = torch.optim.Adam(groups(reference_model), lr=1e-4, fused=True)
    lean = LeanFusedAdam(groups(lean_model), lr=1e-4)
    data = batches(5)
    run_steps(reference_model, reference, data)
    run_steps(lean_model, lean, data)
    assert_same_weights_and_state(reference_model, reference, lean_model, lean)
    assert lean.fast_steps == 4


def test_unusual_settings_fall_back_to_adam_and_stay_identical():
    reference_model, reference, lean_model, lean = pair(lr=1e-3, amsgrad=True)
    data = batches(4)
    run_steps(reference_model, reference, data)
    run_steps(lean_model, lean, data)
    assert_same_weights_and_state(reference_model, reference, lean_model, lean)
    assert lean.fast_steps == 0

    model = small_cnn()
    optimizer = LeanFusedAdam(model.parameters(), lr=1e-3)
    images, labels = batches(1)[0]

    def closure():
        optimizer.zero_grad()
        loss = F.nll_loss(model(images), labels)
        loss.backward()
        return loss
    for _ in range(3):
        assert torch.is_tensor(optimizer.step(closure))  # Adam's own path returns the closure's loss
    assert optimizer.fast_steps == 0 and all(state["step"].item() == 3 for state in optimizer.state.values())


def test_state_dict_round_trip_resumes_exactly_and_loads_into_plain_adam():
    data = batches(10)
    uninterrupted_model = small_cnn()
    uninterrupted = LeanFusedAdam(uninterrupted_model.parameters(), lr=1e-3)
    run_steps(uninterrupted_model, uninterrupted, data)

    first_model = small_cnn()
    first = LeanFusedAdam(first_model.parameters(), lr=1e-3)
    run_steps(first_model, first, data[:6])
    resumed_model = copy.deepcopy(first_model)
    resumed = LeanFusedAdam(resumed_model.parameters(), lr=1e-3)
    resumed.load_state_dict(first.state_dict())
    torch.manual_seed(123)  # run_steps seeds dropout at its start: replay the first six steps' draws
    for images, labels in data[:6]:
        first_model(images)
    generator_state = torch.get_rng_state()

    def continue_steps(model, optimizer):
        torch.set_rng_state(generator_state)
        for images, labels in data[6:]:
            optimizer.zero_grad(set_to_none=True)
            F.nll_loss(model(images), labels).backward()
            optimizer.step()
    continue_steps(resumed_model, resumed)
    assert resumed.fast_steps == 4  # loaded state: no first step through Adam needed
    assert_same_weights_and_state(uninterrupted_model, uninterrupted, resumed_model, resumed)

    plain = torch.optim.Adam(small_cnn().parameters(), lr=1e-3, fused=True)
    plain.load_state_dict(first.state_dict())  # a checkpoint stays readable by torch's own Adam
    assert plain.state_dict()["param_groups"] == first.state_dict()["param_groups"]


def test_train_uses_it_and_matches_torch_fused_adam(monkeypatch):
    """The stored CNN runs were trained with torch.optim.Adam(fused=True): train() must still give their weights."""
    generator = torch.Generator().manual_seed(5)
    images, labels = torch.rand(48, 1, 28, 28, generator=generator), torch.randint(0, 10, (48,), generator=generator)

    def trained(optimizer_class):
        monkeypatch.setattr(train_module, "LeanFusedAdam", optimizer_class)
        task = KMNISTTask(images, labels, images[:16], labels[:16], batch_size=8, channels_last=True)
        model = small_cnn().to(memory_format=torch.channels_last)
        history = train_module.train(model, task, epochs=2, learning_rate=5e-4, seed=3, device="cpu",
                                     progress=False, fused_adam=True)
        return model, history

    created = []

    class Recording(LeanFusedAdam):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            created.append(self)
    lean_model, lean_history = trained(Recording)
    assert len(created) == 1 and created[0].fast_steps == 11  # 2 epochs x 6 batches, the first via Adam
    torch_model, torch_history = trained(lambda params, lr: torch.optim.Adam(params, lr=lr, fused=True))
    for a, b in zip(lean_model.parameters(), torch_model.parameters()):
        assert torch.equal(a, b)
    assert [row["train_loss"] for row in lean_history] == [row["train_loss"] for row in torch_history]

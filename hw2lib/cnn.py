"""Question 2's networks and what chapter 2 measures on them.

:class:`CNN` is the network of Q2.4; :class:`FullyConnected` the baseline of the Q2.3 experiment (as
many parameters, no spatial structure). The other functions analyse a network: predictions,
accuracy, confusion matrix, activation maps, dead units, parameters per layer. The experiments that
train them are in :mod:`hw2lib.cnn_runs`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .kmnist import KMNIST
from .utils import count_parameters, evaluation_mode, model_device

IMAGE_SIZE = 28
NUM_CLASSES = 10
PERMUTATION_SEED = 1234  # the fixed pixel shuffle of the Q2.3 experiment


class CNN(nn.Module):
    """The network of Q2.4 (chapter 2): two conv/ReLU/max-pool blocks, three linear layers.

    conv(1->8, 5x5, pad 2) -> ReLU -> pool 2 -> conv(8->16, 3x3) -> ReLU -> pool 2 ->
    linear(576->600) -> ReLU -> dropout -> linear(600->120) -> ReLU -> linear(120->10) ->
    LogSoftmax. Input (B, 1, 28, 28); output log-probabilities (B, 10).
    """

    def __init__(self, dropout: float = 0.3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, kernel_size=5, stride=1, padding=2)
        self.conv2 = nn.Conv2d(8, 16, kernel_size=3, stride=1, padding=0)
        self.fc1 = nn.Linear(16 * 6 * 6, 600)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(600, 120)
        self.fc3 = nn.Linear(120, NUM_CLASSES)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        hidden = F.max_pool2d(F.relu(self.conv1(images)), kernel_size=2, stride=2)  # (B, 8, 14, 14)
        hidden = F.max_pool2d(F.relu(self.conv2(hidden)), kernel_size=2, stride=2)  # (B, 16, 6, 6)
        hidden = torch.flatten(hidden, start_dim=1)
        hidden = self.dropout(F.relu(self.fc1(hidden)))
        hidden = F.relu(self.fc2(hidden))
        return F.log_softmax(self.fc3(hidden), dim=1)


class FullyConnected(nn.Module):
    """The Q2.3 baseline (chapter 2): the CNN's two conv blocks replaced by one linear layer.

    flatten -> linear(784->hidden) -> ReLU -> dropout -> linear(hidden->120) -> ReLU ->
    linear(120->10) -> LogSoftmax. With the default ``hidden=464`` it has 421,250
    parameters, slightly more than the CNN's 420,906, so any advantage of the CNN
    cannot come from size.
    """

    def __init__(self, hidden: int = 464, dropout: float = 0.3) -> None:
        super().__init__()
        self.fc1 = nn.Linear(IMAGE_SIZE * IMAGE_SIZE, hidden)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, 120)
        self.fc3 = nn.Linear(120, NUM_CLASSES)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        hidden = torch.flatten(images, start_dim=1)
        hidden = self.dropout(F.relu(self.fc1(hidden)))
        hidden = F.relu(self.fc2(hidden))
        return F.log_softmax(self.fc3(hidden), dim=1)


MODELS = {"cnn": CNN, "fc": FullyConnected}


def build_model(name: str, dropout: float = 0.3) -> nn.Module:
    """A fresh ``"cnn"`` or ``"fc"`` network (chapter 2); seed torch before calling for a repeatable start."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name](dropout=dropout)


def pixel_permutation(seed: int = PERMUTATION_SEED) -> torch.Tensor:
    """A fixed, seeded shuffle of the 784 pixel positions (chapter 2, Q2.3)."""
    return torch.randperm(IMAGE_SIZE * IMAGE_SIZE, generator=torch.Generator().manual_seed(seed))


def permute_images(images: torch.Tensor, permutation: torch.Tensor) -> torch.Tensor:
    """``images`` (N, 1, 28, 28) with their pixels moved by ``permutation`` (chapter 2, Q2.3)."""
    flat = images.reshape(len(images), -1)
    return flat[:, permutation].reshape(images.shape).contiguous()


def permute_pixels(data: KMNIST, seed: int = PERMUTATION_SEED) -> KMNIST:
    """``data`` with the same pixel shuffle applied to every image of every split (chapter 2, Q2.3).

    The variant name stays the same (it names where the images come from); the
    description says that the pixels are permuted.
    """
    permutation = pixel_permutation(seed)
    splits = {name: (permute_images(images, permutation), labels) for name, (images, labels) in data.splits.items()}
    return KMNIST(variant=data.variant, description=f"{data.description}; pixels permuted (seed {seed})", splits=splits)


def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Predicted classes (N,) of ``images``, in eval mode on the model's device (chapter 2)."""
    device = model_device(model)
    with evaluation_mode(model):
        predictions = [model(images[start:start + batch_size].to(device)).argmax(dim=1).cpu()
                       for start in range(0, len(images), batch_size)]
    return torch.cat(predictions) if predictions else torch.empty(0, dtype=torch.long)


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of ``images`` whose predicted class is their label (chapter 2)."""
    if len(labels) == 0:
        raise ValueError("accuracy of an empty set is undefined")
    return (predict(model, images) == labels.cpu()).float().mean().item()


def confusion_matrix(labels: torch.Tensor, predictions: torch.Tensor, num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """Counts (num_classes, num_classes): row = true class, column = predicted class (chapter 2)."""
    if labels.shape != predictions.shape:
        raise ValueError(f"labels {tuple(labels.shape)} and predictions {tuple(predictions.shape)} differ in shape")
    pairs = labels.long() * num_classes + predictions.long()
    return torch.bincount(pairs, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def misclassified(labels: torch.Tensor, predictions: torch.Tensor) -> torch.Tensor:
    """Indices of the examples whose prediction is wrong, in order (chapter 2)."""
    return torch.nonzero(labels != predictions).flatten()


def activation_maps(model: CNN, image: torch.Tensor, layer: str = "conv1", after_relu: bool = False) -> torch.Tensor:
    """The feature maps of ``layer`` ("conv1" or "conv2") for one image (chapter 2, Q2.5).

    ``image`` is (1, 28, 28) or (28, 28). By default the maps are the convolution's
    output before the ReLU, as the course skeleton's forward hook on ``conv1`` recorded
    them; ``after_relu=True`` keeps only what passes the ReLU. Returns (channels, H, W):
    (8, 28, 28) for conv1, (16, 12, 12) for conv2.
    """
    if layer not in ("conv1", "conv2"):
        raise ValueError(f"unknown layer {layer!r}; choose conv1 or conv2")
    recorded: dict[str, torch.Tensor] = {}
    hook = getattr(model, layer).register_forward_hook(lambda module, inputs, output: recorded.update(maps=output))
    try:
        with evaluation_mode(model):
            model(image.reshape(1, 1, IMAGE_SIZE, IMAGE_SIZE).to(model_device(model)))
    finally:
        hook.remove()
    maps = recorded["maps"][0].cpu()
    return F.relu(maps) if after_relu else maps


def dead_units(model: nn.Module, images: torch.Tensor) -> dict[str, float]:
    """For each layer followed by a ReLU, the fraction of its units that output zero for every image (chapter 2).

    A unit of a linear layer is one output feature; a unit of a convolution is one
    channel (dead when it is zero at every position). A dead unit passes no gradient,
    so once a whole layer is dead the network's output no longer depends on its input.
    """
    layers = [name for name in ("conv1", "conv2", "fc1", "fc2") if hasattr(model, name)]
    alive: dict[str, torch.Tensor] = {}

    def recorder(name: str):
        def record(module, inputs, output):
            active = (output > 0).flatten(2).any(dim=2) if output.dim() == 4 else output > 0
            alive[name] = active.any(dim=0)
        return record

    hooks = [getattr(model, name).register_forward_hook(recorder(name)) for name in layers]
    try:
        with evaluation_mode(model):
            model(images.to(model_device(model)))
    finally:
        for hook in hooks:
            hook.remove()
    return {name: 1.0 - alive[name].float().mean().item() for name in layers}


def parameter_breakdown(model: CNN) -> list[dict]:
    """Per layer of the CNN: its parameters, and those of a linear layer with the same input and output sizes.

    Chapter 2, Q2.1: a convolution's parameter count does not depend on the image size,
    a dense layer's grows with the product of its input and output sizes.
    """
    sizes = {"conv1": ((1, 28, 28), (8, 28, 28)), "conv2": ((8, 14, 14), (16, 12, 12))}
    rows = []
    for name in ("conv1", "conv2", "fc1", "fc2", "fc3"):
        layer = getattr(model, name)
        parameters = count_parameters(layer)
        if name in sizes:
            inputs, outputs = (torch.Size(shape).numel() for shape in sizes[name])
            shape = f"{sizes[name][0]} -> {sizes[name][1]}"
        else:
            inputs, outputs = layer.in_features, layer.out_features
            shape = f"{inputs} -> {outputs}"
        rows.append({"layer": name, "shape": shape, "parameters": parameters,
                     "dense_equivalent": (inputs + 1) * outputs})
    return rows

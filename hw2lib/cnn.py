"""Question 2: the homework's CNN, a fully connected baseline, and the KMNIST training task.

Explained in chapter 2. :class:`CNN` is the network of Q2.4; :class:`FullyConnected`
is the baseline of the Q2.3 experiment (at least as many parameters, no spatial
structure); :class:`KMNISTTask` feeds in-memory tensors to :func:`hw2lib.train.train`;
the remaining functions analyse a trained network (accuracy, confusion matrix,
misclassified examples, activation maps).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from .kmnist import KMNIST
from .train import model_device

IMAGE_SIZE = 28
NUM_CLASSES = 10
PERMUTATION_SEED = 1234  # the fixed pixel shuffle of the Q2.3 experiment


class CNN(nn.Module):
    """The network of Q2.4 (Chapter 2): two conv/ReLU/max-pool blocks, three linear layers.

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
    """The Q2.3 baseline (Chapter 2): the CNN's two conv blocks replaced by one linear layer.

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
    """A fresh ``"cnn"`` or ``"fc"`` network (Chapter 2); seed torch before calling for a repeatable start."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name](dropout=dropout)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (Chapter 2)."""
    return sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)


def pixel_permutation(seed: int = PERMUTATION_SEED) -> torch.Tensor:
    """A fixed, seeded shuffle of the 784 pixel positions (Chapter 2, Q2.3)."""
    return torch.randperm(IMAGE_SIZE * IMAGE_SIZE, generator=torch.Generator().manual_seed(seed))


def permute_images(images: torch.Tensor, permutation: torch.Tensor) -> torch.Tensor:
    """``images`` (N, 1, 28, 28) with their pixels moved by ``permutation`` (Chapter 2, Q2.3)."""
    flat = images.reshape(len(images), -1)
    return flat[:, permutation].reshape(images.shape).contiguous()


def permute_pixels(data: KMNIST, seed: int = PERMUTATION_SEED) -> KMNIST:
    """``data`` with the same pixel shuffle applied to every image of every split (Chapter 2, Q2.3).

    The variant name stays the same (it names where the images come from); the
    description says that the pixels are permuted.
    """
    permutation = pixel_permutation(seed)
    splits = {name: (permute_images(images, permutation), labels) for name, (images, labels) in data.splits.items()}
    return KMNIST(variant=data.variant, description=f"{data.description}; pixels permuted (seed {seed})", splits=splits)


@dataclass
class KMNISTTask:
    """Image classification on in-memory tensors, for :func:`hw2lib.train.train` (Chapter 2).

    Every epoch shuffles the training set with a permutation drawn from the generator
    and slices it into batches (no per-item DataLoader: indexing a tensor is far cheaper;
    the shuffled copy costs one training set's memory during the epoch). The dev set is
    evaluated in one batch. ``channels_last`` stores the images in the memory layout
    that oneDNN's convolutions prefer on CPU.
    """

    train_images: torch.Tensor
    train_labels: torch.Tensor
    dev_images: torch.Tensor
    dev_labels: torch.Tensor
    batch_size: int = 8
    channels_last: bool = False
    _dev_cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if len(self.train_images) != len(self.train_labels) or len(self.dev_images) != len(self.dev_labels):
            raise ValueError("images and labels differ in length")
        if self.channels_last:
            self.train_images = self.train_images.contiguous(memory_format=torch.channels_last)
            self.dev_images = self.dev_images.contiguous(memory_format=torch.channels_last)

    def training_batches(self, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(self.train_labels), generator=generator)
        # One gather per epoch, then every batch is a view: the same batches as gathering each one,
        # without two small copies per step (at batch size 8 a step is only about 2 ms).
        images, labels = self.train_images[order], self.train_labels[order]
        for start in range(0, len(order), self.batch_size):
            yield images[start:start + self.batch_size], labels[start:start + self.batch_size]

    def __len__(self) -> int:
        """Batches per epoch."""
        return -(-len(self.train_labels) // self.batch_size)

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        images, labels = batch
        return F.nll_loss(model(images), labels)

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        device = model_device(model)
        if device not in self._dev_cache:  # copy the dev set to the device once, not every epoch
            self._dev_cache = {device: (self.dev_images.to(device), self.dev_labels.to(device))}
        images, labels = self._dev_cache[device]
        log_probabilities = model(images)
        return {"dev_loss": F.nll_loss(log_probabilities, labels).item(),
                "dev_accuracy": (log_probabilities.argmax(dim=1) == labels).float().mean().item()}


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Predicted classes (N,) of ``images`` in eval mode, on the model's device (Chapter 2)."""
    was_training = model.training
    model.eval()
    device = model_device(model)
    predictions = [model(images[start:start + batch_size].to(device)).argmax(dim=1).cpu()
                   for start in range(0, len(images), batch_size)]
    model.train(was_training)
    return torch.cat(predictions) if predictions else torch.empty(0, dtype=torch.long)


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of ``images`` whose predicted class is their label (Chapter 2)."""
    if len(labels) == 0:
        raise ValueError("accuracy of an empty set is undefined")
    return (predict(model, images) == labels.cpu()).float().mean().item()


def confusion_matrix(labels: torch.Tensor, predictions: torch.Tensor, num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """Counts (num_classes, num_classes): row = true class, column = predicted class (Chapter 2)."""
    if labels.shape != predictions.shape:
        raise ValueError(f"labels {tuple(labels.shape)} and predictions {tuple(predictions.shape)} differ in shape")
    pairs = labels.long() * num_classes + predictions.long()
    return torch.bincount(pairs, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def misclassified(labels: torch.Tensor, predictions: torch.Tensor) -> torch.Tensor:
    """Indices of the examples whose prediction is wrong, in order (Chapter 2)."""
    return torch.nonzero(labels != predictions).flatten()


@torch.no_grad()
def activation_maps(model: CNN, image: torch.Tensor, layer: str = "conv1", after_relu: bool = False) -> torch.Tensor:
    """The feature maps of ``layer`` ("conv1" or "conv2") for one image (Chapter 2, Q2.5).

    ``image`` is (1, 28, 28) or (28, 28). By default the maps are the convolution's
    output before the ReLU, as the course skeleton's forward hook on ``conv1`` recorded
    them; ``after_relu=True`` keeps only what passes the ReLU. Returns (channels, H, W):
    (8, 28, 28) for conv1, (16, 12, 12) for conv2.
    """
    if layer not in ("conv1", "conv2"):
        raise ValueError(f"unknown layer {layer!r}; choose conv1 or conv2")
    recorded: dict[str, torch.Tensor] = {}
    hook = getattr(model, layer).register_forward_hook(lambda module, inputs, output: recorded.update(maps=output))
    was_training = model.training
    model.eval()
    try:
        model(image.reshape(1, 1, IMAGE_SIZE, IMAGE_SIZE).to(model_device(model)))
    finally:
        hook.remove()
        model.train(was_training)
    maps = recorded["maps"][0].cpu()
    return F.relu(maps) if after_relu else maps


@torch.no_grad()
def dead_units(model: nn.Module, images: torch.Tensor) -> dict[str, float]:
    """For each layer followed by a ReLU, the fraction of its units that output zero for every image (Chapter 2).

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
    was_training = model.training
    model.eval()
    try:
        model(images.to(model_device(model)))
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
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

"""Tests for hw2lib.cnn: the Q2.4 network, the FC baseline, the KMNIST task and the analysis helpers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hw2lib.cnn_runs import KMNISTTask
from hw2lib.cnn import (CNN, FullyConnected, accuracy, activation_maps, build_model, confusion_matrix,
                        count_parameters, misclassified, permute_images, permute_pixels, pixel_permutation, predict)
from hw2lib.kmnist import KMNIST
from hw2lib.train import train

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def kmnist(kmnist_t10k):
    return kmnist_t10k


def test_cnn_shapes_parameters_and_log_probabilities():
    torch.manual_seed(0)
    model = CNN()
    assert count_parameters(model) == 420_906
    assert isinstance(model.conv1, nn.Conv2d) and model.conv1.out_channels == 8 and model.conv1.kernel_size == (5, 5)
    assert model.conv2.kernel_size == (3, 3) and model.fc1.in_features == 16 * 6 * 6
    model.eval()
    output = model(torch.rand(4, 1, 28, 28))
    assert output.shape == (4, 10)
    assert torch.allclose(output.exp().sum(dim=1), torch.ones(4), atol=1e-6)  # LogSoftmax output
    assert (output <= 0).all()


def test_fc_baseline_is_at_least_as_large_and_model_names_are_checked():
    assert count_parameters(FullyConnected()) == 421_250 >= count_parameters(CNN())
    assert FullyConnected()(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    assert isinstance(build_model("fc"), FullyConnected) and isinstance(build_model("cnn"), CNN)
    with pytest.raises(ValueError, match="unknown model 'mlp'"):
        build_model("mlp")


def test_dropout_is_active_only_in_train_mode():
    torch.manual_seed(0)
    model, images = CNN(dropout=0.3), torch.rand(2, 1, 28, 28)
    model.eval()
    assert torch.equal(model(images), model(images))
    model.train()
    assert not torch.equal(model(images), model(images))


def test_pixel_permutation_is_fixed_and_applied_to_every_split():
    permutation = pixel_permutation()
    assert torch.equal(permutation, pixel_permutation()) and not torch.equal(permutation, pixel_permutation(seed=1))
    assert torch.equal(torch.sort(permutation).values, torch.arange(784))
    images = torch.rand(5, 1, 28, 28)
    permuted = permute_images(images, permutation)
    assert torch.equal(permuted.reshape(5, -1)[:, 10], images.reshape(5, -1)[:, permutation[10]])
    inverse = torch.argsort(permutation)
    assert torch.equal(permute_images(permuted, inverse), images)

    splits = {name: (torch.rand(3, 1, 28, 28), torch.arange(3)) for name in ("train", "dev", "test")}
    data = permute_pixels(KMNIST("kmnist-t10k", "toy", splits))
    for name in splits:
        assert torch.equal(data.splits[name][0], permute_images(splits[name][0], permutation))
    assert "permuted" in data.description and data.variant == "kmnist-t10k"


def test_task_batches_cover_the_training_set_once_per_epoch():
    images, labels = torch.rand(21, 1, 28, 28), torch.arange(21)
    task = KMNISTTask(images, labels, images[:3], labels[:3], batch_size=8)
    batches = list(task.training_batches(torch.Generator().manual_seed(0)))
    assert [len(batch_labels) for _, batch_labels in batches] == [8, 8, 5] and len(task) == 3
    seen = torch.cat([batch_labels for _, batch_labels in batches])
    assert torch.equal(torch.sort(seen).values, labels) and not torch.equal(seen, labels)  # shuffled, complete
    for batch_images, batch_labels in batches:
        assert torch.equal(batch_images, images[batch_labels])  # images stay with their labels
    again = list(task.training_batches(torch.Generator().manual_seed(0)))
    assert torch.equal(torch.cat([b for _, b in again]), seen)
    with pytest.raises(ValueError, match="batch_size"):
        KMNISTTask(images, labels, images, labels, batch_size=0)


def test_confusion_matrix_and_misclassified():
    labels = torch.tensor([0, 0, 1, 2, 2, 2])
    predictions = torch.tensor([0, 1, 1, 2, 0, 2])
    matrix = confusion_matrix(labels, predictions, num_classes=3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert matrix.sum() == 6 and matrix.trace() == 4
    assert misclassified(labels, predictions).tolist() == [1, 4]
    with pytest.raises(ValueError, match="differ in shape"):
        confusion_matrix(labels, predictions[:3])


def test_activation_maps_are_the_conv_outputs():
    torch.manual_seed(0)
    model, image = CNN(), torch.rand(1, 28, 28)
    conv1 = activation_maps(model, image)
    assert conv1.shape == (8, 28, 28)
    assert torch.allclose(conv1, model.conv1(image.unsqueeze(0))[0], atol=1e-6)
    assert (conv1 < 0).any()  # before the ReLU, as the course skeleton's hook recorded them
    assert (activation_maps(model, image, after_relu=True) >= 0).all()
    assert activation_maps(model, image, layer="conv2").shape == (16, 12, 12)
    with pytest.raises(ValueError, match="unknown layer"):
        activation_maps(model, image, layer="fc1")


def test_short_training_on_kmnist_beats_chance_by_far(kmnist):
    train_images, train_labels = kmnist.train
    task = KMNISTTask(train_images[:2000], train_labels[:2000], *kmnist.dev, batch_size=32)
    torch.manual_seed(42)
    model = CNN()
    history = train(model, task, epochs=2, learning_rate=1e-3, seed=42, device="cpu", progress=False)
    assert history[1]["train_loss"] < history[0]["train_loss"] < 2.2  # chance level is ln 10 = 2.30
    assert history[1]["dev_accuracy"] > 0.6  # chance is 0.1
    test_accuracy = accuracy(model, *kmnist.test)
    assert test_accuracy > 0.6
    predictions = predict(model, kmnist.test[0])
    matrix = confusion_matrix(kmnist.test[1], predictions)
    assert matrix.sum(dim=1).tolist() == [100] * 10  # kmnist-t10k's test split is balanced
    assert matrix.trace().item() / 1000 == pytest.approx(test_accuracy)

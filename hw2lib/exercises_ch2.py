"""Exercises of chapter 2 (Q2.1, Q2.4): checkers of a reader's CNN and of a predicted parameter count.

:func:`check_cnn` builds the reader's CNN class next to :class:`hw2lib.cnn.CNN` and compares conv1,
the layer sizes, the parameter count and, with the reference's weights copied in, the
log-probabilities in eval and in training mode (dropout). :func:`check_cnn_without_first_pool` checks
a predicted parameter count of the CNN with its first max-pool removed (Question 2.1's exercise).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from .cnn import CNN
from .convolution import conv_output_shape
from .exercise_checks import (
    CheckFailure,
    CheckResult,
    NotImplementedYet,
    as_count,
    as_tensor,
    call_answer,
    checker,
    close,
    fail,
    first_difference,
    name_of,
    seeded,
    seeded_module,
    show,
)


def _parameter_shapes(model: nn.Module) -> list[tuple[int, ...]]:
    return [tuple(parameter.shape) for parameter in model.parameters()]


def _check_cnn_layers(model: nn.Module, reference: CNN) -> None:
    """conv1 present and configured as the homework says, and the same parameter shapes as the reference."""
    conv1 = getattr(model, "conv1", None)
    if not isinstance(conv1, nn.Conv2d):
        raise fail("the model's attributes", "model.conv1, an nn.Conv2d",
                   "no attribute conv1" if conv1 is None else f"a {type(conv1).__name__}",
                   "cnn-conv1-missing", "")
    settings = ("in_channels", "out_channels", "kernel_size", "stride", "padding")
    got, expected = ({name: getattr(layer, name) for name in settings} for layer in (conv1, reference.conv1))
    if got["padding"] != expected["padding"]:
        raise fail("the model's conv1 layer", f"padding {expected['padding']}", f"padding {got['padding']}",
                   "cnn-padding", "")
    if got != expected:
        raise fail("the model's conv1 layer", str(expected), str(got), "cnn-layer-sizes", "")
    got_shapes, expected_shapes = _parameter_shapes(model), _parameter_shapes(reference)
    if sorted(got_shapes) != sorted(expected_shapes):
        count = sum(math.prod(shape) for shape in got_shapes)
        missing = [shape for shape in expected_shapes if shape not in got_shapes]
        extra = [shape for shape in got_shapes if shape not in expected_shapes]
        only_biases = all(len(shape) == 1 for shape in missing) and not extra
        raise fail("the model's parameters", f"{sum(math.prod(s) for s in expected_shapes):,} parameters",
                   f"{count:,}; missing parameter shapes {missing}, unexpected {extra}",
                   "cnn-biases" if only_biases else "cnn-layer-sizes", "")


def _copy_reference_weights(model: nn.Module, reference: CNN) -> None:
    """Give the reader's model the reference's weights, matching parameters by shape (all distinct)."""
    by_shape = {tuple(parameter.shape): parameter for parameter in reference.parameters()}
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(by_shape[tuple(parameter.shape)])


def _forward(model: nn.Module, images: torch.Tensor, training: bool, seed: int) -> torch.Tensor:
    model.train(training)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        output = call_answer(model, images, where=f"a batch of {len(images)} images of shape (1, 28, 28)")
    return as_tensor(output, "the model's output", torch.float32)


@checker
def check_cnn(model_class: Callable[[], nn.Module]) -> CheckResult:
    """Check the reader's CNN class (chapter 2, Question 2.4) against :class:`hw2lib.cnn.CNN`: conv1
    reachable and configured, the layer sizes and parameter count, the output shape, the
    log-probabilities, and the forward pass (with the reference's weights) in eval and train mode."""
    model = seeded_module(lambda: call_answer(model_class, where=f"{name_of(model_class)}()"), seed=60)
    if not isinstance(model, nn.Module):
        raise CheckFailure(f"✗ {name_of(model_class)}() should build an nn.Module, got {type(model).__name__}.")
    reference = seeded_module(CNN, seed=61)
    _check_cnn_layers(model, reference)
    _copy_reference_weights(model, reference)
    images = torch.rand(5, 1, 28, 28, generator=seeded(62))
    got, expected = _forward(model, images, False, 0), _forward(reference, images, False, 0)
    where = "5 random images, in eval mode, with the same weights as the library's CNN"
    if got.shape != expected.shape:
        raise fail(where, f"output shape {tuple(expected.shape)}", f"{tuple(got.shape)}", None,
                   "one row of 10 log-probabilities per image.")
    if not close(got, expected, rtol=1e-4, atol=1e-5):
        mistake = "cnn-forward"
        if close(got.exp().sum(dim=0), torch.ones(got.shape[1]), rtol=1e-4, atol=1e-4):
            mistake = "cnn-log-softmax-axis"  # each class's column sums to 1 over the batch
        elif close(torch.log_softmax(got, dim=1), expected, rtol=1e-4, atol=1e-5):
            mistake = "cnn-log-softmax"
        raise fail(where, f"log-probabilities, first row {show(expected[0], 10)}", show(got[0], 10), mistake, "")
    got, expected = _forward(model, images, True, 1), _forward(reference, images, True, 1)
    if not close(got, expected, rtol=1e-4, atol=1e-5):
        raise fail("5 random images in training mode (same random seed as the library's CNN)",
                   *first_difference(got, expected, "log-probabilities"), "cnn-dropout", "")
    return CheckResult(True, f"✓ Passed: {name_of(model_class)} has conv1, the homework's layer sizes "
                             f"({sum(math.prod(s) for s in _parameter_shapes(reference)):,} parameters) and "
                             f"computes the same log-probabilities as the library's CNN.", "passed")


def cnn_without_first_pool_parameters() -> int:
    """Parameters of the homework's CNN with the first max-pool removed (chapter 2, Question 2.1's
    exercise): conv2 then reads 28 x 28 maps, so fc1 reads 16 x 13 x 13 values."""
    reference = CNN()
    after_conv1 = conv_output_shape(28, reference.conv1.kernel_size, padding=reference.conv1.padding)
    after_conv2 = conv_output_shape(after_conv1, reference.conv2.kernel_size, padding=reference.conv2.padding)
    pooled = conv_output_shape(after_conv2, 2, stride=2)
    fc1_inputs = reference.conv2.out_channels * pooled[0] * pooled[1]
    unchanged = sum(parameter.numel() for name, parameter in reference.named_parameters() if not name.startswith("fc1"))
    return unchanged + (fc1_inputs + 1) * reference.fc1.out_features


@checker
def check_cnn_without_first_pool(predicted: int | None) -> CheckResult:
    """Check a predicted parameter count of the homework's CNN with its first max-pool removed
    (chapter 2, Question 2.1) against :func:`cnn_without_first_pool_parameters`."""
    if predicted is None:
        raise NotImplementedYet("the prediction", "○ The prediction is not implemented yet: write your number "
                                                  "in the cell above, then run this cell again.")
    got = as_count(predicted, "the prediction")
    expected = cnn_without_first_pool_parameters()
    reference = CNN()
    original = sum(parameter.numel() for parameter in reference.parameters())
    if got == expected:
        return CheckResult(True, f"✓ Passed: {expected:,} parameters, {expected / original:.1f} times the "
                                 f"{original:,} of the homework's CNN.", "passed")
    fc1 = reference.fc1
    fc1_inputs_if_conv2_kept_28 = reference.conv2.out_channels * (28 // 2) ** 2  # as if conv2 kept the 28 x 28 size
    biases = sum(parameter.numel() for name, parameter in reference.named_parameters() if name.endswith("bias"))
    wrong = {"pool-has-no-weights": original,
             "conv2-shrinks": original + (fc1_inputs_if_conv2_kept_28 - fc1.in_features) * fc1.out_features,
             "cnn-biases": expected - biases}
    mistake = next((key for key, count in wrong.items() if got == count), None)
    raise fail("the CNN without its first max-pool", f"{expected:,}", f"{got:,g}", mistake,
               "follow the shapes: 28 x 28 after conv1, 26 x 26 after conv2, 13 x 13 after the pool; "
               "then fc1 has (16 x 13 x 13 + 1) x 600 parameters.")

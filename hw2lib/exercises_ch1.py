"""Exercises of chapter 1 (Q1.1 (a)-(c), Q1.2): checkers of a reader's convolutions and self-attention.

Each ``check_*`` runs the reader's function next to the reference of :mod:`hw2lib.convolution` on
fixed edge cases and seeded random inputs and returns a :class:`~hw2lib.exercise_checks.CheckResult`:
the output shape of a valid convolution (Q1.1 (a)), the convolution matrix **M** and its element rule
(Q1.1 (b)), the parameter counts of Question 1's network and of its fully connected variant (Q1.1 (c)),
and self-attention over the pixels (Q1.2).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from .convolution import (
    attention_output,
    attention_probabilities,
    circulant_conv_matrix,
    conv_matrix,
    conv_net_parameter_count,
    conv_output_shape,
    fc_net_parameter_count,
    flip_kernel,
)
from .exercise_checks import (
    MISTAKES,
    CheckFailure,
    CheckResult,
    as_count,
    as_float,
    as_tensor,
    call_answer,
    checker,
    close,
    fail,
    first_difference,
    name_of,
    passed_on_all,
    seeded,
    show,
)

CLASSES = 3  # Question 1's network classifies into three classes


# --- chapter 1, Question 1.1 (a): the output shape ------------------------------------------------

SHAPE_CASES = [(5, 5, 3, 3), (6, 9, 2, 4), (9, 6, 4, 2), (7, 7, 1, 1), (7, 8, 7, 8), (1, 10, 1, 3),
               (10, 1, 3, 1), (28, 28, 5, 5), (13, 4, 2, 4)]


def _random_shapes(count: int, seed: int, largest: int = 8) -> list[tuple[int, int, int, int]]:
    """(H, W, M, N) with 1 <= M <= H, 1 <= N <= W, seeded."""
    generator, shapes = seeded(seed), []
    for _ in range(count):
        height, width = (int(size) for size in torch.randint(1, largest + 1, (2,), generator=generator))
        kernel = (int(torch.randint(1, height + 1, (1,), generator=generator)),
                  int(torch.randint(1, width + 1, (1,), generator=generator)))
        shapes.append((height, width, *kernel))
    return shapes


def _as_int_pair(value: Any, name: str) -> tuple:
    try:
        pair = tuple(value)
        if len(pair) == 2 and all(float(item) == int(item) for item in pair):
            return tuple(int(item) for item in pair)
    except (TypeError, ValueError):
        pass
    raise CheckFailure(f"✗ {name} should return a pair (H', W') of integers, got {show(value)}.")


@checker
def check_conv_output_shape(fn: Callable[[int, int, int, int], tuple[int, int]]) -> CheckResult:
    """Check ``fn(H, W, M, N) -> (H', W')``, the output shape of a valid convolution (chapter 1,
    Question 1.1 (a)) against :func:`hw2lib.convolution.conv_output_shape`."""
    cases = SHAPE_CASES + _random_shapes(30, seed=11, largest=30)
    for height, width, kernel_height, kernel_width in cases:
        where = f"H = {height}, W = {width}, M = {kernel_height}, N = {kernel_width}"
        got = _as_int_pair(call_answer(fn, height, width, kernel_height, kernel_width, where=where), name_of(fn))
        expected = conv_output_shape((height, width), (kernel_height, kernel_width))
        if got != expected:
            known = {"off-by-one": (height - kernel_height, width - kernel_width),
                     "shape-swapped": expected[::-1], "same-padding": (height, width)}
            mistake = next((key for key, answer in known.items() if got == answer), None)
            raise fail(where, f"(H', W') = {expected}", str(got), mistake,
                       "H' = H - M + 1 and W' = W - N + 1 (stride 1, no padding).")
    return passed_on_all(name_of(fn), len(cases))


# --- chapter 1, Question 1.1 (b): the convolution matrix and its element rule --------------------

MATRIX_CASES = [(4, 5, 2, 3), (3, 3, 2, 2), (5, 4, 3, 2), (6, 6, 1, 1), (4, 4, 4, 4), (1, 5, 1, 3), (5, 1, 3, 1),
                (7, 6, 3, 4)]


def _column_major_order(height: int, width: int) -> torch.Tensor:
    """Position k of the column-major vec holds row-major pixel number ``order[k]``."""
    return torch.arange(height * width).reshape(height, width).T.reshape(-1)


def _one_d_rule(kernel: torch.Tensor, rows: int, cols: int, sign: int) -> torch.Tensor:
    """The seed report's 1-D Toeplitz rule: M[i, j] = k[sign (j - i)] on the flattened kernel."""
    flat = kernel.reshape(-1)
    offsets = sign * (torch.arange(cols)[None, :] - torch.arange(rows)[:, None])
    inside = (offsets >= 0) & (offsets < flat.numel())
    return torch.where(inside, flat[offsets.clamp(0, flat.numel() - 1)], torch.zeros((), dtype=kernel.dtype))


def _split_with_input_width(kernel: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The element rule with the row split by W instead of W' (a, b = divmod(i, W))."""
    out_h, out_w = conv_output_shape((height, width), tuple(kernel.shape))
    matrix = torch.zeros(out_h * out_w, height * width, dtype=kernel.dtype)
    for row in range(out_h * out_w):
        a, b = divmod(row, width)
        for col in range(height * width):
            c, d = divmod(col, width)
            if 0 <= c - a < kernel.shape[0] and 0 <= d - b < kernel.shape[1]:
                matrix[row, col] = kernel[c - a, d - b]
    return matrix


def _matrix_mistakes(kernel: torch.Tensor, height: int, width: int) -> list[tuple[str, torch.Tensor]]:
    """Known wrong matrices for this kernel and image size, each named by its :data:`MISTAKES` key."""
    reference = conv_matrix(kernel, (height, width))
    out_h, out_w = conv_output_shape((height, width), tuple(kernel.shape))
    rows, cols = _column_major_order(out_h, out_w), _column_major_order(height, width)
    circulant = circulant_conv_matrix(kernel, (height, width))
    keep = (torch.arange(height)[:, None] < out_h) & (torch.arange(width)[None, :] < out_w)
    return [("flipped-kernel", conv_matrix(flip_kernel(kernel), (height, width))),
            ("column-major", reference[rows][:, cols]), ("column-major", reference[:, cols]),
            ("column-major", reference[rows]), ("column-major", conv_matrix(flip_kernel(kernel), (height, width))
                                                [rows][:, cols]),
            ("circulant", circulant), ("circulant", circulant[: out_h * out_w]),
            ("circulant", circulant[keep.reshape(-1)]),
            ("one-d-rule", _one_d_rule(kernel, *reference.shape, sign=1)),
            ("one-d-rule", _one_d_rule(kernel, *reference.shape, sign=-1)),
            ("row-split-width", _split_with_input_width(kernel, height, width)),
            ("transposed", reference.T)]


def _is_toeplitz(matrix: torch.Tensor) -> bool:
    return bool(torch.equal(matrix[1:, 1:], matrix[:-1, :-1])) and bool(matrix.abs().sum() > 0)


def _diagnose_matrix(got: torch.Tensor, kernel: torch.Tensor, height: int, width: int) -> str | None:
    """The :data:`MISTAKES` key of a wrong matrix, if it is a known one."""
    for mistake, wrong in _matrix_mistakes(kernel, height, width):
        if close(got, wrong):
            return mistake
    reference = conv_matrix(kernel, (height, width))
    if got.shape == reference.shape and _is_toeplitz(got) and not _is_toeplitz(reference):
        return "one-d-rule"  # constant along every diagonal: some 1-D rule
    return None if got.shape == reference.shape else "matrix-shape"


def _matrix_failure(got: torch.Tensor, kernel: torch.Tensor, height: int, width: int) -> CheckFailure:
    reference = conv_matrix(kernel, (height, width))
    where = f"a {kernel.shape[0]} x {kernel.shape[1]} kernel K = {show(kernel.tolist())}, H = {height}, W = {width}"
    mistake = _diagnose_matrix(got, kernel, height, width)
    if got.shape != reference.shape:
        return fail(where, f"M of shape {tuple(reference.shape)}", f"shape {tuple(got.shape)}", mistake,
                    MISTAKES["matrix-shape"])
    row, col = (int(index) for index in (~torch.isclose(got, reference, rtol=1e-5, atol=1e-6)).nonzero()[0])
    out_w = conv_output_shape((height, width), tuple(kernel.shape))[1]
    at = f"M[{row}, {col}] (output pixel (a, b) = {divmod(row, out_w)}, input pixel (c, d) = {divmod(col, width)})"
    return fail(where, f"{at} = {float(reference[row, col]):.6g}", f"{float(got[row, col]):.6g}", mistake,
                "M[a W' + b, c W + d] = K[c - a, d - b] when 0 <= c - a < M and 0 <= d - b < N, else 0.")


def _matrix_cases(seed: int) -> list[tuple[torch.Tensor, int, int]]:
    """(kernel, H, W): fixed edge cases, then random sizes; distinct kernel values (seeded)."""
    generator = seeded(seed)
    cases = []
    for height, width, kernel_height, kernel_width in MATRIX_CASES + _random_shapes(12, seed=seed + 1):
        kernel = torch.randn(kernel_height, kernel_width, generator=generator, dtype=torch.float64)
        cases.append((kernel, height, width))
    return cases


@checker
def check_conv_matrix(fn: Callable[[torch.Tensor, int, int], torch.Tensor]) -> CheckResult:
    """Check ``fn(kernel, H, W) -> M`` (shape ``(H'W', HW)``, ``M @ x.reshape(-1)`` equal to the valid
    cross-correlation, row-major vec) against :func:`hw2lib.convolution.conv_matrix` (chapter 1,
    Question 1.1 (b))."""
    cases = _matrix_cases(seed=21)
    for kernel, height, width in cases:
        where = f"kernel {tuple(kernel.shape)}, H = {height}, W = {width}"
        got = as_tensor(call_answer(fn, kernel.clone(), height, width, where=where), f"{name_of(fn)}'s result")
        if not close(got, conv_matrix(kernel, (height, width))):
            raise _matrix_failure(got, kernel, height, width)
    return passed_on_all(name_of(fn), len(cases))


@checker
def check_conv_matrix_entry(fn: Callable[[torch.Tensor, int, int, int, int], float]) -> CheckResult:
    """Check the element rule ``fn(kernel, H, W, i, j) -> M[i, j]`` on every entry of **M** against
    :func:`hw2lib.convolution.conv_matrix_entry` (chapter 1, Question 1.1 (b))."""
    cases = _matrix_cases(seed=31)
    entries = 0
    for kernel, height, width in cases:
        out_h, out_w = conv_output_shape((height, width), tuple(kernel.shape))
        got = torch.zeros(out_h * out_w, height * width, dtype=torch.float64)
        for row in range(out_h * out_w):
            for col in range(height * width):
                where = f"kernel {tuple(kernel.shape)}, H = {height}, W = {width}, i = {row}, j = {col}"
                got[row, col] = as_float(call_answer(fn, kernel.clone(), height, width, row, col, where=where),
                                         name_of(fn))
        entries += got.numel()
        if not close(got, conv_matrix(kernel, (height, width))):
            raise _matrix_failure(got, kernel, height, width)
    return CheckResult(True, f"✓ Passed: {name_of(fn)} gives every one of the {entries:,} entries of M in "
                             f"{len(cases)} cases (random and edge cases).", "passed")


# --- chapter 1, Question 1.1 (c): parameter counts ------------------------------------------------

COUNT_CASES = [(28, 28, 5, 5), (28, 28, 4, 4), (10, 13, 3, 2), (9, 9, 1, 1), (7, 8, 2, 3), (5, 5, 4, 4),
               (6, 9, 2, 4), (64, 48, 7, 3)]


def _count_mistakes(height: int, width: int, kernel_height: int, kernel_width: int, which: str) -> list:
    """(key, wrong count) for the usual mistakes of the conv (``which="conv"``) or the fc count."""
    out_h, out_w = conv_output_shape((height, width), (kernel_height, kernel_width))
    pooled = (out_h // 2) * (out_w // 2)
    halves, ceiled = (out_h / 2) * (out_w / 2), math.ceil(out_h / 2) * math.ceil(out_w / 2)
    kernel, pixels = kernel_height * kernel_width, height * width
    if which == "conv":
        return [("floor", kernel + CLASSES * halves), ("floor", kernel + CLASSES * ceiled),
                ("pooling-ignored", kernel + CLASSES * out_h * out_w),
                ("biases", kernel + 1 + CLASSES * pooled + CLASSES),
                ("biases", kernel + 1 + CLASSES * pooled), ("biases", kernel + CLASSES * pooled + CLASSES),
                ("output-layer-missing", kernel), ("kernel-missing", CLASSES * pooled)]
    return [("seed-fc-count", kernel * pooled + CLASSES * pooled),
            ("seed-fc-count", kernel * halves + CLASSES * halves),
            ("seed-fc-count", kernel * pooled), ("seed-fc-count", kernel * halves),
            ("floor", (pixels + CLASSES) * halves), ("floor", (pixels + CLASSES) * ceiled),
            ("pooling-ignored", pixels * out_h * out_w + CLASSES * out_h * out_w),
            ("biases", (pixels + 1) * pooled + (pooled + 1) * CLASSES), ("output-layer-missing", pixels * pooled)]


@checker
def check_parameter_counts(conv_fn: Callable[[int, int, int, int], int],
                           fc_fn: Callable[[int, int, int, int], int]) -> CheckResult:
    """Check ``conv_fn(H, W, M, N)`` and ``fc_fn(H, W, M, N)``, the weights (no biases, 3 classes) of
    Question 1's network and of its fully connected variant (chapter 1, Question 1.1 (c)), against
    :func:`hw2lib.convolution.conv_net_parameter_count` and :func:`~hw2lib.convolution.fc_net_parameter_count`."""
    cases = COUNT_CASES + [case for case in _random_shapes(40, seed=41, largest=40) if case[0] - case[2] >= 1
                           and case[1] - case[3] >= 1]
    for height, width, kernel_height, kernel_width in cases:
        where = f"H = {height}, W = {width}, M = {kernel_height}, N = {kernel_width}"
        shapes = ((height, width), (kernel_height, kernel_width))
        for fn, which, reference in ((conv_fn, "conv", conv_net_parameter_count(*shapes, CLASSES)),
                                     (fc_fn, "fc", fc_net_parameter_count(*shapes, CLASSES))):
            got = as_count(call_answer(fn, height, width, kernel_height, kernel_width, where=where), name_of(fn))
            if got != reference:
                wrong = _count_mistakes(height, width, kernel_height, kernel_width, which)
                mistake = next((key for key, count in wrong if math.isclose(got, count)), None)
                if mistake is None and got != int(got):
                    mistake = "floor"  # a fractional count: the halves were not rounded down
                network = "the convolutional network" if which == "conv" else "the fully connected variant"
                raise fail(f"{where} ({name_of(fn)}, {network})", f"{reference:,}", f"{got:,g}", mistake,
                           "conv net: MN + 3 floor(H'/2) floor(W'/2); fully connected: "
                           "HW floor(H'/2) floor(W'/2) + 3 floor(H'/2) floor(W'/2).")
    return CheckResult(True, f"✓ Passed: {name_of(conv_fn)} and {name_of(fc_fn)} match the library on all "
                             f"{len(cases)} inputs (odd and even H', W').", "passed")


# --- chapter 1, Question 1.2: self-attention over the pixels --------------------------------------

def _attention_inputs(seed: int) -> list[torch.Tensor]:
    generator = seeded(seed)
    fixed = [[0.5, -1.0, 2.0], [1.0], [0.0, 0.0, 0.0, 0.0], [-2.0, 3.0, 0.5, 1.0]]
    cases = [torch.tensor(values, dtype=torch.float64) for values in fixed]
    cases += [torch.randn(size, generator=generator, dtype=torch.float64) for size in (6, 12, 20)]
    cases += [torch.rand(49, generator=generator, dtype=torch.float64)]  # a 7 x 7 image in [0, 1)
    cases.append(torch.tensor([30.0, -20.0, 25.0, 0.0], dtype=torch.float64))  # scores up to 900: exp overflows
    return cases


def _as_attention_pair(value: Any, name: str, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise CheckFailure(f"✗ {name} should return a pair (p, o), got {show(value)}.")
    probabilities, outputs = (as_tensor(item, f"{name}'s {label}") for item, label in zip(value, "po"))
    if outputs.numel() == size:
        outputs = outputs.reshape(size)
    return probabilities, outputs


@checker
def check_self_attention(fn: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]) -> CheckResult:
    """Check ``fn(x) -> (p, o)`` for a 1-D ``x``: single-head self-attention with W_Q = W_K = W_V = 1
    (chapter 1, Question 1.2) against :func:`hw2lib.convolution.attention_probabilities` and
    :func:`~hw2lib.convolution.attention_output`."""
    cases = _attention_inputs(seed=51)
    for pixels in cases:
        where = f"x = {show(pixels)}"
        got_p, got_o = _as_attention_pair(call_answer(fn, pixels.clone(), where=where), name_of(fn), len(pixels))
        probabilities, outputs = attention_probabilities(pixels), attention_output(pixels)
        if close(got_p, probabilities) and close(got_o, outputs):
            continue
        scores = torch.outer(pixels, pixels)
        mistake = None
        if not (torch.isfinite(got_p).all() and torch.isfinite(got_o).all()):
            mistake = "overflow"
        elif close(got_p, probabilities.T):
            mistake = "softmax-axis"
        elif close(got_p, torch.exp(scores)):
            mistake = "not-normalised"
        elif close(got_p, probabilities) and close(got_o, probabilities.T @ pixels):
            mistake = "output-transposed"
        shown = (first_difference(got_p, probabilities, "p") if not close(got_p, probabilities)
                 else first_difference(got_o, outputs, "o"))
        raise fail(where, *shown, mistake,
                   "p_ij = exp(x_i x_j) / sum over k of exp(x_i x_k) and o_i = sum over j of p_ij x_j.")
    return passed_on_all(name_of(fn), len(cases))

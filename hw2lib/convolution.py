"""Question 1 on paper, checked by the machine: a convolution as a matrix, parameter counts,
and self-attention over pixels. Explained in chapter 1.

Conventions (those of deep-learning libraries and of the homework):

* "convolution" means cross-correlation, ``z[a, b] = sum_{m, n} K[m, n] x[a + m, b + n]``;
  the true convolution flips the kernel (:func:`convolve2d`).
* ``vec`` is row-major: pixel ``(c, d)`` of an ``H x W`` image is entry ``c * W + d`` of ``x'``.
* A "valid" convolution has stride 1 and no padding; its output is ``H' x W'`` with
  ``H' = H - M + 1`` and ``W' = W - N + 1`` for an ``M x N`` kernel.
"""

from __future__ import annotations

import operator

import torch
from torch import nn

IntPair = int | tuple[int, int]


def _positive_int(value: object, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got a bool")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _pair(value: IntPair, name: str, minimum: int = 1) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair (height, width), got {value!r}")
        return (_positive_int(value[0], f"{name}[0]", minimum), _positive_int(value[1], f"{name}[1]", minimum))
    single = _positive_int(value, name, minimum)
    return single, single


def conv_output_size(input_size: int, kernel_size: int, stride: int = 1, padding: int = 0) -> int:
    """Length of a convolution's output along one axis: ``floor((n + 2p - k) / s) + 1`` (chapter 1).

    Raises ValueError when a size is not positive, the padding is negative, or the kernel is
    larger than the padded input (no output position exists).
    """
    input_size = _positive_int(input_size, "input size")
    kernel_size = _positive_int(kernel_size, "kernel size")
    stride = _positive_int(stride, "stride")
    padding = _positive_int(padding, "padding", minimum=0)
    padded = input_size + 2 * padding
    if kernel_size > padded:
        raise ValueError(f"kernel size {kernel_size} is larger than the padded input size {padded} "
                         f"(input {input_size} + 2 x padding {padding}): the convolution has no output")
    return (padded - kernel_size) // stride + 1


def conv_output_shape(input_shape: IntPair, kernel_shape: IntPair,
                      stride: IntPair = 1, padding: IntPair = 0) -> tuple[int, int]:
    """Output shape ``(H', W')`` of a 2-D convolution; with the defaults (valid convolution)
    ``(H - M + 1, W - N + 1)``. chapter 1, Q1.1 (a)."""
    (height, width), (kernel_height, kernel_width) = _pair(input_shape, "input shape"), _pair(kernel_shape, "kernel shape")
    (stride_h, stride_w), (pad_h, pad_w) = _pair(stride, "stride"), _pair(padding, "padding", minimum=0)
    return (conv_output_size(height, kernel_height, stride_h, pad_h),
            conv_output_size(width, kernel_width, stride_w, pad_w))


def _check_kernel(kernel: torch.Tensor) -> torch.Tensor:
    if not isinstance(kernel, torch.Tensor) or kernel.dim() != 2:
        raise ValueError(f"kernel must be a 2-D tensor (M, N), got {getattr(kernel, 'shape', type(kernel))}")
    if kernel.numel() == 0:
        raise ValueError("kernel is empty")
    return kernel


def _check_image(image: torch.Tensor) -> torch.Tensor:
    if not isinstance(image, torch.Tensor) or image.dim() != 2:
        raise ValueError(f"image must be a 2-D tensor (H, W), got {getattr(image, 'shape', type(image))}")
    return image


def cross_correlate2d(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Valid cross-correlation ``z[a, b] = sum_{m,n} K[m, n] x[a+m, b+n]`` -- what ``conv2d`` computes
    (chapter 1). Written as a sum of shifted image crops, independently of ``conv2d``."""
    image, kernel = _check_image(image), _check_kernel(kernel)
    out_h, out_w = conv_output_shape(tuple(image.shape), tuple(kernel.shape))
    output = torch.zeros(out_h, out_w, dtype=torch.result_type(image, kernel))
    for m in range(kernel.shape[0]):
        for n in range(kernel.shape[1]):
            output += kernel[m, n] * image[m:m + out_h, n:n + out_w]
    return output


def convolve2d(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Valid *true* convolution ``z[a, b] = sum_{m,n} K[m, n] x[a + M-1-m, b + N-1-n]`` (chapter 1).

    The kernel slides flipped; equal to ``cross_correlate2d(image, flip_kernel(kernel))``.
    """
    image, kernel = _check_image(image), _check_kernel(kernel)
    out_h, out_w = conv_output_shape(tuple(image.shape), tuple(kernel.shape))
    last_m, last_n = kernel.shape[0] - 1, kernel.shape[1] - 1
    output = torch.zeros(out_h, out_w, dtype=torch.result_type(image, kernel))
    for m in range(kernel.shape[0]):
        for n in range(kernel.shape[1]):
            output += kernel[m, n] * image[last_m - m:last_m - m + out_h, last_n - n:last_n - n + out_w]
    return output


def flip_kernel(kernel: torch.Tensor) -> torch.Tensor:
    """The kernel rotated by 180 degrees, turning a cross-correlation into a true convolution (chapter 1)."""
    return torch.flip(_check_kernel(kernel), dims=(0, 1))


def kernel_index_at(row: int, col: int, input_shape: IntPair, kernel_shape: IntPair) -> tuple[int, int] | None:
    """The element rule of **M** (chapter 1, Q1.1 (b)): which kernel entry sits at ``M[row, col]``.

    With ``row = a W' + b`` and ``col = c W + d``: ``(c - a, d - b)`` when ``0 <= c-a < M`` and
    ``0 <= d-b < N``, else ``None`` (the entry is 0).
    """
    height, width = _pair(input_shape, "input shape")
    kernel_height, kernel_width = _pair(kernel_shape, "kernel shape")
    out_h, out_w = conv_output_shape((height, width), (kernel_height, kernel_width))
    row, col = _positive_int(row, "row", 0), _positive_int(col, "col", 0)
    if row >= out_h * out_w or col >= height * width:
        raise IndexError(f"({row}, {col}) is outside M, whose shape is ({out_h * out_w}, {height * width})")
    a, b = divmod(row, out_w)
    c, d = divmod(col, width)
    if 0 <= c - a < kernel_height and 0 <= d - b < kernel_width:
        return c - a, d - b
    return None


def conv_matrix_entry(kernel: torch.Tensor, input_shape: IntPair, row: int, col: int) -> float:
    """``M[row, col]`` from the closed-form element rule, without building **M** (chapter 1)."""
    index = kernel_index_at(row, col, input_shape, tuple(_check_kernel(kernel).shape))
    return 0.0 if index is None else float(kernel[index])


def _conv_matrix_coordinates(kernel: torch.Tensor, input_shape: IntPair):
    """Rows, columns and kernel values of the non-zero pattern of **M**: output pixel (a, b)
    reads input pixel (a + m, b + n) with weight K[m, n]."""
    kernel = _check_kernel(kernel)
    height, width = _pair(input_shape, "input shape")
    out_h, out_w = conv_output_shape((height, width), tuple(kernel.shape))
    a, b, m, n = torch.meshgrid(torch.arange(out_h), torch.arange(out_w), torch.arange(kernel.shape[0]),
                                torch.arange(kernel.shape[1]), indexing="ij")
    rows = (a * out_w + b).reshape(-1)
    cols = ((a + m) * width + (b + n)).reshape(-1)
    values = kernel[m.reshape(-1), n.reshape(-1)]
    return rows, cols, values, (out_h * out_w, height * width)


def conv_matrix(kernel: torch.Tensor, input_shape: IntPair) -> torch.Tensor:
    """Dense **M** in R^{H'W' x HW} with ``vec(conv2d(x, K)) = M vec(x)`` (chapter 1, Q1.1 (b)).

    Differentiable in ``kernel``. For the true convolution use ``conv_matrix(flip_kernel(K), ...)``.
    """
    rows, cols, values, shape = _conv_matrix_coordinates(kernel, input_shape)
    matrix = torch.zeros(shape, dtype=kernel.dtype)
    return matrix.index_put((rows, cols), values)


def conv_matrix_sparse(kernel: torch.Tensor, input_shape: IntPair) -> torch.Tensor:
    """**M** as a coalesced sparse COO tensor: only ``H'W' * MN`` of its ``H'W' * HW`` entries are stored
    (chapter 1)."""
    rows, cols, values, shape = _conv_matrix_coordinates(kernel, input_shape)
    return torch.sparse_coo_tensor(torch.stack([rows, cols]), values, shape, check_invariants=True).coalesce()


def circular_cross_correlate2d(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Circular cross-correlation ``z[a, b] = sum K[m, n] x[(a+m) mod H, (b+n) mod W]``, shape H x W (chapter 1).

    The image wraps around like a torus: ``conv2d`` on the image circularly padded by M-1 rows at the
    bottom and N-1 columns on the right.
    """
    image, kernel = _check_image(image), _check_kernel(kernel)
    conv_output_shape(tuple(image.shape), tuple(kernel.shape))  # the kernel must fit the image
    padded = torch.nn.functional.pad(image[None, None], (0, kernel.shape[1] - 1, 0, kernel.shape[0] - 1),
                                     mode="circular")
    return torch.nn.functional.conv2d(padded, kernel[None, None].to(padded.dtype))[0, 0]


def circulant_conv_matrix(kernel: torch.Tensor, input_shape: IntPair) -> torch.Tensor:
    """The HW x HW matrix of :func:`circular_cross_correlate2d` (chapter 1): doubly block circulant,
    ``C[a W + b, c W + d] = K[(c-a) mod H, (d-b) mod W]`` (0 where that index falls outside K).

    Its rows for ``a < H'``, ``b < W'`` are exactly the rows of the valid **M**.
    """
    kernel = _check_kernel(kernel)
    height, width = _pair(input_shape, "input shape")
    conv_output_shape((height, width), tuple(kernel.shape))
    a, b, m, n = torch.meshgrid(torch.arange(height), torch.arange(width), torch.arange(kernel.shape[0]),
                                torch.arange(kernel.shape[1]), indexing="ij")
    rows = (a * width + b).reshape(-1)
    cols = (((a + m) % height) * width + (b + n) % width).reshape(-1)
    matrix = torch.zeros(height * width, height * width, dtype=kernel.dtype)
    return matrix.index_put((rows, cols), kernel[m.reshape(-1), n.reshape(-1)])


def _check_matrix(matrix: torch.Tensor) -> torch.Tensor:
    if not isinstance(matrix, torch.Tensor) or matrix.dim() != 2:
        raise ValueError(f"expected a 2-D matrix, got {getattr(matrix, 'shape', type(matrix))}")
    return matrix.to_dense() if matrix.is_sparse else matrix


def is_toeplitz(matrix: torch.Tensor) -> bool:
    """Constant along every diagonal: ``A[i, j] = A[i+1, j+1]`` (rectangular allowed). (chapter 1)"""
    matrix = _check_matrix(matrix)
    return bool(torch.equal(matrix[1:, 1:], matrix[:-1, :-1]))


def is_circulant(matrix: torch.Tensor) -> bool:
    """Square and Toeplitz with wrap-around: each row is the previous one shifted right by one. (chapter 1)"""
    matrix = _check_matrix(matrix)
    if matrix.shape[0] != matrix.shape[1]:
        return False
    return bool(torch.equal(torch.roll(matrix, shifts=(1, 1), dims=(0, 1)), matrix))


def _blocks(matrix: torch.Tensor, block_shape: tuple[int, int]) -> torch.Tensor | None:
    """(rows of blocks, cols of blocks, p, q) view, or None when the blocks do not tile the matrix."""
    p, q = _pair(block_shape, "block shape")
    if matrix.shape[0] % p or matrix.shape[1] % q:
        return None
    return matrix.reshape(matrix.shape[0] // p, p, matrix.shape[1] // q, q).permute(0, 2, 1, 3)


def is_doubly_block_toeplitz(matrix: torch.Tensor, block_shape: IntPair) -> bool:
    """Blocks of ``block_shape`` form a Toeplitz pattern (block (r, s) depends on s - r only) and every
    block is itself Toeplitz. Chapter 1 uses it for the valid **M** with blocks of shape ``(W', W)``."""
    blocks = _blocks(_check_matrix(matrix), block_shape)
    if blocks is None:
        return False
    same_along_block_diagonals = torch.equal(blocks[1:, 1:], blocks[:-1, :-1])
    return bool(same_along_block_diagonals and torch.equal(blocks[:, :, 1:, 1:], blocks[:, :, :-1, :-1]))


def is_doubly_block_circulant(matrix: torch.Tensor, block_shape: IntPair) -> bool:
    """A circulant grid of circulant blocks (both square). Chapter 1: the circular-padding matrix with
    blocks of shape ``(W, W)``; never the valid **M** unless the kernel is 1 x 1."""
    blocks = _blocks(_check_matrix(matrix), block_shape)
    if blocks is None or blocks.shape[0] != blocks.shape[1] or blocks.shape[2] != blocks.shape[3]:
        return False
    grid_circulant = torch.equal(torch.roll(blocks, shifts=(1, 1), dims=(0, 1)), blocks)
    return bool(grid_circulant and torch.equal(torch.roll(blocks, shifts=(1, 1), dims=(2, 3)), blocks))


def _pooled_positions(input_shape: IntPair, kernel_shape: IntPair) -> int:
    """floor(H'/2) * floor(W'/2): the size of h2 after the 2x2, stride-2 max-pool."""
    out_h, out_w = conv_output_shape(input_shape, kernel_shape)
    if out_h < 2 or out_w < 2:
        raise ValueError(f"the convolution output {out_h} x {out_w} is smaller than the 2 x 2 max-pool window")
    pooled_h, pooled_w = conv_output_shape((out_h, out_w), 2, stride=2)
    return pooled_h * pooled_w


def conv_net_parameter_count(input_shape: IntPair, kernel_shape: IntPair, num_classes: int = 3) -> int:
    """Weights of conv(M x N) -> ReLU -> maxpool 2x2/2 -> linear to the classes, no biases:
    ``MN + classes * floor(H'/2) floor(W'/2)``. chapter 1, Q1.1 (c)."""
    kernel_height, kernel_width = _pair(kernel_shape, "kernel shape")
    pooled = _pooled_positions(input_shape, kernel_shape)
    return kernel_height * kernel_width + _positive_int(num_classes, "num_classes") * pooled


def fc_net_parameter_count(input_shape: IntPair, kernel_shape: IntPair, num_classes: int = 3) -> int:
    """Weights when conv + max-pool become one fully connected layer from the HW pixels to h2's size:
    ``HW floor(H'/2) floor(W'/2) + classes * floor(H'/2) floor(W'/2)``. chapter 1, Q1.1 (c)."""
    height, width = _pair(input_shape, "input shape")
    pooled = _pooled_positions(input_shape, kernel_shape)
    return height * width * pooled + _positive_int(num_classes, "num_classes") * pooled


class ConvNet(nn.Module):
    """Question 1's network without biases: conv -> ReLU -> maxpool 2x2/2 -> linear -> log-softmax.
    (chapter 1)"""

    def __init__(self, input_shape: IntPair, kernel_shape: IntPair, num_classes: int = 3) -> None:
        super().__init__()
        self.input_shape = _pair(input_shape, "input shape")
        self.conv = nn.Conv2d(1, 1, _pair(kernel_shape, "kernel shape"), bias=False)
        self.pool = nn.MaxPool2d(2, stride=2)
        self.output = nn.Linear(_pooled_positions(input_shape, kernel_shape), num_classes, bias=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # images: (B, H, W)
        hidden = self.pool(torch.relu(self.conv(images[:, None])))
        return torch.log_softmax(self.output(hidden.flatten(1)), dim=-1)


class FullyConnectedNet(nn.Module):
    """The variant whose conv + max-pool are one linear layer with h2's size (no biases). (chapter 1)"""

    def __init__(self, input_shape: IntPair, kernel_shape: IntPair, num_classes: int = 3) -> None:
        super().__init__()
        height, width = _pair(input_shape, "input shape")
        pooled = _pooled_positions(input_shape, kernel_shape)
        self.hidden = nn.Linear(height * width, pooled, bias=False)
        self.output = nn.Linear(pooled, num_classes, bias=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # images: (B, H, W)
        return torch.log_softmax(self.output(torch.relu(self.hidden(images.flatten(1)))), dim=-1)


def _check_flat(pixels: torch.Tensor) -> torch.Tensor:
    if not isinstance(pixels, torch.Tensor) or pixels.dim() != 1 or pixels.numel() == 0:
        raise ValueError("expected the flattened image x' as a non-empty 1-D tensor (use image.reshape(-1)), "
                         f"got {getattr(pixels, 'shape', type(pixels))}")
    if not torch.is_floating_point(pixels):
        raise TypeError(f"x' must be a floating-point tensor, got {pixels.dtype}")
    if not torch.isfinite(pixels).all():
        raise ValueError("x' contains NaN or infinite values")
    return pixels


def attention_probabilities(pixels: torch.Tensor) -> torch.Tensor:
    """``p_ij = exp(x_i x_j) / sum_k exp(x_i x_k)`` for single-head self-attention with
    ``W_Q = W_K = W_V = 1`` and no positional encoding (chapter 1, Q1.2).

    Each row's maximum score is subtracted before ``exp`` so large pixels do not overflow.
    """
    pixels = _check_flat(pixels)
    scores = torch.outer(pixels, pixels)  # query i times key j; the 1/sqrt(d) scale is 1 for d = 1
    weights = torch.exp(scores - scores.max(dim=1, keepdim=True).values)
    return weights / weights.sum(dim=1, keepdim=True)


def attention_output(pixels: torch.Tensor) -> torch.Tensor:
    """``o_i = sum_j p_ij x_j``: each output is an average of the pixel values (chapter 1, Q1.2)."""
    return attention_probabilities(pixels) @ pixels


def counting_kernel(kernel_height: int, kernel_width: int) -> torch.Tensor:
    """The kernel 1, 2, ..., MN (chapter 1): a distinct value per entry, so a heatmap of **M** shows
    where each kernel entry lands."""
    return torch.arange(1.0, kernel_height * kernel_width + 1).reshape(kernel_height, kernel_width)


def symbolic_matrix(input_shape: IntPair, kernel_shape: IntPair) -> list[list[str]]:
    """**M** written with kernel names (chapter 1): ``"k01"`` where ``K[0, 1]`` sits, ``"."`` for a zero."""
    height, width = _pair(input_shape, "input shape")
    out_h, out_w = conv_output_shape(input_shape, kernel_shape)
    rows = []
    for row in range(out_h * out_w):
        labels = [kernel_index_at(row, col, input_shape, kernel_shape) for col in range(height * width)]
        rows.append(["." if label is None else f"k{label[0]}{label[1]}" for label in labels])
    return rows

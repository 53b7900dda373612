"""Tests for hw2lib.convolution (chapter 1): every formula against torch and against hand-worked cases."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hw2lib.plots import draw_conv_matrix
from hw2lib.convolution import (
    ConvNet,
    FullyConnectedNet,
    attention_output,
    attention_probabilities,
    circulant_conv_matrix,
    circular_cross_correlate2d,
    conv_matrix,
    conv_matrix_entry,
    conv_matrix_sparse,
    conv_net_parameter_count,
    conv_output_shape,
    conv_output_size,
    convolve2d,
    cross_correlate2d,
    fc_net_parameter_count,
    flip_kernel,
    is_circulant,
    is_doubly_block_circulant,
    is_doubly_block_toeplitz,
    is_toeplitz,
    kernel_index_at,
)

# (H, W, M, N): square and non-square images and kernels, M = 1, N = 1, M = H, N = W.
SHAPES = [
    (4, 4, 2, 2), (5, 7, 2, 3), (7, 5, 3, 2), (6, 6, 1, 1), (4, 6, 1, 3), (5, 4, 5, 2),
    (4, 5, 2, 5), (3, 3, 3, 3), (1, 6, 1, 2), (6, 1, 3, 1), (8, 9, 4, 1),
]


def random_case(height, width, kernel_height, kernel_width, seed=0):
    generator = torch.Generator().manual_seed(seed)
    image = torch.randn(height, width, generator=generator, dtype=torch.float64)
    kernel = torch.randn(kernel_height, kernel_width, generator=generator, dtype=torch.float64)
    return image, kernel


def torch_conv(image, kernel, **kwargs):
    return F.conv2d(image[None, None], kernel[None, None], **kwargs)[0, 0]


# --- (a) output shape ----------------------------------------------------------------------------

@pytest.mark.parametrize("height, width, kernel_height, kernel_width", SHAPES)
def test_valid_output_shape_matches_conv2d(height, width, kernel_height, kernel_width):
    image, kernel = random_case(height, width, kernel_height, kernel_width)
    shape = conv_output_shape((height, width), (kernel_height, kernel_width))
    assert shape == (height - kernel_height + 1, width - kernel_width + 1)
    assert shape == tuple(torch_conv(image, kernel).shape)


@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("padding", [0, 1, 2])
@pytest.mark.parametrize("height, width, kernel_height, kernel_width", [(7, 5, 3, 2), (8, 8, 3, 3), (5, 9, 1, 4)])
def test_general_output_shape_matches_conv2d(height, width, kernel_height, kernel_width, stride, padding):
    image, kernel = random_case(height, width, kernel_height, kernel_width)
    expected = tuple(torch_conv(image, kernel, stride=stride, padding=padding).shape)
    assert conv_output_shape((height, width), (kernel_height, kernel_width), stride, padding) == expected
    assert conv_output_size(height, kernel_height, stride, padding) == expected[0]


def test_output_size_floors_and_kernel_may_fill_padded_input():
    assert conv_output_size(6, 3, stride=2) == 2  # (6 - 3) / 2 = 1.5 -> 1, plus 1
    assert conv_output_size(7, 3, stride=2) == 3
    assert conv_output_size(2, 4, padding=1) == 1  # the kernel covers the whole padded input
    assert conv_output_shape(5, 2) == (4, 4)


@pytest.mark.parametrize("args, message", [
    ((3, 4), "larger than the padded input"),
    ((0, 1), "input size must be >= 1"),
    ((5, 0), "kernel size must be >= 1"),
    ((5, 2, 0), "stride must be >= 1"),
    ((5, 2, 1, -1), "padding must be >= 0"),
])
def test_output_size_rejects_impossible_shapes(args, message):
    with pytest.raises(ValueError, match=message):
        conv_output_size(*args)


def test_output_shape_rejects_bad_types_and_pairs():
    with pytest.raises(TypeError, match="integer"):
        conv_output_size(5.0, 2)
    with pytest.raises(TypeError, match="bool"):
        conv_output_size(True, 1)
    with pytest.raises(ValueError, match="pair"):
        conv_output_shape((4, 4, 4), 2)
    with pytest.raises(ValueError, match="larger"):
        conv_output_shape((4, 6), (2, 7))


# --- cross-correlation and convolution -----------------------------------------------------------

@pytest.mark.parametrize("height, width, kernel_height, kernel_width", SHAPES)
def test_cross_correlation_is_conv2d_and_convolution_flips(height, width, kernel_height, kernel_width):
    image, kernel = random_case(height, width, kernel_height, kernel_width)
    reference = torch_conv(image, kernel)
    torch.testing.assert_close(cross_correlate2d(image, kernel), reference)
    torch.testing.assert_close(convolve2d(image, flip_kernel(kernel)), reference)
    torch.testing.assert_close(convolve2d(image, kernel), torch_conv(image, flip_kernel(kernel)))


def test_true_convolution_matches_numpy_in_one_dimension():
    image, kernel = random_case(1, 9, 1, 4)
    expected = np.convolve(image[0].numpy(), kernel[0].numpy(), mode="valid")
    np.testing.assert_allclose(convolve2d(image, kernel)[0].numpy(), expected)


def test_convolution_and_cross_correlation_differ_for_an_asymmetric_kernel():
    image, kernel = random_case(5, 5, 2, 3)
    assert not torch.allclose(convolve2d(image, kernel), cross_correlate2d(image, kernel))
    assert torch.equal(flip_kernel(torch.tensor([[1, 2], [3, 4]])), torch.tensor([[4, 3], [2, 1]]))


def test_bad_image_and_kernel_are_rejected():
    with pytest.raises(ValueError, match="kernel must be a 2-D tensor"):
        cross_correlate2d(torch.zeros(3, 3), torch.zeros(2))
    with pytest.raises(ValueError, match="image must be a 2-D tensor"):
        convolve2d(torch.zeros(1, 3, 3), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="larger"):
        cross_correlate2d(torch.zeros(3, 3), torch.zeros(4, 1))
    with pytest.raises(ValueError, match="empty"):
        conv_matrix(torch.zeros(0, 2), (3, 3))


# --- (b) the matrix M -----------------------------------------------------------------------------

@pytest.mark.parametrize("height, width, kernel_height, kernel_width", SHAPES)
def test_dense_and_sparse_matrix_compute_conv2d(height, width, kernel_height, kernel_width):
    image, kernel = random_case(height, width, kernel_height, kernel_width)
    out_h, out_w = height - kernel_height + 1, width - kernel_width + 1
    dense, sparse = conv_matrix(kernel, (height, width)), conv_matrix_sparse(kernel, (height, width))
    assert dense.shape == sparse.shape == (out_h * out_w, height * width)
    assert sparse.is_sparse and sparse._nnz() == out_h * out_w * kernel_height * kernel_width
    assert torch.equal(sparse.to_dense(), dense)
    expected = torch_conv(image, kernel).reshape(-1)
    torch.testing.assert_close(dense @ image.reshape(-1), expected)
    torch.testing.assert_close(torch.sparse.mm(sparse, image.reshape(-1, 1))[:, 0], expected)


def test_matrix_of_a_small_case_written_by_hand():
    # 3 x 3 image, 2 x 2 kernel [[p, q], [r, s]] = [[1, 2], [3, 4]]: output pixel (a, b) reads x[a:a+2, b:b+2].
    kernel = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    expected = torch.tensor([
        [1, 2, 0, 3, 4, 0, 0, 0, 0],
        [0, 1, 2, 0, 3, 4, 0, 0, 0],
        [0, 0, 0, 1, 2, 0, 3, 4, 0],
        [0, 0, 0, 0, 1, 2, 0, 3, 4],
    ], dtype=torch.float32)
    assert torch.equal(conv_matrix(kernel, (3, 3)), expected)


@pytest.mark.parametrize("height, width, kernel_height, kernel_width", SHAPES)
def test_element_rule_matches_the_matrix_entry_by_entry(height, width, kernel_height, kernel_width):
    _, kernel = random_case(height, width, kernel_height, kernel_width)
    matrix = conv_matrix(kernel, (height, width))
    out_w = width - kernel_width + 1
    for row in range(matrix.shape[0]):
        for col in range(matrix.shape[1]):
            assert conv_matrix_entry(kernel, (height, width), row, col) == matrix[row, col].item()
            index = kernel_index_at(row, col, (height, width), (kernel_height, kernel_width))
            (a, b), (c, d) = divmod(row, out_w), divmod(col, width)
            inside = 0 <= c - a < kernel_height and 0 <= d - b < kernel_width
            assert index == ((c - a, d - b) if inside else None)


def test_element_rule_worked_examples_and_range():
    # H = W = 4, M = N = 2 (H' = W' = 3): row 4 is (a, b) = (1, 1); column 10 is (c, d) = (2, 2).
    assert kernel_index_at(4, 10, (4, 4), (2, 2)) == (1, 1)
    assert kernel_index_at(4, 5, (4, 4), (2, 2)) == (0, 0)
    assert kernel_index_at(4, 4, (4, 4), (2, 2)) is None  # d - b = -1
    with pytest.raises(IndexError, match="outside M"):
        kernel_index_at(9, 0, (4, 4), (2, 2))
    with pytest.raises(ValueError, match="row must be >= 0"):
        kernel_index_at(-1, 0, (4, 4), (2, 2))


def test_matrix_is_differentiable_in_the_kernel():
    image, kernel = random_case(5, 4, 2, 2)
    kernel.requires_grad_(True)
    (conv_matrix(kernel, (5, 4)) @ image.reshape(-1)).sum().backward()
    expected = torch.stack([torch.stack([image[m:m + 4, n:n + 3].sum() for n in range(2)]) for m in range(2)])
    torch.testing.assert_close(kernel.grad, expected)


# --- circulant counterpart and structure checks ---------------------------------------------------

@pytest.mark.parametrize("height, width, kernel_height, kernel_width", SHAPES)
def test_circulant_matrix_computes_circular_cross_correlation(height, width, kernel_height, kernel_width):
    image, kernel = random_case(height, width, kernel_height, kernel_width)
    circular = circular_cross_correlate2d(image, kernel)
    by_definition = sum(kernel[m, n] * torch.roll(image, shifts=(-m, -n), dims=(0, 1))
                        for m in range(kernel_height) for n in range(kernel_width))
    torch.testing.assert_close(circular, by_definition)
    matrix = circulant_conv_matrix(kernel, (height, width))
    assert matrix.shape == (height * width, height * width)
    torch.testing.assert_close(matrix @ image.reshape(-1), circular.reshape(-1))
    assert is_doubly_block_circulant(matrix, (width, width))
    # The valid M is the circulant matrix restricted to the rows whose window does not wrap around.
    out_h, out_w = height - kernel_height + 1, width - kernel_width + 1
    valid_rows = (torch.arange(out_h)[:, None] * width + torch.arange(out_w)).reshape(-1)
    assert torch.equal(matrix[valid_rows], conv_matrix(kernel, (height, width)))


def test_circular_output_differs_from_zero_padded_where_the_window_wraps():
    image, kernel = random_case(5, 6, 3, 2)
    zero_padded = torch_conv(F.pad(image, (0, 1, 0, 2)), kernel)
    circular = circular_cross_correlate2d(image, kernel)
    assert torch.allclose(circular[:3, :5], zero_padded[:3, :5])
    assert not torch.allclose(circular[3:], zero_padded[3:])
    assert not torch.allclose(circular[:, 5], zero_padded[:, 5])


@pytest.mark.parametrize("height, width, kernel_height, kernel_width", SHAPES)
def test_valid_matrix_is_doubly_block_toeplitz(height, width, kernel_height, kernel_width):
    _, kernel = random_case(height, width, kernel_height, kernel_width)
    matrix = conv_matrix(kernel, (height, width))
    out_h, out_w = height - kernel_height + 1, width - kernel_width + 1
    assert is_doubly_block_toeplitz(matrix, (out_w, width))
    if (kernel_height, kernel_width) != (1, 1):
        assert not is_circulant(matrix)
        assert not is_doubly_block_circulant(matrix, (out_w, width))
    # The 1-D rule M[i, j] = m(i - j) only holds with one block row (H' = 1) or a single kernel column (N = 1).
    assert is_toeplitz(matrix) == (out_h == 1 or kernel_width == 1)


def test_one_by_one_kernel_gives_a_scaled_identity_which_is_circulant():
    matrix = conv_matrix(torch.tensor([[2.5]]), (3, 4))
    assert torch.equal(matrix, 2.5 * torch.eye(12))
    assert is_circulant(matrix) and is_doubly_block_circulant(matrix, (4, 4))


def test_structure_checks_on_hand_made_matrices():
    toeplitz = torch.tensor([[1, 2, 3, 4], [5, 1, 2, 3], [6, 5, 1, 2]])
    assert is_toeplitz(toeplitz) and not is_circulant(toeplitz)
    circulant = torch.tensor([[1, 2, 3], [3, 1, 2], [2, 3, 1]])
    assert is_toeplitz(circulant) and is_circulant(circulant)
    assert not is_circulant(torch.tensor([[1, 2, 3], [4, 1, 2], [5, 4, 1]]))  # Toeplitz, no wrap-around
    assert not is_toeplitz(torch.tensor([[1, 2], [3, 4]]))
    block = torch.tensor([[1, 2], [2, 1]])
    zero = torch.zeros(2, 2, dtype=torch.long)
    assert is_doubly_block_circulant(torch.cat([torch.cat([block, 3 * block], 1), torch.cat([3 * block, block], 1)]), 2)
    block_toeplitz = torch.cat([torch.cat([block, zero], 1), torch.cat([3 * block, block], 1)])
    assert is_doubly_block_toeplitz(block_toeplitz, 2) and not is_doubly_block_circulant(block_toeplitz, 2)
    assert not is_doubly_block_toeplitz(torch.cat([torch.cat([block, zero], 1), torch.cat([zero, 2 * block], 1)]), 2)
    assert not is_doubly_block_toeplitz(torch.zeros(4, 5), (3, 2))  # blocks do not tile the matrix
    # A Toeplitz (or circulant) grid of blocks is not enough: the blocks themselves must be too.
    not_toeplitz = torch.tensor([[1, 2], [3, 4]])
    assert not is_doubly_block_toeplitz(torch.cat([torch.cat([not_toeplitz, zero], 1),
                                                   torch.cat([3 * not_toeplitz, not_toeplitz], 1)]), 2)
    toeplitz_not_circulant = torch.tensor([[1, 2], [3, 1]])
    assert not is_doubly_block_circulant(torch.cat([torch.cat([toeplitz_not_circulant, 3 * toeplitz_not_circulant], 1),
                                                    torch.cat([3 * toeplitz_not_circulant, toeplitz_not_circulant], 1)]), 2)
    # Circulant patterns of constant 1 x 2 blocks: circulant needs square blocks.
    assert not is_doubly_block_circulant(torch.tensor([[1, 1, 2, 2], [2, 2, 1, 1]]), (1, 2))
    assert is_doubly_block_circulant(torch.tensor([[1, 2], [2, 1]]), (1, 1))
    assert is_toeplitz(conv_matrix_sparse(torch.ones(1, 2), (1, 4)))  # sparse input accepted
    with pytest.raises(ValueError, match="2-D matrix"):
        is_toeplitz(torch.zeros(3))


# --- (c) parameter counts ----------------------------------------------------------------------------

COUNT_SHAPES = [(28, 28, 5, 5), (28, 28, 4, 4), (10, 13, 3, 2), (9, 9, 1, 1), (7, 12, 2, 5), (6, 5, 5, 2), (3, 30, 2, 7)]


@pytest.mark.parametrize("height, width, kernel_height, kernel_width", COUNT_SHAPES)
def test_parameter_counts_match_the_real_modules(height, width, kernel_height, kernel_width):
    out_h, out_w = height - kernel_height + 1, width - kernel_width + 1
    pooled = math.floor(out_h / 2) * math.floor(out_w / 2)
    conv_count = conv_net_parameter_count((height, width), (kernel_height, kernel_width))
    fc_count = fc_net_parameter_count((height, width), (kernel_height, kernel_width))
    assert conv_count == kernel_height * kernel_width + 3 * pooled
    assert fc_count == height * width * pooled + 3 * pooled
    conv_net = ConvNet((height, width), (kernel_height, kernel_width))
    fc_net = FullyConnectedNet((height, width), (kernel_height, kernel_width))
    assert conv_count == sum(p.numel() for p in conv_net.parameters())
    assert fc_count == sum(p.numel() for p in fc_net.parameters())
    images = torch.rand(2, height, width, generator=torch.Generator().manual_seed(1))
    for net in (conv_net, fc_net):
        log_probabilities = net(images)
        assert log_probabilities.shape == (2, 3)
        torch.testing.assert_close(log_probabilities.exp().sum(-1), torch.ones(2))
    # h2 really has floor(H'/2) floor(W'/2) entries (odd H' or W' drop a row or column).
    assert conv_net.pool(conv_net.conv(images[:, None])).shape[-2:].numel() == pooled


def test_parameter_counts_worked_values_and_class_count():
    assert conv_net_parameter_count((28, 28), (5, 5)) == 25 + 3 * 12 * 12 == 457
    assert fc_net_parameter_count((28, 28), (5, 5)) == 784 * 144 + 3 * 144 == 113_328
    assert conv_net_parameter_count((7, 7), (2, 2)) == 4 + 3 * 9  # H' = 6 -> 3
    assert conv_net_parameter_count((8, 8), (2, 2)) == 4 + 3 * 9  # H' = 7 -> 3, not 3.5 or 4
    assert conv_net_parameter_count((8, 8), (2, 2), num_classes=10) == 4 + 10 * 9
    assert sum(p.numel() for p in ConvNet((8, 8), 2, num_classes=10).parameters()) == 94


def test_parameter_counts_reject_too_small_outputs():
    with pytest.raises(ValueError, match="smaller than the 2 x 2 max-pool"):
        conv_net_parameter_count((4, 4), (4, 2))
    with pytest.raises(ValueError, match="smaller than the 2 x 2 max-pool"):
        FullyConnectedNet((5, 3), (1, 3))
    with pytest.raises(ValueError, match="larger"):
        fc_net_parameter_count((4, 4), (5, 2))


# --- Question 1.2: self-attention over pixels ----------------------------------------------------

def test_attention_matches_torch():
    pixels = torch.rand(20, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    expected_probabilities = torch.softmax(pixels[:, None] * pixels[None, :], dim=-1)
    torch.testing.assert_close(attention_probabilities(pixels), expected_probabilities)
    torch.testing.assert_close(attention_output(pixels), expected_probabilities @ pixels)
    sdpa = F.scaled_dot_product_attention(pixels[None, :, None], pixels[None, :, None], pixels[None, :, None])
    torch.testing.assert_close(attention_output(pixels), sdpa[0, :, 0])


def test_attention_matches_multihead_attention_with_unit_projections():
    pixels = torch.rand(12, generator=torch.Generator().manual_seed(3))
    layer = torch.nn.MultiheadAttention(embed_dim=1, num_heads=1, batch_first=True)
    with torch.no_grad():
        layer.in_proj_weight.fill_(1.0)
        layer.in_proj_bias.zero_()
        layer.out_proj.weight.fill_(1.0)
        layer.out_proj.bias.zero_()
    output, weights = layer(pixels[None, :, None], pixels[None, :, None], pixels[None, :, None])
    torch.testing.assert_close(attention_output(pixels), output[0, :, 0])
    torch.testing.assert_close(attention_probabilities(pixels), weights[0])


def test_attention_by_hand_and_as_averages():
    pixels = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64)
    e = math.e
    expected = torch.tensor([[1 / 3] * 3, [1 / (1 + e + e**2), e / (1 + e + e**2), e**2 / (1 + e + e**2)],
                             [1 / (1 + e**2 + e**4), e**2 / (1 + e**2 + e**4), e**4 / (1 + e**2 + e**4)]],
                            dtype=torch.float64)
    torch.testing.assert_close(attention_probabilities(pixels), expected)
    output = attention_output(pixels)
    assert output[0] == pytest.approx(1.0)  # a zero pixel scores 0 against all: the plain mean
    assert bool(((output >= pixels.min()) & (output <= pixels.max())).all())


def test_attention_is_stable_for_large_pixels():
    pixels = torch.tensor([-60.0, 0.5, 60.0, 59.0])
    assert not torch.isfinite(torch.exp(torch.outer(pixels, pixels))).all()  # the naive formula overflows
    probabilities = attention_probabilities(pixels)
    assert torch.isfinite(probabilities).all()
    torch.testing.assert_close(probabilities, torch.softmax(torch.outer(pixels, pixels).double(), -1).float())
    torch.testing.assert_close(probabilities.sum(-1), torch.ones(4))


def test_attention_is_permutation_equivariant_and_convolution_is_not():
    generator = torch.Generator().manual_seed(4)
    image = torch.rand(6, 7, generator=generator, dtype=torch.float64)
    permutation = torch.randperm(42, generator=generator)
    pixels = image.reshape(-1)
    torch.testing.assert_close(attention_output(pixels[permutation]), attention_output(pixels)[permutation])
    probabilities = attention_probabilities(pixels)
    torch.testing.assert_close(attention_probabilities(pixels[permutation]),
                               probabilities[permutation][:, permutation])
    kernel = torch.rand(3, 3, generator=generator, dtype=torch.float64)
    permuted_image = pixels[permutation].reshape(6, 7)
    assert not torch.allclose(cross_correlate2d(permuted_image, kernel).reshape(-1).sort().values,
                              cross_correlate2d(image, kernel).reshape(-1).sort().values)


@pytest.mark.parametrize("bad, error, message", [
    (torch.zeros(3, 3), ValueError, "1-D"),
    (torch.zeros(0), ValueError, "non-empty"),
    (torch.arange(4), TypeError, "floating-point"),
    (torch.tensor([1.0, float("nan")]), ValueError, "NaN"),
])
def test_attention_rejects_bad_input(bad, error, message):
    with pytest.raises(error, match=message):
        attention_output(bad)


# --- drawing ---------------------------------------------------------------------------------------

def test_draw_conv_matrix_marks_block_boundaries_and_blanks_zeros():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots()
    matrix = conv_matrix(torch.ones(2, 3), (4, 5))  # H' = 3, W' = 3: 3 x 4 blocks of 3 x 5
    draw_conv_matrix(ax, matrix, (3, 5), "M")
    horizontal = [line for line in ax.lines if line.get_ydata()[0] == line.get_ydata()[1]]
    assert len(horizontal) == 2 and len(ax.lines) - len(horizontal) == 3
    shown = ax.images[0].get_array()
    assert np.isnan(np.asarray(shown.filled(np.nan) if hasattr(shown, "filled") else shown)).sum() == int(
        (matrix == 0).sum())
    assert ax.get_title() == "M"
    plt.close(figure)


def test_symbolic_matrix_and_counting_kernel():
    from hw2lib.convolution import counting_kernel, symbolic_matrix

    kernel = counting_kernel(2, 3)
    assert kernel.tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    rows = symbolic_matrix((3, 3), (2, 2))
    assert len(rows) == 4 and all(len(row) == 9 for row in rows)
    assert rows[0] == ["k00", "k01", ".", "k10", "k11", ".", ".", ".", "."]
    assert rows[3] == [".", ".", ".", ".", "k00", "k01", ".", "k10", "k11"]


def test_conv_matrix_explorer_redraws_and_reports_bad_sizes(capsys):
    from hw2lib.widgets import conv_matrix_explorer

    explorer = conv_matrix_explorer(height=4, width=5, kernel_height=2, kernel_width=3)
    sliders = [slider for row in explorer.children[:2] for slider in row.children]
    assert [slider.description for slider in sliders] == ["H", "W", "M", "N"]
    capsys.readouterr()
    sliders[2].value = 6  # kernel taller than the 4-pixel image: an explanation, not a figure
    # Outside a running kernel the Output widget passes its text through to stdout.
    assert "kernel size 6 is larger than the padded input size 4" in capsys.readouterr().out

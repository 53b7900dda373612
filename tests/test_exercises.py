"""Tests for hw2lib.exercises: every checker accepts the library's implementation and a reader's own
correct one, and rejects every catalogued mistake with that mistake's own hint."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hw2lib import convolution, decoding, exercises, exercises_ch1, exercises_ch3
from hw2lib.chardata import EOS, SOS
from hw2lib.cnn import CNN
from hw2lib.exercises import MISTAKES, CheckResult
from hw2lib.seq2seq import BilinearAttention


# --- correct answers: the library's own, and a reader's written from the formulas ---------------

def library_shape(H, W, M, N):
    return convolution.conv_output_shape((H, W), (M, N))


def library_matrix(kernel, H, W):
    return convolution.conv_matrix(kernel, (H, W))


def library_entry(kernel, H, W, i, j):
    return convolution.conv_matrix_entry(kernel, (H, W), i, j)


def library_conv_count(H, W, M, N):
    return convolution.conv_net_parameter_count((H, W), (M, N))


def library_fc_count(H, W, M, N):
    return convolution.fc_net_parameter_count((H, W), (M, N))


def library_attention(x):
    return convolution.attention_probabilities(x), convolution.attention_output(x)


def library_bilinear(query, keys, mask, linear_in, linear_out):
    attention = BilinearAttention(query.shape[-1])
    attention.linear_in, attention.linear_out = linear_in, linear_out
    return attention(query, keys, mask)


def library_greedy(model, source, max_length):
    return decoding.greedy_decode(model, source[None], torch.tensor([len(source)]), max_length=max_length)[0]


def library_beam(model, source, beam_size, max_length):
    lengths = torch.tensor([len(source)])
    return decoding.beam_search(model, source[None], lengths, beam_size=beam_size, max_length=max_length)[0].tokens


def own_shape(H, W, M, N):
    return [H - M + 1, W - N + 1]  # a list is as good as a tuple


def own_entry(kernel, H, W, i, j, flip=False, column_major=False, split_width=None):
    """The element rule, with switches for three of the catalogued mistakes."""
    M, N = kernel.shape
    out_h, out_w = H - M + 1, W - N + 1
    if column_major:
        (b, a), (d, c) = divmod(i, out_h), divmod(j, H)
    else:
        (a, b), (c, d) = divmod(i, split_width or out_w), divmod(j, W)
    if 0 <= c - a < M and 0 <= d - b < N:
        return float(kernel[M - 1 - (c - a), N - 1 - (d - b)] if flip else kernel[c - a, d - b])
    return 0.0


def own_matrix(kernel, H, W, **mistakes):
    M, N = kernel.shape
    rows, cols = (H - M + 1) * (W - N + 1), H * W
    return [[own_entry(kernel, H, W, i, j, **mistakes) for j in range(cols)] for i in range(rows)]


def own_conv_count(H, W, M, N):
    return M * N + 3 * ((H - M + 1) // 2) * ((W - N + 1) // 2)


def own_fc_count(H, W, M, N):
    pooled = ((H - M + 1) // 2) * ((W - N + 1) // 2)
    return H * W * pooled + 3 * pooled


def own_attention(x):
    p = torch.softmax(torch.outer(x, x), dim=1)
    return p, p @ x


def own_bilinear(query, keys, mask, linear_in, linear_out):
    scores = linear_in(query) @ keys.transpose(1, 2)
    p = torch.softmax(scores.masked_fill(~mask[:, None, :], float("-inf")), dim=-1)
    return torch.tanh(linear_out(torch.cat([query, p @ keys], dim=-1))), p


def own_greedy(model, source, max_length, *, keep_sos=False, past_eos=False, drop_eos=False, extra_step=False,
               feed_sos=False):
    """Greedy decoding of one sentence with model.step, with switches for the catalogued mistakes."""
    encoded = model.encode(source[None], torch.tensor([len(source)]))
    state, previous, tokens = encoded.state, torch.tensor([SOS]), [SOS] if keep_sos else []
    for _ in range(max_length + (1 if extra_step else 0)):
        log_probs, state, _ = model.step(previous, state, encoded)
        token = int(log_probs[0].argmax())
        tokens.append(token)
        previous = torch.tensor([SOS if feed_sos else token])
        if token == EOS and not past_eos:
            break
    return tokens[:-1] if drop_eos and tokens[-1:] == [EOS] else tokens


def own_beam(model, source, beam_size, max_length, *, drop_finished=False, last_step_score=False):
    """Beam search of one sentence as the chapter describes it, with switches for two mistakes."""
    encoded = model.encode(source[None], torch.tensor([len(source)]))
    beam = [([], 0.0, encoded.state, False)]  # tokens, log-probability, state, finished
    for _ in range(max_length):
        candidates = []
        for tokens, score, state, finished in beam:
            if finished:
                candidates.append((tokens, score, state, True))
                continue
            log_probs, new_state, _ = model.step(torch.tensor([tokens[-1] if tokens else SOS]), state, encoded)
            extensions = [(tokens + [token], value if last_step_score else score + value, new_state, token == EOS)
                          for token, value in enumerate(log_probs[0].tolist())]
            candidates += [entry for entry in extensions if not (drop_finished and entry[3])]
        beam = sorted(candidates, key=lambda entry: entry[1], reverse=True)[:beam_size]
        if beam[0][3]:
            break
    return beam[0][0]


class OwnCNN(nn.Module):
    """The homework's CNN written differently from hw2lib.cnn.CNN: nn.Sequential blocks, layers registered
    in another order, functional dropout."""

    def __init__(self, dropout: float = 0.3, padding: int = 2, bias: bool = True, fc1_inputs: int = 576,
                 name: str = "conv1"):
        super().__init__()
        self.head = nn.Sequential(nn.Linear(fc1_inputs, 600, bias=bias), nn.ReLU())
        self.tail = nn.Sequential(nn.Linear(600, 120, bias=bias), nn.ReLU(), nn.Linear(120, 10, bias=bias))
        setattr(self, name, nn.Conv2d(1, 8, 5, padding=padding))
        self.conv2 = nn.Conv2d(8, 16, 3)
        self.name, self.dropout = name, dropout

    def features(self, images):
        hidden = F.max_pool2d(F.relu(getattr(self, self.name)(images)), 2)
        return torch.flatten(F.max_pool2d(F.relu(self.conv2(hidden)), 2), 1)

    def forward(self, images):
        hidden = F.dropout(self.head(self.features(images)), self.dropout, training=self.training)
        return F.log_softmax(self.tail(hidden), dim=1)


# --- the catalogue: one wrong answer per mistake ---------------------------------------------------

def one_d_entry(kernel, H, W, i, j):
    """The seed report's rule M[i, j] = m_(i-j) on the flattened kernel."""
    flat = kernel.reshape(-1)
    return float(flat[i - j]) if 0 <= i - j < len(flat) else 0.0


def circulant_entry(kernel, H, W, i, j):
    M, N = kernel.shape
    (a, b), (c, d) = divmod(i, W), divmod(j, W)
    m, n = (c - a) % H, (d - b) % W
    return float(kernel[m, n]) if m < M and n < N else 0.0


def manual_softmax_attention(x, dim=1, normalise=True, transposed_output=False):
    weights = torch.exp(torch.outer(x, x))
    p = weights / weights.sum(dim=dim, keepdim=True) if normalise else weights
    return p, (p.T if transposed_output else p) @ x


def wrong_bilinear(variant):
    def attend(query, keys, mask, linear_in, linear_out):
        attention = BilinearAttention(query.shape[-1])
        attention.linear_in, attention.linear_out = linear_in, linear_out
        return exercises_ch3._attention_variant(query, keys, mask, attention, variant)
    return attend


class UnpaddedCNN(OwnCNN):
    def __init__(self):
        super().__init__(padding=0, fc1_inputs=400)


class NoConv1CNN(OwnCNN):
    def __init__(self):
        super().__init__(name="first_conv")


class BiaslessCNN(OwnCNN):
    def __init__(self):
        super().__init__(bias=False)


class SixChannelCNN(OwnCNN):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 3)


class LogitsCNN(OwnCNN):
    def forward(self, images):
        return super().forward(images).exp().log() + 1.0  # log-probabilities shifted: not normalised


class BatchSoftmaxCNN(OwnCNN):
    def forward(self, images):
        hidden = F.dropout(self.head(self.features(images)), self.dropout, training=self.training)
        return F.log_softmax(self.tail(hidden), dim=0)


class ChannelsLastFlattenCNN(OwnCNN):
    def features(self, images):
        hidden = F.max_pool2d(F.relu(self.conv1(images)), 2)
        return torch.flatten(F.max_pool2d(F.relu(self.conv2(hidden)), 2).permute(0, 2, 3, 1), 1)


class LateDropoutCNN(OwnCNN):
    def forward(self, images):
        hidden = self.tail[1](self.tail[0](self.head(self.features(images))))
        return F.log_softmax(self.tail[2](F.dropout(hidden, self.dropout, training=self.training)), dim=1)


def _half(size):  # the seed report's (H'/2), a fraction for odd H'
    return size / 2


CATALOGUE = [
    # (checker, wrong answer(s), mistake)
    ("conv_output_shape", lambda H, W, M, N: (H - M, W - N), "off-by-one"),
    ("conv_output_shape", lambda H, W, M, N: (W - N + 1, H - M + 1), "shape-swapped"),
    ("conv_output_shape", lambda H, W, M, N: (H, W), "same-padding"),
    ("conv_matrix", lambda k, H, W: convolution.circulant_conv_matrix(k, (H, W)), "circulant"),
    ("conv_matrix", lambda k, H, W: exercises_ch1._one_d_rule(k, (H - k.shape[0] + 1) * (W - k.shape[1] + 1), H * W, 1),
     "one-d-rule"),
    ("conv_matrix", lambda k, H, W: own_matrix(k, H, W, flip=True), "flipped-kernel"),
    ("conv_matrix", lambda k, H, W: own_matrix(k, H, W, column_major=True), "column-major"),
    ("conv_matrix", lambda k, H, W: own_matrix(k, H, W, split_width=W), "row-split-width"),
    ("conv_matrix", lambda k, H, W: convolution.conv_matrix(k, (H, W)).T, "transposed"),
    ("conv_matrix", lambda k, H, W: torch.zeros(H * W, H * W), "matrix-shape"),
    ("conv_matrix_entry", one_d_entry, "one-d-rule"),
    ("conv_matrix_entry", circulant_entry, "circulant"),
    ("conv_matrix_entry", lambda k, H, W, i, j: own_entry(k, H, W, i, j, flip=True), "flipped-kernel"),
    ("conv_matrix_entry", lambda k, H, W, i, j: own_entry(k, H, W, i, j, column_major=True), "column-major"),
    ("conv_matrix_entry", lambda k, H, W, i, j: own_entry(k, H, W, i, j, split_width=W), "row-split-width"),
    ("parameter_counts", (own_conv_count, lambda H, W, M, N: N * M * _half(H - M + 1) * _half(W - N + 1)
                          + 3 * _half(H - M + 1) * _half(W - N + 1)), "seed-fc-count"),
    ("parameter_counts", (own_conv_count, lambda H, W, M, N: (N * M + 3) * ((H - M + 1) // 2) * ((W - N + 1) // 2)),
     "seed-fc-count"),
    ("parameter_counts", (lambda H, W, M, N: M * N + 3 * _half(H - M + 1) * _half(W - N + 1), own_fc_count), "floor"),
    ("parameter_counts", (own_conv_count, lambda H, W, M, N: (H * W + 3) * math.ceil((H - M + 1) / 2)
                          * math.ceil((W - N + 1) / 2)), "floor"),
    ("parameter_counts", (lambda H, W, M, N: M * N + 3 * (H - M + 1) * (W - N + 1), own_fc_count), "pooling-ignored"),
    ("parameter_counts", (lambda H, W, M, N: own_conv_count(H, W, M, N) + 1 + 3, own_fc_count), "biases"),
    ("parameter_counts", (own_conv_count, lambda H, W, M, N: H * W * ((H - M + 1) // 2) * ((W - N + 1) // 2)),
     "output-layer-missing"),
    ("parameter_counts", (lambda H, W, M, N: own_conv_count(H, W, M, N) - M * N, own_fc_count), "kernel-missing"),
    ("self_attention", lambda x: manual_softmax_attention(x.clamp(-20, 20), dim=0), "softmax-axis"),
    ("self_attention", lambda x: manual_softmax_attention(x, normalise=False), "not-normalised"),
    ("self_attention", lambda x: manual_softmax_attention(x), "overflow"),
    ("self_attention", lambda x: manual_softmax_attention(x, transposed_output=True), "output-transposed"),
    *[("bilinear_attention", wrong_bilinear(variant), variant) for variant in exercises.ATTENTION_VARIANTS],
    ("cnn", UnpaddedCNN, "cnn-padding"),
    ("cnn", NoConv1CNN, "cnn-conv1-missing"),
    ("cnn", BiaslessCNN, "cnn-biases"),
    ("cnn", SixChannelCNN, "cnn-layer-sizes"),
    ("cnn", LogitsCNN, "cnn-log-softmax"),
    ("cnn", BatchSoftmaxCNN, "cnn-log-softmax-axis"),
    ("cnn", ChannelsLastFlattenCNN, "cnn-forward"),
    ("cnn", LateDropoutCNN, "cnn-dropout"),
    ("cnn_without_first_pool", 420_906, "pool-has-no-weights"),
    ("cnn_without_first_pool", 8 * 26 + 16 * 73 + (16 * 14 * 14 + 1) * 600 + 600 * 120 + 120 + 1_210, "conv2-shrinks"),
    ("cnn_without_first_pool", 8 * 25 + 16 * 72 + 16 * 13 * 13 * 600 + 600 * 120 + 1_200, "cnn-biases"),
    ("greedy_decode", lambda *args: own_greedy(*args, keep_sos=True), "includes-sos"),
    ("greedy_decode", lambda *args: own_greedy(*args, past_eos=True), "past-eos"),
    ("greedy_decode", lambda *args: own_greedy(*args, drop_eos=True), "eos-dropped"),
    ("greedy_decode", lambda *args: own_greedy(*args, extra_step=True), "too-long"),
    ("greedy_decode", lambda *args: own_greedy(*args, feed_sos=True), "greedy-step"),
    ("beam_search", lambda *args: own_beam(*args, drop_finished=True), "beam-drops-finished"),
    ("beam_search", lambda model, source, beam_size, max_length: own_greedy(model, source, max_length),
     "beam-is-greedy"),
    ("beam_search", lambda *args: own_beam(*args, last_step_score=True), "beam-worse"),
    ("beam_search", lambda model, source, beam_size, max_length: own_beam(model, source, 50, max_length),
     "beam-different"),
]


def run_check(checker: str, answer) -> CheckResult:
    check = getattr(exercises, f"check_{checker}")
    return check(*answer) if isinstance(answer, tuple) else check(answer)


@pytest.mark.parametrize("checker, answer, mistake", CATALOGUE,
                         ids=[f"{checker}-{mistake}" for checker, _, mistake in CATALOGUE])
def test_every_catalogued_mistake_is_rejected_with_its_own_hint(checker, answer, mistake):
    result = run_check(checker, answer)
    assert (result.passed, result.status, result.mistake) == (False, "failed", mistake), result.message
    assert MISTAKES[mistake] in result.message
    assert "expected" in result.message and "got" in result.message


def test_every_hint_of_the_catalogue_is_reachable():
    assert {mistake for _, _, mistake in CATALOGUE} == set(MISTAKES)


CORRECT = [
    ("conv_output_shape", library_shape), ("conv_output_shape", own_shape),
    ("conv_matrix", library_matrix), ("conv_matrix", own_matrix),
    ("conv_matrix", lambda k, H, W: convolution.conv_matrix_sparse(k, (H, W))),  # sparse is fine
    ("conv_matrix_entry", library_entry), ("conv_matrix_entry", own_entry),
    ("parameter_counts", (library_conv_count, library_fc_count)), ("parameter_counts", (own_conv_count, own_fc_count)),
    ("self_attention", library_attention), ("self_attention", own_attention),
    ("cnn", CNN), ("cnn", OwnCNN),
    ("cnn_without_first_pool", 1_697_706),
    ("bilinear_attention", library_bilinear), ("bilinear_attention", own_bilinear),
    ("greedy_decode", library_greedy), ("greedy_decode", own_greedy),
    ("beam_search", library_beam), ("beam_search", own_beam),
]


@pytest.mark.parametrize("checker, answer", CORRECT, ids=[f"{c}-{i}" for i, (c, _) in enumerate(CORRECT)])
def test_correct_answers_pass(checker, answer):
    result = run_check(checker, answer)
    assert (result.passed, result.status, result.mistake) == (True, "passed", None), result.message
    assert result.message.startswith("✓ Passed")


def not_implemented(*args, **kwargs):
    raise NotImplementedError


class StubCNN(nn.Module):
    def __init__(self):
        super().__init__()
        raise NotImplementedError


STUBS = [("conv_output_shape", not_implemented), ("conv_matrix", not_implemented),
         ("conv_matrix_entry", not_implemented), ("parameter_counts", (not_implemented, not_implemented)),
         ("parameter_counts", (own_conv_count, not_implemented)), ("self_attention", not_implemented),
         ("cnn", StubCNN), ("cnn_without_first_pool", None), ("bilinear_attention", not_implemented),
         ("greedy_decode", not_implemented), ("beam_search", not_implemented)]


@pytest.mark.parametrize("checker, answer", STUBS, ids=[f"{c}-{i}" for i, (c, _) in enumerate(STUBS)])
def test_a_stub_is_not_implemented_yet_rather_than_an_error(checker, answer):
    result = run_check(checker, answer)
    assert (result.passed, result.status, result.mistake) == (False, "not implemented", None)
    assert "not implemented yet" in result.message and "Error" not in result.message


def crash(*args):
    return {}["missing"]


class CrashingCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 5, padding=2)
        raise ZeroDivisionError("oops")


@pytest.mark.parametrize("checker, answer", [
    ("conv_output_shape", crash), ("conv_matrix", crash), ("conv_matrix_entry", crash),
    ("parameter_counts", (crash, own_fc_count)), ("self_attention", crash), ("cnn", CrashingCNN),
    ("bilinear_attention", crash), ("greedy_decode", crash), ("beam_search", crash)])
def test_an_exception_in_the_readers_code_is_a_failed_result_naming_it(checker, answer):
    result = run_check(checker, answer)
    assert (result.passed, result.status) == (False, "failed")
    assert ("KeyError" in result.message or "ZeroDivisionError" in result.message) and " on " in result.message
    # the line of the reader's code that raised, so that they need no traceback
    assert 'return {}["missing"])' in result.message or 'raise ZeroDivisionError("oops"))' in result.message


@pytest.mark.parametrize("checker, answer", [
    ("conv_output_shape", lambda *args: "3 x 3"), ("conv_output_shape", lambda *args: None),
    ("conv_matrix", lambda *args: "M"), ("conv_matrix", lambda *args: [[1, 2], [3]]),
    ("conv_matrix_entry", lambda *args: [1.0, 2.0]), ("parameter_counts", (lambda *a: "many", own_fc_count)),
    ("parameter_counts", (lambda *a: float("nan"), own_fc_count)), ("self_attention", lambda x: x),
    ("self_attention", lambda x: (x, "o")), ("cnn", lambda: "not a module"), ("cnn_without_first_pool", "lots"),
    ("bilinear_attention", lambda *args: args[0]), ("greedy_decode", lambda *args: 3.5),
    ("beam_search", lambda *args: ["a"])])
def test_an_answer_of_the_wrong_kind_is_a_failed_result_not_an_exception(checker, answer):
    result = run_check(checker, answer)
    assert (result.passed, result.status) == (False, "failed")
    assert result.message.startswith("✗")


def test_messages_show_the_first_failing_input_expected_and_got():
    result = exercises.check_conv_matrix(lambda k, H, W: own_matrix(k, H, W, flip=True))
    # The first case is a 2 x 3 kernel on a 4 x 5 image; the flip shows at M[0, 0] = K[1, 2], not K[0, 0].
    assert "H = 4, W = 5" in result.message and "M[0, 0]" in result.message
    first_kernel = exercises_ch1._matrix_cases(seed=21)[0][0]
    assert f"{float(first_kernel[0, 0]):.6g}" in result.message.split("expected")[1].split("\n")[0]
    assert f"{float(first_kernel[1, 2]):.6g}" in result.message.split("got")[1].split("\n")[0]


def test_the_floor_mistake_shows_on_the_first_odd_size():
    result = exercises.check_parameter_counts(lambda H, W, M, N: M * N + 3 * ((H - M + 1) / 2) * ((W - N + 1) / 2),
                                              own_fc_count)
    assert "H = 28, W = 28, M = 4, N = 4" in result.message  # H' = 25: the first odd case; 28 x 28, 5 x 5 passes


def test_results_are_deterministic_and_leave_the_global_random_state_alone():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    first = exercises.check_cnn(LateDropoutCNN)
    second = exercises.check_cnn(LateDropoutCNN)
    assert first == second
    assert torch.equal(torch.random.get_rng_state(), before)
    wrong_beam = [exercises.check_beam_search(lambda *a: own_beam(*a, drop_finished=True)) for _ in range(2)]
    assert wrong_beam[0] == wrong_beam[1]


def test_a_result_displays_as_html_markdown_and_text():
    failed = exercises.check_self_attention(lambda x: manual_softmax_attention(x, dim=0))
    page = failed._repr_html_()
    assert "exercise-failed" in page and "#c62828" in page and "<br>" in page
    assert "&lt;" not in failed.message and "Hint:" in page
    assert failed._repr_markdown_().count("  \n") == failed.message.count("\n")
    assert repr(failed) == str(failed) == failed.message
    escaped = CheckResult(False, "a < b & c", "failed")._repr_html_()
    assert "a &lt; b &amp; c" in escaped
    passed = exercises.check_conv_output_shape(own_shape)
    assert "exercise-passed" in passed._repr_html_() and "#2e7d32" in passed._repr_html_()
    assert "exercise-not-implemented" in exercises.check_conv_output_shape(not_implemented)._repr_html_()


def test_a_tie_in_decoding_is_accepted():
    """An output other than the library's but exactly as probable counts as right."""
    model = exercises.small_translator()
    sources = exercises_ch3._decoding_sources(12, seed=91)
    calls = {"count": 0}

    def tied(model, source, max_length):
        calls["count"] += 1
        tokens = own_greedy(model, source, max_length)
        return tokens if calls["count"] > 1 else list(tokens)  # same tokens, other container
    assert exercises.check_greedy_decode(tied).passed
    # and the checker can run on a given model and sentences (the chapter's stored model)
    result = exercises.check_beam_search(own_beam, model=model, sources=sources[:3], beam_sizes=(2,))
    assert result.passed and "3 inputs" in result.message


def test_the_small_translator_makes_decoding_mistakes_visible():
    """Most outputs finish, and beam search beats greedy decoding on some sentences: otherwise the
    beam checks could not tell a beam from a greedy search."""
    model = exercises.small_translator()
    finished = differing = 0
    for source in exercises_ch3._decoding_sources(12, seed=91):
        greedy = library_greedy(model, source, 10)
        finished += greedy.finished
        differing += library_beam(model, source, 3, 10) != greedy.tokens
    assert finished >= 6 and differing >= 3


def test_the_prediction_without_the_first_pool_is_the_built_network():
    pooled_once = nn.Sequential(nn.Conv2d(1, 8, 5, padding=2), nn.ReLU(), nn.Conv2d(8, 16, 3), nn.ReLU(),
                                nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 13 * 13, 600), nn.ReLU(),
                                nn.Linear(600, 120), nn.ReLU(), nn.Linear(120, 10))
    assert pooled_once(torch.zeros(1, 1, 28, 28)).shape == (1, 10)
    count = sum(parameter.numel() for parameter in pooled_once.parameters())
    assert exercises.cnn_without_first_pool_parameters() == count == 1_697_706

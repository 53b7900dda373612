"""The machinery every exercise checker of chapters 1-3 shares (:mod:`hw2lib.exercises` lists the checkers).

A check runs the reader's code through :func:`call_answer`, raises a :class:`CheckFailure` (made by
:func:`fail`, quoting the hint of a :data:`MISTAKES` key when the wrong answer is a known one) at the
first input it gets wrong, and is wrapped by :func:`checker`, which turns whatever happens into a
:class:`CheckResult`: the reader's exceptions become failed results naming them, and
``NotImplementedError`` (the starter stubs) a "not implemented yet" result. The remaining helpers
read an answer (:func:`as_tensor`, :func:`as_float`, :func:`as_count`), compare it (:func:`close`,
:func:`first_difference`), show it (:func:`show`) and seed the inputs (:func:`seeded`,
:func:`seeded_module`) without touching the global random state.
"""

from __future__ import annotations

import functools
import html
import math
import traceback
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

#: The usual mistakes (chapters 1-3), each with the hint a reader gets when a checker recognises it.
#:
#: :meta hide-value:
MISTAKES: dict[str, str] = {
    # chapter 1, Q1.1 (a)
    "off-by-one": "A valid convolution fits the kernel at H - M + 1 positions down and W - N + 1 across: "
                  "count the first position too (the + 1).",
    "shape-swapped": "Return (height, width): H' comes from H and M, W' from W and N.",
    "same-padding": "There is no padding here, so the output is smaller than the input: (H - M + 1, W - N + 1).",
    # chapter 1, Q1.1 (b)
    "circulant": "That is the doubly block circulant matrix of a circular convolution (the image wraps around, "
                 "HW rows). A valid convolution has only H'W' outputs, and its matrix is doubly block Toeplitz, "
                 "not circulant (the seed report's mistake).",
    "one-d-rule": "A single index difference i - j describes a 1-D convolution only (the seed report's rule "
                  "M_(i-j)). In 2-D, split the row i = a W' + b and the column j = c W + d and use both "
                  "offsets: M[i, j] = K[c - a, d - b] when 0 <= c - a < M and 0 <= d - b < N, else 0.",
    "flipped-kernel": "That is a true convolution (the kernel flipped by 180 degrees). Deep learning's "
                      "'convolution' is cross-correlation: z[a, b] = sum over m, n of K[m, n] x[a + m, b + n].",
    "column-major": "vec is row-major here, like x.reshape(-1): pixel (c, d) of the H x W image is entry c W + d "
                    "of x', and output pixel (a, b) is row a W' + b of M. Your order is column-major (c + d H).",
    "row-split-width": "Split the row with the output width and the column with the input width: "
                       "a = i // W', b = i % W', c = j // W, d = j % W.",
    "transposed": "That is the transpose of M: M has one row per output pixel (H'W' rows) and one column per "
                  "input pixel (HW columns), so that z' = M x'.",
    "matrix-shape": "M maps the HW input pixels to the H'W' output pixels: its shape is (H'W', HW).",
    # chapter 1, Q1.1 (c)
    "seed-fc-count": "The fully connected layer that replaces conv + max-pool reads all HW pixels, so each of its "
                     "floor(H'/2) floor(W'/2) outputs has HW weights: HW floor(H'/2) floor(W'/2), not "
                     "NM (H'/2)(W'/2) as in the seed report (NM is the size of the filter, not of the input).",
    "floor": "When H' or W' is odd, the 2 x 2 max-pool with stride 2 drops the last row or column: h2 is "
             "floor(H'/2) x floor(W'/2). Use integer division, H' // 2.",
    "pooling-ignored": "The 2 x 2 max-pool comes before the last linear layer, which therefore reads "
                       "floor(H'/2) floor(W'/2) values, not H'W'.",
    "biases": "This question counts weights only, without biases.",
    "output-layer-missing": "Count the last linear layer too: 3 classes x floor(H'/2) floor(W'/2) weights.",
    "kernel-missing": "Count the filter's M N weights too.",
    # chapter 1, Q1.2, and chapter 3
    "softmax-axis": "Softmax over the wrong axis: the probabilities of one query (one row) must sum to 1 over "
                    "the positions it attends to (the last axis, dim=-1), not over the queries.",
    "not-normalised": "Normalise each row: p_ij = exp(x_i x_j) / sum over k of exp(x_i x_k).",
    "overflow": "exp(x_i x_j) overflows for large pixels (inf, then NaN). Subtract each row's largest score "
                "before exp, which leaves the softmax unchanged, or use torch.softmax.",
    "output-transposed": "o_i = sum over j of p_ij x_j, that is o = p @ x (the rows of p), not p.T @ x.",
    "padding-mask": "Padded source positions got attention: set their scores to -inf before the softmax "
                    "(scores.masked_fill(~source_mask[:, None, :], float('-inf'))) so they get exactly zero.",
    "mask-after-softmax": "Masking after the softmax leaves rows that no longer sum to 1: mask the scores "
                          "(-inf) before the softmax instead.",
    "mask-inverted": "source_mask is True at the real source positions and False at the padding: you masked "
                     "the real positions.",
    "w-in-on-keys": "Apply W_in to the query, s_i = (W_in q) . h_i: linear_in(encoder_outputs) gives "
                    "q . (W_in h_i), a different score.",
    "dot-attention": "Pass the query through linear_in first: s_i = (W_in q) . h_i. A plain q . h_i is the "
                     "'dot' score, not the bilinear one.",
    "concat-order": "The output layer reads [q; c] in that order: torch.cat([query, context], dim=-1).",
    "missing-tanh": "The attention output is a = tanh(W_out [q; c]): the tanh is missing.",
    # chapter 2
    "cnn-conv1-missing": "The first convolution must be reachable as model.conv1, an nn.Conv2d.",
    "cnn-padding": "conv1 needs padding 2: with a 5 x 5 kernel it keeps the 28 x 28 size, so the maps that reach "
                   "fc1 are 16 x 6 x 6 = 576 values; without padding they would be 16 x 5 x 5 = 400.",
    "cnn-layer-sizes": "Layer sizes: conv(1 -> 8, 5 x 5, padding 2), conv(8 -> 16, 3 x 3), linear(576 -> 600), "
                       "linear(600 -> 120), linear(120 -> 10), every layer with its bias.",
    "cnn-log-softmax": "End with log_softmax over the classes (dim=1): the network is trained with the NLL loss, "
                       "which expects log-probabilities.",
    "cnn-log-softmax-axis": "log_softmax must run over the classes (dim=1), not over the batch (dim=0).",
    "cnn-forward": "The layers are right but forward is not: conv1 -> ReLU -> max-pool 2 -> conv2 -> ReLU -> "
                   "max-pool 2 -> flatten (torch.flatten(x, 1)) -> fc1 -> ReLU -> dropout -> fc2 -> ReLU -> "
                   "fc3 -> log_softmax.",
    "cnn-dropout": "Apply dropout with p = 0.3 once, after fc1's ReLU (nn.Dropout(0.3) or F.dropout with "
                   "training=self.training).",
    "pool-has-no-weights": "Max-pooling has no parameters, but removing it changes the size of what fc1 reads: "
                           "conv2 now sees 28 x 28 maps, so fc1 gets 16 x 13 x 13 inputs instead of 16 x 6 x 6.",
    "conv2-shrinks": "conv2 (3 x 3, no padding) shrinks 28 x 28 to 26 x 26 before the remaining pool halves it "
                     "to 13 x 13: fc1 reads 16 x 13 x 13 = 2,704 values.",
    "cnn-biases": "Count every bias too: each layer of the homework's CNN has one.",
    # chapter 3, decoding
    "includes-sos": "Leave SOS out of the returned tokens: it is the decoder's first input, not an output.",
    "past-eos": "Stop at the first EOS: keep the EOS and nothing after it.",
    "eos-dropped": "Keep the EOS at the end of a finished output: it marks that the decoder stopped by itself "
                   "(and its log-probability is part of the score).",
    "too-long": "Stop after max_length steps even when no EOS came.",
    "greedy-step": "At every step feed the previous output token (SOS first) with the state model.step returned, "
                   "and take the argmax of the log-probabilities.",
    "beam-drops-finished": "A finished hypothesis (ending in EOS) must stay in the beam with its score "
                           "unchanged, competing with the unfinished ones; dropping it loses exactly the outputs "
                           "that beam search is for. Stop when the best entry of the beam is finished.",
    "beam-is-greedy": "With beam_size k, keep the k best hypotheses at every step (not just the best one) and "
                      "extend each of them.",
    "beam-worse": "A more probable output exists: score a hypothesis by the sum of its log-probabilities and keep "
                  "the best beam_size of all beam_size x V extensions (not the best extension of each entry).",
    "beam-different": "Your output is more probable than the chapter's beam search finds, so your search is a "
                      "different one: keep finished and unfinished hypotheses in one beam of beam_size entries.",
}


@dataclass(frozen=True)
class CheckResult:
    """What a checker found (chapters 1-3): ``passed``, a short ``message``, ``status`` ("passed",
    "failed" or "not implemented") and, when recognised, the ``mistake`` (a key of :data:`MISTAKES`)."""

    passed: bool
    message: str
    status: str
    mistake: str | None = None

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return self.message

    def _repr_markdown_(self) -> str:
        return self.message.replace("\n", "  \n")

    def _repr_html_(self) -> str:
        colour = {"passed": "#2e7d32", "failed": "#c62828"}.get(self.status, "#757575")
        lines = "<br>".join(html.escape(line) for line in self.message.splitlines())
        return (f'<div class="exercise-check exercise-{self.status.replace(" ", "-")}" style="border-left: 4px '
                f'solid {colour}; padding: 0.4em 0.8em; background: rgba(127, 127, 127, 0.08); '
                f'overflow-wrap: anywhere;">{lines}</div>')


class NotImplementedYet(Exception):
    """The reader's function raised NotImplementedError (still the stub), or no answer was given."""

    def __init__(self, name: str, message: str | None = None):
        super().__init__(name)
        self.message = message or (f"○ {name} is not implemented yet: write its body, then run this cell "
                                   f"again.")


class CheckFailure(Exception):
    """A failed check: the message to show and the recognised mistake, if any."""

    def __init__(self, message: str, mistake: str | None = None):
        super().__init__(message)
        self.message, self.mistake = message, mistake


def name_of(thing: Any) -> str:
    """The name a message gives the reader's function or class (its ``__name__``, else its type's)."""
    return getattr(thing, "__name__", None) or type(thing).__name__


def _line_that_raised(error: Exception) -> str:
    """' (line 3: x = y[4])': the innermost line of the reader's own code in the traceback, if known."""
    own = [frame for frame in traceback.extract_tb(error.__traceback__)
           if "site-packages" not in frame.filename and frame.filename != __file__]
    return f" (line {own[-1].lineno}: {own[-1].line.strip()})" if own and own[-1].line else ""


def call_answer(fn: Callable, *args: Any, where: str) -> Any:
    """``fn(*args)``; the reader's exceptions become :class:`CheckFailure` (or :class:`NotImplementedYet`)."""
    try:
        return fn(*args)
    except NotImplementedError:
        raise NotImplementedYet(name_of(fn)) from None
    except Exception as error:  # the reader's bug: reported, never raised
        raise CheckFailure(f"✗ {name_of(fn)} raised {type(error).__name__}: {error}{_line_that_raised(error)}\n"
                           f"  on {where}.") from None


def fail(where: str, expected: str, got: str, mistake: str | None, fallback: str) -> CheckFailure:
    """A failure on ``where``: expected, got, and the hint of ``mistake`` (or ``fallback``)."""
    hint = MISTAKES[mistake] if mistake else fallback
    return CheckFailure(f"✗ Not yet: on {where}\n  expected {expected}\n  got {got}\n  Hint: {hint}", mistake)


def checker(check: Callable) -> Callable:
    """Turn a check that raises :class:`CheckFailure` into one that returns a :class:`CheckResult`."""

    @functools.wraps(check)
    def run(*args: Any, **kwargs: Any) -> CheckResult:
        try:
            return check(*args, **kwargs)
        except NotImplementedYet as stub:
            return CheckResult(False, stub.message, "not implemented")
        except CheckFailure as failure:
            return CheckResult(False, failure.message, "failed", failure.mistake)
        except Exception as error:  # an answer of a kind the checks did not foresee
            return CheckResult(False, f"✗ Could not check this answer: {type(error).__name__}: {error}", "failed")

    return run


def passed_on_all(what: str, count: int) -> CheckResult:
    """The result of a check that ``what`` passed on all ``count`` inputs."""
    return CheckResult(True, f"✓ Passed: {what} matches the library on all {count} inputs "
                             f"(random and edge cases).", "passed")


def show(value: Any, limit: int = 6) -> str:
    """A short, readable rendering of a number, a tuple or a tensor."""
    if isinstance(value, torch.Tensor):
        if value.numel() > limit:
            return f"a tensor of shape {tuple(value.shape)}"
        value = value.tolist()
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        shown = ", ".join(show(item, limit) for item in value[:limit])
        more = ", ..." if len(value) > limit else ""
        return f"[{shown}{more}]" if isinstance(value, list) else f"({shown}{more})"
    return repr(value)


def as_tensor(value: Any, what: str, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The reader's answer as a dense tensor, or a :class:`CheckFailure` saying what came back."""
    try:
        if isinstance(value, torch.Tensor):
            value = value.to_dense() if value.is_sparse else value
            return value.detach().to(dtype)
        return torch.as_tensor(value, dtype=dtype)
    except Exception:
        raise CheckFailure(f"✗ {what} should be a tensor (or an array), got {type(value).__name__}: "
                           f"{show(value)}") from None


def close(got: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-5, atol: float = 1e-6) -> bool:
    """Whether ``got`` has ``expected``'s shape and values, within the tolerances (NaN equal to NaN)."""
    return got.shape == expected.shape and bool(torch.allclose(got, expected.to(got.dtype), rtol=rtol, atol=atol,
                                                               equal_nan=True))


def first_difference(got: torch.Tensor, expected: torch.Tensor, name: str) -> tuple[str, str]:
    """(expected, got) as text: the whole tensor when small, else the first row that differs."""
    if got.shape != expected.shape:
        return f"{name} of shape {tuple(expected.shape)}", f"shape {tuple(got.shape)}"
    if expected.numel() <= 6 or expected.dim() < 2:
        return f"{name} = {show(expected, 12)}", show(got, 12)
    rows_expected, rows_got = expected.reshape(-1, expected.shape[-1]), got.reshape(-1, got.shape[-1])
    differs = ~torch.isclose(rows_got, rows_expected.to(rows_got.dtype), rtol=1e-5, atol=1e-6, equal_nan=True)
    row = int(differs.any(dim=1).nonzero()[0]) if differs.any() else 0
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(row), expected.shape[:-1]))
    at = ", ".join(str(i) for i in index)
    return f"{name}[{at}, :] = {show(rows_expected[row], 12)}", show(rows_got[row], 12)


def seeded(seed: int) -> torch.Generator:
    """A random generator of its own, seeded with ``seed``: the global random state is left alone."""
    return torch.Generator().manual_seed(seed)


def seeded_module(factory: Callable[[], nn.Module], seed: int) -> nn.Module:
    """A module initialised from ``seed`` without touching the global random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory()


def as_float(value: Any, name: str) -> float:
    """The reader's answer as one number, or a :class:`CheckFailure` saying what came back."""
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError):
        raise CheckFailure(f"✗ {name} should return one number, got {show(value)}.") from None


def as_count(value: Any, name: str) -> float:
    """The reader's answer as a count (one number, not NaN), or a :class:`CheckFailure`."""
    count = as_float(value, name)
    if math.isnan(count):
        raise CheckFailure(f"✗ {name} returned NaN instead of a count.")
    return count

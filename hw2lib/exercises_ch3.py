"""Exercises of chapter 3 (Q3.1 (a)-(c)): checkers of a reader's decoders and bilinear attention.

:func:`check_greedy_decode` runs the reader's decoder next to :func:`hw2lib.decoding.greedy_decode`
(Q3.1 (a)), :func:`check_bilinear_attention` compares the reader's attention with
:class:`hw2lib.seq2seq.BilinearAttention` on padded batches (Q3.1 (b)), and :func:`check_beam_search`
runs the reader's beam search next to :func:`hw2lib.decoding.beam_search` (Q3.1 (c)). The decoders
run on :func:`small_translator`, a tiny seeded model whose outputs make the usual mistakes visible.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch

from .chardata import EOS, SOS
from .decoding import beam_search, greedy_decode, sequence_log_probability
from .exercise_checks import (
    CheckFailure,
    CheckResult,
    as_tensor,
    call_answer,
    checker,
    close,
    fail,
    first_difference,
    name_of,
    passed_on_all,
    seeded,
    seeded_module,
    show,
)
from .seq2seq import BilinearAttention, Seq2Seq


# --- chapter 3: bilinear attention ----------------------------------------------------------------

ATTENTION_CASES = [(2, 3, 5, 4, [5, 2]), (1, 1, 1, 4, [1]), (3, 4, 6, 8, [6, 1, 3]), (2, 5, 4, 6, [4, 4]),
                   (4, 2, 7, 5, [3, 7, 1, 5])]


def _attention_variant(query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor, attention: BilinearAttention,
                       variant: str = "") -> tuple[torch.Tensor, torch.Tensor]:
    """Bilinear attention as written (``variant=""``) or with one of the usual mistakes (a :data:`MISTAKES` key)."""
    projected = attention.linear_in(query)
    if variant == "w-in-on-keys":
        scores = torch.bmm(query, attention.linear_in(keys).transpose(1, 2))
    elif variant == "dot-attention":
        scores = torch.bmm(query, keys.transpose(1, 2))
    else:
        scores = torch.bmm(projected, keys.transpose(1, 2))
    hidden = ~mask.unsqueeze(1) if variant != "mask-inverted" else mask.unsqueeze(1)
    if variant not in ("padding-mask", "mask-after-softmax"):
        scores = scores.masked_fill(hidden, float("-inf"))
    probabilities = torch.softmax(scores, dim=1 if variant == "softmax-axis" else -1)
    if variant == "mask-after-softmax":
        probabilities = probabilities * mask.unsqueeze(1)
    context = torch.bmm(probabilities, keys)
    joined = torch.cat([context, query] if variant == "concat-order" else [query, context], dim=-1)
    output = attention.linear_out(joined)
    return (output if variant == "missing-tanh" else torch.tanh(output)), probabilities


ATTENTION_VARIANTS = ("padding-mask", "softmax-axis", "mask-after-softmax", "mask-inverted", "w-in-on-keys",
                      "dot-attention", "concat-order", "missing-tanh")


def _as_attention_result(value: Any, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise CheckFailure(f"✗ {name} should return a pair (attended, probabilities), got {show(value)}.")
    return tuple(as_tensor(item, f"{name}'s result", torch.float32) for item in value)


def _attention_case(batch: int, steps: int, positions: int, hidden: int, lengths: list[int], seed: int):
    generator = seeded(seed)
    query = torch.randn(batch, steps, hidden, generator=generator)
    keys = torch.randn(batch, positions, hidden, generator=generator)  # padded positions hold values too
    mask = torch.arange(positions)[None, :] < torch.tensor(lengths)[:, None]
    return query, keys, mask


@checker
def check_bilinear_attention(fn: Callable[..., tuple[torch.Tensor, torch.Tensor]]) -> CheckResult:
    """Check ``fn(query, encoder_outputs, source_mask, linear_in, linear_out) -> (attended, probabilities)``
    (query (B, T, H), encoder outputs (B, S, H), mask (B, S) True at real positions; attended
    (B, T, H), probabilities (B, T, S)) against :class:`hw2lib.seq2seq.BilinearAttention`
    (chapter 3, Question 3.1 (b))."""
    for number, (batch, steps, positions, hidden, lengths) in enumerate(ATTENTION_CASES):
        attention = seeded_module(lambda: BilinearAttention(hidden), seed=71 + number)
        query, keys, mask = _attention_case(batch, steps, positions, hidden, lengths, seed=81 + number)
        where = f"B = {batch}, T = {steps}, S = {positions}, H = {hidden}, source lengths {lengths}"
        with torch.no_grad():
            result = call_answer(fn, query.clone(), keys.clone(), mask.clone(), attention.linear_in,
                                 attention.linear_out, where=where)
            got_output, got_probabilities = _as_attention_result(result, name_of(fn))
            expected_output, expected_probabilities = attention(query, keys, mask)
            if close(got_probabilities, expected_probabilities) and close(got_output, expected_output):
                continue
            mistake = next((variant for variant in ATTENTION_VARIANTS if all(
                close(got, wrong) for got, wrong in zip((got_output, got_probabilities),
                                                        _attention_variant(query, keys, mask, attention, variant)))),
                           None)
        shown = (first_difference(got_probabilities, expected_probabilities, "probabilities")
                 if not close(got_probabilities, expected_probabilities)
                 else first_difference(got_output, expected_output, "attended"))
        raise fail(where, *shown, mistake,
                   "s = (W_in q) . h_i, masked to -inf at padding, p = softmax(s) over the source positions, "
                   "c = sum p_i h_i, a = tanh(W_out [q; c]).")
    return passed_on_all(name_of(fn), len(ATTENTION_CASES))


# --- chapter 3: decoding --------------------------------------------------------------------------

SMALL_SOURCE_VOCAB, SMALL_TARGET_VOCAB, SMALL_HIDDEN = 12, 9, 16


def small_translator(seed: int = 4) -> Seq2Seq:
    """A tiny seeded translator with attention, for checking decoders (chapter 3): 12 source and 9
    target symbols, hidden size 16, in eval mode. Its weights are doubled so that its outputs depend
    on the source and beam search often beats greedy decoding; most outputs end with EOS."""
    model = seeded_module(lambda: Seq2Seq(SMALL_SOURCE_VOCAB, SMALL_TARGET_VOCAB, hidden_size=SMALL_HIDDEN,
                                          dropout=0.0, attention=True), seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(2.0)
        model.generator.bias[EOS] += 0.5
    return model.eval()


def _decoding_sources(count: int, seed: int) -> list[torch.Tensor]:
    generator = seeded(seed)
    lengths = torch.randint(1, 8, (count,), generator=generator).tolist()
    return [torch.randint(4, SMALL_SOURCE_VOCAB, (length,), generator=generator) for length in lengths]


def _as_tokens(value: Any, name: str) -> list[int]:
    value = getattr(value, "tokens", value)  # a Hypothesis is fine too
    try:
        tokens = torch.as_tensor(value).reshape(-1).tolist() if isinstance(value, torch.Tensor) else list(value)
        return [int(token) for token in tokens]
    except (TypeError, ValueError):
        raise CheckFailure(f"✗ {name} should return a list of token ids, got {show(value)}.") from None


def _score(model: Seq2Seq, source: torch.Tensor, tokens: list[int]) -> float:
    return float(sequence_log_probability(model, source[None], torch.tensor([len(source)]), [tokens])[0])


def _decoding_mistake(tokens: list[int], expected: list[int], max_length: int) -> str | None:
    """Mistakes any decoder can make, recognised from its tokens alone."""
    if tokens[:1] == [SOS]:
        return "includes-sos"
    if EOS in tokens[:-1]:
        return "past-eos"
    if len(tokens) > max_length:
        return "too-long"
    if expected[-1:] == [EOS] and tokens == expected[:-1]:
        return "eos-dropped"
    return None


def _compare_decoding(model: Seq2Seq, source: torch.Tensor, tokens: list[int], expected: list[int],
                      max_length: int, where: str, beam: tuple[int, list[int]] | None) -> None:
    """Raise a :class:`CheckFailure` unless ``tokens`` is the expected output (or an equally probable one)."""
    if tokens == expected:
        return
    mistake = _decoding_mistake(tokens, expected, max_length)
    if mistake is None:
        got_score, expected_score = _score(model, source, tokens), _score(model, source, expected)
        if math.isclose(got_score, expected_score, abs_tol=1e-4) and (tokens[-1:] == [EOS]) == (expected[-1:] == [EOS]):
            return  # a tie: as probable as the library's output
        mistake = "greedy-step"
        if beam is not None:
            beam_size, greedy = beam
            if expected[-1:] == [EOS] and tokens[-1:] != [EOS]:
                mistake = "beam-drops-finished"
            elif beam_size > 1 and tokens == greedy:
                mistake = "beam-is-greedy"
            else:
                mistake = "beam-worse" if got_score < expected_score else "beam-different"
    raise fail(where, f"tokens {expected}", f"{tokens}", mistake, "")


def _check_decoder(fn: Callable, model: Seq2Seq | None, sources: Sequence[torch.Tensor] | None,
                   beam_sizes: Sequence[int | None], max_length: int) -> int:
    """Run ``fn`` next to the library's decoder on every source and beam size; returns the number of runs."""
    model = small_translator() if model is None else model.eval()
    sources = _decoding_sources(12, seed=91) if sources is None else list(sources)
    runs = 0
    with torch.no_grad():
        for number, source in enumerate(sources):
            lengths = torch.tensor([len(source)])
            greedy = greedy_decode(model, source[None], lengths, max_length=max_length)[0].tokens
            for beam_size in beam_sizes:
                where = f"source sentence {number} (ids {source.tolist()}), max_length = {max_length}"
                if beam_size is None:
                    got = call_answer(fn, model, source.clone(), max_length, where=where)
                    expected, beam = greedy, None
                else:
                    where += f", beam_size = {beam_size}"
                    got = call_answer(fn, model, source.clone(), beam_size, max_length, where=where)
                    expected = beam_search(model, source[None], lengths, beam_size=beam_size,
                                           max_length=max_length)[0].tokens
                    beam = (beam_size, greedy)
                _compare_decoding(model, source, _as_tokens(got, name_of(fn)), expected, max_length, where, beam)
                runs += 1
    return runs


@checker
def check_greedy_decode(fn: Callable[[Seq2Seq, torch.Tensor, int], list[int]], model: Seq2Seq | None = None,
                        sources: Sequence[torch.Tensor] | None = None, max_length: int = 10) -> CheckResult:
    """Check ``fn(model, source, max_length) -> token ids`` (one sentence; ids after SOS, ending with EOS
    when the decoder stopped by itself) against :func:`hw2lib.decoding.greedy_decode` (chapter 3), on
    :func:`small_translator` or on ``model`` with ``sources`` (1-D id tensors)."""
    runs = _check_decoder(fn, model, sources, [None], max_length)
    return passed_on_all(name_of(fn), runs)


@checker
def check_beam_search(fn: Callable[[Seq2Seq, torch.Tensor, int, int], list[int]], model: Seq2Seq | None = None,
                      sources: Sequence[torch.Tensor] | None = None, max_length: int = 10,
                      beam_sizes: Sequence[int] = (1, 2, 3, 5)) -> CheckResult:
    """Check ``fn(model, source, beam_size, max_length) -> token ids`` against
    :func:`hw2lib.decoding.beam_search` without length normalisation (chapter 3, Question 3.1 (c)), on
    :func:`small_translator` or on ``model`` with ``sources``; an equally probable output counts as right."""
    runs = _check_decoder(fn, model, sources, list(beam_sizes), max_length)
    return passed_on_all(name_of(fn), runs)

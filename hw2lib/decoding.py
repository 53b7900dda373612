"""Decoding a trained translator: batched greedy search, batched beam search, scoring outputs,
and decoding a whole split with its translation scores and timing.

Chapter 3 uses these for the validation error after every epoch (greedy) and for Q3.1 (c)
(beam search). All decoders run in evaluation mode (no dropout) without gradients, and restore
the model's previous mode afterwards.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .chardata import EOS, PAD, SOS, CharPairs, Vocabulary, collate_pairs
from .metrics import translation_scores
from .seq2seq import Seq2Seq
from .utils import evaluation_mode, model_device

MAX_DECODING_STEPS = 50  # the course's limit: stop at EOS or after 50 characters


@dataclass
class Hypothesis:
    """One decoded output: ids without SOS (ending with EOS when the decoder stopped by itself),
    its total log-probability under the model, and optionally the attention (len(tokens), S)
    over the real source positions."""

    tokens: list[int]
    log_prob: float
    attention: np.ndarray | None = None

    @property
    def finished(self) -> bool:
        return bool(self.tokens) and self.tokens[-1] == EOS


def _cut_at_eos(row: Sequence[int]) -> list[int]:
    tokens = []
    for token in row:
        tokens.append(int(token))
        if token == EOS:
            break
    return tokens


def _check_max_length(max_length: int) -> None:
    if max_length < 1:
        raise ValueError(f"max_length must be at least 1, got {max_length}")


def greedy_decode(model: Seq2Seq, source: torch.Tensor, source_lengths: torch.Tensor, *,
                  max_length: int = MAX_DECODING_STEPS, keep_attention: bool = False) -> list[Hypothesis]:
    """Greedy decoding of a batch (chapter 3): from SOS, take the most likely character at each step;
    each sentence stops at its own EOS, all stop after ``max_length`` steps."""
    _check_max_length(max_length)
    device = model_device(model)
    with evaluation_mode(model):
        encoded = model.encode(source.to(device), source_lengths)
        batch = source.shape[0]
        previous = torch.full((batch,), SOS, dtype=torch.long, device=device)
        state = encoded.state
        finished = torch.zeros(batch, dtype=torch.bool, device=device)
        log_prob = torch.zeros(batch, device=device)
        steps, attention_steps = [], []
        for _ in range(max_length):
            log_probs, state, attention = model.step(previous, state, encoded)
            best_log_prob, best = log_probs.max(dim=-1)
            # Finished sentences keep running (cheaper than shrinking the batch); their steps are ignored.
            log_prob += torch.where(finished, torch.zeros_like(best_log_prob), best_log_prob)
            best = torch.where(finished, torch.full_like(best, PAD), best)
            steps.append(best)
            if keep_attention and attention is not None:
                attention_steps.append(attention)
            finished |= best == EOS
            previous = best
            if bool(finished.all()):
                break
        generated = torch.stack(steps, dim=1).tolist()
        attention_all = torch.stack(attention_steps, dim=1).cpu().numpy() if attention_steps else None
    hypotheses = []
    for row, tokens_row in enumerate(generated):
        tokens = _cut_at_eos(tokens_row)
        attention = None
        if attention_all is not None:
            attention = attention_all[row, : len(tokens), : int(source_lengths[row])]
        hypotheses.append(Hypothesis(tokens, float(log_prob[row]), attention))
    return hypotheses


class _Beams:
    """The state of a batched beam search: for B sentences x k entries, the total log-probabilities,
    which entries are finished, their lengths, their tokens and (optionally) attention so far, and
    the answer recorded for each sentence the step it is done."""

    def __init__(self, batch: int, k: int, max_length: int, device: torch.device) -> None:
        self.batch, self.k = batch, k
        self.scores = torch.full((batch, k), float("-inf"), device=device)
        self.scores[:, 0] = 0.0  # start from one entry; the others would only duplicate it
        self.finished = torch.zeros(batch, k, dtype=torch.bool, device=device)
        self.lengths = torch.zeros(batch, k, dtype=torch.long, device=device)
        self.tokens = torch.empty(batch, k, 0, dtype=torch.long, device=device)
        self.attention: torch.Tensor | None = None
        self.row_offsets = (torch.arange(batch, device=device) * k).unsqueeze(1)
        # A sentence's answer is taken the step it is done: later steps only shuffle ties.
        self.chosen_tokens = torch.full((batch, max_length), PAD, dtype=torch.long, device=device)
        self.chosen_scores = torch.zeros(batch, device=device)
        self.chosen_attention: torch.Tensor | None = None
        self.recorded = torch.zeros(batch, dtype=torch.bool, device=device)

    def extend(self, log_probs: torch.Tensor, carry: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keep the best k of every entry's continuations (a finished entry's only one is itself,
        ``carry``); return each new entry's parent index and last token, both (B, k)."""
        vocab_size = log_probs.shape[-1]
        log_probs = torch.where(self.finished.unsqueeze(-1), carry, log_probs)
        candidates = (self.scores.unsqueeze(-1) + log_probs).view(self.batch, self.k * vocab_size)
        self.scores, flat_index = candidates.topk(self.k, dim=-1)
        parent, token = flat_index // vocab_size, flat_index % vocab_size
        parent_finished = self.finished.gather(1, parent)
        self.lengths = self.lengths.gather(1, parent) + (~parent_finished).long()
        # An entry at -inf (fewer real candidates than beams, early on) counts as finished: it is dead.
        self.finished = parent_finished | (token == EOS) | torch.isinf(self.scores)
        self.tokens = torch.cat([self.tokens.gather(1, parent.unsqueeze(-1).expand_as(self.tokens)),
                                 token.unsqueeze(-1)], dim=-1)
        return parent, token

    def flat_rows(self, parent: torch.Tensor) -> torch.Tensor:
        """Rows of the (B * k)-sized decoder state that the new entries continue."""
        return (self.row_offsets + parent).view(-1)

    def extend_attention(self, attention: torch.Tensor, parent: torch.Tensor, max_length: int) -> None:
        attention = attention.view(self.batch, self.k, 1, -1)
        step = attention.gather(1, parent.view(self.batch, self.k, 1, 1).expand_as(attention))
        if self.attention is None:
            self.attention = step
            self.chosen_attention = torch.zeros(self.batch, max_length, attention.shape[-1], device=step.device)
        else:
            earlier = self.attention.gather(1, parent.view(self.batch, self.k, 1, 1).expand_as(self.attention))
            self.attention = torch.cat([earlier, step], dim=2)

    def record_done(self, step: int, last_step: bool, length_normalisation: float) -> None:
        """Record the answer of every sentence that is done at this step (or at the last step)."""
        done = self.finished.all(dim=1) if length_normalisation > 0 else self.finished[:, 0]
        newly = (done | last_step) & ~self.recorded
        if not bool(newly.any()):
            return
        if length_normalisation > 0:
            best = (self.scores / self.lengths.clamp(min=1).float() ** length_normalisation).argmax(dim=1)
        else:
            best = torch.zeros(self.batch, dtype=torch.long, device=self.scores.device)  # topk keeps it sorted
        sentences = newly.nonzero().squeeze(1)
        self.chosen_tokens[sentences, : step + 1] = self.tokens[sentences, best[sentences]]
        self.chosen_scores[sentences] = self.scores[sentences, best[sentences]]
        if self.chosen_attention is not None:
            self.chosen_attention[sentences, : step + 1] = self.attention[sentences, best[sentences]]
        self.recorded |= newly

    def hypotheses(self, source_lengths: torch.Tensor) -> list[Hypothesis]:
        rows, scores = self.chosen_tokens.tolist(), self.chosen_scores.tolist()
        attention = None if self.chosen_attention is None else self.chosen_attention.cpu().numpy()
        hypotheses = []
        for row in range(self.batch):
            tokens = _cut_at_eos(rows[row])
            kept = None if attention is None else attention[row, : len(tokens), : int(source_lengths[row])]
            hypotheses.append(Hypothesis(tokens, scores[row], kept))
        return hypotheses


def beam_search(model: Seq2Seq, source: torch.Tensor, source_lengths: torch.Tensor, *, beam_size: int,
                max_length: int = MAX_DECODING_STEPS, length_normalisation: float = 0.0,
                keep_attention: bool = False) -> list[Hypothesis]:
    """Batched beam search (chapter 3, Q3.1 (c)): all sentences x ``beam_size`` entries in one tensor.

    A finished entry stays as it is (score unchanged), an unfinished one is extended by every
    character, and the best ``beam_size`` candidates by total log-probability form the next beam.
    Without length normalisation a sentence is done when its best entry is finished (log-probabilities
    only fall, so nothing can overtake it): beam size 1 is then exactly greedy decoding. With
    ``length_normalisation`` alpha > 0 the search runs until every entry is finished and returns the
    highest log-probability / length**alpha (the length counts the EOS).
    """
    _check_max_length(max_length)
    if beam_size < 1:
        raise ValueError(f"beam_size must be at least 1, got {beam_size}")
    if length_normalisation < 0:
        raise ValueError(f"length_normalisation must be >= 0, got {length_normalisation}")
    device = model_device(model)
    vocab_size = model.generator.out_features
    with evaluation_mode(model):
        encoded = model.encode(source.to(device), source_lengths).repeat_each(beam_size)
        beams = _Beams(source.shape[0], beam_size, max_length, device)
        carry = torch.full((vocab_size,), float("-inf"), device=device)
        carry[PAD] = 0.0  # a finished entry's only continuation: itself, unchanged
        state = encoded.state
        previous = torch.full((source.shape[0] * beam_size,), SOS, dtype=torch.long, device=device)
        for step in range(max_length):
            log_probs, state, attention = model.step(previous, state, encoded)
            parent, token = beams.extend(log_probs.view(source.shape[0], beam_size, vocab_size), carry)
            rows = beams.flat_rows(parent)
            state = (state[0][:, rows], state[1][:, rows])
            if keep_attention and attention is not None:
                beams.extend_attention(attention, parent, max_length)
            previous = token.view(-1)
            beams.record_done(step, step == max_length - 1, length_normalisation)
            if bool(beams.recorded.all()):
                break
        return beams.hypotheses(source_lengths)


def sequence_log_probability(model: Seq2Seq, source: torch.Tensor, source_lengths: torch.Tensor,
                             outputs: Sequence[Sequence[int]]) -> torch.Tensor:
    """Log-probability (B,) of given outputs under the model (chapter 3).

    ``outputs[b]`` are the ids after SOS; include the final EOS to score a finished sentence
    (without it, the score is that of the prefix).
    """
    if len(outputs) != source.shape[0]:
        raise ValueError(f"got {len(outputs)} outputs for {source.shape[0]} source sentences")
    device = model_device(model)
    longest = max((len(tokens) for tokens in outputs), default=0)
    targets = torch.full((len(outputs), max(longest, 1)), PAD, dtype=torch.long)
    for row, tokens in enumerate(outputs):
        targets[row, : len(tokens)] = torch.as_tensor(list(tokens), dtype=torch.long)
    inputs = torch.cat([torch.full((len(outputs), 1), SOS, dtype=torch.long), targets[:, :-1]], dim=1)
    real = torch.arange(targets.shape[1]).unsqueeze(0) < torch.tensor([len(t) for t in outputs]).unsqueeze(1)
    with evaluation_mode(model):
        logits = model(source.to(device), source_lengths, inputs.to(device))
        token_log_probs = torch.log_softmax(logits, dim=-1).gather(-1, targets.to(device).unsqueeze(-1)).squeeze(-1)
        return (token_log_probs * real.to(device)).sum(dim=1).cpu()


def decode_split(model: Seq2Seq, pairs: CharPairs, *, beam_size: int | None = None, batch_size: int = 250,
                 max_length: int = MAX_DECODING_STEPS, length_normalisation: float = 0.0,
                 keep_attention: bool = False, progress: bool = False) -> list[Hypothesis]:
    """Decode every source sentence of a split, in order, ``batch_size`` sentences at a time
    (chapter 3). ``beam_size=None`` is greedy decoding; an integer runs :func:`beam_search`."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    hypotheses: list[Hypothesis] = []
    starts = range(0, len(pairs), batch_size)
    for start in tqdm(starts, desc="decoding", disable=not progress, leave=False):
        batch = collate_pairs([pairs[index] for index in range(start, min(start + batch_size, len(pairs)))])
        if beam_size is None:
            hypotheses += greedy_decode(model, batch.source, batch.source_lengths, max_length=max_length,
                                        keep_attention=keep_attention)
        else:
            hypotheses += beam_search(model, batch.source, batch.source_lengths, beam_size=beam_size,
                                      max_length=max_length, length_normalisation=length_normalisation,
                                      keep_attention=keep_attention)
    return hypotheses


def evaluate_decoding(model: Seq2Seq, pairs: CharPairs, target_vocab: Vocabulary, *, beam_size: int | None = None,
                      length_normalisation: float = 0.0, batch_size: int = 250) -> dict:
    """Decode a split and score it (chapter 3): error rate, BLEU, chrF, exact match, the decoding time
    in seconds, the mean model log-probability of the outputs, and the predictions themselves."""
    started = time.perf_counter()
    hypotheses = decode_split(model, pairs, beam_size=beam_size, length_normalisation=length_normalisation,
                              batch_size=batch_size)
    seconds = time.perf_counter() - started
    predictions = [target_vocab.decode(hypothesis.tokens) for hypothesis in hypotheses]
    references = [english for _, english in pairs.pairs]
    return {**translation_scores(references, predictions), "seconds": seconds,
            "mean_log_prob": float(np.mean([hypothesis.log_prob for hypothesis in hypotheses])),
            "finished": float(np.mean([hypothesis.finished for hypothesis in hypotheses])),
            "predictions": predictions, "log_probs": [hypothesis.log_prob for hypothesis in hypotheses]}


def compare_decoders(model: Seq2Seq, pairs: CharPairs, target_vocab: Vocabulary, *, beam_sizes=(1, 3, 5, 10),
                     length_normalisation: float | None = 1.0, batch_size: int = 250) -> list[dict]:
    """Greedy decoding against beam search of each size in ``beam_sizes`` (and, with
    ``length_normalisation``, the largest beam with that alpha) on one split (chapter 3).

    One row per decoder: its scores (see :func:`evaluate_decoding`) and, against greedy, the
    fraction of sentences whose output is more probable, less probable, or identical.
    """
    settings = [("greedy", None, 0.0)] + [(f"beam {size}", size, 0.0) for size in beam_sizes]
    if length_normalisation:
        largest = max(beam_sizes)
        settings.append((f"beam {largest}, alpha {length_normalisation:g}", largest, length_normalisation))
    rows, greedy = [], None
    for label, beam_size, alpha in settings:
        report = evaluate_decoding(model, pairs, target_vocab, beam_size=beam_size, length_normalisation=alpha,
                                   batch_size=batch_size)
        greedy = greedy or report
        differences = np.array(report["log_probs"]) - np.array(greedy["log_probs"])
        same = np.array([a == b for a, b in zip(report["predictions"], greedy["predictions"])])
        rows.append({"decoder": label, "beam_size": beam_size or 1, "length_normalisation": alpha,
                     **{key: value for key, value in report.items() if key not in ("log_probs",)},
                     "same_as_greedy": float(same.mean()),
                     "more_probable_than_greedy": float(((differences > 1e-4) & ~same).mean()),
                     "less_probable_than_greedy": float(((differences < -1e-4) & ~same).mean())})
    return rows


def monotonic_fraction(hypothesis: Hypothesis) -> float:
    """Fraction of consecutive output characters whose attention peak does not move left in the source
    (chapter 3); 1.0 is a perfectly monotonic alignment. The EOS step is left out."""
    if hypothesis.attention is None:
        raise ValueError("the hypothesis has no attention; decode with keep_attention=True and an attention model")
    rows = hypothesis.attention[:-1] if hypothesis.finished else hypothesis.attention
    peaks = np.asarray(rows).argmax(axis=1)
    if len(peaks) < 2:
        return 1.0
    return float(np.mean(np.diff(peaks) >= 0))

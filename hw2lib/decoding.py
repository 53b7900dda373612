"""Decoding a trained translator: batched greedy search, batched beam search, scoring outputs,
and decoding a whole split with its translation scores and timing.

Chapter 3 uses these for the validation error after every epoch (greedy) and for question (c)
(beam search). All decoders run in evaluation mode (no dropout) without gradients, and restore
the model's previous mode afterwards.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .chardata import EOS, PAD, SOS, CharPairs, Vocabulary, collate_pairs
from .metrics import translation_scores
from .train import model_device

if TYPE_CHECKING:  # seq2seq imports this module for its training task
    from .seq2seq import Seq2Seq

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


@contextmanager
def evaluation_mode(model: nn.Module) -> Iterator[None]:
    """Switch off dropout and gradients; put the model back in its previous mode afterwards (chapter 3)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


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


def beam_search(model: Seq2Seq, source: torch.Tensor, source_lengths: torch.Tensor, *, beam_size: int,
                max_length: int = MAX_DECODING_STEPS, length_normalisation: float = 0.0,
                keep_attention: bool = False) -> list[Hypothesis]:
    """Batched beam search (chapter 3): all sentences x ``beam_size`` beams in one tensor.

    The beam holds ``beam_size`` entries, finished or not; a finished entry stays as it is
    (score unchanged), an unfinished one is extended by every character, and the best
    ``beam_size`` candidates by total log-probability form the next beam.

    Without length normalisation a sentence is done when its best entry is finished (no
    unfinished entry can overtake it, since log-probabilities only fall), and the best entry
    is returned; beam size 1 is then exactly greedy decoding. With ``length_normalisation``
    alpha > 0 the search runs until all entries are finished (or ``max_length``), and the entry
    with the highest log-probability / length**alpha is returned (length counts the EOS).
    """
    _check_max_length(max_length)
    vocab_size = model.generator.out_features
    if beam_size < 1:
        raise ValueError(f"beam_size must be at least 1, got {beam_size}")
    if length_normalisation < 0:
        raise ValueError(f"length_normalisation must be >= 0, got {length_normalisation}")
    device = model_device(model)
    batch, k = source.shape[0], beam_size
    with evaluation_mode(model):
        encoded = model.encode(source.to(device), source_lengths).repeat_each(k)
        state = encoded.state
        scores = torch.full((batch, k), float("-inf"), device=device)
        scores[:, 0] = 0.0  # start from one entry; the others would only duplicate it
        finished = torch.zeros(batch, k, dtype=torch.bool, device=device)
        lengths = torch.zeros(batch, k, dtype=torch.long, device=device)
        history = torch.empty(batch, k, 0, dtype=torch.long, device=device)
        attention_history = None
        previous = torch.full((batch * k,), SOS, dtype=torch.long, device=device)
        carry = torch.full((vocab_size,), float("-inf"), device=device)
        carry[PAD] = 0.0  # a finished entry's only continuation: itself, unchanged
        row_offsets = (torch.arange(batch, device=device) * k).unsqueeze(1)
        # A sentence's answer is taken the step it is done: later steps only shuffle ties.
        chosen_tokens = torch.full((batch, max_length), PAD, dtype=torch.long, device=device)
        chosen_scores = torch.zeros(batch, device=device)
        chosen_attention = None
        recorded = torch.zeros(batch, dtype=torch.bool, device=device)
        for step in range(max_length):
            log_probs, state, attention = model.step(previous, state, encoded)
            log_probs = log_probs.view(batch, k, vocab_size)
            log_probs = torch.where(finished.unsqueeze(-1), carry, log_probs)
            candidates = (scores.unsqueeze(-1) + log_probs).view(batch, k * vocab_size)
            scores, flat_index = candidates.topk(k, dim=-1)
            parent, token = flat_index // vocab_size, flat_index % vocab_size
            parent_finished = finished.gather(1, parent)
            lengths = lengths.gather(1, parent) + (~parent_finished).long()
            # An entry at -inf (fewer real candidates than beams, early on) counts as finished: it is dead.
            finished = parent_finished | (token == EOS) | torch.isinf(scores)
            history = torch.cat([history.gather(1, parent.unsqueeze(-1).expand_as(history)),
                                 token.unsqueeze(-1)], dim=-1)
            rows = (row_offsets + parent).view(-1)
            state = (state[0][:, rows], state[1][:, rows])
            if keep_attention and attention is not None:
                attention = attention.view(batch, k, 1, -1)
                step_attention = attention.gather(1, parent.view(batch, k, 1, 1).expand_as(attention))
                if attention_history is None:
                    attention_history = step_attention
                    chosen_attention = torch.zeros(batch, max_length, attention.shape[-1], device=device)
                else:
                    earlier = attention_history.gather(1, parent.view(batch, k, 1, 1).expand_as(attention_history))
                    attention_history = torch.cat([earlier, step_attention], dim=2)
            previous = token.view(-1)
            done = finished.all(dim=1) if length_normalisation > 0 else finished[:, 0]
            last_step = step == max_length - 1
            newly = (done | last_step) & ~recorded
            if bool(newly.any()):
                if length_normalisation > 0:
                    best = (scores / lengths.clamp(min=1).float() ** length_normalisation).argmax(dim=1)
                else:
                    best = torch.zeros(batch, dtype=torch.long, device=device)  # topk keeps the beam sorted
                sentences = newly.nonzero().squeeze(1)
                chosen_tokens[sentences, : step + 1] = history[sentences, best[sentences]]
                chosen_scores[sentences] = scores[sentences, best[sentences]]
                if chosen_attention is not None:
                    chosen_attention[sentences, : step + 1] = attention_history[sentences, best[sentences]]
                recorded |= newly
            if bool(recorded.all()):
                break
        best_rows = chosen_tokens.tolist()
        best_scores = chosen_scores.tolist()
        best_attention = None if chosen_attention is None else chosen_attention.cpu().numpy()
    hypotheses = []
    for row in range(batch):
        tokens = _cut_at_eos(best_rows[row])
        attention = None
        if best_attention is not None:
            attention = best_attention[row, : len(tokens), : int(source_lengths[row])]
        hypotheses.append(Hypothesis(tokens, best_scores[row], attention))
    return hypotheses


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

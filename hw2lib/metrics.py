"""Translation quality: the homework's error rate, BLEU, chrF and exact match (chapter 3)."""

from __future__ import annotations

from typing import Sequence

import Levenshtein
import sacrebleu


def _check_pairs(references: Sequence[str], predictions: Sequence[str]) -> None:
    if len(references) != len(predictions):
        raise ValueError(f"got {len(references)} references but {len(predictions)} predictions")
    if len(references) == 0:
        raise ValueError("no sentences to score")


def sentence_error_rates(references: Sequence[str], predictions: Sequence[str]) -> list[float]:
    """Per sentence: Levenshtein(reference, prediction) / len(reference) (chapter 3).

    A character-level edit distance relative to the reference; a prediction much longer than
    its reference scores above 1.
    """
    _check_pairs(references, predictions)
    rates = []
    for position, (reference, prediction) in enumerate(zip(references, predictions)):
        if not reference:
            raise ValueError(f"reference {position} is empty: the error rate divides by its length")
        rates.append(Levenshtein.distance(reference, prediction) / len(reference))
    return rates


def error_rate(references: Sequence[str], predictions: Sequence[str]) -> float:
    """The homework's figure: the mean of :func:`sentence_error_rates` over the sentences (chapter 3)."""
    rates = sentence_error_rates(references, predictions)
    return sum(rates) / len(rates)


def bleu(references: Sequence[str], predictions: Sequence[str]) -> float:
    """Corpus BLEU (0-100) with sacrebleu's default 13a tokenisation, one reference per sentence (chapter 3).

    The course's sentences already have a space before ``. ! ?`` (sacrebleu would warn that they
    look tokenised); references and predictions are written alike, so the warning is silenced.
    """
    _check_pairs(references, predictions)
    return float(sacrebleu.corpus_bleu(list(predictions), [list(references)], force=True).score)


def chrf(references: Sequence[str], predictions: Sequence[str]) -> float:
    """Corpus chrF (0-100; character n-grams up to 6, beta 2) from sacrebleu (chapter 3)."""
    _check_pairs(references, predictions)
    return float(sacrebleu.corpus_chrf(list(predictions), [list(references)]).score)


def exact_match(references: Sequence[str], predictions: Sequence[str]) -> float:
    """Fraction of predictions identical to their reference (chapter 3)."""
    _check_pairs(references, predictions)
    return sum(reference == prediction for reference, prediction in zip(references, predictions)) / len(references)


def translation_scores(references: Sequence[str], predictions: Sequence[str]) -> dict[str, float]:
    """All four figures at once: ``error_rate``, ``bleu``, ``chrf``, ``exact_match`` (chapter 3)."""
    return {"error_rate": error_rate(references, predictions), "bleu": bleu(references, predictions),
            "chrf": chrf(references, predictions), "exact_match": exact_match(references, predictions)}

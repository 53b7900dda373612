"""The homework's error rate, BLEU, chrF and exact match against hand-computed cases."""

from __future__ import annotations

import pytest

from hw2lib.metrics import bleu, chrf, error_rate, exact_match, sentence_error_rates, translation_scores


def test_error_rate_divides_the_edit_distance_by_the_reference_length():
    # kitten -> sitting: substitute k->s, e->i, insert g = 3 edits
    assert error_rate(["kitten"], ["sitting"]) == pytest.approx(3 / 6)
    assert error_rate(["sitting"], ["kitten"]) == pytest.approx(3 / 7)
    assert error_rate(["i m broke ."], ["i m broke ."]) == 0.0
    assert error_rate(["abc"], [""]) == 1.0  # an empty prediction deletes everything


def test_error_rate_can_exceed_one():
    assert error_rate(["no ."], ["i don t know what to say ."]) == pytest.approx(22 / 4)
    assert error_rate(["ab"], ["abcdef"]) == 2.0


def test_error_rate_is_the_mean_over_sentences_not_a_corpus_ratio():
    references, predictions = ["a", "abcd"], ["b", "abcd"]
    assert sentence_error_rates(references, predictions) == [1.0, 0.0]
    assert error_rate(references, predictions) == 0.5  # a corpus ratio would give 1 / 5


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="reference 1 is empty"):
        error_rate(["ok", ""], ["ok", "x"])
    with pytest.raises(ValueError, match="2 references but 1 predictions"):
        error_rate(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="no sentences"):
        bleu([], [])


def test_bleu_chrf_and_exact_match():
    references = ["tom is here .", "i like cats ."]
    assert bleu(references, references) == pytest.approx(100.0)
    assert chrf(references, references) == pytest.approx(100.0)
    assert bleu(references, ["xyz qqq", "uuu vvv"]) == pytest.approx(0.0)
    half = ["tom is here .", "i like dogs ."]
    assert 0.0 < bleu(references, half) < 100.0
    assert 0.0 < chrf(references, half) < 100.0
    assert exact_match(references, half) == 0.5
    # chrF rewards a near miss in one character more than BLEU, which sees a wrong word
    near = ["tom is heer .", "i like cats ."]
    assert chrf(references, near) > bleu(references, near)
    scores = translation_scores(references, half)
    assert set(scores) == {"error_rate", "bleu", "chrf", "exact_match"}
    assert scores["error_rate"] == pytest.approx((0 + 3 / 13) / 2)  # cats -> dogs: 3 substitutions

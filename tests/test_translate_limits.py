"""translate() refuses what would run for minutes or fail inside torch (case 12 of the reliability list):
a text of a million characters, a beam of a million, a beam of 2.5."""

from __future__ import annotations

import time

import pytest
import torch

from hw2lib.chardata import build_dataset
from hw2lib.seq2seq import Seq2Seq
from hw2lib.translate import MAX_BEAM_SIZE, MAX_INPUT_CHARACTERS, translate


@pytest.fixture(scope="module")
def translator():
    pairs = [("hola .", "hello ."), ("adios .", "bye ."), ("si .", "yes .")]
    data = build_dataset("toy", "three pairs", {"train": pairs, "val": pairs, "test": pairs})
    torch.manual_seed(0)
    model = Seq2Seq(len(data.source_vocab), len(data.target_vocab), hidden_size=16, dropout=0.0, attention=True)
    return model.eval(), data


def test_a_text_longer_than_the_cap_is_refused_at_once(translator):
    """Case 12: a million characters took 12 s; more than MAX_INPUT_CHARACTERS is a ValueError saying why."""
    model, data = translator
    started = time.perf_counter()
    with pytest.raises(ValueError, match=rf"the text is 1,000,000 characters long; translate\(\) takes at most "
                                         rf"{MAX_INPUT_CHARACTERS:,}"):
        translate(model, data, "hola " * 200_000)
    assert time.perf_counter() - started < 1.0
    assert translate(model, data, "h" * MAX_INPUT_CHARACTERS).normalised == "h" * MAX_INPUT_CHARACTERS  # the cap itself


@pytest.mark.parametrize("beam_size", [10**6, MAX_BEAM_SIZE + 1, 0, 2.5, True, "5"])
def test_impossible_beam_sizes_are_refused_with_a_clear_message(translator, beam_size):
    """Case 12: beam_size=10**6 ran for 75 s and 2.5 failed inside torch; both are a ValueError naming it."""
    model, data = translator
    with pytest.raises(ValueError, match=rf"beam_size must be None \(greedy\) or a whole number from 1 to "
                                         rf"{MAX_BEAM_SIZE}, got {beam_size!r}"):
        translate(model, data, "hola .", beam_size=beam_size)


def test_the_largest_beam_still_translates(translator):
    """The cap leaves every sensible beam usable: MAX_BEAM_SIZE on a long input in well under a minute."""
    model, data = translator
    started = time.perf_counter()
    result = translate(model, data, "hola " * 100, beam_size=MAX_BEAM_SIZE)
    assert time.perf_counter() - started < 30 and isinstance(result.translation, str)
    with pytest.raises(ValueError, match="length_normalisation must be a number from 0 to 10"):
        translate(model, data, "hola .", beam_size=3, length_normalisation=float("nan"))

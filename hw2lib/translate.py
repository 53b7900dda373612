"""Translate any Spanish text with a trained translator of chapter 3 ("Try it: translate your own
Spanish"): the course's normalisation, unknown characters, greedy or beam decoding, and notes that
explain anything unusual about the input.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import numpy as np
import torch

from .chardata import EOS, SPECIALS, UNK, CharMT, normalise
from .decoding import MAX_DECODING_STEPS, Hypothesis, beam_search, greedy_decode
from .seq2seq import Seq2Seq

LONG_INPUT = 60  # characters; training sentences are all under 20
#: A longer text is refused: the output stops after 50 characters anyway.
MAX_INPUT_CHARACTERS = 1000
#: The widest beam :func:`translate` accepts: the cost grows with the beam.
MAX_BEAM_SIZE = 100


def _check_request(text: object, beam_size: object, length_normalisation: object) -> None:
    """ValueError (TypeError for a text that is not a str) naming whichever argument is impossible."""
    if not isinstance(text, str):
        raise TypeError(f"translate expects a str, got {type(text).__name__}")
    if len(text) > MAX_INPUT_CHARACTERS:
        raise ValueError(f"the text is {len(text):,} characters long; translate() takes at most "
                         f"{MAX_INPUT_CHARACTERS:,} (the translator learned sentences under 20 characters): "
                         "translate it sentence by sentence")
    if beam_size is not None and (isinstance(beam_size, bool) or not isinstance(beam_size, numbers.Integral)
                                  or not 1 <= beam_size <= MAX_BEAM_SIZE):
        raise ValueError(f"beam_size must be None (greedy) or a whole number from 1 to {MAX_BEAM_SIZE}, "
                         f"got {beam_size!r}")
    if isinstance(length_normalisation, bool) or not isinstance(length_normalisation, numbers.Real) \
            or not 0 <= length_normalisation <= 10:
        raise ValueError(f"length_normalisation must be a number from 0 to 10, got {length_normalisation!r}")


@dataclass
class Translation:
    """What :func:`translate` returns: the input as typed and normalised, one symbol per source
    position (UNK shown as U+FFFD), the output symbols (``<eos>`` last when the decoder stopped by
    itself), the translation, the attention (output x source; None without attention), the
    output's log-probability, and notes that explain anything unusual about the input."""

    text: str
    normalised: str
    source_symbols: list[str]
    translation: str
    target_symbols: list[str] = field(default_factory=list)
    attention: np.ndarray | None = None
    log_prob: float | None = None
    notes: list[str] = field(default_factory=list)


def translate(model: Seq2Seq, data: CharMT, text: str, *, beam_size: int | None = None,
              length_normalisation: float = 0.0) -> Translation:
    """Translate any Spanish ``text`` (chapter 3): normalise it like the course's data, map characters
    outside the source vocabulary to UNK, decode greedily (``beam_size=None``) or with beam search.

    Input with nothing left after normalisation (empty, or only characters that the normalisation
    removes, such as Cyrillic or CJK) gets an empty translation and a note instead of an error. A text
    longer than :data:`MAX_INPUT_CHARACTERS` or a beam wider than :data:`MAX_BEAM_SIZE` is a ValueError.
    """
    _check_request(text, beam_size, length_normalisation)
    normalised = normalise(text)
    removed = sorted({character for character in text.lower()
                      if not character.isspace() and not normalise(character).strip()})
    notes = []
    if removed:
        shown = "".join(removed[:20]) + ("..." if len(removed) > 20 else "")
        notes.append(f"the course's normalisation removes {len(removed)} distinct character(s): {shown}")
    source_ids = data.source_vocab.encode(normalised)
    source_symbols = ["\ufffd" if token == UNK else data.source_vocab.symbols[token] for token in source_ids]
    if not normalised.strip():
        notes.append("nothing to translate: no letters or . ! ? are left after normalisation")
        return Translation(text, normalised, source_symbols, "", notes=notes)
    unknown = sorted({character for character, token in zip(normalised, source_ids) if token == UNK})
    if unknown:
        notes.append(f"characters never seen in training became <unk>: {''.join(unknown)}")
    if len(normalised) > LONG_INPUT:
        notes.append(f"the input is {len(normalised)} characters long; training sentences were under 20 and "
                     f"the output stops after {MAX_DECODING_STEPS} characters, so expect a poor, cut-off translation")
    source = torch.tensor([source_ids], dtype=torch.long)
    lengths = torch.tensor([len(source_ids)])
    if beam_size is None:
        hypothesis: Hypothesis = greedy_decode(model, source, lengths, keep_attention=True)[0]
    else:
        hypothesis = beam_search(model, source, lengths, beam_size=int(beam_size),
                                 length_normalisation=length_normalisation, keep_attention=True)[0]
    if not hypothesis.finished:
        notes.append(f"the decoder reached the {MAX_DECODING_STEPS}-character limit without ending the sentence")
    target_symbols = ["<eos>" if token == EOS else SPECIALS[token] if token < len(SPECIALS)
                      else data.target_vocab.symbols[token] for token in hypothesis.tokens]
    return Translation(text, normalised, source_symbols, data.target_vocab.decode(hypothesis.tokens),
                       target_symbols, hypothesis.attention, hypothesis.log_prob, notes)

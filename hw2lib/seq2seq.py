"""Chapter 3's translator: BiLSTM encoder, LSTM decoder, bilinear attention, and the one-step
interface that the decoders of :mod:`hw2lib.decoding` share. The model only: its training task and
stored runs are in :mod:`hw2lib.seq2seq_runs`.

Shapes used throughout: B sentences, S source positions, T target positions, H = hidden size
(128), V = target vocabulary size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .chardata import PAD

LSTMState = tuple[torch.Tensor, torch.Tensor]


def source_padding_mask(source_lengths: torch.Tensor, max_length: int) -> torch.Tensor:
    """(B, max_length) boolean mask, True at real source positions and False at padding (chapter 3)."""
    positions = torch.arange(max_length, device=source_lengths.device)
    return positions.unsqueeze(0) < source_lengths.unsqueeze(1)


class Encoder(nn.Module):
    """Embedding -> dropout -> bidirectional LSTM (hidden_size // 2 per direction) -> dropout (chapter 3).

    The final forward and backward states are concatenated so that the decoder, whose LSTM has
    ``hidden_size`` units, can start from them.
    """

    def __init__(self, vocab_size: int, hidden_size: int = 128, dropout: float = 0.3):
        super().__init__()
        if hidden_size % 2:
            raise ValueError(f"hidden_size must be even (two directions share it), got {hidden_size}")
        self.hidden_size = hidden_size
        self.embedding = nn.Embedding(vocab_size, hidden_size, padding_idx=PAD)
        self.lstm = nn.LSTM(hidden_size, hidden_size // 2, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout)

    def forward(self, source: torch.Tensor, source_lengths: torch.Tensor) -> tuple[torch.Tensor, LSTMState]:
        """``source`` (B, S), ``source_lengths`` (B,) -> encoder outputs (B, S, H) and the decoder's
        initial (h, c), each (1, B, H)."""
        if bool((source_lengths < 1).any()):
            raise ValueError("every source sentence needs at least one character (an LSTM cannot pack length 0)")
        embedded = self.dropout(self.embedding(source))
        # Packing keeps the backward direction from reading the padding first.
        packed = pack_padded_sequence(embedded, source_lengths.cpu(), batch_first=True, enforce_sorted=False)
        packed_outputs, (final_h, final_c) = self.lstm(packed)
        encoder_outputs, _ = pad_packed_sequence(packed_outputs, batch_first=True, total_length=source.shape[1])
        encoder_outputs = self.dropout(encoder_outputs)
        # final_h is (2, B, H/2): [forward; backward] -> (1, B, H)
        join = lambda state: torch.cat([state[0], state[1]], dim=-1).unsqueeze(0)  # noqa: E731
        return encoder_outputs, (join(final_h), join(final_c))


class BilinearAttention(nn.Module):
    """Luong's "general" attention (chapter 3): s_i = (W_in q) . h_i, p = softmax(s) over the real
    source positions, c = sum_i p_i h_i, output a = tanh(W_out [q; c])."""

    def __init__(self, hidden_size: int = 128):
        super().__init__()
        self.linear_in = nn.Linear(hidden_size, hidden_size, bias=False)
        self.linear_out = nn.Linear(2 * hidden_size, hidden_size)

    def forward(self, query: torch.Tensor, encoder_outputs: torch.Tensor,
                source_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``query`` (B, T, H), ``encoder_outputs`` (B, S, H), ``source_mask`` (B, S) ->
        attended outputs (B, T, H) and attention probabilities (B, T, S)."""
        scores = torch.bmm(self.linear_in(query), encoder_outputs.transpose(1, 2))
        # -inf before the softmax gives padded positions exactly zero probability.
        scores = scores.masked_fill(~source_mask.unsqueeze(1), float("-inf"))
        probabilities = torch.softmax(scores, dim=-1)
        context = torch.bmm(probabilities, encoder_outputs)
        attended = torch.tanh(self.linear_out(torch.cat([query, context], dim=-1)))
        return attended, probabilities


class Decoder(nn.Module):
    """Embedding -> dropout -> LSTM -> [bilinear attention] -> dropout (chapter 3).

    The attention output replaces the LSTM output; it is not fed back into the next step, so with
    teacher forcing the whole target runs through the LSTM in one call.
    """

    def __init__(self, vocab_size: int, hidden_size: int = 128, dropout: float = 0.3, attention: bool = True):
        super().__init__()
        self.hidden_size = hidden_size
        self.embedding = nn.Embedding(vocab_size, hidden_size, padding_idx=PAD)
        self.lstm = nn.LSTM(hidden_size, hidden_size, batch_first=True)
        self.attention = BilinearAttention(hidden_size) if attention else None
        self.dropout = nn.Dropout(dropout)

    def forward(self, target_inputs: torch.Tensor, state: LSTMState, encoder_outputs: torch.Tensor,
                source_mask: torch.Tensor) -> tuple[torch.Tensor, LSTMState, torch.Tensor | None]:
        """``target_inputs`` (B, T) -> outputs (B, T, H), the new state, attention (B, T, S) or None."""
        embedded = self.dropout(self.embedding(target_inputs))
        outputs, state = self.lstm(embedded, state)
        attention = None
        if self.attention is not None:
            outputs, attention = self.attention(outputs, encoder_outputs, source_mask)
        return self.dropout(outputs), state, attention


@dataclass
class EncodedSource:
    """What every decoding step needs from the source: encoder outputs (B, S, H), mask (B, S), and
    the decoder's initial state."""

    outputs: torch.Tensor
    mask: torch.Tensor
    state: LSTMState

    def repeat_each(self, times: int) -> "EncodedSource":
        """Repeat every sentence ``times`` times in a row (sentence-major), for beam search."""
        h, c = self.state
        return EncodedSource(self.outputs.repeat_interleave(times, dim=0), self.mask.repeat_interleave(times, dim=0),
                             (h.repeat_interleave(times, dim=1), c.repeat_interleave(times, dim=1)))


class Seq2Seq(nn.Module):
    """The chapter 3 translator. ``attention=False`` is model (a), ``attention=True`` model (b).

    The generator (H -> V) shares its weight matrix with the decoder's embedding.
    """

    def __init__(self, source_vocab_size: int, target_vocab_size: int, *, hidden_size: int = 128,
                 dropout: float = 0.3, attention: bool = True):
        super().__init__()
        self.config = {"source_vocab_size": source_vocab_size, "target_vocab_size": target_vocab_size,
                       "hidden_size": hidden_size, "dropout": dropout, "attention": attention}
        self.encoder = Encoder(source_vocab_size, hidden_size, dropout)
        self.decoder = Decoder(target_vocab_size, hidden_size, dropout, attention)
        self.generator = nn.Linear(hidden_size, target_vocab_size)
        self.generator.weight = self.decoder.embedding.weight

    @property
    def has_attention(self) -> bool:
        return self.decoder.attention is not None

    def encode(self, source: torch.Tensor, source_lengths: torch.Tensor) -> EncodedSource:
        """Run the encoder once; the result feeds :meth:`forward` and :meth:`step` (chapter 3)."""
        encoder_outputs, state = self.encoder(source, source_lengths)
        mask = source_padding_mask(source_lengths.to(source.device), source.shape[1])
        return EncodedSource(encoder_outputs, mask, state)

    def forward(self, source: torch.Tensor, source_lengths: torch.Tensor,
                target_inputs: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: logits (B, T, V) for the next character after each of ``target_inputs`` (B, T)."""
        encoded = self.encode(source, source_lengths)
        outputs, _, _ = self.decoder(target_inputs, encoded.state, encoded.outputs, encoded.mask)
        return self.generator(outputs)

    def step(self, previous_tokens: torch.Tensor, state: LSTMState,
             encoded: EncodedSource) -> tuple[torch.Tensor, LSTMState, torch.Tensor | None]:
        """One decoding step: ``previous_tokens`` (B,) -> log-probabilities (B, V), new state,
        attention (B, S) or None (chapter 3)."""
        outputs, state, attention = self.decoder(previous_tokens.unsqueeze(1), state, encoded.outputs, encoded.mask)
        log_probs = torch.log_softmax(self.generator(outputs.squeeze(1)), dim=-1)
        return log_probs, state, None if attention is None else attention.squeeze(1)

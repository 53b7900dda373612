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


# The LSTM's input-gate pre-activation at the padding (see Encoder): sigmoid(-1000) is exactly 0 in
# float32 and float64, so a padding step leaves a zero state exactly zero.
SHUT_INPUT_GATE = -1000.0


def source_padding_mask(source_lengths: torch.Tensor, max_length: int) -> torch.Tensor:
    """(B, max_length) boolean mask, True at real source positions and False at padding (chapter 3)."""
    positions = torch.arange(max_length, device=source_lengths.device)
    return positions.unsqueeze(0) < source_lengths.unsqueeze(1)


class UniformDropout(nn.Dropout):
    """``torch.nn.Dropout`` with its mask drawn as ``uniform < 1 - p`` on the CPU (chapter 3).

    The same Bernoulli(1 - p) mask and 1 / (1 - p) scaling; only the drawing of the random numbers
    differs. On CPUs where torch does not use Intel's MKL for it (AMD, ARM) ``bernoulli_`` draws each
    element on its own with two 32-bit random numbers, and the translator's four dropouts took about a
    tenth of a training step; a uniform draw takes one number (3-4x faster, ``python -m bench``).
    Elsewhere (a GPU) torch's own fused dropout runs.
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002 - nn.Dropout's name
        if not self.training or self.p == 0.0 or input.device.type != "cpu" or self.inplace:
            return super().forward(input)
        keep = 1.0 - self.p
        if keep == 0.0:
            return input * 0.0
        return input * (torch.rand_like(input) < keep).to(input.dtype).div_(keep)


def shut_gate_inputs(lstm: nn.LSTM) -> tuple[torch.Tensor, torch.Tensor] | None:
    """For each direction of the one-layer ``lstm``, an input v with W_i v + b_i = SHUT_INPUT_GATE for
    every unit's input gate (W_i: the gate's rows of ``weight_ih``, b_i: its two biases): the
    least-norm solution, without gradients. None if the system cannot be solved that precisely."""
    units = lstm.hidden_size
    vectors = []
    with torch.no_grad():
        for suffix in ("", "_reverse"):
            weight = getattr(lstm, f"weight_ih_l0{suffix}")[:units]  # rows: input, forget, cell, output gate
            bias = getattr(lstm, f"bias_ih_l0{suffix}")[:units] + getattr(lstm, f"bias_hh_l0{suffix}")[:units]
            try:
                vector = weight.T @ torch.linalg.solve(weight @ weight.T, SHUT_INPUT_GATE - bias)
            except RuntimeError:  # singular: the gate's weights have lost rank
                return None
            if not bool((weight @ vector + bias < SHUT_INPUT_GATE / 2).all()):
                return None
            vectors.append(vector)
    return vectors[0], vectors[1]


def _one_direction(lstm: nn.LSTM, inputs: torch.Tensor, suffix: str) -> tuple[torch.Tensor, LSTMState]:
    """One direction of the one-layer ``lstm`` (``suffix`` "" or "_reverse", its parameters' names)
    over ``inputs`` (B, S, E) from a zero state: outputs (B, S, H/2) and the final (h, c), (1, B, H/2) each."""
    weights = [getattr(lstm, f"{name}_l0{suffix}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    zeros = inputs.new_zeros(1, inputs.shape[0], lstm.hidden_size)
    # What nn.LSTM.forward calls: (input, (h0, c0), weights, has_biases, num_layers, dropout, train,
    # bidirectional, batch_first).
    outputs, final_h, final_c = torch.lstm(inputs, (zeros, zeros), weights, True, 1, 0.0, lstm.training, False, True)
    return outputs, (final_h, final_c)


class Encoder(nn.Module):
    """Embedding -> dropout -> bidirectional LSTM (hidden_size // 2 per direction) -> dropout (chapter 3).

    The final forward and backward states are concatenated so that the decoder, whose LSTM has
    ``hidden_size`` units, can start from them.

    Each direction must read its sentence from a zero state, the forward one from the first character
    to the last, the backward one from the last to the first, and hand over its state after that
    character, whatever the padding. ``pack_padded_sequence`` does this one time step at a time. Here
    each direction is one call of torch's fused LSTM over the padded batch, with every sentence
    right-aligned: padding first, then the sentence (reversed for the backward direction), so the
    final states the LSTM returns are each sentence's own. At the padding the input is a vector
    that shuts the input gate (:func:`shut_gate_inputs`): from the zero state such a step gives
    c = f * 0 + 0 * g = 0 and h = o * tanh(0) = 0, with zero gradient, so the padding adds nothing.
    The outputs go back to the padded layout, zero at the padding as ``pad_packed_sequence`` leaves
    them. ``packed=True`` runs the packed computation, the reference the tests compare with; it also
    runs off the CPU (cuDNN takes packed sequences in one call) and should the gate ever not shut.
    """

    def __init__(self, vocab_size: int, hidden_size: int = 128, dropout: float = 0.3, packed: bool = False,
                 uniform_dropout: bool = True):
        super().__init__()
        if hidden_size % 2:
            raise ValueError(f"hidden_size must be even (two directions share it), got {hidden_size}")
        self.hidden_size = hidden_size
        self.packed = packed
        self.embedding = nn.Embedding(vocab_size, hidden_size, padding_idx=PAD)
        self.lstm = nn.LSTM(hidden_size, hidden_size // 2, batch_first=True, bidirectional=True)
        self.dropout = (UniformDropout if uniform_dropout else nn.Dropout)(dropout)

    def forward(self, source: torch.Tensor, source_lengths: torch.Tensor) -> tuple[torch.Tensor, LSTMState]:
        """``source`` (B, S), ``source_lengths`` (B,) -> encoder outputs (B, S, H) and the decoder's
        initial (h, c), each (1, B, H)."""
        if bool((source_lengths < 1).any()):
            raise ValueError("every source sentence needs at least one character (an LSTM cannot pack length 0)")
        embedded = self.dropout(self.embedding(source))
        shut = None if self.packed or source.device.type != "cpu" else shut_gate_inputs(self.lstm)
        if shut is None:
            encoder_outputs, state = self._packed_lstm(embedded, source_lengths)
        else:
            encoder_outputs, state = self._right_aligned_lstm(embedded, source_lengths, shut)
        return self.dropout(encoder_outputs), state

    def _packed_lstm(self, embedded: torch.Tensor, source_lengths: torch.Tensor) -> tuple[torch.Tensor, LSTMState]:
        packed = pack_padded_sequence(embedded, source_lengths.cpu(), batch_first=True, enforce_sorted=False)
        packed_outputs, (final_h, final_c) = self.lstm(packed)
        outputs, _ = pad_packed_sequence(packed_outputs, batch_first=True, total_length=embedded.shape[1])
        # final_h is (2, B, H/2): [forward; backward] -> (1, B, H)
        join = lambda state: torch.cat([state[0], state[1]], dim=-1).unsqueeze(0)  # noqa: E731
        return outputs, (join(final_h), join(final_c))

    def _right_aligned_lstm(self, embedded: torch.Tensor, source_lengths: torch.Tensor,
                            shut: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, LSTMState]:
        batch, length = embedded.shape[:2]
        lengths = source_lengths.to(embedded.device)
        positions = torch.arange(length, device=embedded.device)
        shift = (length - lengths).unsqueeze(1)  # each sentence's padding, which goes first
        rows = torch.arange(batch, device=embedded.device).unsqueeze(1)
        sentence = (positions >= shift).unsqueeze(-1)
        # Position shift + t holds character t; flipping the padded batch puts each sentence, reversed,
        # at the same positions.
        forward_inputs = torch.where(sentence, embedded[rows, (positions - shift) % length], shut[0])
        backward_inputs = torch.where(sentence, embedded.flip(1), shut[1])
        forward_outputs, (forward_h, forward_c) = _one_direction(self.lstm, forward_inputs, "")
        backward_outputs, (backward_h, backward_c) = _one_direction(self.lstm, backward_inputs, "_reverse")
        outputs = torch.cat([forward_outputs[rows, (positions + shift) % length], backward_outputs.flip(1)], dim=-1)
        outputs = outputs.masked_fill(~source_padding_mask(lengths, length).unsqueeze(-1), 0.0)
        return outputs, (torch.cat([forward_h, backward_h], dim=-1), torch.cat([forward_c, backward_c], dim=-1))


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

    def __init__(self, vocab_size: int, hidden_size: int = 128, dropout: float = 0.3, attention: bool = True,
                 uniform_dropout: bool = True):
        super().__init__()
        self.hidden_size = hidden_size
        self.embedding = nn.Embedding(vocab_size, hidden_size, padding_idx=PAD)
        self.lstm = nn.LSTM(hidden_size, hidden_size, batch_first=True)
        self.attention = BilinearAttention(hidden_size) if attention else None
        self.dropout = (UniformDropout if uniform_dropout else nn.Dropout)(dropout)

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

    The generator (H -> V) shares its weight matrix with the decoder's embedding. ``packed_encoder``
    and ``uniform_dropout`` choose how the same mathematics is computed (see :class:`Encoder` and
    :class:`UniformDropout`): the weights are the same, the rounding and the dropout masks differ,
    so a stored run names its choice in its configuration.
    """

    def __init__(self, source_vocab_size: int, target_vocab_size: int, *, hidden_size: int = 128,
                 dropout: float = 0.3, attention: bool = True, packed_encoder: bool = False,
                 uniform_dropout: bool = True):
        super().__init__()
        self.config = {"source_vocab_size": source_vocab_size, "target_vocab_size": target_vocab_size,
                       "hidden_size": hidden_size, "dropout": dropout, "attention": attention}
        self.encoder = Encoder(source_vocab_size, hidden_size, dropout, packed=packed_encoder,
                               uniform_dropout=uniform_dropout)
        self.decoder = Decoder(target_vocab_size, hidden_size, dropout, attention, uniform_dropout=uniform_dropout)
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

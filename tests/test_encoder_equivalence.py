"""The translator's encoder without packing computes what the packed one computes (chapter 3).

hw2lib.seq2seq.Encoder runs each LSTM direction over right-aligned sentences with the input gate
shut at the padding; ``Encoder(packed=True)`` is the reference: pack_padded_sequence, the
bidirectional nn.LSTM, pad_packed_sequence. Both use the same parameters, so one model is run both
ways. "Equal" below means equal within float32 rounding: the two paths call different LSTM
kernels, which add in different orders (measured differences are about 1e-7).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hw2lib.chardata import PAD, SOS, CharBatch, CharPairs
from hw2lib.decoding import decode_split
from hw2lib.runs import load_run
from hw2lib.seq2seq import SHUT_INPUT_GATE, Encoder, Seq2Seq, UniformDropout, shut_gate_inputs
from hw2lib.seq2seq_runs import build_seq2seq, seq2seq_config, teacher_forcing_loss

SOURCE_VOCAB, TARGET_VOCAB = 34, 30
STORED = Path(__file__).resolve().parents[1] / "results" / "full"
# Outputs and states: a few float32 ulps of values below 1. Gradients sum over every position of
# the batch, so their rounding grows with it: 1e-5 of each tensor's largest entry (measured: below 1e-6).
STATE_TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}
GRADIENT_RTOL = 1e-5

LENGTH_SETS = {
    "mixed": [7, 1, 12, 3, 12, 5, 9, 2],
    "with length 1": [1, 1, 4],
    "all equal": [6, 6, 6, 6],
    "one sentence": [9],
    "extra padding column": [3, 5, 2],  # the batch is one column wider than its longest sentence
}


def random_batch(lengths: list[int], seed: int, extra_columns: int = 0):
    generator = torch.Generator().manual_seed(seed)
    source = torch.full((len(lengths), max(lengths) + extra_columns), PAD, dtype=torch.long)
    target = torch.full((len(lengths), max(lengths) + 3), PAD, dtype=torch.long)
    for row, length in enumerate(lengths):
        source[row, :length] = torch.randint(4, SOURCE_VOCAB, (length,), generator=generator)
        target_length = int(torch.randint(2, max(lengths) + 4, (1,), generator=generator))
        target[row, 0] = SOS
        target[row, 1:target_length] = torch.randint(4, TARGET_VOCAB, (target_length - 1,), generator=generator)
    return CharBatch(source, torch.tensor(lengths), target, (target != PAD).sum(dim=1))


def both_ways(model: Seq2Seq, function):
    """``function(model)`` with the encoder unpacked, then packed (the reference)."""
    results = []
    for packed in (False, True):
        model.encoder.packed = packed
        results.append(function(model))
    model.encoder.packed = False
    return results


@pytest.mark.parametrize("name", sorted(LENGTH_SETS))
@pytest.mark.parametrize("seed", [0, 1])
def test_outputs_and_final_states_equal_the_packed_encoder(name, seed):
    torch.manual_seed(seed)
    encoder = Encoder(SOURCE_VOCAB).eval()
    lengths = LENGTH_SETS[name]
    batch = random_batch(lengths, seed, extra_columns=1 if name == "extra padding column" else 0)
    outputs, (h, c) = encoder(batch.source, batch.source_lengths)
    encoder.packed = True
    reference, (reference_h, reference_c) = encoder(batch.source, batch.source_lengths)
    torch.testing.assert_close(outputs, reference, **STATE_TOLERANCE)
    torch.testing.assert_close(h, reference_h, **STATE_TOLERANCE)
    torch.testing.assert_close(c, reference_c, **STATE_TOLERANCE)
    for row, length in enumerate(lengths):
        assert torch.all(outputs[row, length:] == 0)  # the padding's outputs are exactly zero, as unpacked


@pytest.mark.parametrize("attention", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_loss_and_every_gradient_equal_the_packed_encoder_in_training(attention, seed):
    torch.manual_seed(seed)
    model = Seq2Seq(SOURCE_VOCAB, TARGET_VOCAB, attention=attention).train()
    batch = random_batch([11, 1, 4, 11, 7, 2, 9, 5, 3, 11, 6, 8], seed)

    def loss_and_gradients(model: Seq2Seq):
        torch.manual_seed(100 + seed)  # the same dropout masks both ways: both draw the same shapes in order
        model.zero_grad(set_to_none=True)
        loss = teacher_forcing_loss(model, batch)
        loss.backward()
        return loss.detach(), {name: parameter.grad.clone() for name, parameter in model.named_parameters()}

    (loss, gradients), (reference_loss, reference_gradients) = both_ways(model, loss_and_gradients)
    torch.testing.assert_close(loss, reference_loss, rtol=1e-6, atol=0.0)
    assert gradients.keys() == reference_gradients.keys()
    for name, reference in reference_gradients.items():
        scale = float(reference.abs().max())
        assert scale > 0, name  # every parameter takes part, so a missing path would show here
        torch.testing.assert_close(gradients[name], reference, rtol=0.0, atol=GRADIENT_RTOL * scale, msg=name)


def test_a_shut_gate_keeps_the_zero_state_exactly_zero():
    torch.manual_seed(0)
    lstm = Encoder(SOURCE_VOCAB).lstm
    shut = shut_gate_inputs(lstm)
    assert shut is not None
    units = lstm.hidden_size
    for vector, suffix in zip(shut, ("", "_reverse")):
        weight = getattr(lstm, f"weight_ih_l0{suffix}")[:units]
        bias = getattr(lstm, f"bias_ih_l0{suffix}")[:units] + getattr(lstm, f"bias_hh_l0{suffix}")[:units]
        torch.testing.assert_close(weight @ vector + bias, torch.full((units,), SHUT_INPUT_GATE), rtol=1e-4, atol=0.0)
    # Five padding steps from the zero state, then a character: the padding leaves exactly nothing.
    character = torch.randn(1, 1, lstm.input_size)
    padded = torch.cat([shut[0].expand(1, 5, -1), character], dim=1)
    single = torch.nn.LSTM(lstm.input_size, units, batch_first=True)
    single.load_state_dict({name.removesuffix("_reverse"): value for name, value in lstm.state_dict().items()
                            if not name.endswith("_reverse")})
    with torch.no_grad():
        outputs, (h, c) = single(padded)
        alone, (alone_h, alone_c) = single(character)
    assert torch.equal(outputs[:, :5], torch.zeros(1, 5, units))
    assert torch.equal(h, alone_h) and torch.equal(c, alone_c)


def test_an_input_gate_that_cannot_be_shut_falls_back_to_packing():
    torch.manual_seed(0)
    encoder = Encoder(SOURCE_VOCAB).eval()
    with torch.no_grad():
        encoder.lstm.weight_ih_l0[3] = 0.0  # an input gate that ignores the input cannot be shut by it
    assert shut_gate_inputs(encoder.lstm) is None
    batch = random_batch([4, 2, 6], seed=0)
    unpacked = encoder(batch.source, batch.source_lengths)
    encoder.packed = True
    packed = encoder(batch.source, batch.source_lengths)
    assert torch.equal(unpacked[0], packed[0]) and torch.equal(unpacked[1][1], packed[1][1])


def test_parameter_names_and_shapes_are_those_of_the_bidirectional_lstm():
    encoder = Encoder(SOURCE_VOCAB)
    shapes = {name: tuple(value.shape) for name, value in encoder.state_dict().items()}
    per_direction = {"weight_ih_l0": (256, 128), "weight_hh_l0": (256, 64), "bias_ih_l0": (256,), "bias_hh_l0": (256,)}
    expected = {"embedding.weight": (SOURCE_VOCAB, 128)}
    for suffix in ("", "_reverse"):
        expected.update({f"lstm.{name}{suffix}": shape for name, shape in per_direction.items()})
    assert shapes == expected


@pytest.fixture(scope="module")
def stored_translator(char_mt_course):
    config = seq2seq_config(True, profile="full")
    runs = [run for run in map(load_run, sorted(STORED.glob("seq2seq-attention-*")))
            if run is not None and run.config == config and run.has_weights()]
    if not runs:
        pytest.skip("no stored full-profile attention translator in results/full")
    model = build_seq2seq(config, char_mt_course)
    return runs[0].load_weights(model).eval(), char_mt_course  # strict: the stored names still fit


@pytest.mark.parametrize("beam_size", [None, 5])
def test_decoding_with_stored_weights_is_unchanged(stored_translator, beam_size):
    model, data = stored_translator
    pairs = CharPairs(data.val.pairs[:200], data.source_vocab, data.target_vocab)
    single = CharPairs(data.val.pairs[:25], data.source_vocab, data.target_vocab)

    def decoded(model: Seq2Seq):
        return ([h.tokens for h in decode_split(model, pairs, beam_size=beam_size)],
                [h.tokens for h in decode_split(model, single, beam_size=beam_size, batch_size=1)])

    (batched, one_by_one), (reference_batched, reference_one_by_one) = both_ways(model, decoded)
    assert batched == reference_batched
    assert one_by_one == reference_one_by_one
    assert one_by_one == batched[:25]


def test_uniform_dropout_is_an_inverted_bernoulli_mask():
    dropout = UniformDropout(0.3)
    inputs = torch.randn(200, 500, requires_grad=True)
    torch.manual_seed(0)
    outputs = dropout(inputs)
    kept = outputs != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.005  # 100,000 draws: the standard error is 0.0015
    scale = torch.ones(()).div_(0.7)  # nn.Dropout's factor: a mask of ones divided by 1 - p
    assert torch.equal(outputs[kept], inputs[kept] * scale)
    outputs.backward(torch.ones_like(outputs))
    assert torch.equal(inputs.grad, kept.float() * scale)
    torch.manual_seed(0)
    assert torch.equal(dropout(inputs), outputs)  # torch's generator decides: seeded runs repeat
    assert torch.equal(dropout.eval()(inputs), inputs) and torch.equal(UniformDropout(0.0)(inputs), inputs)
    assert torch.equal(UniformDropout(1.0)(inputs), torch.zeros_like(inputs))


def test_the_translator_uses_uniform_dropout_everywhere():
    model = Seq2Seq(SOURCE_VOCAB, TARGET_VOCAB, dropout=0.25)
    dropouts = [module for module in model.modules() if isinstance(module, torch.nn.Dropout)]
    assert len(dropouts) == 2 and all(type(module) is UniformDropout and module.p == 0.25 for module in dropouts)

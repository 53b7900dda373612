"""The chapter 3 translator: shapes, packing, masking, the attention formula, tying, training."""

from __future__ import annotations

import pytest
import torch

from hw2lib.chardata import PAD, SOS, CharPairs, collate_pairs
from hw2lib.seq2seq import Seq2Seq, source_padding_mask
from hw2lib.runs import weights_file
from hw2lib.seq2seq_runs import TranslationTask, teacher_forcing_loss
from hw2lib.utils import count_parameters
from hw2lib.train import train

SOURCE_VOCAB, TARGET_VOCAB = 34, 30


def random_batch(lengths: list[int], vocab: int = SOURCE_VOCAB, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded random source ids (no specials) with the given lengths."""
    generator = torch.Generator().manual_seed(seed)
    source = torch.full((len(lengths), max(lengths)), PAD, dtype=torch.long)
    for row, length in enumerate(lengths):
        source[row, :length] = torch.randint(4, vocab, (length,), generator=generator)
    return source, torch.tensor(lengths)


def make_model(attention: bool = True, seed: int = 0, **options) -> Seq2Seq:
    torch.manual_seed(seed)
    return Seq2Seq(SOURCE_VOCAB, TARGET_VOCAB, attention=attention, **options).eval()


@pytest.mark.parametrize("attention", [False, True])
def test_shapes_of_every_stage(attention):
    model = make_model(attention)
    source, lengths = random_batch([5, 3, 7])
    encoded = model.encode(source, lengths)
    assert encoded.outputs.shape == (3, 7, 128)
    assert [tensor.shape for tensor in encoded.state] == [(1, 3, 128), (1, 3, 128)]
    target_inputs = torch.full((3, 4), SOS)
    assert model(source, lengths, target_inputs).shape == (3, 4, TARGET_VOCAB)
    log_probs, state, attention_weights = model.step(torch.full((3,), SOS), encoded.state, encoded)
    assert log_probs.shape == (3, TARGET_VOCAB) and state[0].shape == (1, 3, 128)
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(3), atol=1e-5)
    if attention:
        assert attention_weights.shape == (3, 7)
    else:
        assert attention_weights is None


def test_final_state_joins_forward_end_and_backward_start():
    model = make_model()
    source, lengths = random_batch([6, 2, 4])
    encoded = model.encode(source, lengths)
    h, _ = encoded.state
    for row, length in enumerate(lengths.tolist()):
        # forward direction ends at the last real character, backward direction at the first
        assert torch.allclose(h[0, row, :64], encoded.outputs[row, length - 1, :64], atol=1e-6)
        assert torch.allclose(h[0, row, 64:], encoded.outputs[row, 0, 64:], atol=1e-6)
        assert torch.all(encoded.outputs[row, length:] == 0)  # padding stays zero after unpacking


def test_padding_does_not_change_a_sentence():
    model = make_model()
    source, lengths = random_batch([3, 8], seed=1)
    target_inputs = torch.tensor([[SOS, 5, 6], [SOS, 7, 8]])
    batched = model(source, lengths, target_inputs)
    alone = model(source[:1, :3], lengths[:1], target_inputs[:1])
    assert torch.allclose(batched[:1], alone, atol=1e-5)


def test_padded_source_positions_get_exactly_zero_attention():
    model = make_model()
    source, lengths = random_batch([2, 9, 5])
    encoded = model.encode(source, lengths)
    query = torch.randn(3, 4, 128)
    _, probabilities = model.decoder.attention(query, encoded.outputs, encoded.mask)
    for row, length in enumerate(lengths.tolist()):
        assert torch.all(probabilities[row, :, length:] == 0.0)
        assert torch.all(probabilities[row, :, :length] > 0.0)
    assert torch.allclose(probabilities.sum(-1), torch.ones(3, 4), atol=1e-6)
    assert source_padding_mask(torch.tensor([1, 3]), 3).tolist() == [[True, False, False], [True, True, True]]


def test_attention_follows_the_bilinear_formula():
    model = make_model()
    attention = model.decoder.attention
    encoder_outputs = torch.randn(1, 3, 128)
    query = torch.randn(1, 1, 128)
    mask = torch.tensor([[True, True, False]])
    attended, probabilities = attention(query, encoder_outputs, mask)
    w_in = attention.linear_in.weight
    scores = torch.stack([(w_in @ query[0, 0]) @ encoder_outputs[0, i] for i in range(2)])
    expected_p = torch.softmax(scores, dim=0)
    context = expected_p[0] * encoder_outputs[0, 0] + expected_p[1] * encoder_outputs[0, 1]
    expected = torch.tanh(attention.linear_out.weight @ torch.cat([query[0, 0], context]) + attention.linear_out.bias)
    assert torch.allclose(probabilities[0, 0, :2], expected_p, atol=1e-6)
    assert torch.allclose(attended[0, 0], expected, atol=1e-5)
    assert attention.linear_in.bias is None


def test_generator_is_tied_to_decoder_embedding_and_parameters_count():
    for attention in (False, True):
        model = make_model(attention)
        assert model.generator.weight is model.decoder.embedding.weight
        encoder = SOURCE_VOCAB * 128 + 2 * (4 * 64 * (128 + 64) + 2 * 4 * 64)
        decoder = TARGET_VOCAB * 128 + 4 * 128 * (128 + 128) + 2 * 4 * 128
        generator_bias = TARGET_VOCAB
        attention_weights = 128 * 128 + (2 * 128 * 128 + 128) if attention else 0
        assert count_parameters(model) == encoder + decoder + generator_bias + attention_weights
    assert torch.all(model.encoder.embedding.weight[PAD] == 0) and torch.all(model.decoder.embedding.weight[PAD] == 0)


def test_dropout_acts_only_in_training_mode():
    model = make_model(dropout=0.5)
    source, lengths = random_batch([4, 4])
    target_inputs = torch.tensor([[SOS, 5], [SOS, 6]])
    model.eval()
    assert torch.equal(model(source, lengths, target_inputs), model(source, lengths, target_inputs))
    model.train()
    assert not torch.equal(model(source, lengths, target_inputs), model(source, lengths, target_inputs))


def test_empty_source_sentence_is_refused_clearly():
    model = make_model()
    with pytest.raises(ValueError, match="at least one character"):
        model.encode(torch.tensor([[5, 6], [PAD, PAD]]), torch.tensor([2, 0]))


def test_loss_ignores_padding():
    model = make_model()
    pairs = [(torch.tensor([5, 6, 7]), torch.tensor([SOS, 5, 6, 2])), (torch.tensor([8]), torch.tensor([SOS, 9, 2]))]
    batch = collate_pairs(pairs)
    longer = collate_pairs(pairs)
    longer.target = torch.cat([longer.target, torch.full((2, 3), PAD)], dim=1)  # extra padding only
    assert torch.allclose(teacher_forcing_loss(model, batch), teacher_forcing_loss(model, longer))
    manual = torch.nn.functional.cross_entropy(model(batch.source, batch.source_lengths, batch.target[:, :-1])[0, :3],
                                               batch.target[0, 1:4], reduction="sum")
    second = torch.nn.functional.cross_entropy(model(batch.source, batch.source_lengths, batch.target[:, :-1])[1, :2],
                                               batch.target[1, 1:3], reduction="sum")
    assert torch.allclose(teacher_forcing_loss(model, batch), (manual + second) / 5)


@pytest.fixture(scope="module")
def course(char_mt_course):
    return char_mt_course


def test_training_batches_cover_the_split_once_in_a_seeded_order(course):
    pairs = CharPairs(course.train.pairs[:70], course.source_vocab, course.target_vocab)
    task = TranslationTask(pairs, pairs, course.target_vocab, batch_size=32)
    batches = list(task.training_batches(torch.Generator().manual_seed(3)))
    assert [batch.source.shape[0] for batch in batches] == [32, 32, 6]
    assert sum(int(batch.source_lengths.sum()) for batch in batches) == sum(len(s) for s, _ in pairs.pairs)
    again = list(task.training_batches(torch.Generator().manual_seed(3)))
    assert all(torch.equal(a.source, b.source) for a, b in zip(batches, again))
    other = list(task.training_batches(torch.Generator().manual_seed(4)))
    assert not torch.equal(batches[0].source, other[0].source)


@pytest.mark.parametrize("attention", [False, True])
def test_a_small_model_memorises_32_pairs(course, attention, tmp_path):
    pairs = CharPairs(course.train.pairs[:32], course.source_vocab, course.target_vocab)
    torch.manual_seed(0)
    model = Seq2Seq(len(course.source_vocab), len(course.target_vocab), hidden_size=64, dropout=0.0,
                    attention=attention)
    task = TranslationTask(pairs, pairs, course.target_vocab, batch_size=8, run_dir=tmp_path)
    history = train(model, task, epochs=22, learning_rate=0.01, seed=0, device="cpu", progress=False)
    assert history[0]["val_error"] > 0.4
    assert history[-1]["val_error"] < 0.05
    assert history[-1]["train_loss"] < history[0]["train_loss"] / 5
    # the best-epoch weights are the ones with the lowest validation error
    assert task.best_error == min(row["val_error"] for row in history)
    assert history[task.best_epoch - 1]["val_error"] == task.best_error
    best = torch.load(weights_file(tmp_path, best=True), weights_only=True)
    assert set(best) == set(model.state_dict())


def test_against_published_says_inside_above_or_below_with_the_distance():
    from hw2lib.seq2seq_runs import PUBLISHED_ERRORS, against_published

    low, high = min(PUBLISHED_ERRORS[False]["val"]), max(PUBLISHED_ERRORS[False]["val"])
    assert against_published(False, "val", (low + high) / 2) == "inside the published range"
    assert against_published(False, "val", high) == "inside the published range"
    assert against_published(False, "val", high + 0.0018) == f"0.0018 above the highest published figure ({high:.4f})"
    assert against_published(False, "val", low - 0.01) == f"0.0100 below the lowest published figure ({low:.4f})"


def test_against_published_ranges_joins_both_splits():
    from hw2lib.seq2seq_runs import PUBLISHED_ERRORS, against_published_ranges

    val, test = PUBLISHED_ERRORS[True]["val"], PUBLISHED_ERRORS[True]["test"]
    assert against_published_ranges(True, val[0], test[0]) == "both inside the published ranges"
    high = max(PUBLISHED_ERRORS[True]["val"])
    assert against_published_ranges(True, high + 0.01, test[0]) == (
        f"validation 0.0100 above the highest published figure ({high:.4f}), test inside the published range")

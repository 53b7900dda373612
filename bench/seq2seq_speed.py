"""Translator speed: training against the packed loop the project used before, and batched
greedy / beam-search decoding against decoding one sentence at a time.

Training: every side runs :func:`hw2lib.train.train` on the same sentences, batches and initial
weights with :class:`hw2lib.seq2seq_runs.TranslationTask`'s loss. The project's encoder runs each
LSTM direction over right-aligned sentences with the input gate shut at the padding and its
dropout draws uniform numbers (:class:`hw2lib.seq2seq.Encoder`, :class:`~hw2lib.seq2seq.UniformDropout`);
the reference packs (``Encoder(packed=True)``, the textbook way) and uses ``torch.nn.Dropout``.
Two more sides split the gain: the project's encoder with torch's dropout, and the same layers on
the padded batch with neither packing nor alignment (the backward LSTM then reads the padding and
the final states are those after it: wrong, but the most a fused LSTM allows). Per-epoch
validation decoding is switched off on every side: only training steps are timed.

Decoding: :func:`hw2lib.decoding.decode_split` on the 1,000 validation sentences in its
default batches, against the same function called with one sentence at a time.

Run alone: ``python -m bench.seq2seq_speed [--quick]``.
"""

from __future__ import annotations

import contextlib
import io
import statistics
import time
from dataclasses import dataclass

import torch
from torch import nn

from hw2lib.chardata import PAD, CharBatch, CharMT, CharPairs
from hw2lib.decoding import decode_split
from hw2lib.runs import load_run, results_dir, weights_file
from hw2lib.seq2seq import Seq2Seq, source_padding_mask
from hw2lib.seq2seq_runs import TranslationTask, build_seq2seq, char_mt_data, seq2seq_config, teacher_forcing_loss
from hw2lib.train import train
from hw2lib.utils import load_state_dict_file

from .common import Row, format_rate, format_seconds, interleaved, machine_description, prepare_environment, report, \
    speed_row, spread_text, standard_arguments, timed, torch_threads

BEAM_SIZE = 5


@dataclass
class Settings:
    train_pairs: int
    rounds: int
    decode_pairs: int
    batched_repeats: int


FULL = Settings(train_pairs=1600, rounds=9, decode_pairs=1000, batched_repeats=3)  # short rounds, many: steadier
QUICK = Settings(train_pairs=192, rounds=1, decode_pairs=30, batched_repeats=1)


# --- the padded computation without packing (wrong final states: the upper bound) -----------------

def padded_logits(model: Seq2Seq, source: torch.Tensor, source_lengths: torch.Tensor,
                  target_inputs: torch.Tensor) -> torch.Tensor:
    """Seq2Seq.forward with the same layers and weights but no packing: the bidirectional LSTM
    runs over the padded batch, and its final states are those after the padding."""
    encoder = model.encoder
    embedded = encoder.dropout(encoder.embedding(source))
    encoder_outputs, (final_h, final_c) = encoder.lstm(embedded)
    encoder_outputs = encoder.dropout(encoder_outputs)
    join = lambda state: torch.cat([state[0], state[1]], dim=-1).unsqueeze(0)  # noqa: E731
    mask = source_padding_mask(source_lengths.to(source.device), source.shape[1])
    outputs, _, _ = model.decoder(target_inputs, (join(final_h), join(final_c)), encoder_outputs, mask)
    return model.generator(outputs)


class TrainingOnlyTask(TranslationTask):
    """The project's task with the per-epoch validation decoding switched off (it is not training)."""

    def evaluate(self, model: Seq2Seq) -> dict[str, float]:
        return {}


class PaddedTask(TrainingOnlyTask):
    """The same batches and loss, computed by :func:`padded_logits`."""

    def loss(self, model: Seq2Seq, batch: CharBatch) -> torch.Tensor:
        logits = padded_logits(model, batch.source, batch.source_lengths, batch.target[:, :-1])
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.target[:, 1:].reshape(-1),
                                           ignore_index=PAD)


class TrainingEpoch:
    """One call = one epoch of hw2lib.train.train on ``task``; returns sentences per second."""

    def __init__(self, model: Seq2Seq, task: TranslationTask) -> None:
        self.model, self.task, self.calls = model, task, 0

    def __call__(self) -> float:
        self.calls += 1
        started = time.perf_counter()
        with contextlib.redirect_stderr(io.StringIO()):  # train()'s epoch bar: one line per round otherwise
            train(self.model, self.task, epochs=1, learning_rate=0.003, seed=42 + self.calls, device="cpu",
                  progress=False)
        return len(self.task.train_pairs) / (time.perf_counter() - started)


# --- the model to decode with -----------------------------------------------------------------

def decoding_model(data: CharMT) -> tuple[Seq2Seq, str]:
    """The stored attention translator of the full profile if there is one (final weights of a
    complete run, else the best weights of a run in progress), else an untrained one."""
    config = seq2seq_config(True, profile="full")
    model = build_seq2seq(config, data)
    folder = results_dir("full")
    candidates = sorted(folder.glob("seq2seq-attention-*")) if folder.is_dir() else []
    for path in candidates:
        run = load_run(path)
        if run is not None and run.config == config and run.has_weights():
            run.load_weights(model)
            return model.eval(), f"trained weights of {path.relative_to(folder.parents[1])}"
    for path in candidates:
        best = weights_file(path, best=True)
        if best.is_file():
            model.load_state_dict(load_state_dict_file(best))
            return model.eval(), f"best weights so far of {path.relative_to(folder.parents[1])} (run unfinished)"
    return model.eval(), "untrained weights (no stored run): every sentence runs the full 50 steps"


def same_outputs(first: list, second: list) -> float:
    return sum(a.tokens == b.tokens for a, b in zip(first, second)) / len(first)


def packed_outputs(model: Seq2Seq, pairs: CharPairs, beam_size: int | None) -> list:
    """decode_split with the reference encoder (packed sequences), for comparing outputs."""
    model.encoder.packed = True
    try:
        return decode_split(model, pairs, beam_size=beam_size)
    finally:
        model.encoder.packed = False


def decoding_rows(model: Seq2Seq, data: CharMT, pairs: CharPairs, settings: Settings, weights: str) -> list[Row]:
    warmup = CharPairs(pairs.pairs[:8], data.source_vocab, data.target_vocab)
    decode_split(model, warmup, batch_size=8)
    decode_split(model, warmup, batch_size=1, beam_size=BEAM_SIZE)
    rows = []
    for label, beam_size, at_least in (("greedy", None, 20.0), (f"beam search k={BEAM_SIZE}", BEAM_SIZE, 5.0)):
        batched_times, batched = [], None
        for _ in range(settings.batched_repeats):
            seconds, batched = timed(lambda: decode_split(model, pairs, beam_size=beam_size))
            batched_times.append(seconds)
        single_seconds, single = timed(lambda: decode_split(model, pairs, beam_size=beam_size, batch_size=1))
        seconds, _ = timed(lambda: decode_split(model, pairs, beam_size=beam_size))
        batched_times.append(seconds)
        batched_seconds = statistics.median(batched_times)
        rows.append(speed_row(
            f"decoding {len(pairs):,} val sentences, {label}: batched vs one at a time",
            format_seconds(batched_seconds), format_seconds(single_seconds), single_seconds / batched_seconds,
            at_least=at_least, spread=spread_text([single_seconds / time for time in batched_times]),
            note=(f"decode_split (batches of 250) vs decode_split(batch_size=1); {weights}; "
                  f"batched time = median of {len(batched_times)} runs around the one-at-a-time run (spread: "
                  f"the one-at-a-time time over each); identical outputs for {same_outputs(batched, single):.1%} "
                  f"of sentences, and for {same_outputs(batched, packed_outputs(model, pairs, beam_size)):.1%} "
                  f"with the packed encoder")))
    return rows


def training_models(data: CharMT) -> dict[str, Seq2Seq]:
    """The same initial weights four ways: the project's translator; the reference, as the project
    trained it before (packed encoder, torch's dropout); the project's encoder with torch's dropout
    (the encoder's share of the gain); the project's, run by :class:`PaddedTask` (the bound)."""
    config = seq2seq_config(True, profile="full")
    models = {name: build_seq2seq(config, data) for name in ("reference", "project", "torch dropout", "padded")}
    for name in ("reference", "torch dropout"):
        models[name].encoder.dropout = nn.Dropout(config["dropout"])
        models[name].decoder.dropout = nn.Dropout(config["dropout"])
    models["reference"].encoder.packed = True
    return models


def training_rows(data: CharMT, settings: Settings) -> list[Row]:
    """The project's translator training against the packed loop it replaces, one epoch per round."""
    train_pairs = CharPairs(data.train.pairs[:settings.train_pairs], data.source_vocab, data.target_vocab)
    val_pairs = CharPairs(data.val.pairs[:8], data.source_vocab, data.target_vocab)
    batch_size = seq2seq_config(True, profile="full")["batch_size"]
    candidates = {name: TrainingEpoch(model, (PaddedTask if name == "padded" else TrainingOnlyTask)(
        train_pairs, val_pairs, data.target_vocab, batch_size=batch_size))
        for name, model in training_models(data).items()}
    measured = interleaved(candidates, settings.rounds)
    speeds = measured.speeds
    common = (f"{len(train_pairs):,} training pairs per epoch through hw2lib.train.train, median of "
              f"{settings.rounds} interleaved epochs after 1 warm-up, same initial weights and batches")
    encoder_ratio, encoder_spread = measured.ratio_between("torch dropout", "reference")
    padded_ratio, padded_spread = measured.ratio_between("padded", "project")
    return [
        speed_row("seq2seq training (attention), batch 64: project vs packed encoder and torch's dropout",
                  format_rate(speeds["project"], "sent"), format_rate(speeds["reference"], "sent"),
                  measured.ratios["project"], at_least=1.3, spread=measured.ratio_spread("project"),
                  note=(f"{common}; the project: each encoder direction one fused LSTM call over right-aligned "
                        f"sentences, the padding's input gate shut (hw2lib.seq2seq.Encoder), and dropout masks "
                        f"drawn as uniform < 1 - p (UniformDropout); the reference: pack_padded_sequence "
                        f"(Encoder(packed=True)) and torch.nn.Dropout, the project's loop before both")),
        speed_row("seq2seq training (attention), batch 64: the encoder's share (project encoder vs packed, "
                  "both with torch's dropout)",
                  format_rate(speeds["torch dropout"], "sent"), format_rate(speeds["reference"], "sent"),
                  encoder_ratio, spread=encoder_spread,
                  note=f"informational: {common}; the rest of the first row's gain is the dropout's"),
        speed_row("seq2seq training (attention), batch 64: padded LSTM, neither packed nor aligned, vs project",
                  format_rate(speeds["padded"], "sent"), format_rate(speeds["project"], "sent"), padded_ratio,
                  spread=padded_spread,
                  note=(f"informational, the bound: {common}; the project's layers on the padded batch as it "
                        f"comes, so the backward direction reads the padding first and the final states are "
                        f"those after it (wrong); what separates it from the project is the alignment's "
                        f"gathers and the shut-gate solve"))]


# --- the floor: a training step against its three LSTM layers alone --------------------------------

class TrainingSteps:
    """Training steps of the project's translator (teacher-forcing loss, backward, torch's Adam, as
    :func:`hw2lib.train.train` runs them) over fixed batches, on one thread; returns batches per second."""

    def __init__(self, model: Seq2Seq, batches: list[CharBatch]) -> None:
        self.model, self.batches = model.train(), batches
        self.optimizer = torch.optim.Adam(model.parameters(), lr=0.003)

    def __call__(self) -> float:
        with torch_threads(1):
            started = time.perf_counter()
            for batch in self.batches:
                self.optimizer.zero_grad(set_to_none=True)
                teacher_forcing_loss(self.model, batch).backward()
                self.optimizer.step()
            return len(self.batches) / (time.perf_counter() - started)


class LSTMLayersOnly:
    """The same batches' LSTM work alone: each encoder direction (one fused call over the source
    length) and the decoder (one call over the target length), forward and backward, on inputs of
    the step's shapes; everything else a step does (embedding, dropout, attention, generator, loss,
    alignment, Adam) left out. Batches per second, one thread."""

    def __init__(self, model: Seq2Seq, batches: list[CharBatch]) -> None:
        self.model = model.train()
        hidden = model.encoder.hidden_size
        self.inputs = [(torch.randn(len(batch.source_lengths), batch.source.shape[1], hidden, requires_grad=True),
                        torch.randn(len(batch.source_lengths), batch.target.shape[1] - 1, hidden, requires_grad=True))
                       for batch in batches]

    def __call__(self) -> float:
        encoder, decoder = self.model.encoder.lstm, self.model.decoder.lstm
        weights = {suffix: [getattr(encoder, f"{name}_l0{suffix}") for name in
                            ("weight_ih", "weight_hh", "bias_ih", "bias_hh")] for suffix in ("", "_reverse")}
        with torch_threads(1):
            started = time.perf_counter()
            for source, target in self.inputs:
                self.model.zero_grad(set_to_none=True)
                zeros = source.new_zeros(1, source.shape[0], encoder.hidden_size)
                total = sum(torch.lstm(source, (zeros, zeros), weights[suffix], True, 1, 0.0, True, False, True)[0].sum()
                            for suffix in weights)
                state = source.new_zeros(1, source.shape[0], decoder.hidden_size)
                (total + decoder(target, (state, state))[0].sum()).backward()
            return len(self.inputs) / (time.perf_counter() - started)


def lstm_share_row(data: CharMT, settings: Settings) -> Row:
    """How much of a training step the LSTM kernels take: what no loop around them can save."""
    config = seq2seq_config(True, profile="full")
    task = TrainingOnlyTask(CharPairs(data.train.pairs[:settings.train_pairs], data.source_vocab, data.target_vocab),
                            CharPairs(data.val.pairs[:8], data.source_vocab, data.target_vocab), data.target_vocab,
                            batch_size=config["batch_size"])
    batches = list(task.training_batches(torch.Generator().manual_seed(42)))
    measured = interleaved({"step": TrainingSteps(build_seq2seq(config, data), batches),
                            "lstm": LSTMLayersOnly(build_seq2seq(config, data), batches)}, settings.rounds)
    # step speed / LSTM speed = LSTM time / step time, round by round
    shares = [step / lstm for step, lstm in zip(measured.rounds["step"], measured.rounds["lstm"])]
    share = statistics.median(shares)
    row = speed_row(
        "seq2seq training (attention), batch 64, 1 thread: time in the three LSTM layers' kernels, share of a step",
        f"{1000 / measured.speeds['lstm']:.1f} ms", f"{1000 / measured.speeds['step']:.1f} ms", share,
        note=(f"informational, the floor of `make reproduce`: {len(batches)} batches of {len(task.train_pairs):,} "
              f"training pairs, median of {settings.rounds} interleaved rounds; measured: both encoder directions "
              f"and the decoder as torch's fused (oneDNN) LSTM calls, forward and backward, on inputs of each "
              f"batch's shapes; reference: the whole training step (loss, backward, Adam) on the same batches; "
              f"one thread, as each stream of `make reproduce` runs. A loop that cost nothing around these kernels "
              f"would still spend this share of today's step in them"))
    row.ratio_text, row.spread = f"{share:.0%} of a step", spread_text(shares, percent=True)
    return row


def run(quick: bool = False) -> list[Row]:
    """Measure; return the table's rows."""
    settings = QUICK if quick else FULL
    data = char_mt_data("course")
    rows = training_rows(data, settings)
    rows.append(lstm_share_row(data, settings))
    val_pairs = CharPairs(data.val.pairs[:settings.decode_pairs], data.source_vocab, data.target_vocab)
    model, weights = decoding_model(data)
    rows += decoding_rows(model, data, val_pairs, settings, weights)
    return rows


def main() -> int:
    arguments = standard_arguments("Translator training and decoding speed").parse_args()
    threads = prepare_environment(arguments.threads)
    rows = run(arguments.quick)
    report(rows, machine_description(), arguments.markdown, f"Translator speed ({threads} threads)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

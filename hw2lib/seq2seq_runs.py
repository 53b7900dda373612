"""Chapter 3's experiments as stored runs: the translators without (a) and with (b) attention.

:class:`TranslationTask` is the training problem (teacher forcing, greedy validation error after
every epoch); :func:`seq2seq_config` turns a model choice and a profile into the configuration that
keys a stored run; :func:`get_seq2seq_run` loads that run or trains it through the shared loop
(:func:`hw2lib.train.train`) and the results store (:func:`hw2lib.runs.get_or_train`).
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from .chardata import PAD, CharBatch, CharMT, CharPairs, Vocabulary, collate_pairs, load_char_mt, resolve_variant
from .decoding import decode_split, evaluate_decoding
from .metrics import error_rate
from .runs import Run, checkpoint_file, get_or_train, profile_settings, save_weights, weights_file
from .seq2seq import Seq2Seq
from .train import load_checkpoint, train
from .utils import choose_device, count_parameters, load_state_dict_file, model_device

PROFILE_SETTINGS = {
    "full": {"epochs": 50, "batch_size": 64, "learning_rate": 0.003, "dropout": 0.3, "hidden_size": 128,
             "seed": 42, "train_pairs": None, "eval_pairs": None},
    "quick": {"epochs": 3, "batch_size": 64, "learning_rate": 0.003, "dropout": 0.3, "hidden_size": 128,
              "seed": 42, "train_pairs": 384, "eval_pairs": 100},
}
#: Published error rates per model (``attention``) and split: the seed report, then two other groups.
PUBLISHED_ERRORS = {
    False: {"val": (0.4830, 0.5001, 0.4847), "test": (0.5026, 0.5048, 0.4906)},
    True: {"val": (0.3648, 0.3430, 0.3828), "test": (0.3749, 0.3488, 0.3862)},
}


def seq2seq_config(attention: bool, *, profile: str | None = None, epochs: int | None = None,
                   variant: str = "auto") -> dict:
    """The configuration of one translator run (chapter 3); it is what keys the stored run. ``auto``
    is resolved here to the data actually used (the course's files, else ``tatoeba``)."""
    profile, settings = profile_settings(PROFILE_SETTINGS, profile, epochs)
    return {"task": "char-translation", "model": "seq2seq", "attention": bool(attention),
            "variant": resolve_variant(variant).variant, **settings,
            # How the same mathematics is computed (hw2lib.seq2seq): one fused LSTM call per direction
            # instead of packed sequences, dropout masks drawn from uniform numbers; 1.5x faster on a CPU.
            "fused_encoder": True, "uniform_dropout": True, "profile": profile}


def run_name(config: dict) -> str:
    """``seq2seq-attention`` or ``seq2seq-no-attention`` (the store appends the config hash)."""
    return f"seq2seq-{'attention' if config['attention'] else 'no-attention'}"


def char_mt_data(variant: str = "auto") -> CharMT:
    """The character MT data (``auto``: see :func:`hw2lib.chardata.resolve_variant`), loaded once per
    process (chapter 3)."""
    return _char_mt(resolve_variant(variant).variant)


@lru_cache(maxsize=2)
def _char_mt(variant: str) -> CharMT:
    return load_char_mt(variant)


def config_split(data: CharMT, split: str, config: dict) -> CharPairs:
    """The split a run uses: all of it, or its first pairs in the quick profile."""
    pairs = getattr(data, split)
    limit = config["train_pairs"] if split == "train" else config["eval_pairs"]
    if limit is None or limit >= len(pairs):
        return pairs
    return CharPairs(pairs.pairs[:limit], data.source_vocab, data.target_vocab)


def build_seq2seq(config: dict, data: CharMT) -> Seq2Seq:
    """A freshly initialised translator for ``config`` (seeded: equal configs give equal weights)."""
    torch.manual_seed(config["seed"])
    # A configuration without these keys is a run trained before they existed: packed, torch's dropout.
    return Seq2Seq(len(data.source_vocab), len(data.target_vocab), hidden_size=config["hidden_size"],
                   packed_encoder=not config.get("fused_encoder", False),
                   uniform_dropout=config.get("uniform_dropout", False),
                   dropout=config["dropout"], attention=config["attention"])


class TranslationTask:
    """The training problem of chapter 3 for :func:`hw2lib.train.train`: shuffled batches of
    character pairs, cross-entropy with teacher forcing (PAD ignored), and after every epoch the
    validation error of batched greedy decoding and the validation loss.

    With ``run_dir``, the weights of the epoch with the lowest validation error so far are stored as
    the run's best weights whenever that error improves; ``best_error`` and ``best_epoch`` say which
    (:meth:`resume_from` sets them when an interrupted run resumes).
    """

    def __init__(self, train_pairs: CharPairs, val_pairs: CharPairs, target_vocab: Vocabulary, *,
                 batch_size: int = 64, run_dir: Path | None = None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if len(train_pairs) == 0 or len(val_pairs) == 0:
            raise ValueError("the training and validation splits must not be empty")
        self.train_pairs, self.val_pairs, self.target_vocab = train_pairs, val_pairs, target_vocab
        self.batch_size = batch_size
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.best_error, self.best_epoch = math.inf, 0
        self.epochs_evaluated = 0
        self.val_references = [english for _, english in val_pairs.pairs]

    def training_batches(self, generator: torch.Generator) -> Iterator[CharBatch]:
        order = torch.randperm(len(self.train_pairs), generator=generator).tolist()
        for start in range(0, len(order), self.batch_size):
            yield collate_pairs([self.train_pairs[index] for index in order[start: start + self.batch_size]])

    def loss(self, model: Seq2Seq, batch: CharBatch) -> torch.Tensor:
        return teacher_forcing_loss(model, batch)

    def resume_from(self, history: list[dict[str, float]]) -> None:
        """Take the best epoch so far from the history of an interrupted run."""
        if history:
            best_row = min(history, key=lambda row: row["val_error"])
            self.best_error, self.best_epoch = best_row["val_error"], int(best_row["epoch"])
            self.epochs_evaluated = len(history)

    def evaluate(self, model: Seq2Seq) -> dict[str, float]:
        self.epochs_evaluated += 1
        hypotheses = decode_split(model, self.val_pairs)
        val_error = error_rate(self.val_references, [self.target_vocab.decode(h.tokens) for h in hypotheses])
        if val_error < self.best_error:
            self.best_error, self.best_epoch = val_error, self.epochs_evaluated
            if self.run_dir is not None:
                save_weights(model, self.run_dir, best=True)
        return {"val_error": val_error, "val_loss": self.validation_loss(model)}

    def validation_loss(self, model: Seq2Seq, batch_size: int = 500) -> float:
        """Teacher-forcing cross-entropy per target character over the validation split."""
        device = model_device(model)
        total, characters = 0.0, 0
        with torch.no_grad():
            for start in range(0, len(self.val_pairs), batch_size):
                indices = range(start, min(start + batch_size, len(self.val_pairs)))
                batch = collate_pairs([self.val_pairs[index] for index in indices]).to(device)
                total += float(teacher_forcing_loss(model, batch, reduction="sum"))
                characters += int((batch.target[:, 1:] != PAD).sum())
        return total / characters


def teacher_forcing_loss(model: Seq2Seq, batch: CharBatch, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of predicting ``target[:, 1:]`` from ``target[:, :-1]``, PAD ignored (chapter 3)."""
    logits = model(batch.source, batch.source_lengths, batch.target[:, :-1])
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.target[:, 1:].reshape(-1),
                                       ignore_index=PAD, reduction=reduction)


def train_seq2seq_run(config: dict, run_dir: Path, *, device: str = "auto", progress: bool = True) -> dict:
    """Train the run ``config`` describes, resuming from ``run_dir``'s checkpoint; return its metrics (chapter 3).

    Stores the final weights and those of the epoch with the lowest validation error (the run's best
    weights). Final validation and test figures use greedy decoding.
    """
    data = char_mt_data(config["variant"])
    splits = {split: config_split(data, split, config) for split in ("train", "val", "test")}
    task = TranslationTask(splits["train"], splits["val"], data.target_vocab, batch_size=config["batch_size"],
                           run_dir=run_dir)
    checkpoint = checkpoint_file(run_dir)
    if checkpoint.is_file():  # resuming: the task must know the best epoch so far
        task.resume_from(load_checkpoint(checkpoint)["history"])
    model = build_seq2seq(config, data)
    chosen = choose_device(device)
    history = train(model, task, epochs=config["epochs"], learning_rate=config["learning_rate"], seed=config["seed"],
                    device=chosen, checkpoint_path=checkpoint, progress=progress, description=run_name(config))
    save_weights(model, run_dir)
    metrics = {"history": history, "parameters": count_parameters(model), "device": str(chosen),
               "seconds_per_epoch": sum(row["seconds"] for row in history) / len(history),
               "data": data.description, "best_epoch": task.best_epoch}
    best_model = build_seq2seq(config, data)
    best_model.load_state_dict(load_state_dict_file(weights_file(run_dir, best=True)))
    best_model.to(chosen)
    for label, trained in (("final", model), ("best", best_model)):
        for split in ("val", "test"):
            scores = evaluate_decoding(trained, splits[split], data.target_vocab)
            scores.pop("predictions")
            scores.pop("log_probs", None)  # per-sentence lists: large, and nothing reads them from the store
            metrics[f"{label}_{split}"] = scores
    metrics["val_error"] = metrics["final_val"]["error_rate"]
    metrics["test_error"] = metrics["final_test"]["error_rate"]
    return metrics


def get_seq2seq_run(attention: bool, *, profile: str | None = None, epochs: int | None = None,
                    retrain: bool = False, device: str = "auto", progress: bool = True) -> Run:
    """The stored run of model (a) (``attention=False``) or (b), trained first if there is none (chapter 3)."""
    config = seq2seq_config(attention, profile=profile, epochs=epochs)
    return get_or_train(run_name(config), config,
                        lambda config, run_dir: train_seq2seq_run(config, run_dir, device=device, progress=progress),
                        retrain=retrain)


MODEL_LABELS = {False: "(a) no attention", True: "(b) bilinear attention"}


def chapter_runs(**options) -> dict[bool, Run]:
    """Both runs of chapter 3, keyed by ``attention``; options go to :func:`get_seq2seq_run`."""
    return {attention: get_seq2seq_run(attention, **options) for attention in (False, True)}


def chapter_plan(*, variant: str = "auto", profile: str | None = None) -> list[tuple[str, dict]]:
    """(run name, configuration) of both stored runs chapter 3 reads, without loading or training them."""
    configs = [seq2seq_config(attention, profile=profile, variant=variant) for attention in (False, True)]
    return [(run_name(config), config) for config in configs]


def published_range(attention: bool, split: str) -> tuple[float, float]:
    """The lowest and highest published error rate of a model on "val" or "test" (chapter 3)."""
    values = PUBLISHED_ERRORS[attention][split]
    return min(values), max(values)


def against_published(attention: bool, split: str, error: float) -> str:
    """Where ``error`` lies against the published range, as chapter 3 says it: "inside the published
    range", or how far above the highest (below the lowest) published figure it is."""
    low, high = published_range(attention, split)
    if error > high:
        return f"{error - high:.4f} above the highest published figure ({high:.4f})"
    if error < low:
        return f"{low - error:.4f} below the lowest published figure ({low:.4f})"
    return "inside the published range"


def against_published_ranges(attention: bool, val_error: float, test_error: float) -> str:
    """Both splits' :func:`against_published` in one phrase, as chapter 3's answers say it."""
    val, test = against_published(attention, "val", val_error), against_published(attention, "test", test_error)
    if val == test == "inside the published range":
        return "both inside the published ranges"
    return f"validation {val}, test {test}"


def results_rows(runs: dict[bool, Run]) -> list[dict]:
    """One row per model: final and best-epoch greedy error rates beside the published ranges,
    training time and size (chapter 3)."""
    rows = []
    for attention, run in runs.items():
        metrics = run.metrics
        rows.append({"model": MODEL_LABELS[attention], "val_error": metrics["val_error"],
                     "test_error": metrics["test_error"],
                     "published_val": "{:.4f} - {:.4f}".format(*published_range(attention, "val")),
                     "published_test": "{:.4f} - {:.4f}".format(*published_range(attention, "test")),
                     "best_epoch": metrics["best_epoch"], "best_val_error": metrics["best_val"]["error_rate"],
                     "best_test_error": metrics["best_test"]["error_rate"], "parameters": metrics["parameters"],
                     "seconds_per_epoch": metrics["seconds_per_epoch"], "wall_minutes": metrics["wall_seconds"] / 60})
    return rows


def load_seq2seq(run: Run, *, weights: str = "final") -> Seq2Seq:
    """The trained translator of a stored run, on the CPU in eval mode; ``weights`` is "final" (after
    the last epoch) or "best" (the epoch with the lowest validation error) (chapter 3)."""
    if weights not in ("final", "best"):
        raise ValueError(f"weights must be 'final' or 'best', got {weights!r}")
    model = build_seq2seq(run.config, char_mt_data(run.config["variant"]))
    return run.load_weights(model, best=weights == "best").eval()

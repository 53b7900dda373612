"""Chapter 3's experiments and tools: stored runs of both translators, decoding a whole split
with its scores and timing, and translating any Spanish text.

:func:`seq2seq_config` turns a model choice and a profile into the configuration that keys a
stored run; :func:`get_seq2seq_run` loads that run or trains it through the shared loop
(:func:`hw2lib.train.train`) and the results store (:func:`hw2lib.runs.get_or_train`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .chardata import EOS, SPECIALS, UNK, CharMT, CharPairs, load_char_mt, normalise
from .decoding import MAX_DECODING_STEPS, Hypothesis, beam_search, evaluate_decoding, greedy_decode
from .runs import CHECKPOINT_NAME, Run, get_or_train, profile_settings, save_weights
from .seq2seq import Seq2Seq, TranslationTask, count_parameters
from .train import choose_device, load_checkpoint, load_state_dict_file, train

# full = the homework's settings; quick = seconds, for tests, CI and nbval.
PROFILE_SETTINGS = {
    "full": {"epochs": 50, "batch_size": 64, "learning_rate": 0.003, "dropout": 0.3, "hidden_size": 128,
             "seed": 42, "train_pairs": None, "eval_pairs": None},
    "quick": {"epochs": 3, "batch_size": 64, "learning_rate": 0.003, "dropout": 0.3, "hidden_size": 128,
              "seed": 42, "train_pairs": 384, "eval_pairs": 100},
}
BEST_WEIGHTS_NAME = "best_weights.pt"
# The homework's reference results (seed report, then two other published solutions): error rates.
PUBLISHED_ERRORS = {
    False: {"val": (0.4830, 0.5001, 0.4847), "test": (0.5026, 0.5048, 0.4906)},
    True: {"val": (0.3648, 0.3430, 0.3828), "test": (0.3749, 0.3488, 0.3862)},
}
LONG_INPUT = 60  # characters; training sentences are all under 20


def seq2seq_config(attention: bool, *, profile: str | None = None, epochs: int | None = None,
                   variant: str = "course") -> dict:
    """The configuration of one translator run (chapter 3); it is what keys the stored run."""
    profile, settings = profile_settings(PROFILE_SETTINGS, profile, epochs)
    return {"task": "char-translation", "model": "seq2seq", "attention": bool(attention), "variant": variant,
            **settings, "profile": profile}


def run_name(config: dict) -> str:
    """``seq2seq-attention`` or ``seq2seq-no-attention`` (the store appends the config hash)."""
    return f"seq2seq-{'attention' if config['attention'] else 'no-attention'}"


@lru_cache(maxsize=2)
def char_mt_data(variant: str = "course") -> CharMT:
    """The character MT data, loaded once per process (chapter 3)."""
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
    return Seq2Seq(len(data.source_vocab), len(data.target_vocab), hidden_size=config["hidden_size"],
                   dropout=config["dropout"], attention=config["attention"])


def monotonic_fraction(hypothesis: Hypothesis) -> float:
    """Fraction of consecutive output characters whose attention peak does not move left in the
    source (chapter 3); 1.0 is a perfectly monotonic alignment. The EOS step is left out."""
    if hypothesis.attention is None:
        raise ValueError("the hypothesis has no attention; decode with keep_attention=True and an attention model")
    rows = hypothesis.attention[:-1] if hypothesis.finished else hypothesis.attention
    peaks = np.asarray(rows).argmax(axis=1)
    if len(peaks) < 2:
        return 1.0
    return float(np.mean(np.diff(peaks) >= 0))


def train_seq2seq_run(config: dict, run_dir: Path, *, device: str = "auto", progress: bool = True) -> dict:
    """Train the run ``config`` describes, resuming from ``run_dir``'s checkpoint; return its metrics (chapter 3).

    Stores the final weights in ``weights.pt`` and those of the epoch with the lowest validation
    error in ``best_weights.pt``. Final validation and test figures use greedy decoding.
    """
    data = char_mt_data(config["variant"])
    splits = {split: config_split(data, split, config) for split in ("train", "val", "test")}
    run_dir = Path(run_dir)
    task = TranslationTask(splits["train"], splits["val"], data.target_vocab, batch_size=config["batch_size"],
                           best_weights_path=run_dir / BEST_WEIGHTS_NAME)
    checkpoint = run_dir / CHECKPOINT_NAME
    if checkpoint.is_file():  # resuming: the task must know the best epoch so far
        earlier = load_checkpoint(checkpoint)["history"]
        if earlier:
            best_row = min(earlier, key=lambda row: row["val_error"])
            task.best_error, task.best_epoch = best_row["val_error"], int(best_row["epoch"])
            task.epochs_evaluated = len(earlier)
    model = build_seq2seq(config, data)
    chosen = choose_device(device)
    history = train(model, task, epochs=config["epochs"], learning_rate=config["learning_rate"], seed=config["seed"],
                    device=chosen, checkpoint_path=checkpoint, progress=progress, description=run_name(config))
    save_weights(model, run_dir)
    metrics = {"history": history, "parameters": count_parameters(model), "device": str(chosen),
               "seconds_per_epoch": sum(row["seconds"] for row in history) / len(history),
               "data": data.description, "best_epoch": task.best_epoch}
    best_model = build_seq2seq(config, data).to(chosen)
    best_model.load_state_dict(load_state_dict_file(run_dir / BEST_WEIGHTS_NAME, map_location=chosen))
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


def published_range(attention: bool, split: str) -> tuple[float, float]:
    """The lowest and highest published error rate of a model on "val" or "test" (chapter 3)."""
    values = PUBLISHED_ERRORS[attention][split]
    return min(values), max(values)


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
    if weights == "final":
        run.load_weights(model)
    else:
        path = run.path / BEST_WEIGHTS_NAME
        if not path.is_file():
            raise FileNotFoundError(f"run {run.path.name} has no {BEST_WEIGHTS_NAME}; train it again with retrain=True")
        model.load_state_dict(load_state_dict_file(path))
    return model.eval()


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
    removes, such as Cyrillic or CJK) gets an empty translation and a note instead of an error.
    """
    if not isinstance(text, str):
        raise TypeError(f"translate expects a str, got {type(text).__name__}")
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
        hypothesis = beam_search(model, source, lengths, beam_size=beam_size,
                                 length_normalisation=length_normalisation, keep_attention=True)[0]
    if not hypothesis.finished:
        notes.append(f"the decoder reached the {MAX_DECODING_STEPS}-character limit without ending the sentence")
    target_symbols = ["<eos>" if token == EOS else SPECIALS[token] if token < len(SPECIALS)
                      else data.target_vocab.symbols[token] for token in hypothesis.tokens]
    return Translation(text, normalised, source_symbols, data.target_vocab.decode(hypothesis.tokens),
                       target_symbols, hypothesis.attention, hypothesis.log_prob, notes)


def _shown(symbol: str) -> str:
    return {" ": "\u2423", "<eos>": "\u2039eos\u203a"}.get(symbol, symbol)  # a visible space, a short EOS


def plot_attention(translation: Translation, *, axis=None, title: str | None = None):
    """Heatmap of a translation's attention: output characters down, source characters across
    (chapter 3). Spaces show as a visible space sign. Returns the Figure."""
    import matplotlib.pyplot as plt

    if translation.attention is None:
        raise ValueError("this translation has no attention (the model without attention, or nothing to translate)")
    if axis is None:
        rows, columns = translation.attention.shape
        _, axis = plt.subplots(figsize=(1.2 + 0.3 * columns, 1.2 + 0.3 * rows))
    axis.imshow(translation.attention, cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
    axis.set_xticks(range(len(translation.source_symbols)), [_shown(s) for s in translation.source_symbols])
    axis.set_yticks(range(len(translation.target_symbols)), [_shown(s) for s in translation.target_symbols])
    axis.tick_params(axis="x", top=True, labeltop=True, bottom=False, labelbottom=False)
    axis.set_title(title if title is not None else f"{translation.normalised.strip()} \u2192 {translation.translation}",
                   fontsize=9)
    return axis.figure


def plot_attention_grid(translations: list[Translation], *, columns: int = 3, titles: list[str] | None = None):
    """Several attention heatmaps side by side (chapter 3). Returns the Figure."""
    import matplotlib.pyplot as plt

    if not translations:
        raise ValueError("no translations to plot")
    rows = -(-len(translations) // columns)
    width = max(t.attention.shape[1] for t in translations if t.attention is not None)
    height = max(t.attention.shape[0] for t in translations if t.attention is not None)
    figure, axes = plt.subplots(rows, columns, figsize=(columns * (1.0 + 0.26 * width), rows * (1.3 + 0.26 * height)),
                                squeeze=False)
    for index, axis in enumerate(axes.flat):
        if index < len(translations):
            plot_attention(translations[index], axis=axis, title=None if titles is None else titles[index])
        else:
            axis.axis("off")
    figure.tight_layout()
    return figure


def plot_decoder_comparison(comparisons: dict[str, list[dict]], *, metric: str = "error_rate"):
    """Question (c) at a glance (chapter 3): ``metric`` and decoding time against the beam size, one
    line per entry of ``comparisons`` (label -> rows of :func:`hw2lib.decoding.compare_decoders`);
    greedy decoding is the star at beam size 1. Returns the Figure."""
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10.5, 3.6))
    for label, rows in comparisons.items():
        beams = [row for row in rows if row["decoder"].startswith("beam") and row["length_normalisation"] == 0]
        greedy = next(row for row in rows if row["decoder"] == "greedy")
        for axis, key in ((left, metric), (right, "seconds")):
            line, = axis.plot([row["beam_size"] for row in beams], [row[key] for row in beams], marker="o", label=label)
            axis.plot([1], [greedy[key]], marker="*", markersize=12, color=line.get_color(), linestyle="none")
    left.set_ylabel(metric.replace("_", " "))
    right.set_ylabel("decoding time of the split (s)")
    for axis in (left, right):
        axis.set_xlabel("beam size (star: greedy)")
        axis.set_xscale("log")
        axis.set_xticks([1, 3, 5, 10], ["1", "3", "5", "10"])
        axis.grid(alpha=0.3)
    left.legend(fontsize=8)
    figure.tight_layout()
    return figure

"""translate() on good and bad input; stored quick runs; scoring a decoded split."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hw2lib.chardata import build_dataset, normalise
from hw2lib.decoding import evaluate_decoding
from hw2lib.metrics import error_rate
from hw2lib.seq2seq import Seq2Seq
from hw2lib.seq2seq_runs import get_seq2seq_run, load_seq2seq, seq2seq_config
from hw2lib.translate import translate

TOY = [("el gato .", "the cat ."), ("la casa .", "the house ."), ("un perro .", "a dog .")]


@pytest.fixture(scope="module")
def toy():
    """Data whose source vocabulary lacks most letters (so UNK shows up), and random models."""
    data = build_dataset("toy", "made-up pairs", {"train": TOY, "val": TOY, "test": TOY})
    models = {}
    for attention in (False, True):
        torch.manual_seed(0)
        models[attention] = Seq2Seq(len(data.source_vocab), len(data.target_vocab), hidden_size=32,
                                    attention=attention).eval()
    return data, models


def test_a_sentence_is_normalised_and_translated_with_its_attention(toy):
    data, models = toy
    result = translate(models[True], data, "¡El gato.")
    assert result.normalised == normalise("¡El gato.") == " el gato ."
    assert "".join(result.source_symbols) == result.normalised
    assert result.attention.shape == (len(result.target_symbols), len(result.normalised))
    assert np.allclose(result.attention.sum(axis=1), 1.0, atol=1e-5)
    assert result.translation == data.target_vocab.decode(
        [data.target_vocab.index.get(s, 2) for s in result.target_symbols])
    assert any("¡" in note for note in result.notes)
    assert translate(models[False], data, "el gato .").attention is None


def test_beam_size_one_gives_the_greedy_translation(toy):
    data, models = toy
    greedy = translate(models[True], data, "la casa .")
    beam = translate(models[True], data, "la casa .", beam_size=1)
    assert (beam.translation, beam.target_symbols) == (greedy.translation, greedy.target_symbols)


@pytest.mark.parametrize("text", ["", "   ", "Привет мир", "你好世界", "123 456"])
def test_input_with_nothing_left_gets_an_empty_answer_and_a_note(toy, text):
    data, models = toy
    result = translate(models[True], data, text)
    assert result.translation == "" and result.attention is None and result.target_symbols == []
    assert any("nothing to translate" in note for note in result.notes)
    if text.strip():
        assert any("removes" in note for note in result.notes)


def test_cyrillic_with_punctuation_keeps_only_the_punctuation(toy):
    data, models = toy
    result = translate(models[True], data, "Привет, мир!")
    assert result.normalised == " !"
    assert any("removes" in note for note in result.notes)
    assert result.attention.shape[1] == 2


def test_characters_outside_the_vocabulary_become_unk(toy):
    data, models = toy
    result = translate(models[True], data, "zapato")
    assert "z" not in data.source_vocab.index and "\ufffd" in result.source_symbols
    assert result.source_symbols.count("\ufffd") == sum(ch not in data.source_vocab.index for ch in "zapato")
    assert any("<unk>" in note and "z" in note for note in result.notes)


def test_a_very_long_input_is_translated_and_cut_off_with_a_note(toy):
    data, models = toy
    text = ("el gato " * 125)[:999] + "s"
    result = translate(models[True], data, text)
    assert len(result.normalised) == 1000
    assert len(result.target_symbols) <= 50
    assert result.attention.shape == (len(result.target_symbols), 1000)
    assert any("1000 characters" in note for note in result.notes)


def test_translate_wants_text(toy):
    data, models = toy
    with pytest.raises(TypeError, match="str"):
        translate(models[True], data, None)


def test_quick_runs_are_stored_once_and_reloaded(use_mirror, monkeypatch, tmp_path):
    monkeypatch.setenv("HW2LIB_PROFILE", "quick")
    monkeypatch.setenv("HW2LIB_RESULTS", str(tmp_path))
    run = get_seq2seq_run(True, epochs=2, progress=False)
    assert run.config == seq2seq_config(True, epochs=2)
    assert {"weights.pt", "best_weights.pt", "metrics.json", "config.json"} <= {p.name for p in run.path.iterdir()}
    history = run.metrics["history"]
    assert [row["epoch"] for row in history] == [1, 2]
    # the final greedy validation error is the last epoch's, decoded again from the stored weights
    assert run.metrics["final_val"]["error_rate"] == pytest.approx(history[-1]["val_error"], abs=1e-9)
    best = min(history, key=lambda row: row["val_error"])
    assert run.metrics["best_epoch"] == best["epoch"]
    assert run.metrics["best_val"]["error_rate"] == pytest.approx(best["val_error"], abs=1e-9)
    again = get_seq2seq_run(True, epochs=2, progress=False)
    assert again.path == run.path and again.metrics == run.metrics  # loaded, not retrained
    model = load_seq2seq(run, weights="best")
    assert not model.training and model.has_attention
    with pytest.raises(ValueError, match="'final' or 'best'"):
        load_seq2seq(run, weights="last")


def test_evaluate_decoding_scores_the_predictions_it_returns(toy):
    data, models = toy
    report = evaluate_decoding(models[True], data.val, data.target_vocab, beam_size=2)
    assert len(report["predictions"]) == 3
    assert report["error_rate"] == pytest.approx(error_rate([e for _, e in TOY], report["predictions"]))
    assert report["seconds"] > 0 and 0.0 <= report["finished"] <= 1.0


def test_explorer_redraws_for_new_text_and_beam_size(toy, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    from hw2lib.widgets import translation_explorer

    data, models = toy
    shown = []  # the figures behind the pictures the explorer displays
    monkeypatch.setattr("hw2lib.widgets.figure_picture", lambda figure: shown.append(figure) or figure)
    monkeypatch.setattr("hw2lib.widgets.display", lambda picture: None)
    explorer = translation_explorer({"plain": models[False], "attention": models[True]}, data, text="el gato .",
                                    beam_size=3)
    text_box, beam_slider = explorer.children[0].children
    heatmaps = [axis for axis in shown[0].axes if axis.images]
    assert len(shown) == 1 and len(heatmaps) == 2  # greedy and beam heatmaps of the attention model
    assert shown[0].axes[1].get_title().startswith("attention, beam 3")
    text_box.value = "la casa ."
    assert len(shown) == 2
    assert [t.get_text() for t in shown[-1].axes[0].get_xticklabels()] == ["l", "a", "\u2423", "c", "a", "s", "a",
                                                                          "\u2423", "."]
    beam_slider.value = 1
    assert shown[-1].axes[1].get_title().startswith("attention, beam 1")
    text_box.value = "你好"  # nothing to translate: no figure, no crash
    assert len(shown) == 3
    with pytest.raises(ValueError, match="at least one model"):
        translation_explorer({}, data)


def test_command_line_trains_then_loads_a_translator(use_mirror, monkeypatch, tmp_path, capsys):
    from hw2lib.cli import main

    monkeypatch.setenv("HW2LIB_PROFILE", "quick")
    monkeypatch.setenv("HW2LIB_RESULTS", str(tmp_path))
    arguments = ["seq2seq", "--profile", "quick", "--attention", "no", "--epochs", "1", "--no-progress"]
    assert main(arguments) == 0
    first = capsys.readouterr().out
    assert first.startswith("seq2seq-no-attention-") and "val error" in first and "after 1 epochs" in first
    assert main(arguments) == 0
    assert capsys.readouterr().out == first  # the stored run, not a new one


@pytest.mark.parametrize("text", ["", "Привет, мир", "hola " * 200, "¿¡!?"])
def test_explorer_answers_awkward_text_without_crashing(toy, monkeypatch, capsys, text):
    import matplotlib

    matplotlib.use("Agg")
    from hw2lib.widgets import translation_explorer

    data, models = toy
    shown = []  # the figures behind the pictures the explorer displays
    monkeypatch.setattr("hw2lib.widgets.figure_picture", lambda figure: shown.append(figure) or figure)
    monkeypatch.setattr("hw2lib.widgets.display", lambda picture: None)
    explorer = translation_explorer({"attention": models[True]}, data, text="el gato .", beam_size=2)
    text_box = explorer.children[0].children[0]
    capsys.readouterr()
    text_box.value = text
    printed = capsys.readouterr().out
    assert "Traceback" not in printed
    assert normalise(text).strip() in printed or "nothing to translate" in printed
    if len(text) >= 1000:
        assert "long" in printed  # the note about cutting a long input short is shown

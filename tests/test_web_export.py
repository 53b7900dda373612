"""hw2lib.web_export: the live panels' model scripts and golden outputs, from the stored runs."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
import torch

from hw2lib import web_export
from hw2lib.cnn import CNN
from hw2lib.seq2seq import Seq2Seq
from hw2lib.seq2seq_runs import load_seq2seq


def read_script(path):
    """The payload of a generated model script (one JSON object assigned to the page's store)."""
    text = path.read_text(encoding="utf-8")
    head, payload = text.split("] = ", 1)
    assert head.endswith(f'(globalThis.{web_export.GLOBAL_NAME} = globalThis.{web_export.GLOBAL_NAME} || {{}})'
                         f'["{path.stem}"')
    return json.loads(payload.rstrip().removesuffix(";"))


def decoded(payload) -> dict[str, np.ndarray]:
    blob = np.frombuffer(base64.b64decode(payload["weights"]), dtype="<f4")
    return {name: blob[offset: offset + int(np.prod(shape))].reshape(shape)
            for name, (shape, offset) in payload["tensors"].items()}


@pytest.fixture
def data_env(monkeypatch, use_mirror):
    return use_mirror


@pytest.fixture(scope="module")
def exported(tmp_path_factory, mirror_dir, shared_cache):
    folder = tmp_path_factory.mktemp("live")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HW2LIB_MIRROR", str(mirror_dir) if mirror_dir else "off")
        patch.setenv("HW2LIB_CACHE", str(shared_cache))
        paths = web_export.export_live_models(folder)
    return paths


def test_tied_weights_are_stored_once_and_everything_round_trips():
    torch.manual_seed(0)
    model = Seq2Seq(12, 9, hidden_size=8, attention=True)
    tensors, weights, tied = web_export.tensor_table(model)
    assert tied == {"generator.weight": "decoder.embedding.weight"}
    assert "generator.weight" not in tensors
    payload = {"tensors": tensors, "weights": weights}
    unique = sum(p.numel() for p in model.parameters())
    assert len(base64.b64decode(weights)) == 4 * unique
    for name, values in decoded(payload).items():
        assert np.array_equal(values, model.state_dict()[name].numpy()), name


def test_channels_last_weights_are_exported_in_logical_order():
    torch.manual_seed(0)
    model = CNN().to(memory_format=torch.channels_last)
    assert not model.conv2.weight.is_contiguous()
    tensors, weights, _ = web_export.tensor_table(model)
    values = decoded({"tensors": tensors, "weights": weights})
    assert np.array_equal(values["conv2.weight"], model.conv2.weight.detach().numpy())


def test_the_scripts_hold_the_stored_runs_weights_within_the_page_budget(exported, data_env):
    translators = web_export.chapter3_runs()
    for name, run in translators.items():
        payload = read_script(exported[name])
        model = load_seq2seq(run)
        for key, values in decoded(payload).items():
            assert np.array_equal(values, model.state_dict()[key].numpy()), key
        assert payload["tied"] == {"generator.weight": "decoder.embedding.weight"}
        assert payload["attention"] == (name == "translator-b") and payload["run"] == run.path.name
        assert payload["source_symbols"][:4] == ["<pad>", "<sos>", "<eos>", "<unk>"]
        assert payload["max_steps"] == 50
    chapter3_page = exported["translator-a"].stat().st_size + exported["translator-b"].stat().st_size
    assert chapter3_page <= web_export.MAX_PAGE_MODEL_BYTES
    assert exported["cnn"].stat().st_size <= web_export.MAX_PAGE_MODEL_BYTES


def test_the_cnn_script_is_the_chapters_best_run_with_the_first_test_images(exported, data_env):
    from hw2lib.cnn_runs import kmnist_data

    payload = read_script(exported["cnn"])
    run = web_export.chapter2_cnn_run()
    assert payload["run"] == run.path.name and run.config["variant"] == "kmnist-t10k"
    sweep_accuracies = [web_export.stored_run(web_export.cnn_config(rate, variant="kmnist-t10k", profile="full"))
                        .metrics["dev_accuracy"] for rate in web_export.LEARNING_RATES]
    assert payload["dev_accuracy"] == max(sweep_accuracies)
    model = run.load_weights(CNN())
    assert all(np.array_equal(values, model.state_dict()[key].numpy()) for key, values in decoded(payload).items())
    images, labels = kmnist_data("kmnist-t10k").test
    pixels = np.frombuffer(base64.b64decode(payload["images"]["pixels"]), dtype=np.uint8).reshape(-1, 28, 28)
    assert len(pixels) == web_export.PANEL_IMAGES == len(payload["images"]["labels"])
    assert np.array_equal(pixels / 256, images[: len(pixels), 0].numpy())
    assert payload["images"]["labels"] == labels[: len(pixels)].tolist()
    assert payload["classes"]["romaji"][5] == "ha"


def test_a_missing_run_is_one_clear_error_and_nothing_is_trained(tmp_path, monkeypatch):
    monkeypatch.setenv("HW2LIB_RESULTS", str(tmp_path))
    with pytest.raises(web_export.LiveExportError, match="no stored run .* build the book once"):
        web_export.export_live_models(tmp_path / "out", ("translator-a",))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="unknown live model"):
        web_export.live_payloads(("gpt",))


def test_images_that_are_not_kmnist_bytes_are_refused():
    with pytest.raises(ValueError, match="not KMNIST bytes"):
        web_export.image_bytes(torch.full((1, 1, 28, 28), 0.3))


def test_a_drawing_is_framed_like_kmnists_images():
    image = web_export.rasterise_strokes([[(500.0, 10.0), (500.0, 90.0), (520.0, 90.0)]], stroke_width=2.6)
    ink = np.argwhere(image > web_export.INK)
    assert ink[:, 0].min() == 0 and ink[:, 0].max() == 27  # the longer side fills the frame
    assert abs((ink[:, 1].min() + ink[:, 1].max()) / 2 - 13.5) <= 0.5  # centred
    assert ink[:, 1].max() - ink[:, 1].min() < 14  # proportions kept
    assert image.max() == np.float32(255 / 256)
    assert np.array_equal(image * 256, np.round(image * 256))  # bytes / 256, like the loader's values
    assert not web_export.rasterise_strokes([]).any()


def test_kmnist_statistics_and_the_calibrated_pen(kmnist_t10k):
    images = torch.cat([kmnist_t10k.train[0], kmnist_t10k.dev[0], kmnist_t10k.test[0]])
    stats = web_export.drawing_statistics(images)
    assert stats["images"] == 10_000 and stats["full_frame_share"] > 0.9
    assert stats["median_box_centre"] == [13.5, 13.5]
    assert 2.0 < stats["median_stroke_width"] < 3.5
    line = web_export.rasterise_strokes(web_export.REFERENCE_STROKE, stroke_width=stats["stroke_width"])
    assert abs(web_export.stroke_width_estimate(line[None])[0] - stats["median_stroke_width"]) < 0.03
    thin = web_export.rasterise_strokes(web_export.REFERENCE_STROKE, stroke_width=1.5)
    assert web_export.stroke_width_estimate(thin[None])[0] < stats["median_stroke_width"] - 0.5


def test_the_golden_file_holds_the_librarys_answers(tmp_path, data_env):
    from hw2lib.seq2seq_runs import char_mt_data
    from hw2lib.translate import translate

    path = web_export.write_golden(tmp_path / "golden.json", sentences=4, images=10)
    golden = json.loads(path.read_text(encoding="utf-8"))
    cnn = golden["cnn"]
    assert len(cnn["labels"]) == len(cnn["log_probs"]) == 10
    assert np.allclose(np.exp(cnn["log_probs"]).sum(axis=1), 1, atol=1e-5)
    assert min(value for maps in cnn["maps"] for value in maps["conv1"]) < 0  # before the ReLU
    entry = golden["translators"]["translator-b"]
    model, data = load_seq2seq(web_export.chapter3_runs()["translator-b"]), char_mt_data("course")
    assert entry["sources"] == [spanish for spanish, _ in data.val.pairs[:4]]
    for sentence, hypothesis in zip(entry["sources"], entry["beam5"]):
        if sentence == sentence.strip():  # translate() strips; the course's files keep a leading space
            assert translate(model, data, sentence, beam_size=5).translation == hypothesis["translation"]
    assert [row["text"] for row in entry["translate"][::2]] == list(web_export.TRICKY_INPUTS)
    assert any("removes" in note for row in entry["translate"] for note in row["notes"])
    assert {case["kernel"] is None for case in golden["matrix"]} == {True, False}

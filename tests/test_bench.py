"""The benchmarks' own arithmetic: FLOP counts, interleaved ratios, verdicts (not their timings)."""

from __future__ import annotations

import pytest
import torch

from bench.cnn_speed import flop_counter_check, forward_flops_per_sample
from bench.common import budget_row, competing_load, interleaved, speed_row, torch_threads
from hw2lib.cnn import build_model


def test_cnn_forward_flops_match_the_layer_arithmetic_and_torch():
    # 2 x multiply-accumulates: conv1 8x28x28 outputs of 5x5x1, conv2 16x12x12 of 3x3x8, then the linears
    by_hand = 2 * (8 * 28 * 28 * 25 + 16 * 12 * 12 * 72 + 576 * 600 + 600 * 120 + 120 * 10)
    counted = forward_flops_per_sample(build_model("cnn"))
    assert counted == by_hand == 1_482_976  # the "about 1.48 MFLOP" of the issue
    forward, training = flop_counter_check(build_model("cnn"), counted)
    assert forward == counted and 2 * forward < training < 3 * forward  # conv1 needs no input gradient


def test_fc_baseline_flops():
    assert forward_flops_per_sample(build_model("fc")) == 2 * (784 * 464 + 464 * 120 + 120 * 10)


def test_interleaved_runs_warmup_alternates_and_takes_median_per_round_ratios():
    calls = []

    def candidate(name, speeds):
        values = iter(speeds)

        def call():
            calls.append(name)
            return next(values)
        return call
    measured = interleaved({"reference": candidate("reference", [999, 10, 20, 10]),
                            "project": candidate("project", [1, 15, 20, 30])}, rounds=3)
    assert calls == ["reference", "project"] * 4  # one warm-up round, then strictly alternating
    assert measured.ratios["project"] == 1.5  # median of 1.5, 1.0, 3.0: the warm-up (1 / 999) is dropped
    assert (measured.lowest["project"], measured.highest["project"]) == (1.0, 3.0)
    assert measured.speeds["project"] == 20 and measured.best_speeds["project"] == 30
    with pytest.raises(ValueError, match="rounds"):
        interleaved({"reference": lambda: 1.0}, rounds=0)


def test_verdicts():
    assert speed_row("x", "", "", 1.49, at_least=1.5).verdict == "SHORT"
    assert speed_row("x", "", "", 1.5, at_least=1.5).verdict == "PASS"
    assert speed_row("x", "", "", 9.0).verdict == ""  # informational rows have no goal
    assert budget_row("t", 599.0, 600).verdict == "PASS"
    assert budget_row("t", 601.0, 600).verdict == "SHORT"
    assert budget_row("t", 100.0, 600, failed=True).verdict == "SHORT"  # fast but failed is not a pass
    assert budget_row("t", 100.0, 600, lower_bound=True).verdict == ""  # stopped early: undecided
    assert budget_row("t", 700.0, 600, lower_bound=True).verdict == "SHORT"
    assert budget_row("t", None, 600).measured == "not measured"


def test_reproduction_comparison_ignores_times_and_names_every_difference(tmp_path):
    import json

    import torch

    from bench.end_to_end import compare_with_stored

    def store(root, name, metrics, weights=None):
        (root / name).mkdir(parents=True)
        (root / name / "config.json").write_text("{}")
        (root / name / "metrics.json").write_text(json.dumps(metrics))
        if weights is not None:
            torch.save({"w": weights}, root / name / "weights.pt")
    stored, again = tmp_path / "stored", tmp_path / "again"
    history = [{"epoch": 1, "train_loss": 0.5, "seconds": 3.0}, {"epoch": 2, "train_loss": 0.4, "seconds": 3.0}]
    store(stored, "same", {"test_accuracy": 0.9, "wall_seconds": 10.0, "cpu_threads": 1, "history": history},
          torch.ones(3))
    store(again, "same", {"test_accuracy": 0.9, "wall_seconds": 99.0, "cpu_threads": 2,
                          "history": [{**row, "seconds": 7.0} for row in history]}, torch.ones(3))
    store(stored, "moved", {"history": history}, torch.ones(3))
    store(again, "moved", {"history": [{**row, "train_loss": row["train_loss"] + 1e-7} for row in history]},
          torch.ones(3))
    store(stored, "reweighted", {"history": history}, torch.ones(3))
    store(again, "reweighted", {"history": history}, torch.tensor([1.0, 1.0, 1.0 + 2 ** -20]))
    store(stored, "lost", {"history": history})
    (stored / "unfinished").mkdir()
    (stored / "unfinished" / "config.json").write_text("{}")  # no metrics.json: not a stored run
    text = compare_with_stored(again, stored)
    assert text.startswith("1 of the 4 stored runs trained again with identical metrics and weights")
    assert ("moved (history[*].train_loss in 2 place(s), e.g. history[0].train_loss: 0.5 stored, 0.5000001 new; "
            "weights identical)") in text
    assert "reweighted (metrics identical; WEIGHTS DIFFER)" in text
    assert "NOT TRAINED: lost" in text and "unfinished" not in text


def test_differences_name_every_path():
    from bench.end_to_end import differences

    assert differences({"a": [1, {"b": 2}]}, {"a": [1, {"b": 2}]}) == []
    assert differences({"a": [1, {"b": 2}], "c": 5}, {"a": [1, {"b": 3}], "c": 6}) == [("a[1].b", 2, 3), ("c", 5, 6)]
    assert differences({"a": 1}, {"a": 1, "c": 0}) == [("c", "<missing>", 0)]
    assert differences({"h": [1, 2]}, {"h": [1]}) == [("h", "2 entries", "1 entries")]


def test_ratio_between_and_spreads_come_from_the_same_rounds():
    from bench.common import spread_text

    speeds = {"reference": iter([5, 10, 10, 20]), "project": iter([5, 15, 30, 30]), "other": iter([5, 10, 20, 10])}
    measured = interleaved({name: (lambda values=values: next(values)) for name, values in speeds.items()}, rounds=3)
    assert measured.rounds["project"] == [15, 30, 30]
    assert measured.ratio_spread("project") == "1.50-3.00 (3 rounds)"  # 1.5, 3.0, 1.5
    ratio, spread = measured.ratio_between("project", "other")
    assert ratio == 1.5 and spread == "1.50-3.00 (3 rounds)"  # 1.5, 1.5, 3.0
    assert spread_text([0.181, 0.3], percent=True) == "18.1%-30.0% (2 rounds)"
    assert speed_row("x", "", "", 1.5, spread="1.2-1.8 (9 rounds)").spread == "1.2-1.8 (9 rounds)"


def test_step_breakdown_rows_divide_skeleton_by_project_and_bound_the_gain():
    from bench.cnn_steps import PARTS, breakdown_rows

    project = {"data": [0.01, 0.01], "forward": [1.0, 1.2], "backward": [1.0, 0.8], "optimizer": [0.2, 0.2],
               "rest": [0.1, 0.1]}
    skeleton = {"data": [0.5, 0.5], "forward": [1.0, 1.2], "backward": [1.0, 0.8], "optimizer": [1.0, 1.0],
                "rest": [0.2, 0.2]}
    rows = breakdown_rows({"project": project, "skeleton": skeleton}, batch_size=8, threads=1)
    assert len(rows) == len(PARTS) + 2 and rows[0].benchmark == "CNN batch 8, per step: data (next batch, to device)"
    by_part = dict(zip((*PARTS, "total", "bound"), rows))
    assert by_part["data"].ratio == 50.0 and by_part["optimizer"].ratio == 5.0
    assert by_part["total"].ratio == pytest.approx(3.7 / 2.31)  # both rounds sum to 2.31 ms and 3.7 ms
    assert by_part["bound"].ratio == pytest.approx(3.7 / 2.0)  # the skeleton's step over forward + backward
    assert by_part["total"].spread == "1.60-1.60 (2 rounds)"


def test_step_timers_see_the_dataloader_cost_only_in_the_skeleton():
    from bench.cnn_steps import PARTS, TimedProjectStep, TimedSkeletonStep

    generator = torch.Generator().manual_seed(0)
    images, labels = torch.rand(96, 1, 28, 28, generator=generator), torch.randint(0, 10, (96,), generator=generator)
    dev = (images[:16], labels[:16])
    timers = TimedProjectStep(images, labels, dev, batch_size=8), TimedSkeletonStep(images, labels, dev, batch_size=8)
    for timer in timers:  # the first epoch pays for one-off set-up (kernels, allocator), as the bench's warm-up does
        timer()
    project, skeleton = (timer() for timer in timers)
    assert set(project) == set(skeleton) == set(PARTS)
    assert all(value >= 0 for value in (*project.values(), *skeleton.values()))
    assert skeleton["data"] > 2 * project["data"]  # eight __getitem__ calls and a collate against one slice


def test_the_translator_benchmark_starts_every_side_from_the_same_weights(char_mt_course):
    from bench.seq2seq_speed import training_models
    from hw2lib.seq2seq import UniformDropout

    models = training_models(char_mt_course)
    assert set(models) == {"reference", "project", "torch dropout", "padded"}
    reference = models["reference"].state_dict()
    for model in models.values():
        assert model.state_dict().keys() == reference.keys()
        assert all(torch.equal(value, reference[key]) for key, value in model.state_dict().items())
    assert models["reference"].encoder.packed and not models["project"].encoder.packed
    assert type(models["reference"].decoder.dropout) is torch.nn.Dropout
    assert type(models["project"].decoder.dropout) is UniformDropout


def test_torch_threads_sets_and_restores_the_count_even_on_error():
    before = torch.get_num_threads()
    other = 1 if before != 1 else 2
    with pytest.raises(RuntimeError):
        with torch_threads(other):
            assert torch.get_num_threads() == other
            raise RuntimeError("boom")
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before


def test_competing_load_keeps_a_core_busy_and_stops_with_the_block():
    import resource
    import time

    def child_cpu_seconds(seconds: float) -> float:
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
        with competing_load(1) as description:
            time.sleep(seconds)
        assert "1 other process kept 1 of the" in description
        # the worker has been waited for, so its CPU time is counted: starting it, plus the block
        return resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime - before

    start_only = child_cpu_seconds(0.0)
    assert child_cpu_seconds(1.5) - start_only > 0.8  # busy most of the 1.5 s the block lasted
    with pytest.raises(ValueError, match="cores must be at least 1"):
        with competing_load(0):
            pass


def test_the_lstm_floor_times_exactly_the_three_lstm_layers(use_mirror):
    from bench.seq2seq_speed import LSTMLayersOnly, TrainingSteps
    from hw2lib.chardata import CharPairs, collate_pairs
    from hw2lib.seq2seq_runs import build_seq2seq, char_mt_data, seq2seq_config

    data = char_mt_data("course")
    pairs = CharPairs(data.train.pairs[:20], data.source_vocab, data.target_vocab)
    batches = [collate_pairs([pairs[index] for index in range(start, start + 10)]) for start in (0, 10)]
    config = seq2seq_config(True, profile="quick")
    model = build_seq2seq(config, data)
    assert LSTMLayersOnly(model, batches)() > 0
    with_gradient = {name for name, parameter in model.named_parameters() if parameter.grad is not None}
    assert with_gradient == {name for name, _ in model.named_parameters() if ".lstm." in name}  # and nothing else
    assert len(with_gradient) == 12  # two encoder directions and the decoder, 4 tensors each
    before = {name: parameter.detach().clone() for name, parameter in model.named_parameters()}
    assert TrainingSteps(model, batches)() > 0  # a whole step: every weight moves
    assert all(not torch.equal(before[name], parameter) for name, parameter in model.named_parameters()
               if not name.endswith("embedding.weight"))


def test_a_quiet_row_says_when_its_own_rounds_show_a_busy_machine():
    from bench.cnn_speed import disturbance_note

    assert disturbance_note(4400.0, 3800.0, threads=2) == ""  # two threads faster: nothing to say
    assert disturbance_note(4400.0, 3800.0, threads=1) == ""
    note = disturbance_note(2700.0, 3900.0, threads=2)
    assert "not quiet" in note and "3,900 img/s against 2,700 img/s" in note

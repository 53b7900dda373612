"""CNN training speed: the project's loop against a course-skeleton-style loop, and against the
machine's matrix-multiply peak.

The project's loop is :func:`hw2lib.train.train` with :class:`hw2lib.cnn.KMNISTTask` (tensor
slicing, the loss summed on the device and read once per epoch, the memory layout that
:func:`hw2lib.cnn_runs.cnn_config` chooses). The reference is the course skeleton's way: a
``torch.utils.data.DataLoader`` over a per-item ``Dataset`` and ``loss.item()`` after every step.
Both train the same network (same initial weights, dropout, Adam, NLL loss) on the same images,
and both evaluate the same small dev slice after each epoch, as the skeleton did.

Run alone: ``python -m bench.cnn_speed [--quick]``.
"""

from __future__ import annotations

import contextlib
import io
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from hw2lib.cnn import build_model
from hw2lib.cnn_runs import KMNISTTask, cnn_config
from hw2lib.kmnist import load_kmnist
from hw2lib.train import train

from .common import Row, competing_load, format_rate, interleaved, machine_description, prepare_environment, report, \
    speed_row, spread_text, standard_arguments, torch_threads

SEED = 42
LEARNING_RATE = 5e-4
DEV_IMAGES = 100  # evaluated after every epoch on both sides, as the skeleton did with its dev set


@dataclass
class Settings:
    train_images: int
    rounds: int
    matmul_size: int
    matmul_repeats: int


FULL = Settings(train_images=1500, rounds=15, matmul_size=2048, matmul_repeats=7)  # short rounds, many: steadier
QUICK = Settings(train_images=256, rounds=1, matmul_size=512, matmul_repeats=3)


# --- FLOPs, counted from the layers themselves ------------------------------------------------

def forward_flops_per_sample(model: nn.Module, image_shape: tuple[int, ...] = (1, 28, 28)) -> int:
    """2 x multiply-accumulates of every Conv2d and Linear layer for one image (biases,
    activations and pooling are not counted: they are a few per cent and not matmul work)."""
    macs = 0

    def count(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal macs
        if isinstance(module, nn.Conv2d):
            kernel = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
            macs += output[0].numel() * kernel
        elif isinstance(module, nn.Linear):
            macs += module.in_features * module.out_features
    hooks = [module.register_forward_hook(count) for module in model.modules()
             if isinstance(module, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *image_shape))
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return 2 * macs


def flop_counter_check(model: nn.Module, counted_forward: int) -> tuple[int, int]:
    """torch's own FlopCounterMode on one image: (forward FLOPs, forward + backward FLOPs).

    The forward figure must equal :func:`forward_flops_per_sample`; the training figure
    shows how close the usual "training = 3 x forward" is for this network."""
    from torch.utils.flop_counter import FlopCounterMode

    image = torch.zeros(1, 1, 28, 28)
    model.eval()
    with FlopCounterMode(display=False) as counter:
        with torch.no_grad():
            model(image)
    forward = counter.get_total_flops()
    if forward != counted_forward:
        raise AssertionError(f"hook count {counted_forward} differs from FlopCounterMode's {forward}")
    model.train()
    with FlopCounterMode(display=False) as counter:
        F.nll_loss(model(image), torch.zeros(1, dtype=torch.long)).backward()
    model.zero_grad(set_to_none=True)
    return forward, counter.get_total_flops()


def matmul_peak_flops(size: int, repeats: int) -> float:
    """Best float32 FLOP/s of a (size x size) @ (size x size) product over ``repeats`` tries."""
    left, right = torch.randn(size, size), torch.randn(size, size)
    output = torch.empty(size, size)
    torch.mm(left, right, out=output)  # warm-up: MKL's buffers and threads
    best = 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        torch.mm(left, right, out=output)
        best = max(best, 2 * size ** 3 / (time.perf_counter() - started))
    return best


# --- the course-skeleton-style reference ------------------------------------------------------

class ImageDataset(Dataset):
    """The skeleton's per-item dataset: the DataLoader asks for one (image, label) at a time."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.labels[index]


class SkeletonLoop:
    """The skeleton's training: DataLoader(shuffle=True), ``loss.item()`` every step, the dev set
    evaluated in one batch after each epoch. One call = one epoch; returns images per second."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, dev: tuple[torch.Tensor, torch.Tensor],
                 batch_size: int, threads: int | None = None) -> None:
        torch.manual_seed(SEED)
        self.threads = threads  # None: the process's setting
        self.model = build_model("cnn")
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=LEARNING_RATE)
        self.criterion = nn.NLLLoss()
        self.loader = DataLoader(ImageDataset(images, labels), batch_size=batch_size, shuffle=True,
                                 generator=torch.Generator().manual_seed(SEED))
        self.dev_images, self.dev_labels = dev
        self.samples = len(labels)
        self.losses: list[float] = []

    def __call__(self) -> float:
        with torch_threads(self.threads):
            return self._epoch()

    def _epoch(self) -> float:
        started = time.perf_counter()
        self.model.train()
        for images, labels in self.loader:
            self.optimizer.zero_grad()
            loss = self.criterion(self.model(images), labels)
            loss.backward()
            self.optimizer.step()
            self.losses.append(loss.item())  # the skeleton's host sync every step
        self.model.eval()
        with torch.no_grad():
            (self.model(self.dev_images).argmax(dim=1) == self.dev_labels).sum().item()
        return self.samples / (time.perf_counter() - started)


class ProjectLoop:
    """hw2lib.train.train with KMNISTTask, one epoch per call; returns images per second."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, dev: tuple[torch.Tensor, torch.Tensor],
                 batch_size: int, channels_last: bool, fused_adam: bool = True, threads: int | None = None) -> None:
        self.task = KMNISTTask(images, labels, *dev, batch_size=batch_size, channels_last=channels_last)
        torch.manual_seed(SEED)
        self.model = build_model("cnn")
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.samples = len(labels)
        self.fused_adam = fused_adam
        self.threads = threads  # None: the process's setting
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1  # a new seed per call: every epoch sees a different shuffle, as in a real run
        with torch_threads(self.threads):
            started = time.perf_counter()
            with contextlib.redirect_stderr(io.StringIO()):  # train()'s epoch bar: one line per round otherwise
                train(self.model, self.task, epochs=1, learning_rate=LEARNING_RATE, seed=SEED + self.calls,
                      device="cpu", progress=False, fused_adam=self.fused_adam)
            return self.samples / (time.perf_counter() - started)


def busy_rows(images: torch.Tensor, labels: torch.Tensor, dev: tuple[torch.Tensor, torch.Tensor],
              settings: Settings, channels_last: bool, fused_adam: bool) -> list[Row]:
    """Batch 8 again while another process keeps one core busy: both loops on the process's
    threads (torch's default, what a run without ``--threads`` gets), and both on the cores left free."""
    threads = torch.get_num_threads()
    free = max(1, threads - 1)
    with competing_load(1) as load:
        candidates = {"reference": SkeletonLoop(images, labels, dev, 8),
                      "project": ProjectLoop(images, labels, dev, 8, channels_last, fused_adam)}
        if free != threads:
            candidates["reference, free cores"] = SkeletonLoop(images, labels, dev, 8, threads=free)
            candidates["project, free cores"] = ProjectLoop(images, labels, dev, 8, channels_last, fused_adam,
                                                            threads=free)
        measured = interleaved(candidates, settings.rounds)
    speeds = measured.speeds
    common = (f"{load}; {len(labels):,} images per epoch, median of {settings.rounds} interleaved epochs after "
              f"1 warm-up")
    rows = [speed_row(
        f"CNN training, batch 8, busy machine: project loop vs skeleton loop, both on {threads} thread(s)",
        format_rate(speeds["project"], "img"), format_rate(speeds["reference"], "img"), measured.ratios["project"],
        at_least=1.5, spread=measured.ratio_spread("project"),
        note=(f"{common}; both loops on torch's {threads} threads, what a run without `--threads` gets: a thread "
              f"that shares its core with the other process holds up every parallel kernel, on both sides"))]
    if free != threads:
        ratio, spread = measured.ratio_between("project, free cores", "reference, free cores")
        rows.append(speed_row(
            f"CNN training, batch 8, busy machine: project loop vs skeleton loop, both on the {free} free core(s)",
            format_rate(speeds["project, free cores"], "img"), format_rate(speeds["reference, free cores"], "img"),
            ratio, at_least=1.5, spread=spread,
            note=(f"{common}; both loops on {free} thread(s), one per core the other process leaves free "
                  f"(`--threads {free}`); against torch's {threads} threads under the same load the project loop runs "
                  f"{speeds['project, free cores'] / speeds['project']:.1f}x faster")))
    return rows


def disturbance_note(speed_all_threads: float, speed_one_thread: float, threads: int) -> str:
    """What a quiet-machine row adds when its own rounds show that the machine was not quiet: on a
    quiet machine the project loop is faster on all its threads than on one, so the opposite means
    that another process, or the host of a virtual machine, took a core's time while it ran."""
    if threads < 2 or speed_one_thread < speed_all_threads:
        return ""
    return (f"; the machine was not quiet while this row ran: the project loop was faster on 1 thread than on "
            f"{threads} ({format_rate(speed_one_thread, 'img')} against {format_rate(speed_all_threads, 'img')}), "
            f"so some core was busy with other work; rerun `make bench` on a quiet machine")


def run(quick: bool = False, busy: bool = False) -> list[Row]:
    """Measure on a quiet machine, or (``busy``) with another process keeping a core busy; return the
    table's rows."""
    settings = QUICK if quick else FULL
    data = load_kmnist("kmnist-t10k")
    images, labels = data.train
    images, labels = images[:settings.train_images].contiguous(), labels[:settings.train_images].contiguous()
    dev = (data.dev[0][:DEV_IMAGES].contiguous(), data.dev[1][:DEV_IMAGES].contiguous())
    project_config = cnn_config(LEARNING_RATE, model="cnn", variant="kmnist-t10k", profile="full")
    if busy:
        return busy_rows(images, labels, dev, settings, project_config["channels_last"], project_config["fused_adam"])
    project_channels_last = project_config["channels_last"]
    layout = "channels_last" if project_channels_last else "contiguous"
    other_layout = "contiguous" if project_channels_last else "channels_last"

    forward_flops = forward_flops_per_sample(build_model("cnn"))
    _, training_flops_counted = flop_counter_check(build_model("cnn"), forward_flops)
    training_flops = 3 * forward_flops
    peak_before = matmul_peak_flops(settings.matmul_size, settings.matmul_repeats)

    rows: list[Row] = []
    project_speed_64, project_rounds_64 = None, []
    threads = torch.get_num_threads()
    for batch_size in (8, 64):
        # Both loops run on the process's thread count (torch's default: every core), as a single
        # training run of the command line or a notebook does. At batch 8 the project loop is also
        # timed on one thread: `make reproduce` trains two runs at once, one thread each.
        candidates = {
            "reference": SkeletonLoop(images, labels, dev, batch_size),
            "project": ProjectLoop(images, labels, dev, batch_size, project_channels_last, project_config["fused_adam"]),
            "other layout": ProjectLoop(images, labels, dev, batch_size, not project_channels_last,
                                        project_config["fused_adam"]),
        }
        if batch_size == 8 and threads > 1:
            candidates["project, one thread"] = ProjectLoop(images, labels, dev, batch_size, project_channels_last,
                                                            project_config["fused_adam"], threads=1)
        measured = interleaved(candidates, settings.rounds)
        speeds = measured.speeds
        rows.append(speed_row(
            f"CNN training, batch {batch_size}: project loop vs skeleton loop",
            format_rate(speeds["project"], "img"), format_rate(speeds["reference"], "img"), measured.ratios["project"],
            at_least=1.5 if batch_size == 8 else None, spread=measured.ratio_spread("project"),
            note=(f"{len(labels):,} KMNIST images per epoch, median of {settings.rounds} interleaved epochs after "
                  f"1 warm-up ({measured.spread('project')}); project loop: {layout} layout, fused Adam "
                  f"(hw2lib.optim.LeanFusedAdam); both loops on {threads} thread(s)"
                  + (disturbance_note(speeds["project"], speeds["project, one thread"], threads)
                     if "project, one thread" in candidates else ""))))
        if "project, one thread" in candidates:
            rows.append(speed_row(
                f"CNN training, batch {batch_size}: project loop on 1 thread vs skeleton loop on {threads}",
                format_rate(speeds["project, one thread"], "img"), format_rate(speeds["reference"], "img"),
                measured.ratios["project, one thread"], spread=measured.ratio_spread("project, one thread"),
                note="informational: the thread count of each of the two streams of `make reproduce`"))
        layout_ratio, layout_spread = measured.ratio_between("project", "other layout")
        rows.append(speed_row(
            f"CNN training, batch {batch_size}: {layout} vs {other_layout} (project loop)",
            format_rate(speeds["project"], "img"), format_rate(speeds["other layout"], "img"), layout_ratio,
            spread=layout_spread,
            note="the layout hw2lib.cnn_runs.cnn_config chooses for the CNN, against the other one (median speeds)"))
        if batch_size == 64:  # best epoch against best matmul: both say what the machine can do undisturbed
            project_speed_64, project_rounds_64 = measured.best_speeds["project"], measured.rounds["project"]

    peak = max(peak_before, matmul_peak_flops(settings.matmul_size, settings.matmul_repeats))
    achieved = project_speed_64 * training_flops
    rows.append(speed_row(
        "CNN training, batch 64: project loop vs float32 matmul peak",
        f"{achieved / 1e9:.1f} GFLOP/s", f"{peak / 1e9:.1f} GFLOP/s", achieved / peak, at_least=0.20,
        note=(f"FLOPs counted from the layers: forward {forward_flops / 1e6:.3f} MFLOP per image (2 x MACs of "
              f"convs and linears, equal to torch's FlopCounterMode), training taken as 3 x forward = "
              f"{training_flops / 1e6:.2f} MFLOP (FlopCounterMode counts {training_flops_counted / 1e6:.2f} for "
              f"forward + backward: conv1 needs no input gradient); loop: best of the {settings.rounds} epochs at "
              f"batch 64 above ({format_rate(project_speed_64, 'img')}); peak: best of {settings.matmul_repeats} "
              f"{settings.matmul_size}x{settings.matmul_size} float32 torch.mm, before and after")))
    rows[-1].ratio_text, rows[-1].goal = f"{achieved / peak:.1%} of peak", ">= 20% of peak"
    rows[-1].spread = spread_text([speed * training_flops / peak for speed in project_rounds_64], percent=True)
    return rows


def main() -> int:
    arguments = standard_arguments("CNN training speed against a skeleton-style loop and the matmul peak").parse_args()
    threads = prepare_environment(arguments.threads)
    machine = machine_description()
    rows = run(arguments.quick) + run(arguments.quick, busy=True)
    report(rows, machine, arguments.markdown, f"CNN training speed ({threads} threads)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Does data loading keep a model fed? Worker CPU per clip of the paper recipes, and the loader vs a training step.

Run: `.venv/bin/python benchmarks/bench_loader.py [--batches 12] [--repeats 3] [--render worker|device]
                                                 [--recipes] [--clips N]`.
Default: generates the synthetic benchmark (default size) in a temporary folder, then measures side by side the
training loader (3 TSN segments, I-frame + MV + residual, 96x96 crops) with 0, 1 and 2 worker processes, and the
training step of the synthetic teachers' model (cnn_medium / cnn_small / cnn_small) on tensors already in memory.
Medians of repeated passes. It also prints the loader's CPU per clip in one thread (what a worker spends; process
time, so other processes count less than in wall time) and, with `--render device`, the main process's rendering of
a batch on the CPU.

`--recipes`: the paper recipes instead (configs ucf101/iframe, mv, residual and coviar_teacher: 3 segments, 224 crops,
their parity switches and jitter), on 340x256 MPEG-4 clips (benchmarks/scenes.py's static and handheld footage, GOP 12,
as `cvkd prepare` writes): per recipe and `data.render` setting the worker CPU ms per clip (one thread, process time,
median over `--clips` training items), the rendering of a batch of 16 on the CPU (the device path's work when the
device is the CPU), and the cores one GPU needs to be fed at published training rates (A100 with AMP: ResNet-152
about 1,100 images/s, ResNet-18 about 7,000; H100 about 1.7x): cores = GPU clips/s x worker CPU seconds per clip,
one clip being 3 segments of every stream the recipe trains.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from torch.utils.data import Subset

from cvkd.data.datasets import CompressedVideoDataset, make_loader
from cvkd.data.device_render import RENDERS, batch_inputs
from cvkd.data.lists import VideoList
from cvkd.data.transforms import crop_scales
from cvkd.data.synthetic import generate_synthetic
from cvkd.models import build_coviar

RECIPES = {  # what the recipe trains: config of the paper's recipe
    "I-frame with jitter": "ucf101/iframe.yaml",
    "MV": "ucf101/mv.yaml",
    "residual": "ucf101/residual.yaml",
    "I-frame + MV + residual": "ucf101/coviar_teacher.yaml",
}
A100_IMAGES_PER_SECOND = {"resnet152": 1100.0, "resnet18": 7000.0}  # training with AMP, published rates
H100_SPEED_UP = 1.7

MODALITIES = ("iframe", "mv", "residual")
BATCH = 16


def loader_clips_per_second(dataset: CompressedVideoDataset, workers: int, batches: int, epoch: int) -> float:
    """Clips per second of `batches` batches from a fresh loader (start-up included, as at every epoch)."""
    dataset.set_epoch(epoch)
    subset = Subset(dataset, range(min(len(dataset), batches * BATCH)))  # whole passes: no half-consumed iterators
    loader = make_loader(subset, BATCH, shuffle=False, workers=workers, seed=0)
    started = time.perf_counter()
    clips = sum(batch["label"].shape[0] for batch in loader)
    elapsed = time.perf_counter() - started
    del loader  # shut the worker processes down before the next setting starts its own
    return clips / elapsed


def worker_cpu_ms_per_clip(dataset: CompressedVideoDataset, clips: int) -> float:
    """Median process CPU milliseconds of one item in this process, one thread (a loader worker's work per clip)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        timings = []
        for index in range(min(clips, len(dataset))):
            started = time.process_time()
            dataset[index]
            timings.append(1000 * (time.process_time() - started))
        return statistics.median(timings)
    finally:
        torch.set_num_threads(threads)


def render_ms_per_batch(batch: dict, modalities=MODALITIES, repeats: int = 5) -> float:
    """Median milliseconds of rendering one raw batch on the CPU (the main process's share with --render device)."""
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        batch_inputs(batch, modalities, "cpu")
        timings.append(1000 * (time.perf_counter() - started))
    return statistics.median(timings)


def step_clips_per_second(batch: dict, steps: int) -> float:
    """Clips per second of forward + backward + Adam step of the teachers' model on one in-memory batch."""
    model = build_coviar({"iframe": "cnn_medium", "mv": "cnn_small", "residual": "cnn_small"}, 8)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    labels = batch["label"]
    timings = []
    for _ in range(steps + 1):
        started = time.perf_counter()
        logits = model.forward_streams(batch_inputs(batch, MODALITIES, "cpu"))
        loss = sum(torch.nn.functional.cross_entropy(v, labels) for v in logits.values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        timings.append(time.perf_counter() - started)
    return labels.shape[0] / statistics.median(timings[1:])


def recipe_videos(folder: Path, seconds: float) -> VideoList:
    """The reader benchmark's two kinds of footage (static camera, handheld), two clips each, written as `cvkd
    prepare` does (MPEG-4 Part 2, 340x256, GOP 12)."""
    from scenes import FPS, HEIGHT, SCENES, WIDTH

    from cvkd.codec.encode import EncodeSettings, encode_rgb_frames

    settings = EncodeSettings(gop=12, width=WIDTH, height=HEIGHT, q=1)
    items = []
    for label, (name, scene) in enumerate(SCENES.items()):
        for seed in (0, 1):
            relative = f"{name}/{name}{seed}.mp4"
            (folder / name).mkdir(parents=True, exist_ok=True)
            encode_rgb_frames(scene(int(seconds * FPS), seed), folder / relative, settings, fps=FPS)
            items.append((relative, label))
    return VideoList(folder, tuple(items), tuple(SCENES))


def recipe_dataset(recipe: str, videos: VideoList, render: str) -> CompressedVideoDataset:
    """A training dataset with the recipe's data settings (segments, crop size, parity switches, jitter)."""
    from cvkd.config import load_config
    from cvkd.recipes import recipe_path
    from cvkd.runs.schema import RunConfig

    config = load_config(RunConfig, recipe_path(recipe))
    data, modalities = config.data, list(config.model.streams)
    return CompressedVideoDataset(
        videos, modalities, data.segments, train=True, crop_size=data.crop_size, accumulate=data.accumulate,
        scales=crop_scales(modalities), rendering=data.rendering(train=True), render=render,
    )


def gpu_clips_per_second(recipe: str) -> float:
    """Training clips per second of one A100 for the recipe's streams (3 segments each), at the published rates."""
    from cvkd.config import load_config
    from cvkd.recipes import recipe_path
    from cvkd.runs.schema import RunConfig

    config = load_config(RunConfig, recipe_path(recipe))
    seconds = sum(config.data.segments / A100_IMAGES_PER_SECOND[net] for net in config.model.streams.values())
    return 1.0 / seconds


def bench_recipes(clips: int, seconds: float) -> None:
    """Worker CPU per clip of every paper recipe under both render settings, and the cores per GPU it means."""
    import platform

    load = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory(prefix="cvkd-bench-loader-") as tmp:
        os.environ["CVKD_CACHE_DIR"] = str(Path(tmp) / "cache")
        videos = recipe_videos(Path(tmp) / "videos", seconds)
        for label, recipe in RECIPES.items():
            for render in RENDERS:
                dataset = recipe_dataset(recipe, videos, render)
                epochs = max(1, -(-clips // len(dataset)))
                timings = []
                for epoch in range(epochs):  # other views every epoch
                    dataset.set_epoch(epoch)
                    timings.append(worker_cpu_ms_per_clip(dataset, len(dataset)))
                batch = next(iter(make_loader(dataset, BATCH, shuffle=True, workers=0))) if render == "device" else None
                rows.append((label, recipe, render, statistics.median(timings),
                             None if batch is None else render_ms_per_batch(batch, dataset.modalities)))
    print(f"\n{platform.machine()}, {os.cpu_count()} CPUs, load average {load:.1f} at the start, "
          f"{os.getloadavg()[0]:.1f} at the end; torch {torch.__version__}; 340x256 MPEG-4, 3 segments, 224 crops")
    print(f"{'recipe':<24} {'render':<7} {'worker CPU ms/clip':>18} {'CPU render ms/batch of 16':>26} "
          f"{'A100 clips/s':>12} {'cores per A100':>14} {'cores per H100':>14}")
    for label, recipe, render, worker_ms, render_ms in rows:
        rate = gpu_clips_per_second(recipe)
        cores = rate * worker_ms / 1000
        print(f"{label:<24} {render:<7} {worker_ms:18.1f} {'-' if render_ms is None else f'{render_ms:.1f}':>26} "
              f"{rate:12.0f} {cores:14.1f} {cores * H100_SPEED_UP:14.1f}")


def main() -> int:
    """Generate data, time the loader and the step, print clips per second and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=12, help="batches per loader pass")
    parser.add_argument("--repeats", type=int, default=3, help="passes per setting (median)")
    parser.add_argument("--render", choices=RENDERS, default="worker", help="data.render: where samples are rendered")
    parser.add_argument("--recipes", action="store_true", help="the paper recipes' worker CPU per clip and cores per GPU")
    parser.add_argument("--clips", type=int, default=48, help="training items timed per recipe with --recipes")
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length with --recipes (default 10 s)")
    args = parser.parse_args()
    if args.recipes:
        bench_recipes(args.clips, args.seconds)
        return 0
    with tempfile.TemporaryDirectory(prefix="cvkd-bench-loader-") as tmp:
        os.environ["CVKD_CACHE_DIR"] = str(Path(tmp) / "cache")
        generate_synthetic(Path(tmp) / "data", workers=1, progress=False)
        videos = VideoList.cvkd_dataset(Path(tmp) / "data", "train")
        dataset = CompressedVideoDataset(videos, MODALITIES, num_segments=3, train=True, crop_size=96,
                                         render=args.render)
        worker_ms = worker_cpu_ms_per_clip(dataset, args.batches * BATCH)
        rates = {}
        for workers in (0, 1, 2):
            rates[f"loader, {workers} worker(s)"] = statistics.median(
                loader_clips_per_second(dataset, workers, args.batches, epoch) for epoch in range(args.repeats)
            )
        batch = next(iter(make_loader(dataset, BATCH, shuffle=True, workers=0)))
        rates["training step (teachers' model)"] = step_clips_per_second(batch, steps=5)
        render_ms = render_ms_per_batch(batch) if args.render == "device" else None
    print(f"\n{os.cpu_count()} CPUs, torch {torch.__version__} with {torch.get_num_threads()} threads; batch {BATCH}, "
          f"3 segments, {', '.join(MODALITIES)}, 96x96 crops from 112x112 videos, data.render={args.render}")
    print(f"loader CPU per clip, one thread: {worker_ms:.2f} ms"
          + ("" if render_ms is None else f"; rendering a batch of {BATCH} on the CPU: {render_ms:.1f} ms"))
    step = rates["training step (teachers' model)"]
    print(f"{'what':<34} {'clips/s':>8} {'ratio to step':>14}")
    for label, rate in rates.items():
        print(f"{label:<34} {rate:8.1f} {rate / step:13.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

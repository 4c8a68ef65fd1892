"""Does data loading keep a small model fed on the CPU? Clips/s of the training loader vs of a training step.

Generates the synthetic benchmark (default size) in a temporary folder, then measures side by side: the training
loader (3 TSN segments, I-frame + MV + residual, 96x96 crops) with 0, 1 and 2 worker processes, and the training step of
the synthetic teachers' model (cnn_medium / cnn_small / cnn_small) on tensors already in memory. Medians of repeated
passes; run: `.venv/bin/python benchmarks/bench_loader.py [--batches 12] [--repeats 3] [--render worker|device]`.
It also prints the loader's CPU per clip in one thread (what a worker spends; process time, so other processes count
less than in wall time) and, with `--render device`, the main process's rendering of a batch on the CPU.
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
from cvkd.data.synthetic import generate_synthetic
from cvkd.models import build_coviar

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


def render_ms_per_batch(batch: dict, repeats: int = 5) -> float:
    """Median milliseconds of rendering one raw batch on the CPU (the main process's share with --render device)."""
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        batch_inputs(batch, MODALITIES, "cpu")
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


def main() -> int:
    """Generate data, time the loader and the step, print clips per second and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=12, help="batches per loader pass")
    parser.add_argument("--repeats", type=int, default=3, help="passes per setting (median)")
    parser.add_argument("--render", choices=RENDERS, default="worker", help="data.render: where samples are rendered")
    args = parser.parse_args()
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

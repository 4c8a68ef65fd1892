"""`cvkd reencode`: turn any videos into CoViAR's MPEG-4 Part 2 representation (GOP, no B-frames, fixed quantiser)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from cvkd.codec.encode import EncodeSettings
from cvkd.codec.index import index_video
from cvkd.codec.timeline import timeline
from cvkd.data.lists import find_videos
from cvkd.data.prepare import encode_settings, reencode_into
from cvkd.data.shards import parse_shard
from cvkd.errors import ConfigError
from cvkd.parallel import run_jobs


@dataclass(frozen=True)
class ReencodeJob:
    """One source video, its path relative to the source given (what its share is drawn from), its output."""

    source: Path
    relative: str
    target: Path
    settings: EncodeSettings


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register `cvkd reencode`."""
    parser = subparsers.add_parser("reencode", help="re-encode videos to MPEG-4 Part 2 with a strict GOP (CoViAR's input)")
    parser.add_argument("sources", nargs="+", metavar="SRC", help="video files or folders (searched recursively)")
    parser.add_argument("--out", required=True, type=Path, help="output folder (folder structure is kept)")
    parser.add_argument("--gop", type=int, default=12, help="frames per GOP (default 12)")
    parser.add_argument("--size", default="340x256", help="output WIDTHxHEIGHT (default 340x256)")
    parser.add_argument("--q", type=int, default=1, help="fixed quantiser 1..31 (default 1)")
    parser.add_argument("--workers", type=int, default=None, help="parallel processes (default: all CPUs)")
    parser.add_argument("--force", action="store_true", help="re-encode even if the output exists")
    parser.add_argument(
        "--shard", default=None, metavar="K/N",
        help="re-encode only the K-th of N shares (by a hash of each video's path below its SRC folder)",
    )
    return parser


def collect_jobs(sources: list[Path], out: Path, settings: EncodeSettings) -> list[ReencodeJob]:
    """Map every source video to `out/<relative path>.mp4` (folders are searched recursively)."""
    jobs = []
    for source in sources:
        if source.is_dir():
            for path in find_videos(source):
                relative = path.relative_to(source)
                jobs.append(ReencodeJob(path, relative.as_posix(), out / relative.with_suffix(".mp4"), settings))
        else:
            jobs.append(ReencodeJob(source, source.name, out / source.with_suffix(".mp4").name, settings))
    targets = [job.target for job in jobs]
    if len(set(targets)) != len(targets):
        clash = next(t for t in targets if targets.count(t) > 1)
        raise ConfigError(f"{clash}: two sources would be written to the same output; pass their common folder instead")
    return jobs


def _run_job(job: ReencodeJob) -> tuple[int, str | None]:
    """Re-encode one source; its frame count, and the output's time line when its pictures do not come one per
    declared frame period (the statement `cvkd info` prints of the source and of the output alike)."""
    frames = reencode_into(job.source, job.target, job.settings)
    line = timeline(index_video(job.target))
    return frames, None if line.kind in ("constant", "untimed") else f"{job.source}: {line.headline()} (timestamps kept)"


def run(args: argparse.Namespace) -> int:
    """Re-encode every source (of the share); print a summary and one line per failure; exit 1 if any failed."""
    settings = encode_settings(args.size, args.gop, args.q)
    shard = parse_shard(args.shard)
    jobs = collect_jobs([Path(s) for s in args.sources], args.out, settings)
    share = ""
    if shard is not None:
        every = len(jobs)
        jobs = shard.select(jobs, lambda job: job.relative)
        share = f"share {shard}: {len(jobs)} of {every} video(s); "
    todo = [job for job in jobs if args.force or not job.target.exists()]
    outcomes = run_jobs(_run_job, todo, args.workers, description="reencode")
    failures = [o for o in outcomes if not o.ok]
    frames = sum(o.value[0] for o in outcomes if o.ok)
    print(
        f"{share}re-encoded {len(todo) - len(failures)} video(s) ({frames} frames), skipped {len(jobs) - len(todo)} existing, "
        f"{len(failures)} failed -> {args.out}"
    )
    for outcome in outcomes:
        if outcome.ok and outcome.value[1]:
            print(outcome.value[1])
    for outcome in failures:
        print(f"failed: {outcome.error}", file=sys.stderr)
    return 1 if failures else 0

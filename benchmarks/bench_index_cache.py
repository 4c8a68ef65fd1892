"""Memory of the in-process video-index cache on a 10,000-video list, bounded (default) and as if unbounded.

Run: .venv/bin/python benchmarks/bench_index_cache.py [--videos 10000] [--frames 250]

Each entry is a VideoIndex of a `--frames`-frame video (GOP 12, one timestamp per frame), the shape a Kinetics clip
has; tracemalloc measures what the cache holds after every video of the list was indexed once.
"""

from __future__ import annotations

import argparse
import tracemalloc

from cvkd.codec.index import BoundedCache, VideoIndex, _cache_capacity


def entry(number: int, frames: int) -> VideoIndex:
    """A plausible index of video `number`."""
    types = "".join("I" if i % 12 == 0 else "P" for i in range(frames))
    return VideoIndex(path=f"/data/kinetics/train/class_{number % 400}/video_{number:06d}.mp4", codec="h264",
                      container_format="mov", width=340, height=256, fps=30.0, pict_types=types,
                      frame_pts=tuple(512 * i for i in range(frames)), gop_starts=tuple(range(0, frames, 12)))


def held(capacity: int, videos: int, frames: int) -> int:
    """Bytes the cache holds after indexing `videos` videos once."""
    tracemalloc.start()
    cache = BoundedCache(capacity)
    for number in range(videos):
        cache[(f"video_{number}", number, number)] = entry(number, frames)
    size = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return size


def main() -> None:
    """Print both figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=10_000)
    parser.add_argument("--frames", type=int, default=250)
    args = parser.parse_args()
    bounded, unbounded = held(_cache_capacity(), args.videos, args.frames), held(args.videos, args.videos, args.frames)
    print(f"{args.videos:,} videos of {args.frames} frames: bounded cache ({_cache_capacity():,} entries) "
          f"{bounded / 2**20:.1f} MiB; unbounded {unbounded / 2**20:.1f} MiB ({unbounded / args.videos / 1024:.1f} kB a "
          "video)")


if __name__ == "__main__":
    main()

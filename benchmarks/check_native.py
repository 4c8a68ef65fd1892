"""Check the native reader on any H.264 (or MPEG-4 Part 2) files: vectors, reconstruction, motion compensation.

Run: .venv/bin/python benchmarks/check_native.py VIDEO [VIDEO ...] [--max-frames N (default 300)]

For each file (the first N frames):
  frames          every frame the reader returns ("rgb", read GOP by GOP after seeking) equals the same frame of one
                  independent decode from the start;
  vectors         every P-frame's non-accumulated motion (`accumulate=False`) is the motion field of an independent
                  rasterisation of FFmpeg's exported past vectors (each block painted with dst - src, a source
                  outside the frame clamped to its border), pixel for pixel;
  reconstruction  iframe(p - mv_t(p)) + residual_t(p) == frame_t(p) exactly, for every frame (accumulated);
  compensation    mean |accumulated residual| over the non-I frames against the mean |frame - I-frame|: the ratio must
                  be below 0.9 (motion compensation helps; MPEG-4 Part 2 gives 0.77-0.80 on real clips); also with the
                  nearest reference assumed (`match_references=False`), per picture type, and over the first 12
                  frames of each GOP (CoViAR's GOP: accumulation over long GOPs drifts);
  block sizes     the block sizes the exported vectors use.
Exit status 1 when any check fails.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

import av
import numpy as np

from cvkd.codec.h264 import max_reference_frames
from cvkd.codec.reader import CompressedVideo
from cvkd.errors import VideoError

RATIO_BOUND = 0.9
SHORT_GOP = 12  # CoViAR's GOP: the ratio over the first 12 frames of each GOP is also printed
SHORT = f"first {SHORT_GOP} of a GOP"


def exported_vectors(path: str, frames: int) -> tuple[list[np.ndarray | None], list[str], list[bytes]]:
    """FFmpeg's exported vectors, picture type and an RGB digest of the first `frames` frames, display order (one
    independent decode from the first frame)."""
    vectors, types, digests = [], [], []
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.codec_context.options = {"flags2": "+export_mvs"}
        for frame in container.decode(stream):
            side = frame.side_data.get("MOTION_VECTORS")
            vectors.append(side.to_ndarray() if side is not None else None)
            types.append("?IPBS??B"[int(frame.pict_type)])  # AVPictureType: NONE I P B S SI SP BI
            digests.append(hashlib.sha1(frame.to_ndarray(format="rgb24").tobytes()).digest())
            if len(vectors) == frames:
                break
    return vectors, types, digests


def rasterise(rows: np.ndarray | None, height: int, width: int) -> np.ndarray:
    """The motion field of a picture's past vectors: each block painted with (dst - src), then the border clamp."""
    field = np.zeros((height, width, 2), np.int64)
    for row in rows if rows is not None else ():
        if row["source"] >= 0:
            continue
        w, h = int(row["w"]), int(row["h"])
        left, top = int(row["dst_x"]) - w // 2, int(row["dst_y"]) - h // 2
        field[max(top, 0) : max(top + h, 0), max(left, 0) : max(left + w, 0)] = (
            int(row["dst_x"]) - int(row["src_x"]), int(row["dst_y"]) - int(row["src_y"]))
    y, x = np.mgrid[0:height, 0:width]
    field[..., 0] = x - np.clip(x - field[..., 0], 0, width - 1)
    field[..., 1] = y - np.clip(y - field[..., 1], 0, height - 1)
    return field


def check_vectors(video: CompressedVideo, vectors: list, frames: int) -> tuple[int, int]:
    """(P-frames checked, P-frames whose non-accumulated reader motion differs from the rasterisation)."""
    chosen = [t for t in range(frames) if video.index.pict_types[t] == "P"]
    wrong = 0
    for start in range(0, len(chosen), 24):  # in chunks, to bound memory on long high-resolution clips
        part = chosen[start : start + 24]
        fields = video.load_many(part, ["mv"], accumulate=False)["mv"]
        wrong += sum(not np.array_equal(field, rasterise(vectors[t], video.height, video.width))
                     for t, field in zip(part, fields))
    return len(chosen), wrong


def check_reconstruction(video: CompressedVideo, frames: int, digests: list[bytes]
                         ) -> tuple[int, int, dict[str, list[float]]]:
    """(frames not equal to the independent decode, frames not reconstructed exactly, {picture type: [(|residual|,
    |frame - I|) per frame]})."""
    misplaced, wrong, energy = 0, 0, {}
    y, x = np.mgrid[0 : video.height, 0 : video.width]
    for start in range(0, frames, 24):  # in chunks: a 1080p clip's arrays do not all fit in memory at once
        chunk = list(range(start, min(start + 24, frames)))
        got = video.load_many(chunk, ["iframe", "rgb", "mv", "residual"])
        for t, iframe, rgb, mv, res in zip(chunk, got["iframe"], got["rgb"], got["mv"], got["residual"]):
            misplaced += hashlib.sha1(rgb.tobytes()).digest() != digests[t]
            prediction = iframe[y - mv[..., 1], x - mv[..., 0]].astype(np.int16)
            wrong += not np.array_equal(prediction + res, rgb)
            kind = video.index.pict_types[t]
            if kind != "I":
                pair = (float(np.abs(res).mean()), float(np.abs(rgb.astype(np.int16) - iframe).mean()))
                energy.setdefault(kind, []).append(pair)
                if video.gop_of(t)[1] < SHORT_GOP:
                    energy.setdefault(SHORT, []).append(pair)
    return misplaced, wrong, energy


def nearest_ratio(path: str, frames: int) -> float:
    """The accumulated residual ratio with the nearest reference assumed."""
    video = CompressedVideo(path, match_references=False)
    chosen = [t for t in range(frames) if video.index.pict_types[t] != "I"]
    residual, plain = [], []
    for start in range(0, len(chosen), 24):
        got = video.load_many(chosen[start : start + 24], ["iframe", "rgb", "residual"])
        residual += [np.abs(r).mean() for r in got["residual"]]
        plain += [np.abs(f.astype(np.int16) - i).mean() for f, i in zip(got["rgb"], got["iframe"])]
    return float(np.sum(residual) / np.sum(plain))


def check_file(path: str, max_frames: int) -> bool:
    """Print one block of results for `path`; whether every check passed."""
    try:
        video = CompressedVideo(path)
    except VideoError as error:
        print(error)  # names the file
        return False
    frames = min(video.num_frames, max_frames)
    vectors, types, digests = exported_vectors(path, frames)
    sizes = Counter((int(r["w"]), int(r["h"])) for rows in vectors if rows is not None for r in rows)
    p_checked, p_wrong = check_vectors(video, vectors, frames)
    misplaced, wrong, energy = check_reconstruction(video, frames, digests)
    pairs = [pair for kind, values in energy.items() if kind != SHORT for pair in values]
    ratio = sum(r for r, _ in pairs) / sum(p for _, p in pairs) if pairs else float("nan")
    by_type = ", ".join(f"{kind} {sum(r for r, _ in v) / sum(p for _, p in v):.3f} ({len(v)})" for kind, v in sorted(energy.items()))
    nearest = nearest_ratio(path, frames) if video.index.codec == "h264" else ratio
    ok = p_wrong == 0 and wrong == 0 and misplaced == 0 and ratio < RATIO_BOUND and p_checked > 0
    kinds = Counter(video.index.pict_types[:frames])
    with av.open(path) as container:
        references = max_reference_frames(container.streams.video[0].codec_context.extradata)
    print(f"{Path(path).name}: {video.index.codec} {video.width}x{video.height}, {references or 1} reference(s), {frames} frames "
          f"({kinds['I']} I / {kinds['P']} P / {kinds['B']} B), display-order types match an independent decode: "
          f"{''.join(types) == video.index.pict_types[:frames]}")
    print(f"  block sizes      {', '.join(f'{w}x{h} {n}' for (w, h), n in sorted(sizes.items()))}")
    print(f"  vectors          {p_checked - p_wrong}/{p_checked} P-frames equal the rasterised exported vectors")
    print(f"  frames           {frames - misplaced}/{frames} equal the same frame of the independent decode")
    print(f"  reconstruction   {frames - wrong}/{frames} frames exact")
    print(f"  compensation     |residual| / |frame - I| = {ratio:.3f} (bound {RATIO_BOUND}; by type: {by_type}); "
          f"nearest reference assumed: {nearest:.3f}")
    print(f"  verdict          {'pass' if ok else 'FAIL'}")
    return ok


def main() -> int:
    """Check every file given."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("videos", nargs="+")
    parser.add_argument("--max-frames", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cvkd-check-") as tmp:
        os.environ["CVKD_CACHE_DIR"] = tmp  # the index is built fresh, not read from an earlier cache
        results = [check_file(path, args.max_frames) for path in args.videos]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())

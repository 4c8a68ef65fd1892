"""The compiled trace kernels (cvkd.codec.kernels, through MotionTrace and block_motion) against numpy written from the
definitions, on random codec-like block layouts: frames not a multiple of 16, 16x16 / 8x8 (4MV) / 16x8 / 4x4 blocks,
intra (uncovered) and static blocks, blocks past the border and wholly outside, sources clamped or kept."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from cvkd.codec.motion import BlockMotion, MotionTrace, block_motion

PARTITIONS = {  # a 16x16 macroblock's blocks as (left, top, width, height) inside it
    "16x16": [(0, 0, 16, 16)],
    "4mv": [(x, y, 8, 8) for y in (0, 8) for x in (0, 8)],
    "16x8": [(0, 0, 16, 8), (0, 8, 16, 8)],
    "8x16": [(0, 0, 8, 16), (8, 0, 8, 16)],
    "4x4": [(x, y, 4, 4) for y in range(0, 16, 4) for x in range(0, 16, 4)],
}


def random_blocks(rng: np.random.Generator, height: int, width: int, moving: float, reach: int) -> BlockMotion:
    """One frame's blocks: every macroblock intra (no block), or partitioned, each block still, moving with the
    frame's pan or moving its own way (up to `reach` pixels); a few blocks wholly outside the frame."""
    pan = rng.integers(-reach, reach + 1, 2)
    rows = []
    for top in range(0, height, 16):
        for left in range(0, width, 16):
            if rng.random() < 0.1:
                continue  # intra-coded: no vector
            for x, y, w, h in PARTITIONS[rng.choice(list(PARTITIONS))]:
                draw = rng.random()
                motion = (0, 0) if draw > moving else pan if draw < moving / 2 else rng.integers(-reach, reach + 1, 2)
                rows.append((left + x, top + y, w, h, *motion))
    for _ in range(rng.integers(0, 3)):  # wholly outside: left of, above, right of or below the frame
        left, top = [(-16, 0), (0, -16), (width + 16 - width % 16, 0), (0, height + 16 - height % 16)][rng.integers(4)]
        rows.append((left, top, 16, 16, *rng.integers(-reach, reach + 1, 2)))
    order = rng.permutation(len(rows))  # the kernels may not depend on the order of non-overlapping blocks
    columns = np.array(rows, dtype=np.int32).reshape(-1, 6)[order].T
    return BlockMotion(*(np.ascontiguousarray(column) for column in columns))


def painted(blocks: BlockMotion, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 2) displacement of every pixel and (H, W) mask of the pixels a block covers."""
    displacement = np.zeros((height, width, 2), np.int64)
    covered = np.zeros((height, width), bool)
    for left, top, w, h, dx, dy in zip(*blocks.parts()):
        rows = slice(max(top, 0), max(min(top + h, height), 0))
        cols = slice(max(left, 0), max(min(left + w, width), 0))
        displacement[rows, cols] = dx, dy
        covered[rows, cols] = True
    return displacement, covered


def sources(displacement: np.ndarray, outside: str) -> tuple[np.ndarray, np.ndarray]:
    """Every pixel's source (y, x) for a displacement field, clamped; and the mask of those that left the frame."""
    height, width = displacement.shape[:2]
    y, x = np.mgrid[:height, :width]
    from_x, from_y = x - displacement[..., 0], y - displacement[..., 1]
    leaves = (from_x < 0) | (from_x >= width) | (from_y < 0) | (from_y >= height)
    if outside == "keep":
        from_x, from_y = np.where(leaves, x, from_x), np.where(leaves, y, from_y)
    return np.clip(from_y, 0, height - 1), np.clip(from_x, 0, width - 1), leaves


def reference_follow(source: np.ndarray, blocks: BlockMotion, outside: str) -> np.ndarray:
    """map_t(p) = map_{t-1}(p - d(p)) on a (H, W) map, from the definition."""
    displacement, _ = painted(blocks, *source.shape)
    from_y, from_x, _ = sources(displacement, outside)
    return source[from_y, from_x]


def reference_overwrite(source: np.ndarray, blocks: BlockMotion, other: np.ndarray, outside: str) -> np.ndarray:
    """Covered pixels take `other` at their source; with "keep" those whose source leaves the frame stay."""
    displacement, covered = painted(blocks, *source.shape)
    from_y, from_x, leaves = sources(displacement, outside)
    take = covered & ~leaves if outside == "keep" else covered
    return np.where(take, other[from_y, from_x], source)


def frame_sizes() -> list[tuple[int, int]]:
    return [(16, 16), (40, 56), (37, 61), (48, 80), (23, 9)]


@pytest.mark.parametrize("outside", ["clamp", "keep"])
@pytest.mark.parametrize("seed", range(8))
def test_follow_equals_the_definition_on_random_block_layouts(seed, outside):
    rng = np.random.default_rng(seed)
    for height, width in frame_sizes():
        trace = MotionTrace(height, width, outside)
        expected = np.arange(height * width).reshape(height, width)
        for moving in (0.05, 0.3, 0.7, 1.0, 0.0, 0.95):  # both the in-place and the whole-map kernel
            blocks = random_blocks(rng, height, width, moving, reach=int(rng.choice([2, 12, 40])))
            trace.follow(blocks)
            expected = reference_follow(expected, blocks, outside)
            assert np.array_equal(trace.source.reshape(height, width), expected), (height, width, moving)
        y, x = np.divmod(expected, width)
        pixel_y, pixel_x = np.mgrid[:height, :width]
        assert np.array_equal(trace.motion(), np.stack([pixel_x - x, pixel_y - y], axis=-1).astype(np.int16))


@pytest.mark.parametrize("outside", ["clamp", "keep"])
def test_overwrite_equals_the_definition(outside):
    rng = np.random.default_rng(5)
    for height, width in frame_sizes():
        trace = MotionTrace(height, width, outside)
        trace.source[:] = rng.permutation(height * width)
        other = rng.integers(0, height * width, height * width).astype(np.int32)
        blocks = random_blocks(rng, height, width, moving=0.6, reach=20)  # static blocks included
        expected = reference_overwrite(trace.source.reshape(height, width), blocks, other.reshape(height, width), outside)
        trace.overwrite(blocks, other)
        assert np.array_equal(trace.source.reshape(height, width), expected)


@pytest.mark.parametrize("channels", [3, 1, 2])
def test_warp_and_residual_sample_the_reference_at_any_map(channels):
    rng = np.random.default_rng(channels)
    height, width = 37, 61
    trace = MotionTrace(height, width)
    trace.source[:] = rng.integers(0, height * width, height * width)
    trace.source[:5] = [0, height * width - 1, width - 1, (height - 1) * width, 0]  # the corners
    padded = rng.integers(0, 256, (2, height, width + 7, channels), dtype=np.uint8)
    frame, reference = padded[0, :, :width], padded[1, :, :width]  # rows padded, as PyAV's RGB frames
    y, x = np.divmod(trace.source.reshape(height, width), width)
    sampled = reference[y, x]
    assert np.array_equal(trace.warp(reference), sampled)
    residual = trace.residual(frame, reference)
    assert residual.dtype == np.int16
    assert np.array_equal(residual, frame.astype(np.int16) - sampled)


def test_block_motion_equals_the_exported_vectors_read_by_numpy():
    fields = ["source", "w", "h", "src_x", "src_y", "dst_x", "dst_y", "flags", "motion_x", "motion_y", "motion_scale"]
    formats = ["<i4", "u1", "u1", "<i2", "<i2", "<i2", "<i2", "<u8", "<i4", "<i4", "<u2"]
    rng = np.random.default_rng(0)
    vectors = np.zeros(500, np.dtype({"names": fields, "formats": formats}))
    vectors["source"] = rng.choice([-1, 1, -2, 2], 500)
    vectors["w"], vectors["h"] = rng.choice([4, 8, 16], (2, 500))
    vectors["dst_x"], vectors["dst_y"] = rng.integers(-20, 400, (2, 500))
    moves = rng.random(500) < 0.7
    vectors["src_x"] = vectors["dst_x"] - moves * rng.integers(-64, 65, 500)
    vectors["src_y"] = vectors["dst_y"] - moves * rng.integers(-64, 65, 500)
    for direction in (-1, 1):
        for keep_static in (False, True):
            blocks = block_motion(vectors, direction, keep_static)
            dx = vectors["dst_x"].astype(int) - vectors["src_x"]
            dy = vectors["dst_y"].astype(int) - vectors["src_y"]
            chosen = (np.sign(vectors["source"]) == direction) & (keep_static | (dx != 0) | (dy != 0))
            expected = [
                vectors["dst_x"][chosen] - vectors["w"][chosen] // 2, vectors["dst_y"][chosen] - vectors["h"][chosen] // 2,
                vectors["w"][chosen], vectors["h"][chosen], dx[chosen], dy[chosen],
            ]
            assert all(part.dtype == np.int32 for part in blocks.parts())
            assert [part.tolist() for part in blocks.parts()] == [list(map(int, column)) for column in expected]


NO_LOCATOR = """
from numba.core import caching
(getattr(caching, "CacheImpl", None) or caching._CacheImpl)._locator_classes = []  # no cache location usable
"""
PROBE = """
import numpy as np
from cvkd.codec import kernels
from cvkd.codec.motion import block_motion
vectors = np.zeros(1, [("source", "<i4"), ("w", "u1"), ("h", "u1"), ("src_x", "<i2"), ("src_y", "<i2"),
                       ("dst_x", "<i2"), ("dst_y", "<i2")])
vectors[0] = (-1, 16, 16, 5, 8, 8, 8)
print(type(kernels.vector_blocks._cache).__name__, *block_motion(vectors).dx)
"""


def run_probe(code: str, **environment: str) -> list[str]:
    """Run `code` in a fresh interpreter; its printed words."""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=dict(os.environ, **environment)
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_kernels_work_where_numba_finds_no_cache_location():
    """No writable cache location (a read-only package and no writable cache folder): numba refuses caching when the
    kernels are defined, and they compile in memory instead."""
    assert run_probe(NO_LOCATOR + PROBE) == ["NullCache", "3"]


def test_kernels_cache_where_numba_cache_dir_points(tmp_path):
    """`NUMBA_CACHE_DIR` naming a folder that does not exist yet: it is created and the kernels are cached there."""
    cache = tmp_path / "not" / "yet"
    assert run_probe(PROBE, NUMBA_CACHE_DIR=str(cache)) == ["FunctionCache", "3"]
    assert any(path.suffix == ".nbc" for path in cache.rglob("*"))


class _Reads:
    """A dataset of one video's accumulated MV and residual at given frames, each process with its own reader (a
    forked worker must not touch the decoder its parent opened: that can deadlock inside FFmpeg)."""

    def __init__(self, path, frames):
        self.path, self.frames, self.readers = path, frames, {}

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, item: int) -> dict:
        from cvkd.codec.reader import CompressedVideo

        if os.getpid() not in self.readers:
            self.readers[os.getpid()] = CompressedVideo(self.path)
        video = self.readers[os.getpid()]
        arrays = video.load_many([self.frames[item]], ["mv", "residual"])
        return {name: values[0] for name, values in arrays.items()}


def test_forked_loader_workers_read_what_the_parent_reads(tmp_path):
    """Two forked DataLoader workers (kernels compiled in the parent before the fork) give the parent's arrays."""
    from torch.utils.data import DataLoader

    from clips import encode, pan

    path = encode(pan((64, 48), 26, (2, 1)), tmp_path / "pan.mp4", gop=12)
    dataset = _Reads(path, [3, 7, 11, 15, 20, 25])
    expected = [dataset[item] for item in range(len(dataset))]
    assert any(item["mv"].any() for item in expected)
    loader = DataLoader(dataset, batch_size=None, num_workers=2, timeout=120, multiprocessing_context="fork")
    got = list(loader)
    assert len(got) == len(expected)
    for item, reference in zip(got, expected):
        for name in ("mv", "residual"):
            assert np.array_equal(np.asarray(item[name]), reference[name])

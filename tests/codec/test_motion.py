"""MotionTrace against a per-pixel reference written straight from the definition (docs/method.md, "Accumulation")."""

from __future__ import annotations

import numpy as np
import pytest

from cvkd.codec.motion import BlockMotion, MotionTrace, block_motion

HEIGHT, WIDTH = 40, 56  # not multiples of 16: blocks at the right and bottom edges are cut


def blocks_from(rows: list[tuple[int, int, int, int, int, int]]) -> BlockMotion:
    """(left, top, width, height, dx, dy) rows."""
    columns = np.array(rows, dtype=np.int32).reshape(-1, 6).T
    return BlockMotion(*columns)


def reference_trace(frames: list[list[tuple[int, int, int, int, int, int]]], outside: str = "clamp") -> np.ndarray:
    """map_t(p) = map_{t-1}(clamp(p - d_t(p))), pixel by pixel; returns (H, W, 2) source (x, y).

    With `outside="keep"` (CoViAR's loader) a pixel whose source p - d_t(p) leaves the frame keeps map_{t-1}(p).
    """
    source = np.stack(np.meshgrid(np.arange(WIDTH), np.arange(HEIGHT)), axis=-1)  # (H, W, 2) x, y
    for rows in frames:
        displacement = np.zeros((HEIGHT, WIDTH, 2), dtype=int)
        for left, top, width, height, dx, dy in rows:
            for y in range(max(top, 0), min(top + height, HEIGHT)):
                for x in range(max(left, 0), min(left + width, WIDTH)):
                    displacement[y, x] = (dx, dy)
        new = np.empty_like(source)
        for y in range(HEIGHT):
            for x in range(WIDTH):
                from_x, from_y = x - displacement[y, x, 0], y - displacement[y, x, 1]
                if outside == "keep" and not (0 <= from_x < WIDTH and 0 <= from_y < HEIGHT):
                    from_x, from_y = x, y
                from_x, from_y = min(max(from_x, 0), WIDTH - 1), min(max(from_y, 0), HEIGHT - 1)
                new[y, x] = source[from_y, from_x]
        source = new
    return source


def traced_sources(trace: MotionTrace) -> np.ndarray:
    ys, xs = np.divmod(trace.source.reshape(HEIGHT, WIDTH), WIDTH)
    return np.stack([xs, ys], axis=-1)


FEW = [(16, 16, 16, 16, 3, -2)]  # one block moves: the sparse path
# Every macroblock moves (the dense path), some from past the border; the bottom-right one is split into four 8x8
# blocks (MPEG-4's 4MV mode), two of them outside the 56x40 frame.
MANY = [
    (left, top, 16, 16, (left // 16) - 1, 2 - (top // 16))
    for top in range(0, HEIGHT, 16)
    for left in range(0, WIDTH, 16)
    if (left, top) != (48, 32)
] + [(48, 32, 8, 8, -5, 4), (56, 32, 8, 8, 1, 1), (48, 40, 8, 8, 2, 2), (56, 40, 8, 8, 3, 3)]

# A camera pan: most macroblocks move by (2, -1); one block stays still (not listed, as FFmpeg exports it), one moves
# its own way from past the left border, and the bottom-right one is split into 8x8 blocks, one of them with the pan.
PAN = [
    (left, top, 16, 16, 2, -1)
    for top in range(0, HEIGHT, 16)
    for left in range(0, WIDTH, 16)
    if (left, top) not in {(16, 0), (0, 16), (48, 32)}
] + [(0, 16, 16, 16, 5, 3), (48, 32, 8, 8, 2, -1), (56, 32, 8, 8, -3, 0), (48, 40, 8, 8, 0, 7)]
# Blocks sticking out past the left and top borders (not produced by MPEG-4, but nothing may wrap around).
OUTSIDE = [(-8, 8, 16, 8, 3, 1), (24, -8, 8, 16, -2, -1), (8, 24, 8, 8, 1, 2)]
# Every block's source lies beyond the frame: the whole trace collapses onto the clamped border.
FAR_PAN = [(left, top, 16, 16, -70, 50) for top in range(0, HEIGHT, 16) for left in range(0, WIDTH, 16)]


@pytest.mark.parametrize(
    "frames",
    [[FEW], [MANY], [FEW, MANY, FEW], [MANY, MANY, MANY], [PAN], [PAN, FEW, PAN, PAN], [FAR_PAN, PAN], [OUTSIDE]],
    ids=["sparse", "dense", "mixed", "dense3", "pan", "pan-mixed", "far-pan", "outside"],
)
@pytest.mark.parametrize("outside", ["clamp", "keep"])
def test_trace_matches_the_per_pixel_definition(frames, outside):
    trace = MotionTrace(HEIGHT, WIDTH, outside)
    for rows in frames:
        trace.follow(blocks_from(rows))
    expected = reference_trace(frames, outside)
    assert np.array_equal(traced_sources(trace), expected)
    pixels = np.stack(np.meshgrid(np.arange(WIDTH), np.arange(HEIGHT)), axis=-1)
    assert np.array_equal(trace.motion(), (pixels - expected).astype(np.int16))


def random_pan_frame(rng: np.random.Generator) -> list[tuple[int, int, int, int, int, int]]:
    """A camera pan with a random vector; some macroblocks still, some moving their own way, some split to 8x8."""
    pan = tuple(int(v) for v in rng.integers(-20, 21, 2))
    rows = []
    for top in range(0, HEIGHT, 16):
        for left in range(0, WIDTH, 16):
            kind = rng.choice(["pan", "pan", "pan", "still", "own", "split"])
            if kind == "pan":
                rows.append((left, top, 16, 16, *pan))
            elif kind == "own":
                rows.append((left, top, 16, 16, *(int(v) for v in rng.integers(-6, 7, 2))))
            elif kind == "split":
                rows += [(left + x, top + y, 8, 8, *pan) if rng.random() < 0.5 else (left + x, top + y, 8, 8, 1, -3)
                         for y in (0, 8) for x in (0, 8)]
    return rows


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("outside", ["clamp", "keep"])
def test_random_pans_match_the_per_pixel_definition(seed, outside):
    frames = [random_pan_frame(np.random.default_rng([seed, t])) for t in range(4)]
    trace = MotionTrace(HEIGHT, WIDTH, outside)
    for rows in frames:
        trace.follow(blocks_from(rows))
    assert np.array_equal(traced_sources(trace), reference_trace(frames, outside))


def test_b_picture_traces_past_vectors_into_the_previous_map_and_future_only_ones_into_the_next():
    previous, following = MotionTrace(HEIGHT, WIDTH), MotionTrace(HEIGHT, WIDTH)
    previous.follow(blocks_from([(0, 0, 16, 16, 1, 0)]))  # references: the I-frame moved by (1, 0) in one block ...
    following.follow(blocks_from([(16, 0, 16, 16, 0, 2)]))  # ... and by (0, 2) in the next block
    trace = MotionTrace(HEIGHT, WIDTH)
    past = blocks_from([(0, 0, 16, 16, 2, 0), (16, 16, 8, 8, 0, 0), (16, 0, 16, 16, 1, 1)])  # last one bi-predicted
    future = blocks_from([(16, 16, 8, 8, 3, 3), (16, 0, 16, 16, -4, -4), (32, 16, 8, 8, -1, 0), (0, 32, 4, 4, 1, 1)])
    trace.follow_both_ways([(past, previous.source.copy())], [(future, following.source.copy())])
    got = traced_sources(trace)
    # Past vector (2, 0) at (5, 5) -> (3, 5) in the previous picture, whose map moved that block by (1, 0): (2, 5).
    assert tuple(got[5, 5]) == (2, 5)
    # Bi-predicted (past (1, 1), future (-4, -4)): the past wins; (20, 5) -> (19, 4), unmoved there: (19, 4).
    assert tuple(got[5, 20]) == (19, 4)
    # A static past vector beats a moving future one: (18, 18) keeps the previous map, which is the identity there.
    assert tuple(got[18, 18]) == (18, 18)
    # Future only: (34, 18) - (-1, 0) = (35, 18) in the next picture, unmoved there: (35, 18).
    assert tuple(got[18, 34]) == (35, 18)
    # Future only, 4x4 block: (1, 33) -> (0, 32) in the next picture.
    assert tuple(got[33, 1]) == (0, 32)
    # No vector at all: the previous map (identity here).
    assert tuple(got[38, 50]) == (50, 38)
    # A future-only pixel lands in the next picture's moved block and follows that picture's map back.
    only_future = blocks_from([(16, 0, 16, 16, -2, 0)])
    trace.follow_both_ways([(blocks_from([]), previous.source.copy())], [(only_future, following.source.copy())])
    # (20, 5) - (-2, 0) = (22, 5) in the next picture, whose map moved it by (0, 2): source (22, 3).
    assert tuple(traced_sources(trace)[5, 20]) == (22, 3)


def test_warp_samples_the_reference_at_the_traced_source():
    trace = MotionTrace(HEIGHT, WIDTH)
    trace.follow(blocks_from(MANY))
    reference = np.random.default_rng(0).integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    sources = reference_trace([MANY])
    assert np.array_equal(trace.warp(reference), reference[sources[..., 1], sources[..., 0]])


def test_reset_returns_to_identity():
    trace = MotionTrace(HEIGHT, WIDTH)
    trace.follow(blocks_from(MANY))
    trace.reset()
    assert not trace.motion().any()


def test_block_motion_keeps_moving_past_reference_blocks_only():
    fields = ["source", "w", "h", "src_x", "src_y", "dst_x", "dst_y", "flags", "motion_x", "motion_y", "motion_scale"]
    dtype = np.dtype({"names": fields, "formats": ["<i4", "u1", "u1", "<i2", "<i2", "<i2", "<i2", "<u8", "<i4", "<i4", "<u2"]})
    vectors = np.array(
        [
            (-1, 16, 16, 5, 10, 8, 8, 0, 0, 0, 2),  # moves by dst - src = (3, -2)
            (-1, 16, 16, 24, 8, 24, 8, 0, 0, 0, 2),  # static: dropped
            (1, 16, 16, 40, 8, 44, 8, 0, 0, 0, 2),  # future reference (B-frame): dropped
            (-1, 8, 8, 40, 28, 36, 28, 0, 0, 0, 2),  # 8x8 block moving by (-4, 0)
        ],
        dtype=dtype,
    )
    blocks = block_motion(vectors)
    assert blocks.left.tolist() == [0, 32] and blocks.top.tolist() == [0, 24]
    assert blocks.width.tolist() == [16, 8] and blocks.dx.tolist() == [3, -4] and blocks.dy.tolist() == [-2, 0]
    assert len(block_motion(None)) == 0

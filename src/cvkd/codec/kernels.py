"""The motion trace's per-block and per-pixel loops, compiled by numba (no per-call overhead, no temporary arrays).

Each kernel compiles at its first call in a process (lazily) and is cached on disk next to this module, or where
`NUMBA_CACHE_DIR` says; where no cache location is writable they compile in memory instead, once per process. None
uses threads, so forked data-loader workers inherit them safely. A map holds for every pixel `p = y * width + x` the
flat index of its source in the reference frame; `coordinates` holds every flat index's (x, y). Blocks are six int32
arrays (left, top, width, height, dx, dy), the displacement being `dst - src`; they are cut at the frame border and
must not overlap (a codec's partitions never do).
"""

from __future__ import annotations

import numba
import numpy as np


def _compile(function):
    """numba's nopython compilation at the first call, cached on disk when a cache location is writable."""
    try:
        return numba.njit(cache=True, nogil=True)(function)
    except RuntimeError:  # numba found no writable cache location: compile in memory in every process
        return numba.njit(nogil=True)(function)


@_compile
def vector_blocks(reference, block_width, block_height, src_x, src_y, dst_x, dst_y, direction, keep_static):
    """(6, n) int32 rows left, top, width, height, dx, dy of the exported vectors pointing `direction` (-1 past,
    +1 future reference); vectors without displacement are dropped unless `keep_static`."""
    blocks = np.empty((6, len(reference)), np.int32)
    count = 0
    for i in range(len(reference)):
        if (direction < 0 and reference[i] >= 0) or (direction > 0 and reference[i] <= 0):
            continue
        dx = np.int32(dst_x[i]) - np.int32(src_x[i])
        dy = np.int32(dst_y[i]) - np.int32(src_y[i])
        if dx == 0 and dy == 0 and not keep_static:
            continue
        width, height = np.int32(block_width[i]), np.int32(block_height[i])
        blocks[0, count] = np.int32(dst_x[i]) - width // 2
        blocks[1, count] = np.int32(dst_y[i]) - height // 2
        blocks[2, count], blocks[3, count] = width, height
        blocks[4, count], blocks[5, count] = dx, dy
        count += 1
    return blocks[:, :count]


@numba.njit(inline="always")
def _copy(destination, source):
    """`destination[:] = source` as a loop LLVM vectorises (indices counted from 0 skip numba's negative-index fix)."""
    for i in range(len(destination)):
        destination[i] = source[i]


@numba.njit(inline="always")
def _gcd(a, b):
    """Greatest common divisor of |a| and |b|."""
    a, b = abs(a), abs(b)
    while b:
        a, b = b, a % b
    return a


@numba.njit(inline="always")
def _columns(left, width, frame_width):
    """The columns (first, end) of a block inside the frame (an empty range when it lies wholly outside)."""
    first = min(max(left, 0), frame_width)
    return first, max(min(left + width, frame_width), first)


@numba.njit(inline="always")
def _source_row(y, dy, frame_height, keep_outside):
    """The row `y - dy` the sources of row y come from: clamped to the frame, or -1 if it leaves the frame and
    `keep_outside`."""
    from_y = y - dy
    if 0 <= from_y < frame_height:
        return from_y
    return -1 if keep_outside else min(max(from_y, 0), frame_height - 1)


@numba.njit(inline="always")
def _inside_columns(x0, x1, dx, frame_width):
    """The columns x of x0..x1 whose source column x - dx lies inside the frame, as a range (first, end)."""
    first = min(max(dx, x0), x1)
    return first, max(min(frame_width + dx, x1), first)


@numba.njit(inline="always")
def _shifted_run(out, old, y, x0, x1, dx, dy, frame_width, frame_height, keep_outside):
    """Write into `out` the new map of pixels x0..x1 of row y, all displaced by (dx, dy): `old` at each source, the
    source clamped to the frame, or with `keep_outside` `old` at the pixel itself where the source leaves it."""
    at = y * frame_width
    from_y = _source_row(y, dy, frame_height, keep_outside)
    if from_y < 0:  # every source of the run leaves the frame: the map stays
        _copy(out, old[at + x0 : at + x1])
        return
    start = from_y * frame_width
    first, end = _inside_columns(x0, x1, dx, frame_width)
    if keep_outside:
        _copy(out[: first - x0], old[at + x0 : at + first])
        _copy(out[end - x0 :], old[at + end : at + x1])
    else:
        out[: first - x0] = old[start]
        out[end - x0 :] = old[start + frame_width - 1]
    _copy(out[first - x0 : end - x0], old[start + first - dx : start + end - dx])


@_compile
def follow_blocks(source, spare, left, top, width, height, dx, dy, frame_width, frame_height, keep_outside):
    """Compose one frame of motion into the map `source`: `map_t(p) = map_{t-1}(p - d(p))` for the pixels of the
    moving blocks; a source outside the frame is clamped, or with `keep_outside` the pixel keeps its map.

    When less than half the frame moves, only the moving pixels are updated, in place (every new value read before
    any is written); otherwise the whole new map is written into `spare`, run by run of equal motion along each row
    of cells. Returns whether the new map is in `spare`."""
    moving = 0
    for b in range(len(left)):
        if dx[b] != 0 or dy[b] != 0:
            moving += max(min(left[b] + width[b], frame_width) - max(left[b], 0), 0) * max(
                min(top[b] + height[b], frame_height) - max(top[b], 0), 0
            )
    if 2 * moving < frame_width * frame_height:
        _follow_moving_blocks(source, moving, left, top, width, height, dx, dy, frame_width, frame_height, keep_outside)
        return False
    cell = 0  # the grid every block lies on: the largest cell dividing every position and size
    for b in range(len(left)):
        cell = _gcd(_gcd(_gcd(_gcd(cell, left[b]), top[b]), width[b]), height[b])
    rows, cols = (frame_height + cell - 1) // cell, (frame_width + cell - 1) // cell
    cell_dx, cell_dy = np.zeros((rows, cols), np.int32), np.zeros((rows, cols), np.int32)
    for b in range(len(left)):
        for row in range(max(top[b] // cell, 0), min((top[b] + height[b]) // cell, rows)):
            for col in range(max(left[b] // cell, 0), min((left[b] + width[b]) // cell, cols)):
                cell_dx[row, col], cell_dy[row, col] = dx[b], dy[b]
    for y in range(frame_height):
        row_dx, row_dy = cell_dx[y // cell], cell_dy[y // cell]
        first = 0
        while first < cols:  # a run of cells moving alike
            last = first + 1
            while last < cols and row_dx[last] == row_dx[first] and row_dy[last] == row_dy[first]:
                last += 1
            x0, x1 = first * cell, min(last * cell, frame_width)
            out = spare[y * frame_width + x0 : y * frame_width + x1]
            _shifted_run(out, source, y, x0, x1, row_dx[first], row_dy[first], frame_width, frame_height, keep_outside)
            first = last
    return True


@numba.njit
def _follow_moving_blocks(source, moving, left, top, width, height, dx, dy, frame_width, frame_height, keep_outside):
    """`follow_blocks` in place for the `moving` pixels of the moving blocks: gather every new value, then write."""
    values = np.empty(moving, source.dtype)
    for write in (False, True):
        count = 0
        for b in range(len(left)):
            if dx[b] == 0 and dy[b] == 0:
                continue
            x0, x1 = _columns(left[b], width[b], frame_width)
            for y in range(max(top[b], 0), min(top[b] + height[b], frame_height)):
                run = values[count : count + x1 - x0]
                if write:
                    _copy(source[y * frame_width + x0 : y * frame_width + x1], run)
                else:
                    _shifted_run(run, source, y, x0, x1, dx[b], dy[b], frame_width, frame_height, keep_outside)
                count += x1 - x0


@_compile
def trace_into(source, other, left, top, width, height, dx, dy, frame_width, frame_height, keep_outside):
    """Set the map of every pixel of the blocks (moving or not) to another reference's map `other` at its source; a
    source outside the frame is clamped, or with `keep_outside` the pixel keeps its map."""
    for b in range(len(left)):
        x0, x1 = _columns(left[b], width[b], frame_width)
        for y in range(max(top[b], 0), min(top[b] + height[b], frame_height)):
            from_y = _source_row(y, dy[b], frame_height, keep_outside)
            if from_y < 0:
                continue
            run, start = source[y * frame_width + x0 : y * frame_width + x1], from_y * frame_width
            first, end = _inside_columns(x0, x1, dx[b], frame_width)
            if not keep_outside:
                run[: first - x0] = other[start]
                run[end - x0 :] = other[start + frame_width - 1]
            _copy(run[first - x0 : end - x0], other[start + first - dx[b] : start + end - dx[b]])


@_compile
def motion_field(source, coordinates, out):
    """Write `p - map(p)` as (x, y) into `out` (pixels, 2), given every pixel's (x, y) in `coordinates`."""
    for p in range(len(source)):
        at = np.uint32(source[p])  # an unsigned index skips numba's negative-index fix
        out[p, 0] = coordinates[p, 0] - coordinates[at, 0]
        out[p, 1] = coordinates[p, 1] - coordinates[at, 1]


@_compile
def warp(reference, source, out):
    """Write `reference[map(p)]` into the (H, W, C) image `out`; `reference` is the reference image's pixels, flat
    and contiguous (H * W * C)."""
    height, width, channels = out.shape
    step = np.uint32(channels)  # unsigned indices skip numba's negative-index fix
    for y in range(height):
        sources, row = source[y * width : (y + 1) * width], out[y]
        for x in range(width):
            at = np.uint32(sources[x]) * step
            for c in range(channels):
                row[x, c] = reference[at + np.uint32(c)]


@_compile
def warped_residual(frame, reference, source, out):
    """Write `frame[p] - reference[map(p)]` as int16 into the (H, W, C) image `out`; `frame` is (H, W, C) with any
    strides, `reference` the reference image's pixels, flat and contiguous (H * W * C)."""
    height, width, channels = out.shape
    step = np.uint32(channels)
    for y in range(height):
        sources, here, row = source[y * width : (y + 1) * width], frame[y], out[y]
        if channels == 3:  # RGB, unrolled: a loop over the channels costs twice as much
            for x in range(width):
                at = np.uint32(sources[x]) * step
                row[x, 0] = np.int16(here[x, 0]) - np.int16(reference[at])
                row[x, 1] = np.int16(here[x, 1]) - np.int16(reference[at + np.uint32(1)])
                row[x, 2] = np.int16(here[x, 2]) - np.int16(reference[at + np.uint32(2)])
        else:
            for x in range(width):
                at = np.uint32(sources[x]) * step
                for c in range(channels):
                    row[x, c] = np.int16(here[x, c]) - np.int16(reference[at + np.uint32(c)])

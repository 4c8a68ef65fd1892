"""`CompressedVideo`: CoViAR's I-frames, motion vectors and residuals, read by seeking to one GOP and decoding only it."""

from __future__ import annotations

import os
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import av
import numpy as np

from cvkd.codec.index import (
    VideoIndex, decode_packets, first_video_stream, index_video, open_video, packets_from_start,
)
from cvkd.codec.capabilities import codec_capabilities
from cvkd.codec.motion import OUTSIDE_RULES, BlockMotion, MotionTrace, block_motion, reference_errors
from cvkd.codec.support import unsupported_reason
from cvkd.errors import UnsupportedVideoError, VideoError
from cvkd.modalities import SPECS

REPRESENTATIONS = tuple(spec.representation for spec in SPECS.values())
_LUMA_FORMATS = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "gray"}


@dataclass
class _GopRequest:
    """What one decode of a GOP must produce: frame positions per representation."""

    positions: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))

    @property
    def last_position(self) -> int:
        return max(max(p) for p in self.positions.values() if p)


class CompressedVideo:
    """A video in CoViAR's compressed representation; one open container per process, safe across threads.

    Representations (all (H, W, C) numpy arrays):
      - "iframe": uint8 RGB of the I-frame of the GOP holding the frame (CoViAR's I-frame stream input);
      - "rgb": uint8 RGB of the frame itself;
      - "mv": int16 motion (x, y) in CoViAR's `dst - src` convention, accumulated back to the I-frame by default;
      - "residual": int16 `frame - I-frame(map(p))` (accumulated) or `frame - previous(p - mv)` (not accumulated).
    An I-frame has zero motion and zero residual. Frames are numbered in display order; a GOP runs from an I-frame
    to the next one in display order.

    B-frames (H.264, MPEG-4 Part 2) are traced both ways: a pixel with a past vector through the map of the previous
    reference picture (I or P, display order), one with only a future vector through the next reference's map (which
    leads back to the I-frame); bi-predicted pixels use the past vector. FFmpeg does not export which of several
    reference pictures (H.264) a vector uses: for accumulated motion each past-reference block takes the reference
    picture (of the stream's SPS count, nearest first, I and P pictures) whose luma at the block's source differs
    least from the decoded block; future vectors use the next reference. Non-accumulated motion is the exported
    past vectors as they are; streams with B-frames give it for I- and P-frames only, and accumulated residuals
    only.
    `outside` is the rule for a source position outside the frame: "clamp" (default) or "keep" (CoViAR's).
    `match_references=False` skips the reference search and assumes the nearest reference (faster, less exact).
    `decode_threads` is how many threads FFmpeg decodes with: 1 (default) decodes in the calling thread, as a process
    that may be forked (a data-loader worker) must; more, or 0 for FFmpeg's own choice, suits reading whole clips in
    one process (the arrays are the same).
    """

    def __init__(
        self, path: str | os.PathLike, index: VideoIndex | None = None, outside: str = "clamp",
        match_references: bool = True, decode_threads: int = 1,
    ) -> None:
        self.path = os.fspath(path)
        self.index = index or index_video(self.path)
        reason = unsupported_reason(self.index)
        if reason is not None:
            raise UnsupportedVideoError(self.path, reason)
        if outside not in OUTSIDE_RULES:
            raise ValueError(f"unknown outside-frame rule {outside!r}; choose from {', '.join(OUTSIDE_RULES)}")
        if decode_threads < 0:
            raise ValueError(f"decode_threads must be >= 0 (0: FFmpeg's choice), got {decode_threads}")
        self.outside, self.decode_threads = outside, decode_threads
        self._lock = threading.Lock()
        self._container: av.container.InputContainer | None = None
        self._owner_pid = -1
        self._reformatter = av.video.reformatter.VideoReformatter()
        self._trace: MotionTrace | None = None  # reused across GOPs: its buffers stay allocated and warm
        self._references: int | None = None if match_references else 1  # pictures a vector may use (H.264 SPS)

    # -- geometry -------------------------------------------------------------------------------------------------
    @property
    def num_frames(self) -> int:
        """Number of frames."""
        return self.index.num_frames

    @property
    def num_gops(self) -> int:
        """Number of GOPs."""
        return self.index.num_gops

    @property
    def gop_starts(self) -> tuple[int, ...]:
        """First frame (an I-frame) of every GOP."""
        return self.index.gop_starts

    @property
    def width(self) -> int:
        """Frame width in pixels."""
        return self.index.width

    @property
    def height(self) -> int:
        """Frame height in pixels."""
        return self.index.height

    def gop_of(self, frame: int) -> tuple[int, int]:
        """Return (gop index, position inside the GOP) of `frame`."""
        return self.index.gop_of(frame)

    # -- loading ----------------------------------------------------------------------------------------------------
    def load(self, frame: int, representation: str, accumulate: bool = True) -> np.ndarray:
        """Return one representation of one frame (see the class docstring)."""
        return self.load_many([frame], [representation], accumulate)[representation][0]

    def load_many(
        self, frames: Sequence[int], representations: Sequence[str], accumulate: bool = True
    ) -> dict[str, list[np.ndarray]]:
        """Return every requested representation of every frame, decoding each GOP involved once."""
        for name in representations:
            if name not in REPRESENTATIONS:
                raise ValueError(f"unknown representation {name!r}; choose from {', '.join(REPRESENTATIONS)}")
        if not accumulate and self.index.has_b_frames:
            self._refuse_non_accumulated(frames, representations)
        located = [self.gop_of(int(frame)) for frame in frames]
        requests: dict[int, _GopRequest] = defaultdict(_GopRequest)
        for gop, position in located:
            for name in representations:
                requests[gop].positions[name].add(position)
        results: dict[tuple[str, int, int], np.ndarray] = {}
        with self._lock:
            for gop in sorted(requests):
                results.update(self._decode_gop(gop, requests[gop], accumulate))
        return {name: [results[(name, gop, pos)] for gop, pos in located] for name in representations}

    def _refuse_non_accumulated(self, frames: Sequence[int], representations: Sequence[str]) -> None:
        """In a stream with B-frames, non-accumulated motion exists for I- and P-frames only (a P-frame's exported
        past vectors as they are) and non-accumulated residuals not at all ("the previous frame" of a P-frame is then
        not the picture it was predicted from)."""
        if "residual" in representations:
            raise UnsupportedVideoError(
                self.path, "has B-frames: only accumulated residuals are read; re-encode it with `cvkd reencode`"
            )
        if "mv" in representations:
            b_frames = [int(f) for f in frames if 0 <= int(f) < self.num_frames and self.index.pict_types[int(f)] == "B"]
            if b_frames:
                raise UnsupportedVideoError(
                    self.path, f"frame {b_frames[0]} is a B-frame: only its accumulated motion is read (its vectors "
                    "point both ways); re-encode it with `cvkd reencode` for CoViAR's non-accumulated variant"
                )

    def close(self) -> None:
        """Close the underlying container (it reopens on the next load)."""
        with self._lock:
            if self._container is not None:
                self._container.close()
            self._container = None

    def __enter__(self) -> "CompressedVideo":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __getstate__(self) -> dict:
        """Pickle without the open container or lock, so data-loader workers open their own."""
        state = self.__dict__.copy()
        state.update(_container=None, _owner_pid=-1, _lock=None, _reformatter=None, _trace=None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._reformatter = av.video.reformatter.VideoReformatter()

    # -- decoding ---------------------------------------------------------------------------------------------------
    def _decode_gop(self, gop: int, request: _GopRequest, accumulate: bool) -> dict[tuple[str, int, int], np.ndarray]:
        """Decode GOP `gop` up to the last position asked for and build every requested array."""
        wanted = request.positions
        need_motion = bool(wanted.get("mv") or wanted.get("residual"))
        rgb_positions = set(wanted.get("rgb", ()))
        rgb_positions |= set(wanted.get("residual", ()))
        if wanted.get("iframe") or (wanted.get("residual") and accumulate):
            rgb_positions.add(0)
        if wanted.get("residual") and not accumulate:
            rgb_positions |= {p - 1 for p in wanted["residual"] if p > 0}
        last = request.last_position
        if need_motion and self.index.has_b_frames:
            last = self._next_reference(gop, last) or last  # a B-frame's future vectors need the next reference
        two_way = need_motion and accumulate and (self.index.has_b_frames or self._reference_count() > 1)
        rgb, motions, luma = self._decode_frames(gop, last, rgb_positions, need_motion, two_way)
        out: dict[tuple[str, int, int], np.ndarray] = {}
        for position in wanted.get("rgb", ()):
            out[("rgb", gop, position)] = rgb[position]
        for position in wanted.get("iframe", ()):
            out[("iframe", gop, position)] = rgb[0]
        if two_way:
            out.update(self._trace_two_way(gop, wanted, rgb, motions, luma))
        elif need_motion:
            out.update(self._trace_outputs(gop, wanted, rgb, motions, accumulate))
        return out

    def _picture_types(self, gop: int) -> str:
        """Picture types of GOP `gop`'s frames, display order."""
        start = self.index.gop_starts[gop]
        return self.index.pict_types[start : start + self.index.gop_lengths[gop]]

    def _next_reference(self, gop: int, position: int) -> int | None:
        """Position of the first reference picture (not a B-frame) after `position` in the GOP, if any."""
        types = self._picture_types(gop)
        return next((p for p in range(position + 1, len(types)) if types[p] != "B"), None)

    def _reference_count(self) -> int:
        """How many reference pictures a past vector may point to (the codec table's rule; 1 but for H.264)."""
        if self._references is None:
            codec = codec_capabilities(self.index.codec)
            extradata = self._open()[1].codec_context.extradata if codec.references else None
            self._references = codec.reference_count(extradata)
        return self._references

    def _decode_frames(
        self, gop: int, last: int, rgb_positions: set[int], need_motion: bool, keep_luma: bool = False
    ) -> tuple[dict[int, np.ndarray], list[np.ndarray | None], dict[int, np.ndarray]]:
        """Decode the GOP up to `last`: RGB of `rgb_positions`, the exported vectors of every frame if asked, and
        (`keep_luma`, several reference pictures) the luma plane of every frame."""
        rgb: dict[int, np.ndarray] = {}
        luma: dict[int, np.ndarray] = {}
        keep_luma = keep_luma and self._reference_count() > 1
        motions: list[np.ndarray | None] = []
        for position, frame in enumerate(self._frames_of_gop(gop, last)):
            if (frame.width, frame.height) != (self.width, self.height):
                self._discard_container()
                raise VideoError(
                    self.path, f"frame {self.gop_starts[gop] + position} decodes as {frame.width}x{frame.height}, "
                    f"not the indexed {self.width}x{self.height} (corrupt stream header?)",
                )
            if need_motion:
                vectors = frame.side_data.get("MOTION_VECTORS") if position > 0 else None
                motions.append(vectors.to_ndarray() if vectors is not None else None)
            if position in rgb_positions:
                rgb[position] = self._to_rgb(frame)
            if keep_luma and frame.format.name in _LUMA_FORMATS:
                plane = frame.planes[0]
                rows = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
                luma[position] = rows[: self.height, : self.width].copy()
        return rgb, motions, luma

    def _trace_outputs(
        self, gop: int, wanted: dict[str, set[int]], rgb: dict[int, np.ndarray], motions: list[np.ndarray | None],
        accumulate: bool,
    ) -> dict[tuple[str, int, int], np.ndarray]:
        """Follow the motion frame by frame (all decoding done: the trace stays in cache) and build mv / residual."""
        trace = self._reset_trace()
        out: dict[tuple[str, int, int], np.ndarray] = {}
        for position, blocks in enumerate(motions):
            if position > 0:
                if not accumulate:
                    trace.reset()
                trace.follow(block_motion(blocks))
            reference = rgb.get(0 if accumulate or position == 0 else position - 1)  # decoded if a residual needs it
            out.update(self._trace_arrays(gop, position, wanted, rgb, reference))
        return out

    def _trace_two_way(
        self, gop: int, wanted: dict[str, set[int]], rgb: dict[int, np.ndarray], motions: list[np.ndarray | None],
        luma: dict[int, np.ndarray],
    ) -> dict[tuple[str, int, int], np.ndarray]:
        """Accumulated mv / residual of a GOP with B-frames or several references: the maps of the reference
        pictures first, then those of the B-frames asked for (with the other B-frames of their run, which may be
        references too: H.264's B-pyramid), then each picture's arrays."""
        trace = self._reset_trace()
        types = self._picture_types(gop)[: len(motions)]
        maps = {0: trace.source.copy()}  # the map of every traced picture, by display position
        for position in range(1, len(motions)):
            if types[position] != "B":
                groups = self._by_reference(position, block_motion(motions[position], -1, True), maps, luma, -1)
                trace.follow_both_ways(groups)
                maps[position] = trace.source.copy()
        asked = sorted(set(wanted.get("mv", ())) | set(wanted.get("residual", ())))
        for run in _b_runs(types, [p for p in asked if types[p] == "B"]):
            for position in _bisection_order(run):
                past = self._by_reference(position, block_motion(motions[position], -1, True), maps, luma, -1)
                future = self._by_reference(position, block_motion(motions[position], +1, True), maps, luma, +1)
                trace.follow_both_ways(past, future)
                maps[position] = trace.source.copy()
        out: dict[tuple[str, int, int], np.ndarray] = {}
        for position in asked:
            np.copyto(trace.source, maps[position])
            out.update(self._trace_arrays(gop, position, wanted, rgb, rgb.get(0)))
        return out

    def _by_reference(
        self, position: int, blocks: BlockMotion, maps: dict[int, np.ndarray], luma: dict[int, np.ndarray],
        direction: int,
    ) -> list[tuple[BlockMotion, np.ndarray]]:
        """`blocks` grouped by the traced picture (of the stream's reference count, nearest first, in `direction`)
        whose luma at the block's source differs least from the decoded block: (blocks, map) pairs, nearest first.

        FFmpeg exports a vector's direction, not its reference picture; ties go to the nearest picture."""
        candidates = sorted((p for p in maps if (p - position) * direction > 0), key=lambda p: abs(p - position))
        candidates = candidates[: self._reference_count()]
        if not candidates:
            return []
        if len(candidates) < 2 or not len(blocks) or position not in luma or any(p not in luma for p in candidates):
            return [(blocks, maps[candidates[0]])]
        choice = reference_errors(blocks, luma[position], [luma[p] for p in candidates]).argmin(axis=0)
        return [(blocks[choice == k], maps[p]) for k, p in enumerate(candidates) if k == 0 or (choice == k).any()]

    def _reset_trace(self) -> MotionTrace:
        """The reader's reusable trace, back at the identity map."""
        if self._trace is None:
            self._trace = MotionTrace(self.height, self.width, self.outside)
        self._trace.reset()
        return self._trace

    def _trace_arrays(
        self, gop: int, position: int, wanted: dict[str, set[int]], rgb: dict[int, np.ndarray],
        reference: np.ndarray | None,
    ) -> dict[tuple[str, int, int], np.ndarray]:
        """The mv / residual asked for at `position`, from the trace's current map into `reference`."""
        height, width = self.height, self.width
        out: dict[tuple[str, int, int], np.ndarray] = {}
        if position in wanted.get("mv", ()):
            out[("mv", gop, position)] = self._trace.motion() if position > 0 else np.zeros((height, width, 2), np.int16)
        if position in wanted.get("residual", ()):
            if position == 0:
                out[("residual", gop, 0)] = np.zeros((height, width, 3), np.int16)
            else:
                out[("residual", gop, position)] = self._trace.residual(rgb[position], reference)
        return out

    def _frames_of_gop(self, gop: int, last_position: int) -> Iterator[av.VideoFrame]:
        """Yield the decoded frames of GOP `gop`, from its I-frame to `last_position`, in order."""
        start = self.index.gop_starts[gop]
        if not self.index.seekable:
            self._discard_container()  # raw streams are read again from their first byte
        container, stream = self._open()
        try:
            if self.index.seekable:
                packets = self._packets_after_seek(container, stream, start)
            else:
                packets = packets_from_start(container, stream, start)
            produced = 0
            all_pts, seekable = self.index.frame_pts, self.index.seekable
            for frame in decode_packets(packets, stream, self.path, start):  # corrupt frames raise
                if seekable and frame.pts is not None and frame.pts < all_pts[start]:
                    continue  # decoded from an earlier key frame: the GOP's I-frame is not one (non-IDR)
                expected = all_pts[start + produced] if start + produced < len(all_pts) else None
                if None not in (frame.pts, expected) and frame.pts != expected:
                    raise VideoError(self.path, f"frame {start + produced} decodes with timestamp {frame.pts}, the "
                                                f"index has {expected} (frames dropped by the decoder?)")
                yield frame
                produced += 1
                if produced > last_position:
                    return
        except VideoError:
            self._discard_container()
            raise
        except av.FFmpegError as error:
            self._discard_container()
            raise VideoError(self.path, f"decoding GOP {gop} failed ({error})") from None
        self._discard_container()
        raise VideoError(
            self.path, f"frame {start + produced} could not be decoded (index lists {self.num_frames}: truncated or corrupt?)"
        )

    def _packets_after_seek(self, container, stream, start: int) -> Iterator[av.Packet]:
        """Seek to the last key frame at or before the I-frame at `start` and yield packets from there on.

        The key frame is the I-frame itself unless that is an H.264 I picture that is not an IDR (x264 puts them at
        scene cuts): a decoder fed from such a picture drops every frame until the next IDR, so decoding starts at
        the previous key frame and the frames before the I-frame are dropped by timestamp (`_frames_of_gop`)."""
        container.seek(self.index.frame_pts[start], stream=stream, backward=True, any_frame=False)
        return (packet for packet in container.demux(stream) if packet.size)

    def _open(self) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
        """Return this process's open container (reopened after a fork)."""
        if self._container is None or self._owner_pid != os.getpid():
            try:
                container = open_video(self.path)
            except (av.FFmpegError, OSError) as error:
                raise VideoError(self.path, f"cannot open ({error})") from None
            try:
                stream = first_video_stream(container, self.path)
            except VideoError:
                container.close()
                raise
            stream.codec_context.options = {"flags2": "+export_mvs"}
            if self.decode_threads == 1:
                stream.thread_type = "NONE"  # no FFmpeg threads: the process may be forked (data-loader workers)
            else:
                stream.thread_type, stream.thread_count = "AUTO", self.decode_threads
            self._container, self._owner_pid = container, os.getpid()
        return self._container, self._container.streams.video[0]

    def _discard_container(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except av.FFmpegError:
                pass
        self._container = None

    def _to_rgb(self, frame: av.VideoFrame) -> np.ndarray:
        return self._reformatter.reformat(frame, format="rgb24").to_ndarray()


def _b_runs(types: str, positions: Sequence[int]) -> list[list[int]]:
    """The runs of consecutive B-frames (display order) that hold any of `positions`."""
    runs: dict[int, list[int]] = {}
    for position in positions:
        start = position
        while start > 0 and types[start - 1] == "B":
            start -= 1
        if start not in runs:
            end = position
            while end + 1 < len(types) and types[end + 1] == "B":
                end += 1
            runs[start] = list(range(start, end + 1))
    return [runs[start] for start in sorted(runs)]


def _bisection_order(run: list[int]) -> list[int]:
    """The middle picture of a run (the earlier of two) first, then each half the same way: where x264 puts a
    B-pyramid's reference pictures, so they are traced before the B-frames that use them."""
    if not run:
        return []
    middle = (len(run) - 1) // 2
    return [run[middle]] + _bisection_order(run[:middle]) + _bisection_order(run[middle + 1 :])

"""`CompressedVideo`: CoViAR's I-frames, motion vectors and residuals, read by seeking to one GOP and decoding only it."""

from __future__ import annotations

import os
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import av
import numpy as np

from cvkd.codec.index import VideoIndex, first_video_stream, index_video, open_video
from cvkd.codec.motion import OUTSIDE_RULES, MotionTrace, block_motion, residual
from cvkd.codec.support import unsupported_reason
from cvkd.errors import UnsupportedVideoError, VideoError
from cvkd.modalities import SPECS

REPRESENTATIONS = tuple(spec.representation for spec in SPECS.values())


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
    leads back to the I-frame); bi-predicted pixels use the past vector. Of several reference pictures (H.264) the
    nearest one in the vector's direction is assumed. Streams with B-frames give accumulated motion only.
    `outside` is the rule for a source position outside the frame: "clamp" (default) or "keep" (CoViAR's).
    """

    def __init__(self, path: str | os.PathLike, index: VideoIndex | None = None, outside: str = "clamp") -> None:
        self.path = os.fspath(path)
        self.index = index or index_video(self.path)
        reason = unsupported_reason(self.index)
        if reason is not None:
            raise UnsupportedVideoError(self.path, reason)
        if outside not in OUTSIDE_RULES:
            raise ValueError(f"unknown outside-frame rule {outside!r}; choose from {', '.join(OUTSIDE_RULES)}")
        self.outside = outside
        self._lock = threading.Lock()
        self._container: av.container.InputContainer | None = None
        self._owner_pid = -1
        self._reformatter = av.video.reformatter.VideoReformatter()
        self._trace: MotionTrace | None = None  # reused across GOPs: its buffers stay allocated and warm

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
        if not accumulate and self.index.has_b_frames and {"mv", "residual"} & set(representations):
            raise UnsupportedVideoError(
                self.path, "has B-frames: only accumulated motion and residuals are read; re-encode it with `cvkd reencode`"
            )
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
        rgb, motions = self._decode_frames(gop, last, rgb_positions, need_motion)
        out: dict[tuple[str, int, int], np.ndarray] = {}
        for position in wanted.get("rgb", ()):
            out[("rgb", gop, position)] = rgb[position]
        for position in wanted.get("iframe", ()):
            out[("iframe", gop, position)] = rgb[0]
        if need_motion and self.index.has_b_frames:
            out.update(self._trace_two_way(gop, wanted, rgb, motions))
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

    def _decode_frames(
        self, gop: int, last: int, rgb_positions: set[int], need_motion: bool
    ) -> tuple[dict[int, np.ndarray], list[np.ndarray | None]]:
        """Decode the GOP up to `last`: RGB of `rgb_positions`, and the exported vectors of every frame if asked."""
        rgb: dict[int, np.ndarray] = {}
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
        return rgb, motions

    def _trace_outputs(
        self, gop: int, wanted: dict[str, set[int]], rgb: dict[int, np.ndarray], motions: list[np.ndarray | None],
        accumulate: bool,
    ) -> dict[tuple[str, int, int], np.ndarray]:
        """Follow the motion frame by frame (all decoding done: the trace stays in cache) and build mv / residual."""
        height, width = self.height, self.width
        trace = self._reset_trace()
        prediction = np.empty((height, width, 3), np.uint8) if wanted.get("residual") else None  # only residuals kept
        out: dict[tuple[str, int, int], np.ndarray] = {}
        for position, blocks in enumerate(motions):
            if position > 0:
                if not accumulate:
                    trace.reset()
                trace.follow(block_motion(blocks))
            reference = rgb.get(0 if accumulate or position == 0 else position - 1)  # decoded if a residual needs it
            out.update(self._trace_arrays(gop, position, wanted, rgb, reference, prediction))
        return out

    def _trace_two_way(
        self, gop: int, wanted: dict[str, set[int]], rgb: dict[int, np.ndarray], motions: list[np.ndarray | None]
    ) -> dict[tuple[str, int, int], np.ndarray]:
        """Accumulated mv / residual of a GOP with B-frames: reference pictures first, then each B-frame asked for."""
        trace = self._reset_trace()
        types = self._picture_types(gop)[: len(motions)]
        maps = {0: trace.source.copy()}  # the map of every reference picture, display order
        for position in range(1, len(motions)):
            if types[position] != "B":
                trace.follow(block_motion(motions[position]))
                maps[position] = trace.source.copy()
        prediction = np.empty((self.height, self.width, 3), np.uint8) if wanted.get("residual") else None
        out: dict[tuple[str, int, int], np.ndarray] = {}
        for position in sorted(set(wanted.get("mv", ())) | set(wanted.get("residual", ()))):
            if position in maps:
                np.copyto(trace.source, maps[position])
            else:
                previous = maps[max(p for p in maps if p < position)]
                following = self._next_reference(gop, position)
                trace.follow_both_ways(
                    block_motion(motions[position], -1, keep_static=True),
                    block_motion(motions[position], +1, keep_static=True),
                    previous,
                    maps.get(following) if following is not None else None,
                )
            out.update(self._trace_arrays(gop, position, wanted, rgb, rgb.get(0), prediction))
        return out

    def _reset_trace(self) -> MotionTrace:
        """The reader's reusable trace, back at the identity map."""
        if self._trace is None:
            self._trace = MotionTrace(self.height, self.width, self.outside)
        self._trace.reset()
        return self._trace

    def _trace_arrays(
        self, gop: int, position: int, wanted: dict[str, set[int]], rgb: dict[int, np.ndarray],
        reference: np.ndarray | None, prediction: np.ndarray | None,
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
                out[("residual", gop, position)] = residual(rgb[position], self._trace.warp(reference, prediction))
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
                packets = self._packets_from_start(container, stream, start)
            produced = 0
            for packet in packets:
                for frame in packet.decode():
                    yield frame
                    produced += 1
                    if produced > last_position:
                        return
            for frame in stream.codec_context.decode(None):  # drain a decoder that buffers frames
                yield frame
                produced += 1
                if produced > last_position:
                    return
        except av.FFmpegError as error:
            self._discard_container()
            raise VideoError(self.path, f"decoding GOP {gop} failed ({error})") from None
        self._discard_container()
        raise VideoError(
            self.path, f"frame {start + produced} could not be decoded (index lists {self.num_frames}: truncated or corrupt?)"
        )

    def _packets_after_seek(self, container, stream, start: int) -> Iterator[av.Packet]:
        """Seek to the I-frame at `start` and yield packets from it on (skipping any earlier ones)."""
        target = self.index.frame_pts[start]
        container.seek(target, stream=stream, backward=True, any_frame=False)
        started = False
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            if not started:
                if packet.pts is None or packet.pts < target:
                    continue
                started = True
            yield packet

    @staticmethod
    def _packets_from_start(container, stream, start: int) -> Iterator[av.Packet]:
        """Demux a freshly opened raw stream and yield packets from frame `start` on (no decoding before)."""
        frame = 0
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            if frame >= start:
                yield packet
            frame += 1

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
            stream.thread_type = "NONE"  # no FFmpeg threads: the process may be forked (data-loader workers)
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

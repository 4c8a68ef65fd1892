"""Write CoViAR's representation: MPEG-4 Part 2 with a strict GOP, no B-frames and a fixed quantiser, via PyAV."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import av
import numpy as np

from cvkd.codec.index import first_video_stream, open_video, stat_video
from cvkd.errors import VideoError
from cvkd.fileio import atomic_path

# Large enough that the encoder never inserts an I-frame at a scene cut.
_NO_SCENE_CUT = "1000000000"


MAX_GAP_SECONDS = 3600  # a longer step between two source pictures is a damaged timestamp, not a pause (MPEG-4
# Part 2 spends a bit per second of a step on its modulo time base)
MAX_SIDE = 4096  # the largest re-encoded side (4K sources fit; FFmpeg refuses absurd sizes with a bare error)


@dataclass(frozen=True)
class EncodeSettings:
    """What a re-encoded video looks like: CoViAR's defaults are GOP 12, 340x256, quantiser 1."""

    gop: int = 12
    width: int = 340
    height: int = 256
    q: int = 1

    def __post_init__(self) -> None:
        if self.gop < 1:
            raise ValueError(f"gop must be >= 1, got {self.gop}")
        if not (16 <= self.width <= MAX_SIDE and 16 <= self.height <= MAX_SIDE) or self.width % 2 or self.height % 2:
            raise ValueError(f"size must be even, from 16x16 to {MAX_SIDE}x{MAX_SIDE}, got {self.width}x{self.height}")
        if not 1 <= self.q <= 31:
            raise ValueError(f"q must be in 1..31 (MPEG-4 quantiser), got {self.q}")


def parse_size(text: str) -> tuple[int, int]:
    """Parse 'WIDTHxHEIGHT' (e.g. '340x256') into (width, height)."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"size must look like 340x256, got {text!r}") from None
    return width, height


def storable_rate(fps: Fraction | float | None) -> Fraction:
    """`fps` as a rate MPEG-4 Part 2 can store (time base denominator < 2**16); 25 when absent or implausible.

    A corrupt header can claim any rate (e.g. 5/904397 fps), which the encoder refuses; such a rate means nothing.
    """
    rate = Fraction(fps).limit_denominator(1001 * 1000) if fps else Fraction(0)
    if not Fraction(1, 1000) <= rate <= 1000:
        return Fraction(25)
    return 1 / (1 / rate).limit_denominator(65535)


class Mpeg4Writer:
    """Encode RGB or PyAV frames, one by one, into an MPEG-4 Part 2 `.mp4` with an exact GOP."""

    def __init__(self, path: str | os.PathLike, settings: EncodeSettings, fps: Fraction | int = 25) -> None:
        self.path = Path(path)
        self.settings = settings
        self._container = av.open(str(self.path), mode="w", format="mp4")
        rate = storable_rate(fps)
        self._stream = self._container.add_stream("mpeg4", rate=rate, options={"sc_threshold": _NO_SCENE_CUT})
        self._stream.width = settings.width
        self._stream.height = settings.height
        self._stream.pix_fmt = "yuv420p"
        context = self._stream.codec_context
        context.gop_size = settings.gop
        context.max_b_frames = 0
        context.qmin = settings.q
        context.qmax = settings.q
        context.time_base = Fraction(1, 1) / rate
        self._reformatter = av.video.reformatter.VideoReformatter()
        self.frames_written = 0

    def write_rgb(self, image: np.ndarray) -> None:
        """Encode one (H, W, 3) uint8 RGB image, scaled to the target size if needed."""
        self.write_frame(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24"))

    def write_frame(self, frame: av.VideoFrame, pts: int | None = None) -> None:
        """Encode one decoded PyAV frame, scaled to the target size, at `pts` (in periods of the writer's rate; must
        increase; default: the next period); its own timing and picture type are dropped."""
        scaled = self._reformatter.reformat(
            frame, width=self.settings.width, height=self.settings.height, format="yuv420p"
        )
        scaled.pts = self.frames_written if pts is None else pts
        scaled.time_base = self._stream.codec_context.time_base
        scaled.pict_type = 0  # NONE: let the GOP decide, never inherit the source's I-frames
        for packet in self._stream.encode(scaled):
            self._container.mux(packet)
        self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder and finish the file."""
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()

    def __enter__(self) -> "Mpeg4Writer":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._container.close()


def encode_rgb_frames(
    frames: Iterable[np.ndarray], out: str | os.PathLike, settings: EncodeSettings, fps: Fraction | int = 25
) -> int:
    """Encode RGB frames into `out` atomically and return how many frames were written."""
    with atomic_path(out) as tmp:
        with Mpeg4Writer(tmp, settings, fps) as writer:
            for image in frames:
                writer.write_rgb(image)
        if writer.frames_written == 0:
            raise VideoError(out, "no frames to encode")
    return writer.frames_written


class SourceClock:
    """Places a source's pictures on the writer's periods (1 / `rate`): each at its own time from the first picture,
    rounded, so a re-encode keeps the source's duration (skipped frames stay gaps, a variable frame rate stays
    variable). Times always increase: a picture that would round onto the one before goes one period later (the
    next ones snap back to their own times), and a picture without a timestamp, one whose time goes back, or one more
    than MAX_GAP_SECONDS after the one before (damaged timestamps) goes one period after the one before and the
    pictures after it keep their steps from there."""

    def __init__(self, rate: Fraction) -> None:
        self.rate = Fraction(rate)
        self.origin: Fraction | None = None  # the source time written at period 0
        self.last = -1  # the period of the last picture placed
        self.previous: Fraction | None = None  # the source time of the last picture placed

    def place(self, pts: int | None, time_base: Fraction | None) -> int:
        """The period of the next picture, whose source timestamp is `pts` in units of `time_base`."""
        if pts is None or not time_base:
            self.last += 1
            self.origin = self.previous = None
            return self.last
        seconds = pts * Fraction(time_base)
        late = self.previous is not None and seconds - self.previous > MAX_GAP_SECONDS
        if self.origin is None or late or (self.previous is not None and seconds <= self.previous):
            self.origin = seconds - (self.last + 1) / self.rate
        self.previous = seconds
        self.last = max(round((seconds - self.origin) * self.rate), self.last + 1)
        return self.last


def source_rate(stream) -> Fraction:
    """The frame rate a source stream declares (FFmpeg's guess from its timestamps and header), 25 when absent."""
    return Fraction(stream.guessed_rate or stream.average_rate or 25)


def _decoded_frames(source: str | os.PathLike) -> Iterator[tuple[av.VideoFrame, Fraction]]:
    """Yield every decodable frame of the first video stream of `source`, with the stream's declared frame rate."""
    try:
        container = open_video(source)
    except (av.FFmpegError, OSError) as error:
        raise VideoError(source, f"cannot open as video ({_reason(error)})") from None
    with container:
        stream = first_video_stream(container, source)
        stream.thread_type = "AUTO"
        rate = source_rate(stream)
        try:
            for packet in container.demux(stream):
                for frame in packet.decode():
                    yield frame, rate
        except av.FFmpegError as error:
            raise VideoError(source, f"decoding failed ({_reason(error)})") from None


def reencode(source: str | os.PathLike, out: str | os.PathLike, settings: EncodeSettings = EncodeSettings()) -> int:
    """Re-encode any video PyAV can decode into CoViAR's MPEG-4 Part 2 layout at `out`; return the frame count.

    Every decoded frame is encoded exactly once (no frame-rate conversion, so no duplicated motionless frames), at
    its own time on the periods of the source's declared rate (`SourceClock`): a source whose timestamps skip frames
    or vary keeps its duration, within one period. Audio is dropped; the output appears only when complete.
    """
    source = Path(source)
    stat_video(source)  # missing, a link loop, a folder, a fifo or empty: one line before any demuxer opens it
    frames = _decoded_frames(source)
    first = next(frames, None)
    if first is None:
        raise VideoError(source, "contains no decodable video frames")
    with atomic_path(out) as tmp:
        with Mpeg4Writer(tmp, settings, first[1]) as writer:
            clock = SourceClock(storable_rate(first[1]))
            for frame, _ in itertools.chain([first], frames):
                writer.write_frame(frame, clock.place(frame.pts, frame.time_base))
    return writer.frames_written


def _reason(error: BaseException) -> str:
    """A short human reason from a PyAV/OS error."""
    text = getattr(error, "strerror", None) or str(error)
    return text.split(":")[0].strip() if ":" in text and len(text) > 80 else text

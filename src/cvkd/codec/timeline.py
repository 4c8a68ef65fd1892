"""What a frame index means in time: a video's pictures, when each is shown, and how evenly they are spaced.

A frame index is a decoded picture in display order, whatever its timestamp: frame i is the i-th picture shown. A
video whose pictures do not come one per period of its declared frame rate (an AVI whose empty chunks skip frames,
phone footage of variable frame rate) has a time line that picture indices do not follow; `Timeline` says so in one
statement that `cvkd info`, `cvkd reencode` and `cvkd predict` all print, and segment sampling can follow it
(`data.sampling: time`, `cvkd.data.sampling.time_segment_indices`).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from cvkd.codec.index import VideoIndex

SPARSE_STEP = 1.5  # pictures this many declared frame periods apart on average: the timestamps are sparse
UNEVEN_RATIO = 1.5  # the longest step between pictures over the shortest: spacing uneven, index sampling not in time
KINDS = ("constant", "sparse", "variable", "untimed")


@dataclass(frozen=True)
class Timeline:
    """The display times of a video's pictures.

    `starts[i]` is when picture i is shown, in seconds from the first picture (None: a raw stream without
    timestamps); `duration` runs from the first picture's start to the last one's end. `kind` is "constant" (one
    picture per declared period), "sparse" (on average at least 1.5 declared periods between pictures: frames
    skipped), "variable" (steps between pictures differ by more than 1.5x) or "untimed". `even` says whether the
    pictures are spaced evenly in time (longest step at most 1.5x the shortest), in which case sampling by picture
    index and sampling by time agree.
    """

    pictures: int
    starts: tuple[float, ...] | None
    duration: float | None
    fps: float  # the declared frame rate (0: none)
    kind: str
    even: bool

    @property
    def sampling(self) -> str:
        """The segment sampling the video needs: "time" when its pictures are unevenly spaced, else "index"."""
        return "index" if self.even else "time"

    @property
    def declared_frames(self) -> int | None:
        """How many frames the declared rate would put in the duration (None without timestamps or a rate)."""
        if self.duration is None or self.fps <= 0:
            return None
        return round(self.duration * self.fps)

    def headline(self) -> str:
        """The short statement every command prints alike, e.g. "timestamps sparse: 68 pictures over 29.6 s"."""
        if self.duration is None:
            return f"no timestamps: {self.pictures} pictures"
        label = {"constant": "frame rate constant", "sparse": "timestamps sparse",
                 "variable": "frame rate variable"}[self.kind]
        return f"{label}: {self.pictures} pictures over {self.duration:.1f} s"

    def statement(self) -> str:
        """The headline with what it means for sampling (what `cvkd info` prints)."""
        if self.duration is None:
            return f"{self.headline()} (raw stream; shown at the declared {self.fps:.3g} fps)"
        if self.kind == "constant":
            return f"{self.headline()} at {self.fps:.3g} fps"
        declared = f"the declared {self.fps:.3g} fps would give {self.declared_frames}" if self.fps > 0 else ""
        spacing = ("evenly spaced: index and time sampling agree" if self.even
                   else "unevenly spaced: data.sampling=time follows the timestamps")
        return f"{self.headline()} ({'; '.join(part for part in (declared, spacing) if part)})"

    def to_json(self) -> dict:
        """The time line as JSON data: pictures, duration (s), declared fps, kind, even, the sampling it needs."""
        return {"pictures": self.pictures, "duration": self.duration, "fps": self.fps, "kind": self.kind,
                "even": self.even, "sampling": self.sampling}


def timeline(index: VideoIndex) -> Timeline:
    """The time line of an indexed video, from its pictures' timestamps (display order) and declared rate."""
    pictures = index.num_frames
    stamps = index.frame_pts
    if not index.time_base[0] or index.end_pts is None or any(stamp is None for stamp in stamps):
        return Timeline(pictures, None, None, index.nominal_fps, "untimed", True)
    unit = Fraction(*index.time_base)
    first = stamps[0]
    starts = tuple(float((stamp - first) * unit) for stamp in stamps)  # type: ignore[operator]
    duration = float((index.end_pts - first) * unit)
    steps = [later - earlier for earlier, later in zip(starts, starts[1:])]
    even = not steps or min(steps) <= 0 or max(steps) <= UNEVEN_RATIO * min(steps)
    if steps and index.nominal_fps > 0 and (starts[-1] / len(steps)) * index.nominal_fps >= SPARSE_STEP:
        kind = "sparse"
    elif not even:
        kind = "variable"
    else:
        kind = "constant"
    return Timeline(pictures, starts, duration, index.nominal_fps, kind, even)

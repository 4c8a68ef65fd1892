"""Which codecs the reader reads natively (FFmpeg exports their motion vectors) and how a given file will be read."""

from __future__ import annotations

from cvkd.codec.index import VideoIndex

# Decoders that export block motion vectors with `flags2=+export_mvs` (HEVC, VP9 and AV1 export none). Of these only
# H.264 exports B-frame vectors: the MPEG-1/2/4 decoders export zero vectors for B-frames (checked on PyAV's FFmpeg).
MOTION_VECTOR_CODECS = frozenset({
    "h264", "mpeg4", "mpeg1video", "mpeg2video", "h263", "h263p", "flv1", "msmpeg4v1", "msmpeg4v2", "msmpeg4v3",
    "msmpeg4", "wmv1", "wmv2",  # FFmpeg's MPEG-video family: one motion-vector export for all
})

_REENCODE = "re-encode it with `cvkd reencode` (`cvkd prepare` and `cvkd predict` re-encode such videos themselves)"


def unsupported_reason(index: VideoIndex) -> str | None:
    """One line saying why the reader cannot read `index`'s video natively, or None when it can."""
    if index.codec not in MOTION_VECTOR_CODECS:
        return f"codec {index.codec} exports no motion vectors; {_REENCODE}"
    if index.codec != "h264" and index.has_b_frames:
        return f"{index.codec} B-frames export no usable motion vectors (FFmpeg gives zeros); {_REENCODE}"
    return None


def reading_mode(index: VideoIndex) -> str:
    """How the reader will read the video: natively (which picture types) or not at all (and what to do)."""
    reason = unsupported_reason(index)
    if reason is not None:
        return f"not natively: {reason}"
    if index.has_b_frames:
        return f"natively ({index.codec}, P- and B-frames: B-frames accumulated both ways; accumulated motion only)"
    return f"natively ({index.codec}, P-frames only)"

"""Which codecs the reader reads natively (FFmpeg exports their motion vectors) and how a given file will be read."""

from __future__ import annotations

from cvkd.codec.capabilities import CODECS, codec_capabilities
from cvkd.codec.index import VideoIndex

MOTION_VECTOR_CODECS = frozenset(name for name, codec in CODECS.items() if codec.motion_vectors)

_REENCODE = "re-encode it with `cvkd reencode` (`cvkd prepare` and `cvkd predict` re-encode such videos themselves)"


def unsupported_reason(index: VideoIndex) -> str | None:
    """One line saying why the reader cannot read `index`'s video natively, or None when it can."""
    codec = codec_capabilities(index.codec)
    if not codec.motion_vectors:
        return f"codec {index.codec} exports no motion vectors; {_REENCODE}"
    if index.has_b_frames and not codec.b_frame_vectors:
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

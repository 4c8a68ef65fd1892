"""What the reader can do with each codec, as one table: a new codec is one entry, not a branch in every module.

- `motion_vectors`: FFmpeg exports its block motion vectors (`flags2=+export_mvs`); HEVC, VP9 and AV1 export none.
- `b_frame_vectors`: it exports them for B-frames too (only H.264: the MPEG-1/2/4 decoders give zeros there).
- `vop_headers`: picture types can be read from MPEG-4 Part 2 VOP headers in the packets, without decoding (and a raw
  stream's last VOP header and VOP times can be checked).
- `references`: how many reference pictures a past vector may point to, read from the stream's extradata (None: one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from cvkd.codec.h264 import max_reference_frames

UNKNOWN_REFERENCES = 4  # reference pictures assumed when a stream's parameter sets cannot be read


@dataclass(frozen=True)
class CodecCapabilities:
    """One codec's entry in the table."""

    name: str
    motion_vectors: bool = False
    b_frame_vectors: bool = False
    vop_headers: bool = False
    references: Callable[[bytes | None], int | None] | None = None

    def reference_count(self, extradata: bytes | None) -> int:
        """Reference pictures a past vector may point to: 1, or what the extradata says (UNKNOWN_REFERENCES if it
        cannot be read)."""
        if self.references is None:
            return 1
        return self.references(extradata) or UNKNOWN_REFERENCES


_MPEG_VIDEO_FAMILY = ("mpeg1video", "mpeg2video", "h263", "h263p", "flv1", "msmpeg4v1", "msmpeg4v2", "msmpeg4v3",
                      "msmpeg4", "wmv1", "wmv2")  # FFmpeg's MPEG-video decoders: one motion-vector export for all

CODECS: dict[str, CodecCapabilities] = {
    "h264": CodecCapabilities("h264", motion_vectors=True, b_frame_vectors=True, references=max_reference_frames),
    "mpeg4": CodecCapabilities("mpeg4", motion_vectors=True, vop_headers=True),
    **{name: CodecCapabilities(name, motion_vectors=True) for name in _MPEG_VIDEO_FAMILY},
}


def codec_capabilities(name: str) -> CodecCapabilities:
    """The table's entry for codec `name` (FFmpeg's decoder name); a codec it does not list can do nothing."""
    return CODECS.get(name, CodecCapabilities(name))

"""MPEG-4 Part 2 bitstream facts the hardening tests need: where VOPs start, and DivX's "packed B-frames" AVI layout.

A VOP (video object plane, one picture) starts with the start code 00 00 01 B6; the two bits after it are its coding
type (I, P, B, S). DivX 5 writers "pack" B-frames: the chunk of a reference picture also carries the first B-frame
that follows it in decode order, and a not-coded VOP (N-VOP) fills the chunk slot the B-frame left, so an AVI keeps one
chunk per display frame. The decoder learns of the packing from a user-data string "DivX<version>b<build>p".
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av

VOP_START = b"\x00\x00\x01\xb6"
USER_DATA_START = b"\x00\x00\x01\xb2"
PACKED_SIGNATURE = USER_DATA_START + b"DivX503b1393p"  # DivX 5.0.3, build 1393, packed bitstream
VOP_TYPES = "IPBS"


def vop_starts(data: bytes) -> list[int]:
    """Byte offsets of every VOP start code in `data`, in file order."""
    found, offset = [], data.find(VOP_START)
    while offset >= 0:
        found.append(offset)
        offset = data.find(VOP_START, offset + 4)
    return found


def vop_type(payload: bytes, offset: int) -> str:
    """The coding type letter of the VOP whose start code is at `offset`."""
    return VOP_TYPES[payload[offset + 4] >> 6]


def not_coded_vop(time_increment: int, increment_bits: int) -> bytes:
    """An N-VOP: a P-VOP header with vop_coded = 0, byte-aligned with MPEG-4's stuffing (a 0 bit, then 1 bits)."""
    bits = "01" + "0" + "1" + format(time_increment, f"0{increment_bits}b") + "1" + "0"
    bits += "0" + "1" * (-(len(bits) + 1) % 8)
    return VOP_START + int(bits, 2).to_bytes(len(bits) // 8, "big")


def pack_b_frames(source: Path, out: Path, increment_bits: int = 5) -> tuple[int, int]:
    """Rewrite an MPEG-4 Part 2 AVI with B-frames (decode order, one VOP per chunk) in DivX's packed layout.

    Returns (chunks written, VOPs written): each reference chunk followed by B-frames carries the first of them, and
    an N-VOP chunk closes the run, so the chunk count (the frames a decoder gives) stays the source's frame count.
    `increment_bits` is the VOL's vop_time_increment length (5 for FFmpeg's encoder at 25 fps).
    """
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        packets = [bytes(packet) for packet in container.demux(stream) if packet.size]
        template = stream.codec_context
        width, height, extradata = template.width, template.height, template.extradata
    types = [vop_type(p, p.find(VOP_START)) for p in packets]
    first_vop = packets[0].find(VOP_START)
    packets[0] = packets[0][:first_vop] + PACKED_SIGNATURE + packets[0][first_vop:]
    chunks: list[bytes] = []
    k = 0
    while k < len(packets):
        run = 0
        while k + 1 + run < len(packets) and types[k + 1 + run] == "B":
            run += 1
        if run == 0:
            chunks.append(packets[k])
        else:
            chunks.append(packets[k] + packets[k + 1])
            chunks.extend(packets[k + 2 : k + 1 + run])
            chunks.append(not_coded_vop((k + run) % 25, increment_bits))
        k += 1 + run
    with av.open(str(out), "w", format="avi") as output:
        stream = output.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.extradata = extradata
        for number, chunk in enumerate(chunks):
            packet = av.Packet(chunk)
            packet.stream, packet.pts, packet.dts, packet.time_base = stream, number, number, Fraction(1, 25)
            packet.is_keyframe = vop_type(chunk, chunk.find(VOP_START)) == "I"
            output.mux(packet)
    return len(chunks), sum(len(vop_starts(chunk)) for chunk in chunks)

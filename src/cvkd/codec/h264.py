"""The one H.264 header field the reader needs: how many reference pictures a stream may use (from its SPS)."""

from __future__ import annotations

# Profiles whose SPS carries chroma format, bit depths and scaling matrices (ITU-T H.264 section 7.3.2.1.1).
_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


class _Bits:
    """An MSB-first bit reader over an RBSP (emulation-prevention bytes already removed)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.position = data, 0

    def bit(self) -> int:
        byte = self.data[self.position >> 3]  # IndexError past the end: the caller treats it as unparsable
        value = (byte >> (7 - (self.position & 7))) & 1
        self.position += 1
        return value

    def bits(self, count: int) -> int:
        value = 0
        for _ in range(count):
            value = value * 2 + self.bit()
        return value

    def ue(self) -> int:
        zeros = 0
        while self.bit() == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("Exp-Golomb code too long")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        code = self.ue()
        return (code + 1) // 2 if code % 2 else -(code // 2)


def _rbsp(nal: bytes) -> bytes:
    """Drop emulation-prevention bytes (00 00 03 -> 00 00)."""
    out, zeros = bytearray(), 0
    for byte in nal:
        if zeros >= 2 and byte == 3:
            zeros = 0
            continue
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def _sps_nal(extradata: bytes) -> bytes | None:
    """The first SPS NAL unit (header byte included) of avcC or Annex B extradata."""
    if len(extradata) > 8 and extradata[0] == 1 and extradata[5] & 0x1F:  # avcC
        length = int.from_bytes(extradata[6:8], "big")
        return extradata[8 : 8 + length]
    start = extradata.find(b"\x00\x00\x01")
    while start >= 0:
        if start + 3 < len(extradata) and extradata[start + 3] & 0x1F == 7:
            end = extradata.find(b"\x00\x00\x01", start + 3)
            return extradata[start + 3 : end if end >= 0 else len(extradata)]
        start = extradata.find(b"\x00\x00\x01", start + 3)
    return None


def max_reference_frames(extradata: bytes | None) -> int | None:
    """`max_num_ref_frames` of the stream's SPS, or None when there is no SPS or it cannot be parsed."""
    nal = _sps_nal(extradata or b"")
    if not nal:
        return None
    bits = _Bits(_rbsp(nal[1:]))
    try:
        profile = bits.bits(8)
        bits.bits(16)  # constraint flags, level
        bits.ue()  # seq_parameter_set_id
        if profile in _HIGH_PROFILES:
            if bits.ue() == 3:  # chroma_format_idc
                bits.bit()  # separate_colour_plane_flag
            bits.ue(), bits.ue()  # bit depths
            bits.bit()  # qpprime_y_zero_transform_bypass_flag
            if bits.bit():  # seq_scaling_matrix_present_flag
                return None  # rare in practice; not worth parsing the lists
        bits.ue()  # log2_max_frame_num_minus4
        order_type = bits.ue()
        if order_type == 0:
            bits.ue()
        elif order_type == 1:
            bits.bit(), bits.se(), bits.se()
            for _ in range(bits.ue()):
                bits.se()
        return bits.ue()
    except (IndexError, ValueError):
        return None

"""MPEG-4 Part 2 header fields read bit by bit: the VOL's time-increment resolution, and whether a VOP's header is
whole (a stream cut inside it decodes, without any error, as a repeat of the previous picture)."""

from __future__ import annotations

_VOL_START = (0x20, 0x2F)  # video_object_layer_start_code: 00 00 01 20 .. 00 00 01 2F
_VOP_START = b"\x00\x00\x01\xb6"
_EXTENDED_PAR = 0xF
_GRAYSCALE_SHAPE = 3


class _Bits:
    """A big-endian bit reader that says when it runs past the end instead of inventing zeros."""

    def __init__(self, data: bytes) -> None:
        self.data, self.position = data, 0

    def read(self, count: int) -> int | None:
        """The next `count` bits as an integer, or None if the data ends first."""
        if self.position + count > 8 * len(self.data):
            return None
        value = 0
        for _ in range(count):
            byte = self.data[self.position >> 3]
            value = (value << 1) | ((byte >> (7 - (self.position & 7))) & 1)
            self.position += 1
        return value


def time_increment_bits(payload: bytes) -> int | None:
    """Bits of vop_time_increment, from the first VOL header in `payload` (None when there is none or it is cut)."""
    resolution = time_resolution(payload)
    return None if resolution is None else max(1, (resolution - 1).bit_length())


def time_resolution(payload: bytes) -> int | None:
    """vop_time_increment_resolution (ticks per second), from the first VOL header in `payload` (None when there is
    none or it is cut)."""
    offset = _find_vol(payload)
    if offset < 0:
        return None
    bits = _Bits(payload[offset + 4 :])
    fields = [bits.read(1), bits.read(8)]  # random_accessible_vol, video_object_type_indication
    verid = 1
    if bits.read(1):  # is_object_layer_identifier
        verid = bits.read(4) or 1
        bits.read(3)
    if bits.read(4) == _EXTENDED_PAR:
        bits.read(16)
    if bits.read(1):  # vol_control_parameters
        bits.read(3)  # chroma_format, low_delay
        if bits.read(1):  # vbv_parameters: 79 bits of rates, sizes and markers
            bits.read(79)
    shape = bits.read(2)
    if shape == _GRAYSCALE_SHAPE and verid != 1:
        bits.read(4)
    bits.read(1)  # marker
    resolution = bits.read(16)
    if None in fields or shape is None or not resolution:
        return None
    return resolution


def vop_time(vop: bytes, increment_bits: int) -> tuple[int, int] | None:
    """(seconds elapsed since the previous VOP's second, vop_time_increment) of `vop` from its start code on; None
    when the header is cut before them."""
    bits = _Bits(vop[4:])
    if bits.read(2) is None:  # vop_coding_type
        return None
    seconds = 0
    while (bit := bits.read(1)) == 1:  # modulo_time_base
        seconds += 1
    marker, increment = bits.read(1), bits.read(increment_bits)
    if bit is None or marker is None or increment is None:
        return None
    return seconds, increment


def uneven_step(times: list[tuple[int, int]], resolution: int) -> tuple[int, float] | None:
    """The first picture (its index, and its step in frame periods) whose vop_time_increment does not advance by the
    stream's usual step, in a stream without B-frames; None when every step is the same. Steps are taken modulo one
    second (`resolution` ticks), so the seconds of modulo_time_base and GOV time codes do not enter."""
    increments = [increment for _, increment in times]
    steps = [(b - a) % resolution for a, b in zip(increments, increments[1:])]
    if not steps:
        return None
    period = max(set(steps), key=steps.count)
    if period == 0:
        return None  # one picture a second (or slower): the increment cannot tell pictures apart
    for index, step in enumerate(steps, start=1):
        if step != period:
            return index, step / period
    return None


def vop_header_is_whole(vop: bytes, increment_bits: int) -> bool:
    """Whether `vop` (from its start code on) holds its whole header: through vop_coded, and for a coded VOP
    through its quantiser and motion ranges, with macroblock data after them (rectangular shape assumed)."""
    bits = _Bits(vop[4:])
    coding_type = bits.read(2)
    while True:  # modulo_time_base: one 1 per elapsed second, then a 0
        bit = bits.read(1)
        if bit != 1:
            break
    fields = [coding_type, bit, bits.read(1), bits.read(increment_bits), bits.read(1)]
    coded = bits.read(1)
    if None in fields or coded is None:
        return False
    if not coded:
        return True  # a not-coded VOP: its header ends here
    rest = (1 if coding_type in (1, 3) else 0) + 3 + 5 + (3 if coding_type != 0 else 0) + (3 if coding_type == 2 else 0)
    return bits.read(rest + 1) is not None  # rounding, intra_dc_vlc_thr, vop_quant, fcodes, then a macroblock


def last_vop(payload: bytes) -> bytes | None:
    """The last VOP of `payload`, from its start code to the end (None when it holds none). A start code with no
    byte after it is no VOP (the index does not count it either)."""
    offset = payload.rfind(_VOP_START)
    if offset >= 0 and offset + 4 >= len(payload):
        offset = payload.rfind(_VOP_START, 0, offset)
    return payload[offset:] if offset >= 0 else None


def _find_vol(payload: bytes) -> int:
    """Offset of the first VOL start code in `payload`, or -1."""
    offset = payload.find(b"\x00\x00\x01")
    while 0 <= offset < len(payload) - 3:
        if _VOL_START[0] <= payload[offset + 3] <= _VOL_START[1]:
            return offset
        offset = payload.find(b"\x00\x00\x01", offset + 3)
    return -1

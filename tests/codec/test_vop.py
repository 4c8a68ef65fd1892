"""Reading MPEG-4 Part 2 headers bit by bit: the VOL's time-increment length and whether a VOP header is whole."""

from __future__ import annotations

from clips import encode_with_pyav, pan
from hardening.mpeg4_bits import VOP_START, not_coded_vop, vop_starts

from cvkd.codec.vop import last_vop, time_increment_bits, vop_header_is_whole


def test_the_time_increment_length_comes_from_the_vol(tmp_path):
    """FFmpeg writes vop_time_increment_resolution = the rate's denominator: 25 needs 5 bits (16 < 25 <= 32), 1000
    needs 10 (512 < 1000 <= 1024)."""
    for fps, bits in ((25, 5), (1000, 10)):
        raw = encode_with_pyav(pan((32, 32), 2, (1, 0)), tmp_path / f"{fps}.m4v", container_format="m4v", fps=fps)
        assert time_increment_bits(raw.read_bytes()) == bits
    assert time_increment_bits(b"\x00\x00\x01\xb6\x40") is None  # no VOL at all


def test_a_not_coded_vop_is_whole_down_to_its_last_header_bit():
    """An N-VOP with 5 increment bits: 2 + 1 + 1 + 5 + 1 + 1 = 11 header bits, so 2 bytes after the start code."""
    vop = not_coded_vop(7, 5)
    assert len(vop) == 6 and vop_header_is_whole(vop, 5)
    assert not vop_header_is_whole(vop[:5], 5)  # 8 bits: the increment's last bit, a marker and vop_coded missing


def test_a_coded_vop_cut_after_one_byte_is_not_whole(tmp_path):
    data = encode_with_pyav(pan((32, 32), 3, (1, 0)), tmp_path / "c.m4v", container_format="m4v").read_bytes()
    starts = vop_starts(data)
    p_vop = data[starts[1] : starts[2]]
    assert vop_header_is_whole(p_vop, 5)
    for cut in (5, 6):  # P-VOP: 11 bits to vop_coded, then rounding, dc threshold, quantiser, fcode: 23 bits + data
        assert not vop_header_is_whole(p_vop[:cut], 5)


def test_the_last_vop_ignores_a_start_code_with_nothing_after_it():
    assert last_vop(b"junk" + VOP_START + b"\x40\x01" + VOP_START) == VOP_START + b"\x40\x01" + VOP_START
    assert last_vop(b"no vop here") is None

"""benchmarks/check_native.py, the real-footage check of the native reader, on a B-frame clip encoded on the fly."""

from __future__ import annotations

import pytest
from benchmark_scripts import load_benchmark
from clips import encode_x264, moving_square


@pytest.fixture(scope="module")
def check_native():
    return load_benchmark("check_native")


@pytest.fixture
def clip(tmp_path, monkeypatch):
    monkeypatch.setenv("CVKD_CACHE_DIR", str(tmp_path / "cache"))
    frames = moving_square((128, 96), 24, (2, -1), (16, 60), 32)
    return encode_x264(frames, tmp_path / "b3.mp4", b_frames=3, ref=3, b_pyramid=True)


def test_a_b_frame_clip_with_three_references_passes_every_check(check_native, clip, capsys):
    assert check_native.check_file(str(clip), 300)
    out = capsys.readouterr().out
    assert "4 reference(s)" in out and "verdict          pass" in out  # x264 keeps one more for the B-pyramid
    assert "24/24 equal the same frame of the independent decode" in out


def test_a_frame_read_in_another_frames_place_fails_the_check(check_native, clip, capsys, monkeypatch):
    decode = check_native.exported_vectors

    def swapped(path, frames):  # as if the reader had returned frame 6 where frame 5 belongs
        vectors, types, digests = decode(path, frames)
        digests[5], digests[6] = digests[6], digests[5]
        return vectors, types, digests

    monkeypatch.setattr(check_native, "exported_vectors", swapped)
    assert not check_native.check_file(str(clip), 300)
    out = capsys.readouterr().out
    assert "22/24 equal the same frame" in out and "verdict          FAIL" in out

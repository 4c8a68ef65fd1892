"""The reader returns frame i only when it is frame i: a sample table whose timestamps repeat (stts delta 0), a raw
H.264 stream whose head is damaged, and a raw MPEG-4 stream that lost a picture are each one VideoError line, where
they used to return another frame's picture with exit 0; a display rotation is reported, not silently ignored."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import av
import pytest
from clips import encode, encode_with_pyav, pan

from cvkd.cli import main
from cvkd.codec.index import scan_video
from cvkd.codec.reader import CompressedVideo
from cvkd.errors import VideoError
from cvkd.inference.predictor import Prediction

FRAMES = 36


@pytest.fixture(scope="module")
def clean_mp4(tmp_path_factory) -> Path:
    return encode(pan((64, 48), FRAMES, (1, 0)), tmp_path_factory.mktemp("clean") / "clean.mp4")


def zero_stts_deltas(data: bytes) -> bytes:
    """Every `stts` entry's sample delta set to 0: all samples share one timestamp."""
    out = bytearray(data)
    box = out.find(b"stts")
    entries = struct.unpack(">I", out[box + 8:box + 12])[0]
    for entry in range(entries):
        out[box + 16 + 8 * entry:box + 20 + 8 * entry] = b"\0\0\0\0"
    return bytes(out)


def test_repeated_timestamps_are_refused_instead_of_returning_another_gops_picture(clean_mp4, tmp_path):
    assert scan_video(clean_mp4).gop_starts == (0, 12, 24)  # the control reads
    broken = tmp_path / "stts0.mp4"
    broken.write_bytes(zero_stts_deltas(clean_mp4.read_bytes()))
    with pytest.raises(VideoError, match="the container.s timestamps repeat"):  # the order check, or the seek check
        scan_video(broken)


def test_a_raw_h264_stream_with_a_damaged_head_is_refused(tmp_path):
    options = {"x264-params": "keyint=12:min-keyint=12:scenecut=0:bframes=0", "crf": "4"}
    clean = encode_with_pyav(pan((64, 48), FRAMES, (1, 0)), tmp_path / "clean.h264", codec="libx264",
                             container_format="h264", gop=12, options=options)
    assert scan_video(clean).num_frames == FRAMES
    data = clean.read_bytes()
    damaged = tmp_path / "head.h264"
    damaged.write_bytes(b"\0" * 768 + data[768:])  # the first GOP's parameter sets and IDR are gone
    with pytest.raises(VideoError, match=r"packets hold \d+ pictures, so a picture cannot be found by counting"):
        scan_video(damaged)


def test_a_raw_mpeg4_stream_that_lost_a_picture_is_refused(tmp_path):
    clean = encode_with_pyav(pan((64, 48), FRAMES, (1, 0)), tmp_path / "clean.m4v", codec="mpeg4",
                             container_format="m4v", gop=12, options={"qscale": "2"})
    reader = CompressedVideo(clean)
    assert reader.num_frames == FRAMES
    data = clean.read_bytes()
    vops = [i for i in range(len(data) - 3) if data[i:i + 4] == b"\x00\x00\x01\xb6"]
    assert len(vops) == FRAMES
    lost = tmp_path / "lost.m4v"
    lost.write_bytes(data[:vops[17]] + data[vops[18]:])  # picture 17 (a P-VOP) cut out: 18.. would shift by one
    with pytest.raises(VideoError, match="picture 17 comes 2 frame periods after the one before"):
        scan_video(lost)


def test_a_display_rotation_is_reported_by_info_and_predict(tmp_path, capsys):
    path = tmp_path / "rotated.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.set_display_rotation(90)
        for image in pan((64, 48), 12, (1, 0)):
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    assert scan_video(path).rotation == 90
    assert main(["info", str(path)]) == 0
    assert "rotation     90 degrees (display matrix); cvkd reads the frames as stored, unrotated" in \
        capsys.readouterr().out
    assert main(["info", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rotation"] == 90
    assert scan_video(encode(pan((64, 48), 12, (1, 0)), tmp_path / "upright.mp4")).rotation == 0
    prediction = Prediction(str(path), (), 0.1, rotation=90)
    assert prediction.rotation_warning.endswith("rotates it 90 degrees; the model saw the frames as stored, unrotated")
    assert Prediction(str(path), (), 0.1).rotation_warning is None

"""Smaller hardening items of issue 15: each a one-line refusal instead of a silent side effect."""

from __future__ import annotations

import json
import os
from pathlib import Path

import av
import pytest
from clips import encode_with_pyav, pan
from hardening.mpeg4_bits import pack_b_frames

from cvkd.cli import main
from cvkd.codec.encode import EncodeSettings, reencode
from cvkd.codec.reader import CompressedVideo
from cvkd.engine.train import train
from cvkd.errors import ConfigError, UnsupportedVideoError, VideoError
from cvkd.runs.schema import RunConfig


def test_export_of_a_folder_that_is_no_run_makes_no_output_folder(tmp_path, capsys):
    target = tmp_path / "no_such_dir" / "m.onnx"  # export creates its folder, but only for a run it can export
    code = main(["export", str(tmp_path), "--onnx", str(target)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "holds no finished checkpoint" in err, err
    assert not target.parent.exists()


def _info_error(capsys, path: Path) -> str:
    code = main(["info", str(path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and path.name in err, err
    return err


def test_a_fifo_is_not_a_regular_file_and_nothing_blocks_on_it(tmp_path, capsys):
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)  # opening it for reading would block until a writer comes: the check comes first
    assert _info_error(capsys, fifo).endswith("not a regular file (a fifo)")
    with pytest.raises(VideoError, match=r"pipe.mp4: not a regular file \(a fifo\)$"):
        reencode(fifo, tmp_path / "out.mp4")


def test_a_symbolic_link_loop_has_one_message_everywhere(tmp_path, capsys):
    loop = tmp_path / "loop.mp4"
    loop.symlink_to(loop)
    assert _info_error(capsys, loop).endswith("loop.mp4: symbolic link loop")
    with pytest.raises(VideoError, match=r"loop.mp4: symbolic link loop$"):
        reencode(loop, tmp_path / "out.mp4")
    assert main(["reencode", str(loop), "--out", str(tmp_path / "out"), "--workers", "1"]) == 1
    assert capsys.readouterr().err.strip().endswith("loop.mp4: symbolic link loop")


def test_a_packed_b_frame_avi_counts_the_frames_decoding_gives(tmp_path, capsys):
    """DivX's packed layout (a B-frame inside its reference's chunk, an N-VOP in its slot) holds more VOP headers
    than pictures: the index counts what decodes."""
    source = encode_with_pyav(pan((64, 48), 25, (1, 0)), tmp_path / "b.avi", container_format="avi", gop=12,
                              b_frames=2)
    chunks, vops = pack_b_frames(source, tmp_path / "packed.avi")
    with av.open(str(tmp_path / "packed.avi")) as container:
        decoded = sum(1 for _ in container.decode(video=0))
    assert (chunks, vops, decoded) == (25, 33, 25)  # 8 B-runs: each adds its packed B-frame and its N-VOP
    assert main(["info", "--json", str(tmp_path / "packed.avi")]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["frames"] == 25 and shown["pict_types"].count("B") == 16
    assert shown["read"].startswith("not natively: mpeg4 B-frames")


def test_a_cinepak_avi_is_described_as_a_codec_to_re_encode(tmp_path, capsys):
    """Cinepak frames carry no picture type: key frames are I, the others '?', and info says it is re-encoded."""
    path = encode_with_pyav(pan((64, 48), 13, (1, 0)), tmp_path / "cine.avi", codec="cinepak",
                            container_format="avi", pix_fmt="rgb24", gop=6)
    assert main(["info", "--json", str(path)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["frames"] == 13 and shown["pict_types"] == "I" + "?" * 12
    assert shown["read"].startswith("not natively: codec cinepak exports no motion vectors; re-encode it")
    with pytest.raises(UnsupportedVideoError, match="cinepak"):
        CompressedVideo(path)
    assert reencode(path, tmp_path / "cine.mp4", EncodeSettings(gop=6, width=64, height=48)) == 13


def test_train_validates_a_config_built_in_python(tmp_path):
    """API callers get the same one-line ConfigError as the command line, before any data is read."""
    config = RunConfig()
    config.optim.epochs = 0
    config.data.root = str(tmp_path / "no_such_dataset")
    with pytest.raises(ConfigError) as caught:
        train(config, progress=False)
    assert str(caught.value).startswith("optim.epochs:") and len(str(caught.value).splitlines()) == 1

"""`cvkd prepare` on tiny trees: re-encoding, lists, corrupt and missing videos, resuming."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clips import encode, pan

from cvkd.cli import main
from cvkd.codec.reader import CompressedVideo
from cvkd.data.lists import VideoList


def source_clip(path: Path, frames: int = 9, velocity: tuple[int, int] = (1, 0)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return encode(pan((48, 32), frames, velocity), path, gop=50)


@pytest.fixture
def folder(tmp_path) -> Path:
    """root/{train,test}/<class>/<video>, with one corrupt training video."""
    root = tmp_path / "source"
    source_clip(root / "train" / "run" / "r1.mp4")
    source_clip(root / "train" / "walk" / "w1.mov", velocity=(0, 1))
    source_clip(root / "test" / "run" / "r2.mp4", frames=7)
    source_clip(root / "test" / "walk" / "w2.mp4", frames=8, velocity=(0, 1))
    (root / "train" / "walk" / "bad.avi").write_bytes(b"RIFF" + bytes(range(256)) * 8)
    return root


def prepare(*args: str) -> int:
    return main(["prepare", *map(str, args)])


def test_folder_prepare_excludes_corrupt_videos_and_resumes(folder, tmp_path, capsys):
    out = tmp_path / "prepared"
    assert prepare("folder", folder, "--out", out, "--size", "32x16", "--gop", "4", "--workers", "2") == 0
    assert (out / "classes.txt").read_text() == "run\nwalk\n"
    assert (out / "train.csv").read_text() == "path,label\nvideos/train/run/r1.mp4,0\nvideos/train/walk/w1.mp4,1\n"
    assert (out / "test.csv").read_text() == "path,label\nvideos/test/run/r2.mp4,0\nvideos/test/walk/w2.mp4,1\n"
    assert not (out / "val.csv").exists()
    report = json.loads((out / "prepare_report.json").read_text())
    assert report["counts"] == {
        "listed": 5, "missing": 0, "failed": 1, "encoded": 4, "already_encoded": 0, "train": 2, "test": 2
    }
    assert [f["video"] for f in report["failures"]] == ["train/walk/bad.avi"] and report["failures"][0]["reason"]
    assert "bad.avi" in capsys.readouterr().err

    test = VideoList.cvkd_dataset(out, "test")
    video = CompressedVideo(test.path(0))
    assert (video.width, video.height, video.num_frames, video.gop_starts) == (32, 16, 7, (0, 4))

    outputs = sorted((out / "videos").rglob("*.mp4"))
    stamps = [p.stat().st_mtime_ns for p in outputs]
    assert prepare("folder", folder, "--out", out, "--size", "32x16", "--gop", "4", "--workers", "1") == 0
    assert [p.stat().st_mtime_ns for p in outputs] == stamps
    counts = json.loads((out / "prepare_report.json").read_text())["counts"]
    assert (counts["encoded"], counts["already_encoded"], counts["failed"]) == (0, 4, 1)


def test_folder_without_splits_holds_out_test_and_val(tmp_path):
    root = tmp_path / "flat"
    for name in ("a", "b", "c", "d"):
        source_clip(root / "jump" / f"{name}.mp4", frames=3)
    out = tmp_path / "prepared"
    args = ("folder", root, "--out", out, "--size", "16x16", "--test-fraction", "0.25", "--val-fraction", "0.34")
    assert prepare(*args, "--workers", "1") == 0
    subsets = {s: VideoList.cvkd_dataset(out, s).items for s in ("train", "val", "test")}
    assert [len(items) for items in subsets.values()] == [2, 1, 1]
    assert len({p for items in subsets.values() for p, _ in items}) == 4


@pytest.fixture
def ucf(tmp_path) -> Path:
    """UCF-101-shaped: two classes, one listed test video absent on disk."""
    notes = tmp_path / "ucfTrainTestlist"
    notes.mkdir()
    (notes / "classInd.txt").write_text("1 Archery\n2 YoYo\n")
    (notes / "trainlist01.txt").write_text("Archery/v_Archery_g08_c01.avi 1\nYoYo/v_YoYo_g08_c01.avi 2\n")
    (notes / "testlist01.txt").write_text(
        "Archery/v_Archery_g01_c01.avi\nYoYo/v_YoYo_g01_c01.avi\nYoYo/v_YoYo_g02_c01.avi\n"
    )
    root = tmp_path / "UCF-101"
    for name in ("Archery/v_Archery_g08_c01.avi", "YoYo/v_YoYo_g08_c01.avi", "Archery/v_Archery_g01_c01.avi"):
        source_clip(root / name, frames=4)
    return root


def test_ucf101_prepare_lists_missing_videos_at_once(ucf, tmp_path, capsys):
    out = tmp_path / "prepared"
    assert prepare("ucf101", ucf, "--out", out, "--size", "16x16", "--workers", "1") == 0
    err = capsys.readouterr().err
    assert "2 listed videos are missing" in err
    assert "v_YoYo_g01_c01.avi" in err and "v_YoYo_g02_c01.avi" in err
    assert VideoList.cvkd_dataset(out, "train").items == (
        ("videos/Archery/v_Archery_g08_c01.mp4", 0), ("videos/YoYo/v_YoYo_g08_c01.mp4", 1)
    )
    assert VideoList.cvkd_dataset(out, "test").items == (("videos/Archery/v_Archery_g01_c01.mp4", 0),)
    report = json.loads((out / "prepare_report.json").read_text())
    assert report["missing"] == ["YoYo/v_YoYo_g01_c01.avi", "YoYo/v_YoYo_g02_c01.avi"]


def test_bad_options_fail_in_one_line(ucf, tmp_path, capsys):
    assert prepare("ucf101", ucf, "--out", tmp_path / "o", "--size", "17x16") == 2
    assert prepare("hmdb51", ucf, "--out", tmp_path / "o") == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and "size" in lines[0] and "_test_split1.txt" in lines[1]

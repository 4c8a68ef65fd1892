"""`cvkd prepare --shard K/N`: each share encodes its videos only; the share that finds all markers writes lists
equal to an unsharded preparation's."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from clips import encode, pan

from cvkd.cli import main
from cvkd.data.lists import PREPARE_REPORT_FILE
from cvkd.data.prepare import SHARDS_DIR, VIDEOS_DIR

GOOD = ("train/run/r1.mp4", "train/run/r2.mp4", "train/walk/w1.mp4", "train/walk/w2.mp4",
        "test/run/r3.mp4", "test/walk/w3.mp4")
BAD = "train/walk/bad.avi"
LISTS = ("classes.txt", "train.csv", "test.csv")


def by_hand(relative: str, n: int) -> int:
    """The documented rule recomputed another way: first 16 hex digits of SHA-256, mod n, plus 1."""
    return int(hashlib.sha256(relative.encode("utf-8")).hexdigest()[:16], 16) % n + 1


@pytest.fixture
def source(tmp_path) -> Path:
    """root/{train,test}/<class>/<video>: six clips and one corrupt file."""
    root = tmp_path / "source"
    for name in GOOD:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        encode(pan((32, 32), 3, (1, 0)), root / name, gop=50)
    (root / BAD).write_bytes(b"RIFF" + bytes(range(256)) * 8)
    return root


def prepare(root: Path, out: Path, *extra: str) -> int:
    return main(["prepare", "folder", str(root), "--out", str(out), "--size", "16x16", "--gop", "2",
                 "--workers", "1", *extra])


def videos(out: Path) -> set[str]:
    folder = out / VIDEOS_DIR
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} if folder.exists() else set()


def test_last_share_writes_the_lists_of_an_unsharded_run(source, tmp_path, capsys):
    shares = {name: by_hand(name, 3) for name in GOOD}
    assert set(shares.values()) == {1, 2, 3}
    whole, sharded = tmp_path / "whole", tmp_path / "sharded"
    assert prepare(source, whole) == 0
    capsys.readouterr()
    order = (3, 1, 2)  # any order: the last to finish writes the lists
    for step, k in enumerate(order):
        before = videos(sharded)
        assert prepare(source, sharded, "--shard", f"{k}/3") == 0
        printed = capsys.readouterr()
        assert videos(sharded) - before == {name for name, share in shares.items() if share == k}
        assert ("bad.avi" in printed.err) == (by_hand(BAD, 3) == k)  # each share reports its own failures
        if step < 2:
            waiting = ", ".join(str(j) for j in sorted(order[step + 1:]))
            assert f"lists written once share(s) {waiting} of 3 finish" in printed.out
            assert not any((sharded / name).exists() for name in LISTS + (PREPARE_REPORT_FILE,))
    assert videos(sharded) == set(GOOD) == videos(whole)
    for name in LISTS:
        assert (sharded / name).read_text() == (whole / name).read_text(), name
    report = json.loads((sharded / PREPARE_REPORT_FILE).read_text())
    assert report["shards"] == 3
    assert report["counts"] == {**json.loads((whole / PREPARE_REPORT_FILE).read_text())["counts"]}
    assert [f["video"] for f in report["failures"]] == [BAD]
    assert sorted(p.name for p in (sharded / SHARDS_DIR).iterdir()) == ["1-of-3.json", "2-of-3.json", "3-of-3.json"]


def test_markers_of_another_listing_do_not_count(source, tmp_path, capsys):
    out = tmp_path / "out"
    for k in (1, 2):
        assert prepare(source, out, "--shard", f"{k}/2") == 0
    assert (out / "train.csv").exists()
    (out / "train.csv").unlink()
    encode(pan((32, 32), 3, (0, 1)), source / "train" / "run" / "r9.mp4", gop=50)  # the listing grows
    assert prepare(source, out, "--shard", "1/2") == 0  # share 2's marker is for the old listing
    assert "once share(s) 2 of 2 finish" in capsys.readouterr().out and not (out / "train.csv").exists()
    assert prepare(source, out, "--shard", "2/2") == 0
    assert "videos/train/run/r9.mp4" in (out / "train.csv").read_text()


def test_a_finished_share_whose_video_vanished_is_named(source, tmp_path, capsys):
    out = tmp_path / "out"
    assert prepare(source, out, "--shard", "1/2") == 0
    victim = next(name for name in GOOD if by_hand(name, 2) == 1)
    (out / VIDEOS_DIR / victim).unlink()
    assert prepare(source, out, "--shard", "2/2") == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and victim in errors[0] and "share 1/2" in errors[0], errors


@pytest.mark.parametrize("text", ["0/3", "4/3", "a/b"])
def test_bad_shard_is_one_line_exit_2(source, tmp_path, capsys, text):
    assert prepare(source, tmp_path / "o", "--shard", text) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--shard" in err

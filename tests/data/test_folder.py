"""The dataset folder: split lists and a digest that tells two folders with the same data."""

from __future__ import annotations

import hashlib
import shutil

import pytest

from cvkd.data.folder import dataset_digest, dataset_split
from cvkd.errors import DatasetError


def _folder(root, video_bytes: bytes = b"abc"):
    (root / "videos" / "a").mkdir(parents=True)
    (root / "videos" / "a" / "x.mp4").write_bytes(video_bytes)
    (root / "classes.txt").write_text("a\n")
    (root / "train.csv").write_text("path,label\nvideos/a/x.mp4,0\n")
    return root


def test_digest_is_sha256_of_lists_then_videos_in_sorted_order(tmp_path):
    root = _folder(tmp_path / "d")
    expected = hashlib.sha256()
    expected.update(b"classes.txt\0a\n")
    expected.update(b"train.csv\0path,label\nvideos/a/x.mp4,0\n")
    expected.update(b"videos/a/x.mp4\0abc")
    assert dataset_digest(root) == expected.hexdigest()


def test_digest_equal_for_copies_and_changes_with_one_byte(tmp_path):
    root = _folder(tmp_path / "d")
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    assert dataset_digest(copy) == dataset_digest(root)
    (copy / "videos" / "a" / "x.mp4").write_bytes(b"abd")
    assert dataset_digest(copy) != dataset_digest(root)


def test_split_lists_and_missing_split(tmp_path):
    root = _folder(tmp_path / "d")
    assert dataset_split(root, "train").items == (("videos/a/x.mp4", 0),)
    assert dataset_split(root, "test") is None
    with pytest.raises(DatasetError, match="no classes.txt"):
        dataset_split(tmp_path, "train")

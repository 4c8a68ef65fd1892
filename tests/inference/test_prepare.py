"""Collecting videos from the command line, and the cached on-the-fly re-encoding."""

from __future__ import annotations

import os

import pytest

from cvkd.codec.encode import EncodeSettings
from cvkd.codec.reader import CompressedVideo
from cvkd.errors import VideoError
from cvkd.inference.prepare import cached_reencode_path, collect_videos, prepare_video, reencode_cache_dir

SETTINGS = EncodeSettings(gop=5, width=48, height=32, q=2)


def test_folders_expand_recursively_to_video_files_and_files_are_kept_as_given(tmp_path):
    (tmp_path / "a" / "deep").mkdir(parents=True)
    for name in ("a/z.mp4", "a/deep/b.AVI", "a/notes.txt", "a/.hidden.mp4", "single.bin"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "empty").mkdir()
    collected = collect_videos([tmp_path / "a", tmp_path / "single.bin", tmp_path / "missing.mp4", tmp_path / "empty"])
    assert collected.videos == [tmp_path / "a/deep/b.AVI", tmp_path / "a/z.mp4", tmp_path / "single.bin",
                                tmp_path / "missing.mp4"]
    assert [str(p) for p in collected.problems] == [f"{tmp_path / 'empty'}: folder holds no video files"]


def test_reencode_is_cached_under_cvkd_cache_dir_and_reused(tmp_path, make_source_clip):
    source = make_source_clip(tmp_path / "clip.avi", "msmpeg4", frames=12)
    first = prepare_video(source, SETTINGS)
    assert first.parent == tmp_path / "cache" / "reencoded" == reencode_cache_dir()
    video = CompressedVideo(first)
    assert (video.width, video.height, video.num_frames, video.gop_starts) == (48, 32, 12, (0, 5, 10))
    stamp = first.stat().st_mtime_ns
    assert prepare_video(source, SETTINGS) == first
    assert first.stat().st_mtime_ns == stamp  # not written again
    assert os.listdir(first.parent) == [first.name]  # no temporary files left behind


def test_cache_key_follows_the_settings_and_the_source_content(tmp_path, make_source_clip):
    source = make_source_clip(tmp_path / "clip.mp4", "h264", frames=6)
    key = cached_reencode_path(source, SETTINGS)
    assert cached_reencode_path(source, EncodeSettings(gop=5, width=48, height=32, q=3)) != key
    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the file changed
    assert cached_reencode_path(source, SETTINGS) != key
    copy = tmp_path / "other" / "clip.mp4"
    copy.parent.mkdir()
    copy.write_bytes(source.read_bytes())
    assert cached_reencode_path(copy, SETTINGS) != cached_reencode_path(source, SETTINGS)


def test_unreadable_sources_raise_one_line_video_errors(tmp_path):
    with pytest.raises(VideoError, match=r"missing\.mp4: no such file$"):
        prepare_video(tmp_path / "missing.mp4", SETTINGS)
    garbage = tmp_path / "garbage.avi"
    garbage.write_bytes(b"RIFF" + bytes(range(256)) * 4)
    with pytest.raises(VideoError, match=r"garbage\.avi: ") as raised:
        prepare_video(garbage, SETTINGS)
    assert "\n" not in str(raised.value)
    cached = list(reencode_cache_dir().iterdir()) if reencode_cache_dir().exists() else []
    assert cached == []  # nothing half-written left in the cache

"""An error raised inside a data-loader worker reaches the user as its original one-line message naming the video,
not as PyTorch's "Caught VideoError in DataLoader worker process 0" with the worker's traceback."""

from __future__ import annotations

import pytest

from cvkd.data.datasets import CompressedVideoDataset, make_loader
from cvkd.data.lists import VideoList
from cvkd.errors import DatasetError, VideoError, from_worker


def test_the_worker_wrapper_is_undone():
    wrapped = ("Caught VideoError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
               '  File "x.py", line 1, in f\n    raise VideoError(p, "no such file")\n'
               "cvkd.errors.VideoError: /data/a.mp4: no such file\n")
    assert from_worker(wrapped) == "/data/a.mp4: no such file"
    error = VideoError(wrapped)  # how PyTorch rebuilds it: the type called with the wrapped text alone
    assert str(error) == "/data/a.mp4: no such file" and error.path == "/data/a.mp4" and error.problem == "no such file"
    assert str(DatasetError(wrapped.replace("VideoError", "DatasetError"))) == "/data/a.mp4: no such file"
    assert from_worker("plain message") == "plain message"


def test_a_missing_video_read_by_a_worker_is_one_line_naming_it(tmp_path):
    (tmp_path / "a").mkdir()
    videos = VideoList(tmp_path, (("a/missing.mp4", 0),), ("a",))
    dataset = CompressedVideoDataset(videos, ("iframe",), 1, train=False, crop_size=32)
    loader = make_loader(dataset, 1, shuffle=False, workers=1)
    with pytest.raises(VideoError) as caught:
        next(iter(loader))
    message = str(caught.value)
    assert len(message.splitlines()) == 1 and message.startswith(str(tmp_path / "a" / "missing.mp4"))
    assert "Caught" not in message and "Traceback" not in message

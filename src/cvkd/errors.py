"""The error types cvkd raises for bad input: each renders as one line naming the file and the problem."""

from __future__ import annotations

import os


_WORKER_PREFIX = "Caught "
_WORKER_MARK = "Original Traceback"


def from_worker(text: str) -> str:
    """The original one-line message of an error that a DataLoader worker raised: PyTorch re-raises it in the main
    process as `Type("Caught Type in DataLoader worker process 0. Original Traceback ...")`, whose last line is
    `module.Type: message`. Any other text is returned as it is."""
    if not (text.startswith(_WORKER_PREFIX) and _WORKER_MARK in text):
        return text
    last = [line for line in text.splitlines() if line.strip()][-1].strip()
    name, separator, message = last.partition(": ")
    return message if separator and name.replace(".", "").replace("_", "").isalnum() else last


class CvkdError(Exception):
    """Base of every error cvkd raises on purpose; the CLI prints it as one line and exits with code 2. Raised in a
    data-loader worker, it reaches the main process as the same type with its original one-line message."""

    def __init__(self, *args: object) -> None:
        if len(args) == 1 and isinstance(args[0], str):
            args = (from_worker(args[0]),)
        super().__init__(*args)


class _PathError(CvkdError):
    """An error about one file: `path: problem`."""

    def __init__(self, path: str | os.PathLike, problem: str | None = None) -> None:
        if problem is None:  # re-raised from a data-loader worker with its whole message as the only argument
            message = from_worker(os.fspath(path))
            self.path, _, self.problem = message.partition(": ")
            super().__init__(message)
            return
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class VideoError(_PathError):
    """A video cannot be read, decoded or indexed."""


class FrameIndexError(VideoError, IndexError):
    """A frame index lies outside the video."""


class UnsupportedVideoError(VideoError):
    """The video decodes but cannot be used as-is (B-frames, no motion vectors, ...)."""


class ConfigError(CvkdError):
    """A configuration file or override is invalid."""


class DatasetError(CvkdError):
    """A dataset list, split file or folder is invalid."""


class CheckpointError(CvkdError):
    """A checkpoint is missing, incomplete or belongs to another model."""


class StaleCacheError(CheckpointError):
    """A teacher cache is sound but was built for other teachers or views."""


class ScoreFileError(_PathError):
    """A score file is missing, unreadable or holds arrays of the wrong shape."""


class ScoreMismatchError(CvkdError):
    """Score sets that must be compared or fused disagree (classes, labels or videos)."""


class TrainingError(CvkdError):
    """A training run cannot go on (e.g. its loss is no longer a finite number)."""


class ModelFileError(CvkdError):
    """An exported (ONNX) model is missing, unreadable, not cvkd's, or fails its parity check."""


class OutputError(CvkdError):
    """An output file cannot be written (full disk, no permission, ...)."""


class MissingDependencyError(CvkdError):
    """An optional dependency a command needs is not installed."""


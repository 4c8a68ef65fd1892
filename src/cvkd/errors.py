"""The error types cvkd raises for bad input: each renders as one line naming the file and the problem."""

from __future__ import annotations

import os


class CvkdError(Exception):
    """Base of every error cvkd raises on purpose; the CLI prints it as one line and exits with code 2."""


class VideoError(CvkdError):
    """A video cannot be read, decoded or indexed."""

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


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


class ScoreFileError(CvkdError):
    """A score file is missing, unreadable or holds arrays of the wrong shape."""

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


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


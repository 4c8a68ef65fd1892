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

"""Checkpoints: written atomically, found in a run folder, read without executing code (weights-only)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from cvkd.errors import CheckpointError
from cvkd.fileio import atomic_path, remove_leftovers
from cvkd.models.weights import load_weights_only

FORMAT = "cvkd-checkpoint-1"
LAST, BEST = "last.pt", "best.pt"


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Write `state` (tensors, numbers, strings, lists, dicts) atomically: a crash never leaves a half-written file.

    A full disk (or any refused write) raises a one-line CheckpointError and leaves the previous file intact.
    """
    save_tensors_atomic({"format": FORMAT, **state}, path)


def save_tensors_atomic(payload: dict[str, Any], path: str | os.PathLike) -> None:
    """`torch.save` to `path` atomically; a write the storage refuses becomes a one-line CheckpointError.

    Temporary files that killed earlier saves of `path` left behind are deleted first (one process writes a run).
    """
    remove_leftovers(path)
    with atomic_path(path, error=CheckpointError) as tmp, open(tmp, "wb") as handle:
        recorder = _WriteRecorder(handle)
        try:
            torch.save(payload, recorder)
        except RuntimeError:
            if recorder.error is not None:  # torch reports a failed write as a RuntimeError: surface the OSError
                raise recorder.error from None
            raise


class _WriteRecorder:
    """A binary file wrapper that remembers the OSError of a failed write."""

    def __init__(self, handle) -> None:
        self.handle = handle
        self.error: OSError | None = None

    def write(self, data) -> int:
        try:
            return self.handle.write(data)
        except OSError as error:
            self.error = error
            raise

    def flush(self) -> None:
        self.handle.flush()


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a cvkd checkpoint with `weights_only=True` (no code from the file runs)."""
    state = load_weights_only(path, "checkpoint", map_location)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a cvkd checkpoint")
    return state


def resolve_checkpoint(run_or_file: str | os.PathLike, prefer: str = BEST) -> Path:
    """Return the checkpoint a path names: the file itself, or a run folder's best (else last) checkpoint."""
    path = Path(run_or_file)
    if path.is_dir():
        for name in (prefer, LAST, BEST):
            if (path / name).is_file():
                return path / name
        raise CheckpointError(f"{path}: run folder holds no finished checkpoint ({BEST} or {LAST})")
    if not path.exists():
        raise CheckpointError(f"{path}: no such run folder or checkpoint")
    return path

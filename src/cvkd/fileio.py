"""Atomic file writes: a reader never sees a half-written file, a failed write leaves the old one intact."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `final`; on success it is fsynced and renamed onto `final`."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    suffix = final.suffix if suffix is None else suffix
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=f".tmp{suffix}", dir=final.parent)
    os.fchmod(fd, 0o666 & ~_current_umask())  # mkstemp makes 0600 files; give the usual permissions
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def cache_root() -> Path:
    """Root of cvkd's caches (video indexes, re-encoded copies): $CVKD_CACHE_DIR, else ~/.cache/cvkd."""
    return Path(os.environ.get("CVKD_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "cvkd"))


def _current_umask() -> int:
    """The process umask (reading it means setting it, so set it straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(final: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `final` atomically."""
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(final: str | os.PathLike, text: str) -> None:
    """Write `text` (UTF-8) to `final` atomically."""
    atomic_write_bytes(final, text.encode("utf-8"))


def atomic_write_json(final: str | os.PathLike, payload: Any) -> None:
    """Write `payload` as indented JSON to `final` atomically."""
    atomic_write_text(final, json.dumps(payload, indent=2, sort_keys=True) + "\n")

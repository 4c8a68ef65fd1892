"""Atomic file writes: a reader never sees a half-written file, a failed write leaves the old one intact."""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from cvkd.errors import CvkdError, OutputError


# Write failures caused by the storage rather than by the data: disk full, quota, file size limit, read-only, I/O.
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO})
NAME_MAX = 255  # bytes in one file name on common file systems (ext4, XFS, Btrfs, APFS)
_RANDOM_PART = 8  # the characters mkstemp puts between prefix and suffix


def temporary_prefix(final: Path, suffix: str) -> str:
    """The hidden prefix of `final`'s temporary files: `.{stem}.`, or `.cvkd-{hash}.` when `.{stem}.XXXXXXXX.tmp{suffix}`
    would not fit in NAME_MAX bytes (a file name near the limit)."""
    prefix = f".{final.stem}."
    if len(prefix.encode("utf-8")) + _RANDOM_PART + len(f".tmp{suffix}".encode("utf-8")) <= NAME_MAX:
        return prefix
    return f".cvkd-{hashlib.sha256(final.name.encode('utf-8')).hexdigest()[:16]}."


@contextlib.contextmanager
def atomic_path(
    final: str | os.PathLike, suffix: str | None = None, error: Callable[[str], CvkdError] = CvkdError
) -> Iterator[Path]:
    """Yield a temporary path beside `final`; on success it is fsynced and renamed onto `final`.

    On any failure `final` is left as it was and the temporary file is removed. When the storage refuses the write
    (an OSError with an errno in STORAGE_ERRNOS, or any OSError creating the temporary file) the failure is raised as
    `error(one line naming final, the reason and that the previous file is intact)`.
    """
    final = Path(final)
    suffix = final.suffix if suffix is None else suffix
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=temporary_prefix(final, suffix), suffix=f".tmp{suffix}", dir=final.parent)
    except OSError as problem:
        raise error(write_failure(final, problem)) from None
    os.fchmod(fd, 0o666 & ~_current_umask())  # mkstemp makes 0600 files; give the usual permissions
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, final)
        _fsync_directory(final.parent)
    except OSError as problem:
        if problem.errno not in STORAGE_ERRNOS:
            raise
        raise error(write_failure(final, problem)) from None
    finally:
        tmp.unlink(missing_ok=True)


def remove_leftovers(final: str | os.PathLike, suffix: str | None = None) -> int:
    """Delete the temporary files killed atomic writes of `final` left beside it; return how many.

    Only for files a single process writes (a run's checkpoints): another process's write in progress would go too.
    """
    final = Path(final)
    suffix = final.suffix if suffix is None else suffix
    prefix = temporary_prefix(final, suffix)
    pattern = re.compile(rf"{re.escape(prefix)}[a-z0-9_]{{{_RANDOM_PART}}}\.tmp{re.escape(suffix)}")
    removed = 0
    for candidate in final.parent.glob(f"{glob.escape(prefix)}*.tmp*"):
        if pattern.fullmatch(candidate.name):
            candidate.unlink(missing_ok=True)
            removed += 1
    return removed


def write_failure(final: Path, problem: OSError) -> str:
    """One line: `final` could not be written, why, and what is left of it."""
    kept = f"the previous {final.name} is intact" if final.exists() else f"no {final.name} was written"
    return f"{final}: could not be written ({problem.strerror or problem}); {kept}"


def make_folder(folder: str | os.PathLike) -> Path:
    """Create `folder` (and its parents) if needed; an OutputError line naming it when it cannot be."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"{folder}: cannot create the output folder ({error.strerror or error})") from None
    return folder


def _fsync_directory(folder: Path) -> None:
    """Make a rename inside `folder` durable (best effort: some file systems cannot fsync a directory)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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


def update_digest(digest: Any, path: str | os.PathLike, chunk: int = 1 << 20) -> None:
    """Feed a file's bytes into a hashlib digest, a chunk at a time."""
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)

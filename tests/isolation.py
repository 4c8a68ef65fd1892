"""A test session's isolated environment: one torch thread and a private cvkd cache, inherited by subprocesses."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

import torch


@contextlib.contextmanager
def isolated_environment(cache_dir: Path) -> Iterator[None]:
    """Set CVKD_CACHE_DIR and one thread (torch and OMP_NUM_THREADS) for the block; restore everything afterwards."""
    saved = {key: os.environ.get(key) for key in ("CVKD_CACHE_DIR", "OMP_NUM_THREADS")}
    os.environ["CVKD_CACHE_DIR"] = str(cache_dir)
    os.environ["OMP_NUM_THREADS"] = "1"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

"""Fixtures for every test: an isolated environment (one thread, a private cvkd cache) and subprocess helpers.

Helpers that tests import directly live in modules beside this file: `isolation.py`, `processes.py`, `clips.py`.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Callable, Iterator, Sequence

import pytest
import torch
from isolation import isolated_environment
from processes import kill_group, run_to_completion, start_process

SUBPROCESS_TIMEOUT = 240  # seconds; no test subprocess may hang the suite


@pytest.fixture(scope="session", autouse=True)
def _isolated_session(tmp_path_factory) -> Iterator[None]:
    """One thread, and a private video-index cache for the session (subprocesses inherit the environment)."""
    with isolated_environment(tmp_path_factory.mktemp("index_cache")):
        yield


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch) -> Path:
    """A cvkd cache of this test's own (for tests that look at what the cache holds) and one torch thread."""
    monkeypatch.setenv("CVKD_CACHE_DIR", str(tmp_path / "cache"))
    torch.set_num_threads(1)
    return tmp_path / "cache"


@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen]]:
    """spawn(command, cwd, **popen_kwargs): start a process group (text pipes unless told otherwise); any still
    running at teardown is killed."""
    started: list[subprocess.Popen] = []

    def start(command: Sequence[str], cwd: Path, **kwargs) -> subprocess.Popen:
        if "stdout" not in kwargs:
            kwargs.update(stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started.append(start_process(command, cwd, **kwargs))
        return started[-1]

    yield start
    for process in started:
        kill_group(process)


@pytest.fixture(scope="session")
def run_command() -> Callable[[Sequence[str], Path], subprocess.CompletedProcess]:
    """run_command(command, cwd): run to completion; on timeout kill its whole process group and fail the test."""
    return lambda command, cwd: run_to_completion(command, cwd, SUBPROCESS_TIMEOUT)

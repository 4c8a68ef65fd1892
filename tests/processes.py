"""Starting and killing test subprocesses as whole process groups."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Sequence


def cvkd_command(*arguments: str) -> list[str]:
    """`python -m cvkd ARGUMENTS...` with this interpreter."""
    return [sys.executable, "-m", "cvkd", *arguments]


def start_process(command: Sequence[str], cwd: Path, **kwargs) -> subprocess.Popen:
    """Popen in a new session (the child and whatever it starts can be killed together), output to files or pipes."""
    return subprocess.Popen(command, cwd=cwd, start_new_session=True, **kwargs)


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the process group a `start_new_session` child leads, and reap the child."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):  # the whole group has already ended
        pass
    process.wait()


def run_to_completion(command: Sequence[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    """Run `command` with text pipes; on timeout kill its whole process group and fail the calling test."""
    import pytest

    process = start_process(command, cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(process)
        stdout, stderr = process.communicate()
        pytest.fail(f"{' '.join(command[:6])} ... did not finish in {timeout} s\n{stderr[-2000:]}")
    finally:
        kill_group(process)
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)

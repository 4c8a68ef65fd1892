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

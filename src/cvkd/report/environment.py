"""What a report was made with: package versions, torch threads, the command line and hostname-free machine facts.

Every report that states figures records this (`cvkd compare`'s Markdown and JSON, and so the demo's table), so a
figure can be traced to the software and the CPU budget it came from.
"""

from __future__ import annotations

import os
import platform
import shlex
import sys
from importlib import metadata
from pathlib import Path
from typing import Sequence

import torch

PACKAGES = ("cvkd", "torch", "torchvision", "av", "numpy")  # versions as installed (cvkd's from its metadata)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _version(package: str) -> str:
    """The installed version of `package`, or `not installed`."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command as typed, shell-quoted: `cvkd compare ...` (`python -m cvkd ...` when run as a module)."""
    argv = list(sys.argv if argv is None else argv)
    if not argv:
        return ""
    program = Path(argv[0])
    head = f"python -m {program.parent.name}" if program.name == "__main__.py" else program.name
    return " ".join([head, *(shlex.quote(arg) for arg in argv[1:])])


def _cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what `platform` knows, else `unknown`."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _usable_cpus() -> int | None:
    """CPUs this process may run on (its affinity mask), when the platform says."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def environment(argv: Sequence[str] | None = None) -> dict:
    """Versions, torch threads, the command line and machine facts (no host name, no user name) as JSON-ready data."""
    return {
        "versions": {**{name: _version(name) for name in PACKAGES}, "python": platform.python_version()},
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "thread_variables": {name: os.environ[name] for name in THREAD_VARIABLES if name in os.environ},
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "command": command_line(argv),
        "machine": {"cpu_count": os.cpu_count(), "usable_cpus": _usable_cpus(), "cpu_model": _cpu_model(),
                    "architecture": platform.machine(), "system": platform.system()},
    }


def environment_lines(facts: dict) -> list[str]:
    """The facts of `environment()` as Markdown lines."""
    versions = ", ".join(f"{name} {version}" for name, version in facts["versions"].items())
    machine = facts["machine"]
    variables = ", ".join(f"{name}={value}" for name, value in facts["thread_variables"].items())
    usable = machine["usable_cpus"]
    cpus = f"{machine['cpu_count']} CPUs" + ("" if usable in (None, machine["cpu_count"]) else f" ({usable} usable)")
    return [
        f"Command: `{facts['command']}`",
        f"Versions: {versions}.",
        f"Torch threads: {facts['torch_threads']} (inter-op {facts['torch_interop_threads']})"
        + (f", {variables}" if variables else "")
        + f"; deterministic algorithms {'on' if facts['deterministic_algorithms'] else 'off'}.",
        f"Machine: {cpus}, {machine['cpu_model']}, {machine['system']} {machine['architecture']}.",
    ]

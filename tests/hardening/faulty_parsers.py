"""Score-file parsers that fail on purpose, run by `cvkd.scores.sandbox`'s child in the tests of
`test_parser_child.py`: a segmentation fault, a CPU spin, a hang, a memory hog and an exit."""

from __future__ import annotations

import ctypes
import os
import time


def segfault(path: str):
    """Read address 0: SIGSEGV, as a fault in C code would."""
    return ctypes.string_at(0)


def spin(path: str):
    """Burn CPU until the CPU-time limit stops the child."""
    while True:
        pass


def hang(path: str):
    """Wait without using CPU until the parent's wall-clock bound stops the child."""
    time.sleep(3600)


def hog(path: str):
    """Ask for more memory than the child may have."""
    return bytearray(3 << 30), {}


def leave(path: str):
    """Exit without answering."""
    os._exit(3)

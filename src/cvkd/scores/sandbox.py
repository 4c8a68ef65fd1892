"""Untrusted files parsed in a child process under memory and CPU limits, so that a parser fault is one line.

The score-file parser (`cvkd.scores.safe_npz`) runs no code from a file and checks sizes before allocating, but it
still drives NumPy, zlib and pickle's C code over bytes someone else wrote. `parse_in_child(target, path)` runs
`target(path)` in one long-lived child process per cvkd process (started on first use, about 0.1-0.2 s; later files
cost only their parse and the copy of their arrays), under `MEMORY_BYTES` of data segment (`RLIMIT_DATA`: the heap
and anonymous mappings) and `CPU_SECONDS` of CPU time per file (`RLIMIT_CPU`), with a wall-clock bound of
`WALL_SECONDS` kept by the parent. The child answers with plain arrays as raw bytes and a JSON description; the
parent unpickles nothing. Whatever becomes of the child ends as one line naming the file:

- the target's own `CvkdError` is raised again in the parent, same type, same message;
- any other exception: "the score-file parser failed (Type: message)"; `MemoryError`: "... ran out of its 2 GiB";
- a signal (SIGSEGV, SIGXCPU at the CPU limit, SIGKILL) or an exit: "the score-file parser died with SIGSEGV";
- no answer within `WALL_SECONDS`: the child is killed, "took longer than N s".

A dead child is replaced by a fresh one for the next file. `target` is named "module:function" (the child imports it);
it returns `(arrays, meta)`: a dict of plain NumPy arrays (numbers, booleans, strings) and a JSON-ready dict.
"""

from __future__ import annotations

import atexit
import importlib
import json
import math
import os
import resource
import select
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from cvkd import errors

MEMORY_BYTES = 2 << 30  # data segment of the parser's child: 4x the largest member a score file may hold
CPU_SECONDS = 60  # CPU time per file (a 32 MB Kinetics score file parses in well under a second)
WALL_SECONDS = 120  # per file, start-up included; a child blocked on I/O is killed at this bound
_PLAIN_KINDS = set("biufUS")
_HEADER = struct.Struct("<Q")  # every message: its length, then its bytes

Arrays = dict[str, np.ndarray]


class ParserFailure(Exception):
    """The child could not parse a file: `problem` says what happened to it (one line)."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def parse_in_child(target: str, path: str | os.PathLike, error: type[errors.CvkdError]) -> tuple[Arrays, dict]:
    """`target(path)` ("module:function") run in the parser child; its (arrays, meta). A failure of the child is
    raised as `error(path, problem)`; a CvkdError the target raised comes back as itself."""
    with _LOCK:
        try:
            return _child().parse(target, os.fspath(path))
        except ParserFailure as failure:
            raise error(path, failure.problem) from None


def close() -> None:
    """Stop the parser child, if this process started one (the next parse starts a new one)."""
    global _CURRENT
    with _LOCK:
        if _CURRENT is not None and _CURRENT.owner == os.getpid():
            _CURRENT.stop()
        _CURRENT = None


# ---------------------------------------------------------------------------------------------------- the parent side
_LOCK = threading.Lock()
_CURRENT: "_Child | None" = None


def _child() -> "_Child":
    """The live parser child of this process, started if there is none (a forked process starts its own)."""
    global _CURRENT
    if _CURRENT is None or _CURRENT.owner != os.getpid() or not _CURRENT.alive():
        if _CURRENT is not None and _CURRENT.owner == os.getpid():
            _CURRENT.stop()
        _CURRENT = _Child()
    return _CURRENT


class _Child:
    """One parser process and its two pipes."""

    def __init__(self) -> None:
        self.owner = os.getpid()
        self.stderr = tempfile.TemporaryFile()
        env = dict(os.environ)
        source_root = str(Path(__file__).resolve().parents[2])  # the folder holding this cvkd package
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [source_root, env.get("PYTHONPATH")]))
        self.process = subprocess.Popen(
            # -P: the working folder is not put on the child's path (a stray numpy.py there is never imported)
            [sys.executable, "-P", "-m", "cvkd.scores.sandbox", str(MEMORY_BYTES), str(CPU_SECONDS)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, env=env, close_fds=True,
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def parse(self, target: str, path: str) -> tuple[Arrays, dict]:
        deadline = time.monotonic() + WALL_SECONDS
        try:
            _send(self.process.stdin, json.dumps({"target": target, "path": path}).encode())
            reply = json.loads(_receive(self.process.stdout, deadline, 1 << 20))
            if reply["status"] == "ok":
                return _read_arrays(self.process.stdout, reply["arrays"], deadline), reply["meta"]
        except (BrokenPipeError, EOFError, ConnectionError):
            raise ParserFailure(self._death()) from None
        except TimeoutError:
            self.stop()
            raise ParserFailure(f"the score-file parser took longer than {WALL_SECONDS} s; stopped "
                                "(the file was not read)") from None
        if reply["status"] == "cvkd":
            raise _rebuilt_error(reply)
        raise ParserFailure(_failure_text(reply["type"], reply["message"]))

    def _death(self) -> str:
        """What became of a child that stopped answering."""
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.stop()
            return "the score-file parser stopped answering; stopped (the file was not read)"
        if code < 0:
            name = signal.Signals(-code).name
            reason = {"SIGXCPU": f" (its CPU-time limit of {CPU_SECONDS} s)",
                      "SIGKILL": " (killed, e.g. out of memory)"}.get(name, "")
            return f"the score-file parser died with {name}{reason}; the file was not read"
        return f"the score-file parser exited with code {code}{_last_line(self.stderr)}; the file was not read"

    def stop(self) -> None:
        for pipe in (self.process.stdin, self.process.stdout):
            try:
                pipe.close()
            except OSError:
                pass
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.stderr.close()


def _read_arrays(stream, described: list[dict], deadline: float) -> Arrays:
    """The arrays the child sent, each checked against its description: a plain dtype and exactly its bytes."""
    arrays: Arrays = {}
    budget = MEMORY_BYTES
    for item in described:
        dtype, shape = np.dtype(item["dtype"]), tuple(int(n) for n in item["shape"])
        size = math.prod(shape) * dtype.itemsize
        if dtype.kind not in _PLAIN_KINDS or dtype.fields is not None or size > budget:
            raise ParserFailure(f"the score-file parser sent a {dtype} array of {size:,} bytes; refused")
        budget -= size
        data = _receive(stream, deadline, size)
        if len(data) != size:
            raise ParserFailure(f"the score-file parser sent {len(data):,} bytes for a {shape} {dtype} array")
        arrays[item["name"]] = np.frombuffer(data, dtype=dtype).reshape(shape)
    return arrays


def _rebuilt_error(reply: dict) -> errors.CvkdError:
    """The child's CvkdError as the same type in this process."""
    kind = getattr(errors, reply["type"], None)
    if not (isinstance(kind, type) and issubclass(kind, errors.CvkdError)):
        kind = errors.CvkdError
    if reply.get("path") is not None and reply.get("problem") is not None:  # a `path: problem` error
        return kind(reply["path"], reply["problem"])
    return kind(reply["message"])


def _failure_text(kind: str, message: str) -> str:
    if kind == "MemoryError":
        return f"the score-file parser ran out of its {MEMORY_BYTES >> 30} GiB memory limit; the file was not read"
    return f"the score-file parser failed ({kind}: {_short(message)})"


def _last_line(handle) -> str:
    """`: <last line of the child's stderr>`, cut short, or nothing."""
    try:
        handle.seek(max(0, handle.seek(0, os.SEEK_END) - 4096))
        lines = [line for line in handle.read().decode("utf-8", "replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return f" ({_short(lines[-1])})" if lines else ""


def _short(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= 160 else text[:157] + "..."


# ------------------------------------------------------------------------------------------------------- the framing
def _send(stream, payload: bytes | memoryview) -> None:
    stream.write(_HEADER.pack(len(payload)))
    stream.write(payload)
    stream.flush()


def _receive(stream, deadline: float | None, limit: int) -> bytearray:
    """One message of at most `limit` bytes; EOFError when the writer is gone, TimeoutError past `deadline`."""
    (size,) = _HEADER.unpack(_read_exact(stream, _HEADER.size, deadline))
    if size > limit:
        raise ConnectionError(f"a message of {size:,} bytes, over {limit:,}")
    return _read_exact(stream, size, deadline)


def _read_exact(stream, size: int, deadline: float | None) -> bytearray:
    buffer = bytearray(size)
    view, done, fd = memoryview(buffer), 0, stream.fileno()
    while done < size:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise TimeoutError
        count = os.readv(fd, [view[done:]])
        if count == 0:
            raise EOFError
        done += count
    return buffer


# ----------------------------------------------------------------------------------------------------- the child side
def _serve(memory_bytes: int, cpu_seconds: int) -> None:
    """The child's loop: one request (target, path) at a time from stdin, one reply on the protocol pipe."""
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray print from a parser must not corrupt the replies
    requests = sys.stdin.buffer
    _limit(resource.RLIMIT_DATA, memory_bytes)
    _limit(resource.RLIMIT_CORE, 0)  # a fault leaves no core file behind
    while True:
        try:
            request = json.loads(_receive(requests, None, 1 << 20))
        except EOFError:
            return
        used = resource.getrusage(resource.RUSAGE_SELF)
        soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
        cap = math.ceil(used.ru_utime + used.ru_stime) + cpu_seconds
        resource.setrlimit(resource.RLIMIT_CPU, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))
        _answer(replies, request)


def _answer(replies, request: dict) -> None:
    try:
        module, _, name = request["target"].partition(":")
        function: Callable[[str], tuple[Arrays, dict]] = getattr(importlib.import_module(module), name)
        arrays, meta = function(request["path"])
        plain = {key: np.asarray(value, order="C") for key, value in arrays.items()}  # 0-d stays 0-d
        described = [{"name": key, "dtype": value.dtype.str, "shape": list(value.shape)} for key, value in plain.items()]
        header = json.dumps({"status": "ok", "arrays": described, "meta": meta}).encode()
    except errors.CvkdError as error:
        reply: dict[str, Any] = {"status": "cvkd", "type": type(error).__name__, "message": str(error)[:4000],
                                 "path": getattr(error, "path", None), "problem": getattr(error, "problem", None)}
        _send(replies, json.dumps(reply).encode())
        return
    except Exception as error:  # noqa: BLE001 - any failure of the parser is reported, in one line, as the file's
        reply = {"status": "failed", "type": type(error).__name__, "message": _short(str(error)[:2000])}
        _send(replies, json.dumps(reply).encode())
        return
    _send(replies, header)
    for value in plain.values():
        _send(replies, memoryview(value.reshape(-1).view(np.uint8)))


def _limit(kind: int, value: int) -> None:
    """Lower a resource limit to `value` (never above the hard limit this process inherited)."""
    soft, hard = resource.getrlimit(kind)
    value = value if hard == resource.RLIM_INFINITY else min(value, hard)
    resource.setrlimit(kind, (value, value))


@atexit.register
def _stop_at_exit() -> None:
    close()


if __name__ == "__main__":
    _serve(int(sys.argv[1]), int(sys.argv[2]))

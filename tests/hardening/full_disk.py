"""Worker script: attempt cvkd's writes under a file-size limit, a real write failure (EFBIG) like a full disk's.

`python full_disk.py LIMIT_BYTES JOBS.json` sets RLIMIT_FSIZE (and ignores SIGXFSZ, so the write fails with
EFBIG instead of killing the process), runs every job {"kind", "target", "source"?} and prints one JSON line per job:
{"kind", "outcome": "written" | error class name, "message"}.
"""

from __future__ import annotations

import json
import resource
import signal
import sys
from pathlib import Path

import torch

from cvkd.codec.encode import EncodeSettings, reencode
from cvkd.runs.checkpoint import save_checkpoint
from cvkd.fileio import atomic_write_json

BIG = 1 << 20  # elements / characters: every payload is far above the limit


def write(kind: str, target: Path, source: str | None) -> None:
    """Write one large file of `kind` at `target`."""
    if kind == "checkpoint":
        save_checkpoint({"epoch": 1, "model": {"weight": torch.arange(BIG, dtype=torch.float32)}}, target)
    elif kind == "video":
        reencode(source, target, EncodeSettings(gop=12, width=320, height=240))
    elif kind == "json":
        atomic_write_json(target, {"rows": ["x" * 64] * (BIG // 64)})
    else:
        raise ValueError(f"unknown kind {kind!r}")


def main(limit: int, jobs: Path) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    for job in json.loads(jobs.read_text()):
        try:
            write(job["kind"], Path(job["target"]), job.get("source"))
            outcome, message = "written", ""
        except Exception as error:  # noqa: BLE001 - the parent judges the type
            outcome, message = type(error).__name__, str(error)
        print(json.dumps({"kind": job["kind"], "outcome": outcome, "message": message}), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]))

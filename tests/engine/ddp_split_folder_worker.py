"""Launched by torchrun (2 processes): train a tiny run where rank 1 writes to another folder than rank 0, as two
machines without a shared file system would; prints the one-line error each rank gets.

Both ranks raise together (after agreeing that not every rank sees the marker), but torchrun tears down the other
workers as soon as one exits, which can kill the other rank before its line reaches the pipe. So each rank writes its
line in one system call (two ranks' `print`s, text then newline, can interleave on the shared pipe when stdout is
unbuffered) and waits (at most 30 s) until every rank has written before it exits: the test sees every rank's line."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from cvkd.config import load_config
from cvkd.engine.train import train
from cvkd.errors import CvkdError
from cvkd.runs.schema import RunConfig


def wait_for_every_rank(folder: Path, rank: str, world_size: int) -> None:
    """Mark this rank as done printing, then wait until every rank has (or 30 s have passed)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"printed_{rank}").touch()
    deadline = time.monotonic() + 30
    while len(list(folder.glob("printed_*"))) < world_size and time.monotonic() < deadline:
        time.sleep(0.05)


overrides = sys.argv[1:]
config = load_config(RunConfig, None, overrides)
rank = os.environ.get("RANK", "0")
printed = Path(config.output_dir).parent / "ranks_printed"
if rank == "1":
    config.output_dir = config.output_dir + "_elsewhere"
try:
    train(config, progress=False)
except CvkdError as error:
    os.write(sys.stdout.fileno(), f"rank {rank}: {error}\n".encode())
    wait_for_every_rank(printed, rank, int(os.environ.get("WORLD_SIZE", "1")))
    sys.exit(2)

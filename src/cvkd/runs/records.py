"""What a training run writes to its folder and reads back on resume: config, checkpoints (last, best, the newest K
epoch snapshots), log.jsonl and summary.json."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from cvkd.config import save_config
from cvkd.errors import CheckpointError
from cvkd.fileio import atomic_path, atomic_write_json, atomic_write_text, make_folder, remove_leftovers
from cvkd.runs.checkpoint import BEST, LAST, load_checkpoint, save_checkpoint
from cvkd.runs.folder import CONFIG_FILE, LOG_FILE, SUMMARY_FILE
from cvkd.runs.schema import RunConfig

RESUME_ONLY = ("optimizer", "scaler", "history")  # kept in last.pt for --resume, left out of best.pt (a third the size)
SNAPSHOT = re.compile(r"epoch-(\d+)\.pt")


def snapshot_name(epoch: int) -> str:
    """The file name of the snapshot of last.pt after `epoch` (1-based, as log.jsonl counts): epoch-0004.pt."""
    return f"epoch-{epoch:04d}.pt"


def snapshots(out: Path) -> list[Path]:
    """The epoch snapshots in run folder `out`, oldest first."""
    found = [(int(match.group(1)), path) for path in out.glob("epoch-*.pt") if (match := SNAPSHOT.fullmatch(path.name))]
    return [path for _, path in sorted(found)]


def prepare_run_folder(out: Path, resume: bool) -> None:
    """Create `out`; refuse one that holds checkpoints unless resuming; delete the debris of writes a kill interrupted."""
    make_folder(out)
    if not resume and (out / LAST).exists():
        raise CheckpointError(f"{out}: run folder already holds checkpoints; resume it or use another name")
    for name in (LAST, BEST, LOG_FILE, SUMMARY_FILE, CONFIG_FILE, *(path.name for path in snapshots(out))):
        remove_leftovers(out / name)


def read_resume_state(out: Path, config: dict[str, Any]) -> dict[str, Any] | None:
    """last.pt of run folder `out` (None when there is none), refused when it was written for another model than
    `config`'s (the resolved config as a dict)."""
    path = out / LAST
    if not path.is_file():
        return None
    state = load_checkpoint(path)
    if state.get("config", {}).get("model") != config["model"]:
        raise CheckpointError(f"{path}: was written for another model; use another run name or delete the folder")
    return state


def write_config(out: Path, config: RunConfig) -> None:
    """The resolved config as `out`/config.yaml."""
    save_config(config, out / CONFIG_FILE)


def write_best(out: Path, state: dict[str, Any]) -> None:
    """best.pt: last.pt's state without what only a resume reads."""
    save_checkpoint({key: value for key, value in state.items() if key not in RESUME_ONLY}, out / BEST)


def write_last(out: Path, state: dict[str, Any], keep_last: int = 0) -> None:
    """last.pt; with `keep_last` > 0 also kept as the epoch's snapshot, of which only the newest `keep_last` remain
    (older ones are deleted once the new one is on disk)."""
    save_checkpoint(state, out / LAST)
    if keep_last > 0:
        keep_snapshot(out, int(state["epoch"]) + 1)
        for old in snapshots(out)[:-keep_last]:
            old.unlink(missing_ok=True)


def keep_snapshot(out: Path, epoch: int) -> Path:
    """`out`/last.pt kept as `out`/epoch-NNNN.pt, atomically: a hard link to the file just written (no second copy of
    its bytes), or a copy where the file system has no hard links."""
    final = out / snapshot_name(epoch)
    remove_leftovers(final)
    with atomic_path(final, error=CheckpointError) as tmp:
        tmp.unlink()
        try:
            os.link(out / LAST, tmp)
        except OSError:
            shutil.copyfile(out / LAST, tmp)
    return final


def write_records(out: Path, history: list[dict], summary: dict[str, Any]) -> None:
    """log.jsonl (one row per epoch of `history`) and summary.json, each atomically."""
    atomic_write_text(out / LOG_FILE, "".join(json.dumps(row) + "\n" for row in history))
    atomic_write_json(out / SUMMARY_FILE, summary)

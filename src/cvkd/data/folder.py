"""A cvkd dataset folder: `classes.txt` and `<split>.csv`, written by `cvkd synth` / `cvkd prepare`, read by every run."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cvkd.data.lists import CLASSES_FILE, VideoList
from cvkd.errors import ConfigError, DatasetError
from cvkd.fileio import update_digest


def dataset_split(root: str | os.PathLike, split: str) -> VideoList | None:
    """The video list of one split of the dataset folder `root`, or None when that split file does not exist."""
    if not os.fspath(root):
        raise ConfigError("data.root is not set: give a dataset folder (written by `cvkd synth` or `cvkd prepare`)")
    folder = Path(root)
    if not (folder / CLASSES_FILE).is_file():
        raise DatasetError(f"{folder}: not a cvkd dataset folder (no {CLASSES_FILE}); see `cvkd prepare` / `cvkd synth`")
    if not (folder / f"{split}.csv").is_file():
        return None
    return VideoList.cvkd_dataset(folder, split)


def dataset_digest(root: str | os.PathLike) -> str:
    """SHA-256 over the class list, every split list and every video they name (path and bytes), in sorted order.

    Two dataset folders with equal digests hold the same videos and splits: a figure measured on one is a figure of
    the other. The synthetic benchmark's bytes depend on the machine's floating-point kernels, so compare digests
    before comparing accuracies across machines.
    """
    folder = Path(root)
    digest = hashlib.sha256()
    names = sorted({CLASSES_FILE, *(p.name for p in folder.glob("*.csv"))})
    videos: set[str] = set()
    for name in names:
        text = (folder / name).read_bytes()
        digest.update(name.encode() + b"\0" + text)
        if name.endswith(".csv"):
            videos.update(line.split(",")[0] for line in text.decode("utf-8").splitlines()[1:] if line)
    for relative in sorted(videos):
        digest.update(relative.encode() + b"\0")
        update_digest(digest, folder / relative)
    return digest.hexdigest()

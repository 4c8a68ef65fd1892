"""A cvkd dataset folder: `classes.txt` and `<split>.csv`, written by `cvkd synth` / `cvkd prepare`, read by every run."""

from __future__ import annotations

import os
from pathlib import Path

from cvkd.data.lists import CLASSES_FILE, VideoList
from cvkd.errors import ConfigError, DatasetError


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

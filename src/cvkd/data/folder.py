"""A cvkd dataset folder: `classes.txt` and `<split>.csv`, written by `cvkd synth` / `cvkd prepare`, read by every run."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from tqdm import tqdm

from cvkd.data.lists import CLASSES_FILE, VideoList, missing_videos
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


def training_splits(
    root: str | os.PathLike, train_split: str, val_split: str, allow_empty_classes: bool = False,
) -> tuple[VideoList, VideoList | None]:
    """The training list (refused when missing, or when a class has no training video on disk unless
    `allow_empty_classes`) and the validation list (None without one)."""
    train_list = dataset_split(root, train_split)
    if train_list is None:
        raise DatasetError(f"{root}: no {train_split}.csv")
    check_every_class_has_videos(train_list, allow_empty_classes)
    return train_list, dataset_split(root, val_split)


def check_every_class_has_videos(train_list: VideoList, allowed: bool) -> None:
    """A class without one training video on disk is refused (a model would learn never to predict it), unless
    data.allow_empty_classes says so; then a warning line names them."""
    missing = set(missing_videos(train_list))
    present = {label for relative, label in train_list if relative not in missing}
    empty = [name for label, name in enumerate(train_list.classes) if label not in present]
    if not empty:
        return
    listed = ", ".join(empty[:4]) + (f" and {len(empty) - 4} more" if len(empty) > 4 else "")
    if not allowed:
        raise DatasetError(f"{train_list.root}: class(es) {listed} have no training video on disk; add videos, or "
                           "set data.allow_empty_classes=true to train without them (recorded in the run)")
    tqdm.write(f"warning: class(es) {listed} have no training video on disk (data.allow_empty_classes)")


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

"""Labelled video lists: UCF-101 and HMDB-51 official splits, class folders, CSV files and cvkd's own layout.

Every constructor returns a `VideoList`: a root folder, `(relative path, label)` pairs and the class names in label
order (label i is `classes[i]`). Bad input raises `DatasetError` naming the file (and line) at fault.
"""

from __future__ import annotations

import csv as csv_module
import io
import os
import random
import re
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Iterable, Iterator, Mapping, Sequence

from cvkd.errors import DatasetError
from cvkd.fileio import atomic_write_text

VIDEO_EXTENSIONS = (".avi", ".mp4", ".m4v", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp", ".ogv")
"""File suffixes taken for videos when a folder is searched (folder datasets, `reencode`, `predict`)."""
PREPARE_REPORT_FILE = "prepare_report.json"
"""What `cvkd prepare` writes beside the lists: counts, failures and the encode settings."""
SUBSETS = ("train", "val", "test")
OFFICIAL_SPLITS = (1, 2, 3)
UCF101_ANNOTATIONS = "ucfTrainTestlist"
HMDB51_ANNOTATIONS = "testTrainMulti_7030_splits"
CLASSES_FILE = "classes.txt"
_HMDB51_CODES = {"train": "1", "test": "2"}
_UCF101_CLIP = re.compile(r"(v_.+_g\d+)_c\d+")


@dataclass(frozen=True)
class VideoList:
    """Videos under `root` as `(relative path, label)` pairs, with the class names in label order."""

    root: Path
    items: tuple[tuple[str, int], ...]
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))
        object.__setattr__(self, "items", tuple((str(p), int(label)) for p, label in self.items))
        object.__setattr__(self, "classes", tuple(self.classes))
        for relative, label in self.items:
            if not 0 <= label < len(self.classes):
                raise DatasetError(f"{self.root / relative}: label {label} out of range 0..{len(self.classes) - 1}")

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[tuple[str, int]]:
        return iter(self.items)

    def __getitem__(self, index: int) -> tuple[str, int]:
        return self.items[index]

    @property
    def num_classes(self) -> int:
        """Number of classes (labels run from 0 to num_classes - 1)."""
        return len(self.classes)

    @property
    def labels(self) -> list[int]:
        """The label of every video, in list order."""
        return [label for _, label in self.items]

    def path(self, index: int) -> Path:
        """Absolute location of video `index`."""
        return self.root / self.items[index][0]

    def select(self, indices: Iterable[int]) -> "VideoList":
        """A list holding only the videos at `indices` (same root and classes)."""
        return replace(self, items=tuple(self.items[i] for i in indices))

    def without(self, relative_paths: Iterable[str]) -> "VideoList":
        """A list without the videos whose relative path is in `relative_paths`."""
        dropped = set(relative_paths)
        return replace(self, items=tuple(item for item in self.items if item[0] not in dropped))

    # -- constructors ---------------------------------------------------------------------------------------------
    @classmethod
    def ucf101(
        cls,
        root: str | os.PathLike,
        split: int = 1,
        subset: str = "train",
        annotation_dir: str | os.PathLike | None = None,
    ) -> "VideoList":
        """UCF-101 official split `split` (1-3), `subset` 'train' or 'test'; videos at root/<Class>/<video>.avi."""
        _check_split(split)
        _check_subset(subset, ("train", "test"))
        root = Path(root)
        folder = _find_annotations(root, annotation_dir, UCF101_ANNOTATIONS, "classInd.txt")
        classes = _read_ucf101_classes(folder / "classInd.txt")
        list_file = folder / f"{subset}list0{split}.txt"
        return cls(root, tuple(_read_ucf101_list(list_file, classes, labelled=subset == "train")), classes)

    @classmethod
    def hmdb51(
        cls,
        root: str | os.PathLike,
        split: int = 1,
        subset: str = "train",
        annotation_dir: str | os.PathLike | None = None,
    ) -> "VideoList":
        """HMDB-51 official split `split` (1-3), `subset` 'train' or 'test'; videos at root/<class>/<video>.avi."""
        _check_split(split)
        _check_subset(subset, ("train", "test"))
        root = Path(root)
        pattern = f"*_test_split{split}.txt"
        folder = _find_annotations(root, annotation_dir, HMDB51_ANNOTATIONS, pattern)
        split_files = sorted(folder.glob(pattern))
        suffix = pattern[1:]
        classes = tuple(sorted(f.name[: -len(suffix)] for f in split_files))
        items = []
        for label, name in enumerate(classes):
            items.extend(_read_hmdb51_split(folder / f"{name}{suffix}", name, label, _HMDB51_CODES[subset]))
        return cls(root, tuple(items), classes)

    @classmethod
    def folder(cls, root: str | os.PathLike, classes: Sequence[str] | None = None) -> "VideoList":
        """Videos at root/<class>/<video>; classes are the sub-folders holding videos, alphabetical, unless given."""
        root = Path(root)
        if not root.is_dir():
            raise DatasetError(f"{root}: no such folder")
        found = {
            entry.name: sorted(_video_files(entry))
            for entry in root.iterdir()
            if entry.is_dir() and not entry.name.startswith(".")
        }
        found = {name: videos for name, videos in found.items() if videos}
        if not found:
            raise DatasetError(f"{root}: no videos found in class folders root/<class>/<video> ({_extensions()})")
        if classes is None:
            classes = sorted(found)
        classes = tuple(classes)
        unknown = sorted(set(found) - set(classes))
        if unknown:
            raise DatasetError(f"{root / unknown[0]}: class folder not among the {len(classes)} known classes")
        items = [(f"{name}/{video}", label) for label, name in enumerate(classes) for video in found.get(name, [])]
        return cls(root, tuple(items), classes)

    @classmethod
    def csv(cls, path: str | os.PathLike, classes: Sequence[str] | None = None) -> "VideoList":
        """Rows `path,label` (header optional; label an index or a class name; paths relative to the CSV's folder).

        Without `classes`, integer labels give classes named '0'..'max' and class names give alphabetical classes.
        """
        path = Path(path)
        rows = _read_csv_rows(path)
        if classes is None:
            classes = _classes_from_labels(path, rows)
        classes = tuple(classes)
        items = tuple((video, _parse_label(path, line, label, classes)) for line, video, label in rows)
        return cls(path.parent, items, classes)

    @classmethod
    def cvkd_dataset(cls, root: str | os.PathLike, subset: str = "train") -> "VideoList":
        """The layout written by `cvkd synth` and `cvkd prepare`: ROOT/classes.txt and ROOT/{train,val,test}.csv."""
        _check_subset(subset, SUBSETS)
        root = Path(root)
        classes = read_classes(root / CLASSES_FILE)
        return cls.csv(root / f"{subset}.csv", classes)


_DIRECTIONAL = re.compile(r"(?:^|[^a-z])(left|right|clockwise|anticlockwise|counterclockwise|counter_clockwise|"
                          r"counter-clockwise|leftward|rightward)(?:[^a-z]|$)", re.IGNORECASE)


def directional_classes(classes: Sequence[str]) -> list[str]:
    """Class names that look directional (left / right, clockwise / anticlockwise): a horizontal mirror changes them."""
    return [name for name in classes if _DIRECTIONAL.search(name.replace(" ", "_"))]


def flip_warning(classes: Sequence[str], flip: bool, mapped: Sequence[str] = ()) -> str | None:
    """One warning line when mirroring is on and some class names look directional and are not in the flip label
    map; else None."""
    unmapped = [name for name in directional_classes(classes) if name not in set(mapped)]
    if not flip or not unmapped:
        return None
    listed = ", ".join(unmapped[:4]) + (f" and {len(unmapped) - 4} more" if len(unmapped) > 4 else "")
    return (f"warning: classes {listed} look directional, and training mirrors half the samples (a mirrored left is "
            "a right): set data.flip=false, or pair them in data.flip_label_map")


def missing_videos(video_list: VideoList) -> list[str]:
    """Relative paths of every listed video that is not a file on disk."""
    return [relative for relative, _ in video_list.items if not (video_list.root / relative).is_file()]


def video_group(relative: str) -> str:
    """The group a clip belongs to: UCF-101's `v_<Class>_g<GG>` for `v_<Class>_g<GG>_c<CC>` clips (one actor and
    scene); any other video (HMDB-51's names carry no group) is a group of its own."""
    match = _UCF101_CLIP.fullmatch(PurePosixPath(relative).stem)
    return match.group(1) if match else relative


def hold_out(video_list: VideoList, fraction: float, seed: int = 0) -> tuple[VideoList, VideoList]:
    """Split off a deterministic, class-stratified `fraction` of the videos, whole groups at a time (`video_group`:
    clips of one UCF-101 group never straddle the split): returns (kept, held out).

    Per class, groups are taken in a random order (seeded by `seed` and the label) until at least
    round(fraction * videos) are held out; a class always keeps at least one group.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    by_class: dict[int, dict[str, list[int]]] = {}
    for index, (relative, label) in enumerate(video_list.items):
        by_class.setdefault(label, {}).setdefault(video_group(relative), []).append(index)
    held: set[int] = set()
    for label in sorted(by_class):
        groups = by_class[label]
        target = round(fraction * sum(len(members) for members in groups.values()))
        order = random.Random(f"{seed}:{label}").sample(sorted(groups), len(groups))
        taken = 0
        for name in order[: len(order) - 1]:
            if taken >= target:
                break
            held.update(groups[name])
            taken += len(groups[name])
    kept = [i for i in range(len(video_list)) if i not in held]
    return video_list.select(kept), video_list.select(sorted(held))


def read_classes(path: str | os.PathLike) -> tuple[str, ...]:
    """Read a classes file: one class name per line, line i naming label i."""
    path = Path(path)
    lines = _read_lines(path)
    classes = [text for _, text in lines]
    for line, text in lines:
        if classes.count(text) > 1:
            raise DatasetError(f"{path}:{line}: class {text!r} listed twice")
    if not classes:
        raise DatasetError(f"{path}: no classes listed")
    return tuple(classes)


def read_class_order(path: str | os.PathLike) -> tuple[str, ...]:
    """Class names in label order from a class list (`classes.txt`: one name a line; `classInd.txt`: `1 Name`) or
    from one of CoViAR's data lists (`<Class>/<video>.avi <Class> <0-based label>` lines), which number HMDB-51's
    classes in their own, non-alphabetical order."""
    path = Path(path)
    lines = _read_lines(path)
    if not lines:
        raise DatasetError(f"{path}: no classes listed")
    fields = len(lines[0][1].split())
    if fields == 1:
        return read_classes(path)
    if fields == 2:
        return _read_ucf101_classes(path)
    if fields == 3:
        return _classes_of_coviar_list(path, lines)
    raise DatasetError(f"{path}:{lines[0][0]}: expected a class list or CoViAR's 'path class label' lines, "
                       f"got {lines[0][1]!r}")


def _classes_of_coviar_list(path: Path, lines: list[tuple[int, str]]) -> tuple[str, ...]:
    """The label -> class name map a CoViAR data list implies (every label 0..C-1 named once, consistently)."""
    names: dict[int, str] = {}
    for line, text in lines:
        parts = text.split()
        if len(parts) != 3 or not parts[2].isdigit():
            raise DatasetError(f"{path}:{line}: expected '<Class>/<video> <Class> <label>', got {text!r}")
        label, name = int(parts[2]), parts[1]
        if names.setdefault(label, name) != name:
            raise DatasetError(f"{path}:{line}: label {label} is {name!r} here but {names[label]!r} earlier")
    by_name = {name: label for label, name in names.items()}
    if len(by_name) != len(names):
        duplicate = next(name for name in by_name if list(names.values()).count(name) > 1)
        raise DatasetError(f"{path}: class {duplicate!r} has two labels")
    missing = [label for label in range(len(names)) if label not in names]
    if missing:
        raise DatasetError(f"{path}: labels must run 0..{len(names) - 1}, label {missing[0]} has no video")
    return tuple(names[label] for label in range(len(names)))


def write_dataset(
    root: str | os.PathLike, classes: Sequence[str], splits: Mapping[str, Iterable[tuple[str, int]]]
) -> None:
    """Write cvkd's dataset layout: ROOT/classes.txt and ROOT/<subset>.csv (`path,label`, paths relative to ROOT)."""
    root = Path(root)
    for subset in splits:
        _check_subset(subset, SUBSETS)
    for subset, items in splits.items():
        buffer = io.StringIO()
        writer = csv_module.writer(buffer, lineterminator="\n")
        writer.writerow(["path", "label"])
        writer.writerows([relative, int(label)] for relative, label in items)
        atomic_write_text(root / f"{subset}.csv", buffer.getvalue())
    atomic_write_text(root / CLASSES_FILE, "".join(f"{name}\n" for name in classes))


# -- helpers --------------------------------------------------------------------------------------------------------
def _check_split(split: int) -> None:
    if split not in OFFICIAL_SPLITS:
        raise DatasetError(f"split must be one of {OFFICIAL_SPLITS}, got {split!r}")


def _check_subset(subset: str, allowed: Sequence[str]) -> None:
    if subset not in allowed:
        raise DatasetError(f"subset must be one of {', '.join(allowed)}, got {subset!r}")


def _extensions() -> str:
    return " ".join(VIDEO_EXTENSIONS)


def is_video_file(path: Path) -> bool:
    """A regular file with a video suffix that is not hidden (hidden `.name.tmp.mp4` files are writes in progress)."""
    return path.suffix.lower() in VIDEO_EXTENSIONS and not path.name.startswith(".") and path.is_file()


def find_videos(folder: Path) -> list[Path]:
    """Every video file below `folder`, recursively, sorted."""
    return sorted(path for path in folder.rglob("*") if is_video_file(path))


def _video_files(folder: Path) -> list[str]:
    """Names of the video files directly inside `folder`."""
    return [f.name for f in folder.iterdir() if is_video_file(f)]


def replace_suffix(relative: str, suffix: str | None) -> str:
    """`relative` (a POSIX relative path) with its extension replaced by `suffix` (None keeps it)."""
    if suffix is None:
        return relative
    return PurePosixPath(relative).with_suffix(suffix).as_posix()


def _find_annotations(root: Path, given: str | os.PathLike | None, default_name: str, wanted: str) -> Path:
    """The folder holding `wanted` (a name or glob): `given` (or its `default_name` child), else beside the videos."""
    if given is not None:
        candidates = [Path(given), Path(given) / default_name]
    else:
        candidates = [root / default_name, root.parent / default_name, root]
    for folder in candidates:
        if any(folder.glob(wanted)):
            return folder
    raise DatasetError(f"{candidates[0] / wanted}: missing annotation file (give the folder with --annotations)")


def _read_lines(path: Path) -> list[tuple[int, str]]:
    """Non-blank, stripped lines of a text file with their 1-based line numbers."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path}: cannot read ({error})") from None
    return [(number, line.strip()) for number, line in enumerate(text.splitlines(), 1) if line.strip()]


def _read_ucf101_classes(path: Path) -> tuple[str, ...]:
    """classInd.txt: lines `<1-based index> <ClassName>`, numbered 1..N in order."""
    names: list[str] = []
    for line, text in _read_lines(path):
        match = re.fullmatch(r"(\d+)\s+(\S+)", text)
        if not match:
            raise DatasetError(f"{path}:{line}: expected '<index> <ClassName>', got {text!r}")
        if int(match.group(1)) != len(names) + 1:
            raise DatasetError(f"{path}:{line}: class index {match.group(1)} out of order (expected {len(names) + 1})")
        names.append(match.group(2))
    if not names:
        raise DatasetError(f"{path}: no classes listed")
    return tuple(names)


def _read_ucf101_list(path: Path, classes: tuple[str, ...], labelled: bool) -> Iterator[tuple[str, int]]:
    """trainlist0k.txt (`Class/video.avi <1-based label>`) or testlist0k.txt (`Class/video.avi`, label from folder)."""
    by_name = {name: label for label, name in enumerate(classes)}
    by_lower = {name.lower(): label for label, name in enumerate(classes)}
    for line, text in _read_lines(path):
        parts = text.split()
        if len(parts) != (2 if labelled else 1) or "/" not in parts[0]:
            form = "'<Class>/<video> <label>'" if labelled else "'<Class>/<video>'"
            raise DatasetError(f"{path}:{line}: expected {form}, got {text!r}")
        video = parts[0]
        folder = video.split("/")[0]
        folder_label = by_name.get(folder, by_lower.get(folder.lower()))
        if labelled:
            if not parts[1].isdigit() or not 1 <= int(parts[1]) <= len(classes):
                raise DatasetError(f"{path}:{line}: label {parts[1]!r} out of range 1..{len(classes)}")
            label = int(parts[1]) - 1
        else:
            if folder_label is None:
                raise DatasetError(f"{path}:{line}: unknown class {folder!r} (not in classInd.txt)")
            label = folder_label
        yield video, label


def _read_hmdb51_split(path: Path, name: str, label: int, wanted: str) -> Iterator[tuple[str, int]]:
    """`<class>_test_split<k>.txt`: lines `<video>.avi <0|1|2>`; yield the videos marked `wanted`."""
    for line, text in _read_lines(path):
        parts = text.split()
        if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
            raise DatasetError(f"{path}:{line}: expected '<video>.avi <0|1|2>', got {text!r}")
        if parts[1] == wanted:
            yield f"{name}/{parts[0]}", label


EXTERNAL_HEADER = "external_path"  # a list whose header says `external_path,label` may name videos anywhere


def _read_csv_rows(path: Path) -> list[tuple[int, str, str]]:
    """(line, path, label text) for every data row of a `path,label` CSV; a `path,label` header is skipped. Rows must
    name videos inside the list's folder (relative, no `..` out of it) unless the header is `external_path,label`."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such list file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path}: cannot read ({error})") from None
    rows = []
    external = False
    reader = csv_module.reader(io.StringIO(text))
    for fields in reader:
        line = reader.line_num
        if not fields or not "".join(fields).strip():
            continue
        if len(fields) != 2 or not fields[0].strip() or not fields[1].strip():
            raise DatasetError(f"{path}:{line}: expected 'path,label', got {','.join(fields)!r:.120}")
        video, label = fields[0].strip(), fields[1].strip()
        if not rows and label.lower() == "label" and video.lower() in ("path", EXTERNAL_HEADER):
            external = video.lower() == EXTERNAL_HEADER
            continue
        if not external and not inside_folder(video):
            raise DatasetError(f"{path}:{line}: {video[:120]!r} is outside the list's folder; lists name videos "
                               f"relative to their folder (a header `{EXTERNAL_HEADER},label` allows any path)")
        rows.append((line, video, label))
    if not rows:
        raise DatasetError(f"{path}: no videos listed")
    return rows


def inside_folder(relative: str) -> bool:
    """Whether a list row's path stays inside the list's folder: relative, and no `..` climbs out of it."""
    if "\0" in relative or os.path.isabs(relative) or relative.startswith(("/", "\\")):
        return False
    depth = 0
    for part in relative.replace("\\", "/").split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return False
        elif part not in ("", "."):
            depth += 1
    return depth > 0


def _classes_from_labels(path: Path, rows: list[tuple[int, str, str]]) -> tuple[str, ...]:
    """Class names implied by a CSV's labels: '0'..'max' for integers, the sorted names otherwise."""
    numeric = [label.isdigit() for _, _, label in rows]
    if all(numeric):
        return tuple(str(i) for i in range(max(int(label) for _, _, label in rows) + 1))
    if any(numeric):
        line = rows[numeric.index(True)][0]
        raise DatasetError(f"{path}:{line}: mixes integer labels with class names; pass the class list")
    return tuple(sorted({label for _, _, label in rows}))


def _parse_label(path: Path, line: int, text: str, classes: tuple[str, ...]) -> int:
    """A CSV label: an index into `classes` or one of their names."""
    if text in classes:
        return classes.index(text)
    if text.lstrip("-").isdigit():
        label = int(text)
        if not 0 <= label < len(classes):
            raise DatasetError(f"{path}:{line}: label {label} out of range 0..{len(classes) - 1}")
        return label
    raise DatasetError(f"{path}:{line}: unknown class {text!r}")

"""Per-video score files: cvkd's own .npz format (no pickle) and CoViAR's (`test.py --save_scores`) read alike.

cvkd's format is an .npz holding `scores` (N, C) float32 raw logits, `labels` (N,) int64, `names` (N,) unicode
relative video paths, and when known `class_names` (C,) unicode and `stream` (0-d unicode). Every array loads with
`allow_pickle=False`.

CoViAR's format holds `scores` as an object array of N `(logits of shape (1, C), label)` pairs next to `labels` (N,)
and `names` (N,). Its object arrays are read by `cvkd.scores.safe_npz`, whose unpickler admits only the NumPy and
torch globals such pairs need: no file runs code. `np.load(..., allow_pickle=True)` is never called.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cvkd.errors import ScoreFileError
from cvkd.fileio import atomic_path
from cvkd.scores.safe_npz import OBJECT_ARRAY_MESSAGE, SafeNpz
from cvkd.scores.sandbox import parse_in_child


@dataclass
class ScoreSet:
    """Per-video logits of one model (or of a fusion) on one set of videos.

    `scores` (N, C) float32, `labels` (N,) int64, `names` (N,) relative video paths; `class_names` (C,) and `stream`
    (e.g. "iframe") when known; `source` is the file it was loaded from, used to name it in messages.
    """

    scores: np.ndarray
    labels: np.ndarray
    names: np.ndarray
    class_names: tuple[str, ...] | None = None
    stream: str | None = None
    source: str | None = None

    def __post_init__(self) -> None:
        self.scores = np.asarray(self.scores, dtype=np.float32)
        self.labels = np.asarray(self.labels)
        self.names = np.asarray(self.names, dtype=str)
        if self.class_names is not None:
            self.class_names = tuple(str(name) for name in self.class_names)
        problem = shape_problem(self)
        if problem:
            raise ValueError(problem)
        self.labels = self.labels.astype(np.int64)

    @property
    def num_videos(self) -> int:
        """N, the number of videos."""
        return int(self.scores.shape[0])

    @property
    def num_classes(self) -> int:
        """C, the number of classes."""
        return int(self.scores.shape[1])

    @property
    def display_name(self) -> str:
        """How to name this score set in messages: its file, else its stream, else "scores"."""
        return self.source or self.stream or "scores"

    def take(self, order: np.ndarray) -> "ScoreSet":
        """The same score set with its videos in `order` (an index array)."""
        return ScoreSet(self.scores[order], self.labels[order], self.names[order], self.class_names, self.stream,
                        self.source)


def shape_problem(score_set: ScoreSet) -> str | None:
    """Describe what is wrong with the arrays of `score_set` (shapes, dtypes, label range), or None when all is well."""
    scores, labels, names = score_set.scores, score_set.labels, score_set.names
    if scores.ndim != 2 or scores.shape[0] == 0 or scores.shape[1] == 0:
        return f"scores must have shape (videos, classes) with both > 0, got {scores.shape}"
    if not np.isfinite(scores).all():
        return f"scores hold {int((~np.isfinite(scores)).sum())} NaN or infinite values"
    if labels.ndim != 1 or len(labels) != len(scores):
        return f"labels must have shape ({len(scores)},) to match scores {scores.shape}, got {labels.shape}"
    if not np.issubdtype(labels.dtype, np.integer):
        return f"labels must be integers, got {labels.dtype}"
    if labels.min() < 0 or labels.max() >= scores.shape[1]:
        return f"labels must lie in 0..{scores.shape[1] - 1}, found {int(labels.min())}..{int(labels.max())}"
    if names.ndim != 1 or len(names) != len(scores):
        return f"names must have shape ({len(scores)},) to match scores {scores.shape}, got {names.shape}"
    if score_set.class_names is not None and len(score_set.class_names) != scores.shape[1]:
        return f"{len(score_set.class_names)} class names for {scores.shape[1]} classes"
    return None


def save_scores(score_set: ScoreSet, path: str | os.PathLike) -> Path:
    """Write `score_set` atomically in cvkd's .npz format to exactly `path` (no suffix is added); return the path."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {
        "scores": score_set.scores.astype(np.float32),
        "labels": score_set.labels.astype(np.int64),
        "names": score_set.names.astype(str),
    }
    if score_set.class_names is not None:
        arrays["class_names"] = np.asarray(score_set.class_names, dtype=str)
    if score_set.stream is not None:
        arrays["stream"] = np.asarray(score_set.stream, dtype=str)
    with atomic_path(path) as tmp:
        # Writing through a file object stops np.savez from appending ".npz" to the temporary name.
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
    return path


SCORE_PARSER = "cvkd.scores.files:score_arrays"  # what the parser child runs on each score file


def load_scores(path: str | os.PathLike) -> ScoreSet:
    """Read a score file in cvkd's format or CoViAR's; raise ScoreFileError naming the file if it is neither.

    Trust decision: CoViAR's files store their scores (and possibly their labels) as pickled object arrays.
    Only a file whose `names` load without pickle as strings and whose `scores` is an object array is taken for
    CoViAR's, and only its `scores` and `labels` are then unpickled, through an allow-list unpickler
    (`cvkd.scores.safe_npz`): a pickle naming any other global is refused, so no file runs code. The parse runs in
    a child process under memory and CPU limits (`cvkd.scores.sandbox`), so that even a fault in the C code it
    drives ends in one ScoreFileError line; the arrays come back as raw bytes, checked again here.
    """
    path = Path(path)
    if not path.is_file():
        raise ScoreFileError(path, "no such score file")
    arrays, _ = parse_in_child(SCORE_PARSER, path, ScoreFileError)
    class_names, stream = arrays.get("class_names"), arrays.get("stream")
    try:
        return ScoreSet(arrays["scores"], arrays["labels"], arrays["names"],
                        None if class_names is None else tuple(class_names.tolist()),
                        None if stream is None else str(stream), os.fspath(path))
    except (KeyError, ValueError) as error:
        raise ScoreFileError(path, f"the score-file parser sent no sound score set ({_one_line(error)})") from None


def score_arrays(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict]:
    """The arrays of a score file read in this process (`read_scores`), as the parser child sends them."""
    score_set = read_scores(path)
    arrays = {"scores": score_set.scores, "labels": score_set.labels, "names": score_set.names}
    if score_set.class_names is not None:
        arrays["class_names"] = np.asarray(score_set.class_names, dtype=str)
    if score_set.stream is not None:
        arrays["stream"] = np.asarray(score_set.stream, dtype=str)
    return arrays, {}


def read_scores(path: str | os.PathLike) -> ScoreSet:
    """`load_scores` in this process, without the child: for files this process wrote, and for tests that change
    the parser's bounds."""
    path = Path(path)
    if not path.is_file():
        raise ScoreFileError(path, "no such score file")
    try:
        with open(path, "rb") as handle:
            if handle.read(6) == b"\x93NUMPY":
                raise ScoreFileError(path, "not a .npz score file (it holds a single .npy array)")
        with SafeNpz(path) as archive:
            return _read_archive(path, archive)
    except ScoreFileError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise ScoreFileError(path, f"not a readable .npz score file ({_one_line(error)})") from None


def _read_archive(path: Path, archive: SafeNpz) -> ScoreSet:
    """Build a ScoreSet from an open archive, unpickling only when the file is recognisably CoViAR's."""
    missing = [key for key in ("scores", "labels", "names") if key not in archive.files]
    if missing:
        found = ", ".join(_printable(name) for name in archive.files[:6]) or "none"
        if len(archive.files) > 6:
            found += f" and {len(archive.files) - 6:,} more"
        raise ScoreFileError(path, f"missing array(s) {', '.join(missing)} (found: {found})")
    names = _plain_array(path, archive, "names", required=True)
    if names.dtype.kind not in "US":
        raise ScoreFileError(path, f"names must be strings, got {names.dtype}")
    class_names = _plain_array(path, archive, "class_names", required=True) if "class_names" in archive.files else None
    stream = _plain_array(path, archive, "stream", required=True) if "stream" in archive.files else None
    scores = _plain_array(path, archive, "scores", required=False)
    labels = _plain_array(path, archive, "labels", required=scores is not None)
    if scores is None:
        scores, labels = _coviar_scores_and_labels(path, archive, labels)
    if scores.dtype.kind not in "fiu":
        raise ScoreFileError(path, f"scores must be real numbers, got {scores.dtype}")
    try:
        return ScoreSet(
            scores.astype(np.float32), labels, names.astype(str),
            None if class_names is None else tuple(class_names.astype(str).tolist()),
            None if stream is None else str(stream), os.fspath(path),
        )
    except ValueError as error:
        raise ScoreFileError(path, str(error)) from None


def _plain_array(path: Path, archive: SafeNpz, key: str, required: bool) -> np.ndarray | None:
    """The array `key` loaded without pickle; None if it is an object array, or ScoreFileError if `required`."""
    try:
        return archive[key]
    except ValueError as error:
        if OBJECT_ARRAY_MESSAGE not in str(error):
            raise
        if required:
            problem = f"{key} is a pickled object array, which neither cvkd nor CoViAR writes"
            raise ScoreFileError(path, problem) from None
        return None


def _coviar_scores_and_labels(
    path: Path, archive: SafeNpz, labels: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Unpickle (allow-list only) CoViAR's `scores` pairs `(logits (1, C), label)` into (N, C) logits, (N,) labels.

    `labels` is the file's plain `labels` array, or None when it too was pickled; either way it must agree with the
    labels inside the pairs.
    """
    pairs = archive.objects("scores")
    stored_labels = [_as_label(value) for value in archive.objects("labels")] if labels is None else labels.tolist()
    if pairs.ndim == 0 or len(pairs) == 0:
        raise ScoreFileError(path, "holds no videos")
    if len(pairs) != len(stored_labels):
        raise ScoreFileError(path, f"{len(pairs)} score pairs for {len(stored_labels)} labels")
    rows, pair_labels = [], []
    for index, pair in enumerate(pairs):
        logits, label = _split_pair(path, index, pair)
        if rows and logits.size != rows[0].size:
            raise ScoreFileError(path, f"score pair {index} has {logits.size} classes, pair 0 has {rows[0].size}")
        if label != stored_labels[index]:
            raise ScoreFileError(path, f"score pair {index} has label {label} but labels[{index}] is "
                                       f"{stored_labels[index]}")
        rows.append(logits)
        pair_labels.append(label)
    return np.stack(rows), np.asarray(pair_labels, dtype=np.int64)


def _split_pair(path: Path, index: int, pair: object) -> tuple[np.ndarray, int]:
    """One CoViAR entry as (logits (C,), label); raise ScoreFileError if it is not a `(logits, label)` pair."""
    if not isinstance(pair, (tuple, list, np.ndarray)) or len(pair) != 2:
        raise ScoreFileError(path, f"score entry {index} is not a (logits, label) pair")
    logits, label = pair[0], _as_label(pair[1])
    if not isinstance(logits, np.ndarray) or logits.dtype.kind not in "fiu" or logits.ndim not in (1, 2) or (
        logits.ndim == 2 and logits.shape[0] != 1
    ):
        shape = getattr(logits, "shape", type(logits).__name__)
        raise ScoreFileError(path, f"score pair {index}: logits must be a numeric array of shape (1, C), got {shape}")
    if label is None:
        raise ScoreFileError(path, f"score pair {index}: label must be an integer, got {pair[1]!r:.40}")
    return logits.reshape(-1).astype(np.float64), label


def _as_label(value: object) -> int | None:
    """An integer class label from an int, a NumPy integer or a one-element integer array/tensor; None otherwise."""
    try:
        array = np.asarray(value)
    except Exception:  # noqa: BLE001 - any object that cannot become an array is simply not a label
        return None
    if array.size != 1 or array.dtype.kind not in "iu":
        return None
    return int(array.reshape(()))


def _printable(name: str) -> str:
    """A member name as it may appear in a one-line message: control characters (a vertical tab ends a line, an
    escape sequence steers the terminal) written as escapes, and cut to 40 characters."""
    text = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in name)
    return text if len(text) <= 40 else text[:37] + "..."


def _one_line(error: BaseException) -> str:
    """The first line of an exception's message."""
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__

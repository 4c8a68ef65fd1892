"""Match score sets of the same videos before fusing them: class order, then videos by name or, failing that, position.

Tools spell the same video differently, so names are compared through `video_key`: the last two path parts (class
folder and file name) without a video extension, so cvkd's `videos/brush_hair/x.mp4` and CoViAR's
`brush_hair/x.avi` match. When the names still disagree but both sets list as many videos, with the same labels in
the same order, and every name both sets share sits at the same position in each (CoViAR's files spell names
differently from machine to machine, e.g. punctuation replaced), the sets are matched by position and a note says
how many names differ. Anything else is refused with one line naming both files.

Classes: a set without class names may be given them (a class map); sets that record class names in another order
than the first set that records them have their columns and labels permuted to that order.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import PurePosixPath
from typing import Sequence

import numpy as np

from cvkd.data.lists import VIDEO_EXTENSIONS
from cvkd.errors import ScoreMismatchError
from cvkd.scores.files import ScoreSet


@dataclass(frozen=True)
class Alignment:
    """Score sets in the first one's video order (and names) and in one class order, with a note per file that was
    matched other than by identical names (normalised names, by position, classes reordered)."""

    score_sets: tuple[ScoreSet, ...]
    notes: tuple[str, ...]


def video_key(name: str) -> str:
    """How a video name is compared across files: its last two path parts, without a video file extension."""
    parts = [part for part in str(name).replace("\\", "/").split("/") if part not in ("", ".")]
    if not parts:
        return ""
    last = PurePosixPath(parts[-1])
    if last.suffix.lower() in VIDEO_EXTENSIONS:
        parts[-1] = last.stem
    return "/".join(parts[-2:])


def with_class_names(score_set: ScoreSet, class_names: Sequence[str], origin: str = "the class map") -> ScoreSet:
    """`score_set` with `class_names` as its class order if it records none (ScoreMismatchError if the counts differ)."""
    if score_set.class_names is not None:
        return score_set
    if len(class_names) != score_set.num_classes:
        raise ScoreMismatchError(f"{score_set.display_name}: {score_set.num_classes} classes but {origin} lists "
                        f"{len(class_names)}")
    return replace(score_set, class_names=tuple(class_names))


def reorder_classes(score_set: ScoreSet, class_names: Sequence[str]) -> ScoreSet:
    """`score_set` with its columns and labels permuted into the order `class_names` (the same names, reordered)."""
    own = score_set.class_names
    if own is None:
        raise ValueError("reorder_classes needs a score set that records its class names")
    position = {name: index for index, name in enumerate(own)}
    order = np.array([position[name] for name in class_names], dtype=np.int64)  # new column j = old column order[j]
    new_label = np.empty_like(order)
    new_label[order] = np.arange(len(order))
    return replace(score_set, scores=score_set.scores[:, order], labels=new_label[score_set.labels],
                   class_names=tuple(class_names))


def align_scores(score_sets: Sequence[ScoreSet], class_names: Sequence[str] | None = None) -> Alignment:
    """Match every score set to the first: classes (after giving `class_names` to sets that record none), then videos.

    The result carries the first set's video names everywhere; ScoreMismatchError naming both files when sets disagree.
    """
    if not score_sets:
        raise ValueError("align needs at least one score set")
    sets = [with_class_names(s, class_names) if class_names is not None else s for s in score_sets]
    notes: list[str] = []
    sets = _common_class_order(sets, notes)
    reference = sets[0]
    aligned = [reference] + [_match_videos(reference, other, notes) for other in sets[1:]]
    return Alignment(tuple(aligned), tuple(notes))


def align(score_sets: Sequence[ScoreSet], class_names: Sequence[str] | None = None) -> list[ScoreSet]:
    """The score sets of `align_scores`, without its notes."""
    return list(align_scores(score_sets, class_names).score_sets)


def _common_class_order(sets: list[ScoreSet], notes: list[str]) -> list[ScoreSet]:
    """Check the class counts and put every set that records class names into the first such set's order."""
    first = sets[0]
    for other in sets[1:]:
        if other.num_classes != first.num_classes:
            raise ScoreMismatchError(f"{other.display_name}: {other.num_classes} classes but {first.display_name} has "
                            f"{first.num_classes}")
    named = [s for s in sets if s.class_names is not None]
    if not named:
        return sets
    target = named[0]
    result = []
    for score_set in sets:
        if score_set.class_names is None or score_set.class_names == target.class_names:
            result.append(score_set)
            continue
        unknown = [name for name in score_set.class_names if name not in target.class_names]
        if unknown:
            raise ScoreMismatchError(f"{score_set.display_name}: {len(unknown)} class name(s) not in {target.display_name} "
                            f"(first: {unknown[0]!r})")
        result.append(reorder_classes(score_set, target.class_names))
        notes.append(f"{score_set.display_name}: classes put in the order of {target.display_name} by name")
    return result


def _match_videos(reference: ScoreSet, other: ScoreSet, notes: list[str]) -> ScoreSet:
    """`other` with its videos in `reference`'s order and under its names, after checking the labels agree."""
    if np.array_equal(reference.names, other.names):
        matched = other
    else:
        _refuse_duplicates(other)
        _refuse_duplicates(reference)
        order = _order_by(reference.names.tolist(), other.names.tolist())
        if order is None:
            order = _order_by(_keys(reference), _keys(other))
            if order is not None:
                notes.append(f"{other.display_name}: videos matched to {reference.display_name} by name after "
                             f"normalising folders and extensions")
        if order is not None:
            matched = other.take(order)
        else:
            matched = _match_by_position(reference, other)
            differing = [i for i, (a, b) in enumerate(zip(_keys(reference), _keys(other))) if a != b]
            first = differing[0] if differing else int(np.flatnonzero(reference.names != other.names)[0])
            notes.append(f"{other.display_name}: matched to {reference.display_name} by position: {len(differing)} of "
                         f"{reference.num_videos} video names differ (first: {other.names[first]} for "
                         f"{reference.names[first]}); counts, order and labels agree")
    wrong = np.flatnonzero(matched.labels != reference.labels)
    if wrong.size:
        i = wrong[0]
        raise ScoreMismatchError(f"{other.display_name}: labels differ from {reference.display_name} for {wrong.size} video(s) "
                        f"(first: {reference.names[i]} is {matched.labels[i]}, not {reference.labels[i]})")
    return replace(matched, names=reference.names)


def _refuse_duplicates(score_set: ScoreSet) -> None:
    """ScoreMismatchError if a video name appears twice (such a set can be matched neither by name nor safely by position)."""
    names, counts = np.unique(score_set.names, return_counts=True)
    if (counts > 1).any():
        name, count = names[counts > 1][0], counts[counts > 1][0]
        raise ScoreMismatchError(f"{score_set.display_name}: video {name} appears {count} times, so it cannot be matched "
                        f"by name")


def _keys(score_set: ScoreSet) -> list[str]:
    return [video_key(name) for name in score_set.names.tolist()]


def _order_by(ref_keys: list[str], other_keys: list[str]) -> np.ndarray | None:
    """Indices into the other list that put its keys in `ref_keys`' order; None unless both hold the same unique keys."""
    if len(set(ref_keys)) != len(ref_keys) or len(set(other_keys)) != len(other_keys):
        return None
    if set(ref_keys) != set(other_keys):
        return None
    position = {key: index for index, key in enumerate(other_keys)}
    return np.array([position[key] for key in ref_keys], dtype=np.int64)


def _match_by_position(reference: ScoreSet, other: ScoreSet) -> ScoreSet:
    """`other` as it is if it can stand for `reference` video by video; otherwise ScoreMismatchError saying why not."""
    ref_keys, other_keys = _keys(reference), _keys(other)
    ref_set, other_set = set(ref_keys), set(other_keys)
    extra = [name for name, key in zip(other.names.tolist(), other_keys) if key not in ref_set]
    lacking = [name for name, key in zip(reference.names.tolist(), ref_keys) if key not in other_set]
    problems = []
    if extra:
        problems.append(f"{len(extra)} video(s) not in {reference.display_name} (first: {extra[0]})")
    if lacking:
        problems.append(f"{len(lacking)} video(s) of {reference.display_name} missing (first: {lacking[0]})")
    reason = _position_problem(reference, other, ref_keys, other_keys)
    if reason is not None:
        problems.append(f"not matched by position either: {reason}")
        raise ScoreMismatchError(f"{other.display_name}: {'; '.join(problems)}")
    return other


def _position_problem(reference: ScoreSet, other: ScoreSet, ref_keys: list[str], other_keys: list[str]) -> str | None:
    """Why `other` cannot be matched to `reference` by position (counts, labels, order), or None if it can."""
    if other.num_videos != reference.num_videos:
        return f"{other.num_videos} videos against {reference.num_videos}"
    wrong = np.flatnonzero(other.labels != reference.labels)
    if wrong.size:
        return f"labels differ at {wrong.size} position(s) (first: position {int(wrong[0])})"
    shared = set(ref_keys) & set(other_keys)
    moved = [i for i, (a, b) in enumerate(zip(ref_keys, other_keys)) if a != b and (a in shared or b in shared)]
    if moved:
        return f"{len(moved)} shared video name(s) sit at other positions (first: position {moved[0]})"
    return None

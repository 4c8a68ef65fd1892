"""Seeded corruption fuzzer: MPEG-4 Part 2 clips (.mp4, faststart .mp4, .avi, raw .m4v) encoded on the fly, damaged
where their structure lies (cuts, bit flips, MP4 boxes / AVI chunks / stream headers, VOP headers), then read the way
a user reads them: `cvkd info` (through `cvkd.cli.main`), `index_video`, `CompressedVideo.load_many` of every
representation at the frames around the damage.

Every variant must end in a result or in a one-line CvkdError within VARIANT_SECONDS. A frame that is returned must
have the indexed size, and it must equal the clean clip's frame (all four representations) when:
  - the clip was truncated (whatever a cut leaves is either whole, or the cut frame, which must be refused), or
  - all the damage lies after the frame's data (past the next VOP's start code) and before any trailing index.
Damage inside a frame's own data that still decodes cannot be told from a real picture (MPEG-4 Part 2 has no
checksums): such frames are counted ("silently damaged"), not failed; docs/reliability.md gives the figures.

CVKD_FUZZ_VARIANTS=N tries N variants per clip (default 80: 320 in all), CVKD_FUZZ_SEED picks the draw.
"""

from __future__ import annotations

import faulthandler
import io
import json
import os
import random
import signal
import traceback
from collections import Counter
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from clips import encode, encode_with_pyav, pan
from coviar_files import write_coviar_scores
from hardening.damage import KINDS, Layout, Variant, damage, faststart_mp4, layout_of
from hardening.fuzzing import Variant as ByteVariant
from hardening.fuzzing import corrupt
from hardening.hostile_files import CRAFTED_VARIANTS, crafted_variant, header_bomb, zip_bomb
from hardening.stream_damage import (FAMILIES, FRAMES, clean_pictures, damage_stream, misplaced, returned_pictures,
                                     timing_clips)

from cvkd.cli import main
from cvkd.codec.index import VideoIndex, index_video
from cvkd.codec.reader import REPRESENTATIONS, CompressedVideo
from cvkd.errors import CvkdError, ScoreFileError
from cvkd.scores.files import ScoreSet, load_scores, save_scores

SIZE = (64, 48)
PER_CLIP = int(os.environ.get("CVKD_FUZZ_VARIANTS", "80"))
SEED = int(os.environ.get("CVKD_FUZZ_SEED", "0"))
VARIANT_SECONDS = 20  # a hang detector (a variant takes ~20 ms); a C-level hang is killed by faulthandler at 3x
CHANNELS = {"iframe": 3, "rgb": 3, "mv": 2, "residual": 3}


class VariantTimeout(Exception):
    """A variant took longer than VARIANT_SECONDS."""


@dataclass(frozen=True)
class Clean:
    """A clean clip and everything the checks compare with."""

    path: Path
    data: bytes
    layout: Layout
    index: VideoIndex
    arrays: dict[str, list[np.ndarray]]  # representation -> one array per frame (accumulated motion)


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> dict[str, Clean]:
    folder = tmp_path_factory.mktemp("fuzz_clean")
    paths = [
        encode(pan(SIZE, 19, (2, 1)), folder / "cvkd.mp4", gop=6),
        faststart_mp4(folder / "fast.mp4", SIZE, 19, gop=6),
        encode_with_pyav(pan(SIZE, 16, (1, 0)), folder / "mpeg4.avi", container_format="avi", gop=6),
        encode_with_pyav(pan(SIZE, 25, (1, 1)), folder / "raw.m4v", container_format="m4v", gop=6),
    ]
    clips = {}
    for path in paths:
        index = index_video(path, use_cache=False)
        with CompressedVideo(path, index) as video:
            arrays = video.load_many(range(index.num_frames), REPRESENTATIONS)
        data = path.read_bytes()
        clips[path.name] = Clean(path, data, layout_of(data, path.suffix), index, arrays)
    return clips


def test_clean_clips_are_laid_out_as_the_fuzzer_assumes(clean, capsys) -> None:
    """The control: one VOP start code per frame, the frame data before any trailing index, `info` exits 0."""
    for name, clip in clean.items():
        assert len(clip.layout.vops) == clip.index.num_frames and not clip.index.has_b_frames, name
        assert clip.layout.vops[-1] < clip.layout.tail <= len(clip.data), name
        assert main(["info", "--json", str(clip.path)]) == 0
        assert json.loads(capsys.readouterr().out)["frames"] == clip.index.num_frames
    assert clean["cvkd.mp4"].layout.tail < len(clean["cvkd.mp4"].data)  # moov after the frames
    assert clean["fast.mp4"].layout.tail == len(clean["fast.mp4"].data)  # moov before them


def test_damaged_clips_end_in_a_typed_error_or_in_the_clean_frames(
    clean, tmp_path, monkeypatch, record_property
) -> None:
    (tmp_path / "not_a_folder").write_text("")
    monkeypatch.setenv("CVKD_CACHE_DIR", str(tmp_path / "not_a_folder" / "cache"))  # no index cache: no fsyncs
    stats: Counter[str] = Counter()
    failures: list[str] = []
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    try:
        for number, name in enumerate(sorted(clean)):
            clip = clean[name]
            variants = [Variant(name, KINDS[k % len(KINDS)], SEED * 1_000_003 + number * 10_007 + k)
                        for k in range(PER_CLIP)]
            damaged = {}
            for k, variant in enumerate(variants):
                data, first, last = damage(clip.data, clip.layout, variant)
                path = tmp_path / f"{Path(name).stem}_{k}{clip.path.suffix}"  # one name each: the index cache
                path.write_bytes(data)                                           # keys by path, size and mtime
                damaged[variant] = (path, first, last)
            paths = [path for path, _, _ in damaged.values()]
            shown, problem = _bounded(lambda: _info(paths), VARIANT_SECONDS * (1 + len(paths) // 20))
            if problem:
                failures.append(f"cvkd info over the {len(paths)} variants of {name}: {problem}")
                continue
            for variant, (path, first, last) in damaged.items():
                result, error = _bounded(
                    lambda: check_variant(path, clip, variant.kind, first, last, shown[path], stats), VARIANT_SECONDS
                )
                problem = error or result
                stats[f"{variant.kind}: {'failed' if problem else 'ok'}"] += 1
                if problem:
                    failures.append(f"{variant.describe()} (bytes {first}..{last}): {problem}")
                path.unlink()
    finally:
        signal.signal(signal.SIGALRM, previous)

    tried = PER_CLIP * len(clean)
    record_property("corruption_variants", tried)
    print(f"\ncorruption fuzz: {tried} variants, seed {SEED}: {json.dumps(dict(sorted(stats.items())))}")
    assert not failures, f"{len(failures)} of {tried} variants failed:\n" + "\n".join(failures[:8])
    # The damage reaches every path: refusals, frames compared with the clean clip, and silent damage counted (that
    # there is some shows that the comparison does see a damaged picture).
    assert stats["index refused"] >= tried // 10 and stats["index read"] >= tried // 10, stats
    assert stats["frames equal to the clean clip"] >= tried, stats
    assert stats["frames refused"] > 0 and stats["frames silently damaged"] > 0, stats


def _on_alarm(signum, frame) -> None:
    raise VariantTimeout


def _bounded(call, seconds: float):
    """(call's result, None), or (None, what went wrong): a foreign exception's traceback, or a timeout. A hang in
    C code, which no Python signal handler can interrupt, ends the process with a traceback after 3x the bound."""
    faulthandler.dump_traceback_later(3 * seconds, exit=True)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return call(), None
    except VariantTimeout:
        return None, f"no result within {seconds} s"
    except Exception:  # noqa: BLE001 - a foreign exception is the finding
        return None, traceback.format_exc(limit=-6)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        faulthandler.cancel_dump_traceback_later()


def check_variant(path: Path, clip: Clean, kind: str, first: int, last: int, shown: tuple[dict | None, str | None],
                  stats: Counter) -> str | None:
    """Check one damaged file against what `info` said of it (its JSON, or its error line): the index and the reader
    must agree with it and keep their promises; the broken promise, or None (counts in `stats`)."""
    described, error_line = shown
    try:
        index = index_video(path, use_cache=False)
    except CvkdError as error:
        stats["index refused"] += 1
        if described is not None:
            return f"info described the file but the index refused it: {error}"
        return _one_line(error)
    stats["index read"] += 1
    if described is None:
        return f"the index read {index.num_frames} frames but info refused: {error_line}"
    if described["frames"] != index.num_frames:
        return f"info says {described['frames']} frames, the index {index.num_frames}"
    if kind == "truncate" and index.num_frames > clip.index.num_frames:
        return f"a cut clip indexes {index.num_frames} frames, more than the clean {clip.index.num_frames}"
    try:
        video = CompressedVideo(path, index)
    except CvkdError as error:
        stats["reader refused"] += 1
        return _one_line(error)
    with video:
        hit = clip.layout.frame_at(first)
        for frame in sorted({0, hit - 1, hit, hit + 1, index.num_frames - 1} & set(range(index.num_frames))):
            problem = _check_frame(video, clip, index, frame, kind, first, last, stats)
            if problem:
                return problem
    return None


def _check_frame(video: CompressedVideo, clip: Clean, index: VideoIndex, frame: int, kind: str, first: int, last: int,
                 stats: Counter) -> str | None:
    """Load every representation of `frame`; it must be refused, or be the clean frame when nothing can have
    touched it."""
    try:
        arrays = video.load_many([frame], REPRESENTATIONS)
    except CvkdError as error:
        stats["frames refused"] += 1
        if kind == "truncate":  # a cut only ever harms the last frames: the index must have seen it
            return f"the index accepted a cut file, then frame {frame} was refused: {error}"
        return _one_line(error)
    for name, (array,) in arrays.items():
        if array.shape != (index.height, index.width, CHANNELS[name]):
            return f"frame {frame} {name} has shape {array.shape}, the index says {index.height}x{index.width}"
    known = frame < clip.index.num_frames
    equal = known and all(np.array_equal(arrays[name][0], clip.arrays[name][frame]) for name in REPRESENTATIONS)
    untouched = known and first >= clip.layout.span_end(frame) and last <= clip.layout.tail
    if kind == "truncate" or untouched:
        if not equal:
            return f"frame {frame} was returned as good but differs from the clean clip's"
        stats["frames equal to the clean clip"] += 1
    else:
        stats["frames equal to the clean clip" if equal else "frames silently damaged"] += 1
    return None


def _info(paths: list[Path]) -> dict[Path, tuple[dict | None, str | None]]:
    """`cvkd info --json PATH...` in this process; per file its JSON object or its error line (exactly one of them:
    a file described twice, never, or an error line naming no file is an AssertionError)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["info", "--json", *map(str, paths)])
    described = [json.loads(line) for line in out.getvalue().splitlines()]
    errors = err.getvalue().splitlines()
    shown: dict[Path, tuple[dict | None, str | None]] = {Path(d["path"]): (d, None) for d in described}
    for line in errors:
        named = [p for p in paths if line.startswith(f"cvkd info: error: {p}: ")]
        assert len(named) == 1 and named[0] not in shown, f"an error line that names no single new file: {line!r}"
        shown[named[0]] = (None, line)
    assert len(described) + len(errors) == len(paths) == len(shown), (len(described), len(errors), len(paths))
    assert code == (2 if errors else 0), code
    return shown


def _one_line(error: CvkdError) -> str | None:
    return f"multi-line error: {error!r}" if "\n" in str(error) else None


# -- what places a picture: raw heads, lost pictures, sample tables ------------------------------------------------------
TIMING_VARIANTS = int(os.environ.get("CVKD_FUZZ_TIMING_VARIANTS", "12"))


@pytest.fixture(scope="module")
def timing_clean(tmp_path_factory) -> dict[str, tuple[Path, list[np.ndarray]]]:
    clips = timing_clips(tmp_path_factory.mktemp("timing_clean"))
    return {name: (path, clean_pictures(path)) for name, path in clips.items()}


def test_damage_to_what_places_a_picture_never_returns_another_frames_picture(timing_clean, tmp_path,
                                                                              record_property) -> None:
    """Raw H.264 and MPEG-4 heads zeroed or cut, pictures lost from a raw MPEG-4 stream, MP4 `stts` / `ctts` entries
    damaged: every variant ends in a result or one line, no returned picture is another index's clean picture, and a
    picture the damage cannot have touched comes back equal to the clean clip's picture of its index."""
    assert all(len(clean) == FRAMES for _, clean in timing_clean.values())
    stats: Counter[str] = Counter()
    failures: list[str] = []
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    try:
        for number, (clip, kind) in enumerate(FAMILIES):
            path, clean = timing_clean[clip]
            for k in range(TIMING_VARIANTS):
                seed = SEED * 1_000_003 + number * 10_007 + k
                damaged = damage_stream(path.read_bytes(), clip, kind, random.Random(seed))
                target = tmp_path / f"{number}_{k}{path.suffix}"
                target.write_bytes(damaged.data)
                result, error = _bounded(lambda: returned_pictures(target), VARIANT_SECONDS)
                problem = error or _timing_problem(result, clean, damaged, Counter() if error else stats, clip, kind)
                if problem:
                    failures.append(f"{clip} {kind} seed={seed}: {problem}")
    finally:
        signal.signal(signal.SIGALRM, previous)
    tried = len(FAMILIES) * TIMING_VARIANTS
    record_property("timing_variants", tried)
    print(f"\ntiming fuzz: {tried} variants, seed {SEED}: {json.dumps(dict(sorted(stats.items())))}")
    assert not failures, f"{len(failures)} of {tried} variants failed:\n" + "\n".join(failures[:8])
    assert sum(stats[f"{clip} {kind}: refused"] + stats[f"{clip} {kind}: read"] for clip, kind in FAMILIES) == tried


def _timing_problem(result: dict[int, np.ndarray] | str, clean: list[np.ndarray], damaged, stats: Counter,
                    clip: str, kind: str) -> str | None:
    """What is wrong with the pictures returned for one damaged clip, or None (counting outcomes in `stats`)."""
    family = f"{clip} {kind}"
    if isinstance(result, str):
        stats[f"{family}: refused"] += 1
        return None
    stats[f"{family}: read"] += 1
    for frame, picture in result.items():
        own = frame + damaged.shift
        other = misplaced(frame, picture, clean, damaged.shift)
        if other is not None:
            return f"frame {frame} is the clean clip's picture {other}, not {own}"
        if own >= len(clean):
            return f"frame {frame} lies past the {len(clean) - damaged.shift} pictures the damage left"
        equal = np.array_equal(picture, clean[own])
        if own in damaged.intact and not equal:
            return f"frame {frame} was untouched by the damage but differs from the clean picture {own}"
        stats[f"{family}: pictures {'equal' if equal else 'silently damaged'}"] += 1
    return None


# -- the crafted score-file corpus --------------------------------------------------------------------------------------
SCORE_DAMAGE = ("truncate", "flip", "scramble")
SCORE_VARIANTS = int(os.environ.get("CVKD_FUZZ_SCORE_VARIANTS", "10"))


def test_crafted_and_damaged_score_files_are_refused_in_one_line(tmp_path, record_property) -> None:
    """Every crafted score file (the dtype-flags file and its variants, the bombs) is refused in one ScoreFileError
    line by the parser child; seeded byte damage (cut, bit flips, scrambled runs) of a CoViAR file and a cvkd file
    is refused in one line or read as a sound score set."""
    crafted = {name: crafted_variant(tmp_path / f"crafted_{n}.npz", name)
               for n, name in enumerate(("dtype flags", *CRAFTED_VARIANTS))}
    crafted["header bomb"] = header_bomb(tmp_path / "header_bomb.npz")
    crafted["zip bomb"] = zip_bomb(tmp_path / "zip_bomb.npz")
    crafted["lying zip member"] = zip_bomb(tmp_path / "liar.npz", declared=1000)
    stats: Counter[str] = Counter()
    failures = []
    for name, path in crafted.items():
        try:
            load_scores(path)
            failures.append(f"crafted {name}: read")
        except ScoreFileError as error:
            if not _names_in_one_printable_line(error, path):
                failures.append(f"crafted {name}: {error!r}")
            stats["crafted: refused"] += 1
    sources = {
        "coviar": write_coviar_scores(tmp_path / "coviar.npz", np.arange(12.0).reshape(4, 3), [2, 0, 1, 1],
                                      [f"c/v{i}.avi" for i in range(4)], label_type="numpy"),
        "cvkd": save_scores(ScoreSet(np.eye(4, dtype=np.float32), np.arange(4), [f"c/v{i}.avi" for i in range(4)],
                                     ("a", "b", "c", "d"), "iframe"), tmp_path / "cvkd.npz"),
    }
    for number, (source, path) in enumerate(sources.items()):
        data = path.read_bytes()
        for k in range(SCORE_VARIANTS * len(SCORE_DAMAGE)):
            variant = ByteVariant(k, source, SCORE_DAMAGE[k % len(SCORE_DAMAGE)], SEED * 1_000_003 + number * 10_007 + k)
            target = tmp_path / f"{source}_{k}.npz"
            target.write_bytes(corrupt(data, variant))
            try:
                load_scores(target)
                stats[f"{source} {variant.kind}: read"] += 1
            except ScoreFileError as error:
                stats[f"{source} {variant.kind}: refused"] += 1
                if not _names_in_one_printable_line(error, target):
                    failures.append(f"{variant.describe()}: {error!r}")
    record_property("score_file_variants", sum(stats.values()))
    print(f"\nscore-file fuzz: {sum(stats.values())} files, seed {SEED}: {json.dumps(dict(sorted(stats.items())))}")
    assert not failures, "\n".join(failures)
    assert stats["crafted: refused"] == len(crafted)


def _names_in_one_printable_line(error: ScoreFileError, path: Path) -> bool:
    """The error names the file in one line without control characters (a vertical tab in a member name ended the
    line, an escape sequence would steer the terminal)."""
    return str(path) in str(error) and str(error).isprintable()

"""Corrupted variants of real clips, and the checks one variant must survive (also runnable as a worker process).

A variant is fully described by (clip, kind, seed): `corrupt(clip_bytes, variant)` rebuilds its bytes from the clean
clip, so a reported failure can be reproduced with `exercise` on those bytes (or the worker on a one-variant list).

Worker mode (`python fuzzing.py SPECS.json OUT_DIR`): for every variant it prints one JSON line `{"start": id}`
before the checks and one line `{"id": ..., "outcome": ..., "detail": ...}` after them, so a parent that sees a
start line without its result knows which variant killed or hung the process.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

KINDS = ("truncate", "flip", "zero_head", "zero_header", "scramble", "append")  # plus one "empty" file per clip
# Where a decoder's set-up lives: the `moov` box of an MP4, the VOL header of a raw MPEG-4 stream, the `hdrl` list of
# an AVI, the `Tracks` element of a Matroska file.
HEADER_MARKERS = (b"moov", b"\x00\x00\x01\x20", b"hdrl", b"\x16\x54\xae\x6b")

HANDLED, FOREIGN_ERROR = "handled", "foreign_error"  # a result or a CvkdError; anything else


@dataclass(frozen=True)
class Variant:
    """One corruption of one clean clip: `kind` with its parameters drawn from `seed`; `offset` is where it starts."""

    id: int
    clip: str  # path of the clean clip
    kind: str
    seed: int
    offset: int = 0

    def describe(self) -> str:
        """A line that names the variant well enough to rebuild it."""
        return f"#{self.id} {Path(self.clip).name} kind={self.kind} seed={self.seed} offset={self.offset}"


def plan_variants(clips: dict[str, bytes], per_clip: int, seed: int) -> list[Variant]:
    """`per_clip` variants of every clip (path -> clean bytes): one empty file, then the KINDS in turn."""
    variants = []
    for clip_number, (clip, data) in enumerate(sorted(clips.items())):
        for k in range(per_clip):
            kind = "empty" if k == 0 else KINDS[(k - 1) % len(KINDS)]
            variant_seed = seed * 1_000_003 + clip_number * 10_007 + k
            offset = _draw(kind, data, random.Random(variant_seed))[0]
            variants.append(Variant(len(variants), clip, kind, variant_seed, offset))
    return variants


def corrupt(data: bytes, variant: Variant) -> bytes:
    """The bytes of `variant`, rebuilt from the clean clip's `data`."""
    offset, parameter = _draw(variant.kind, data, random.Random(variant.seed))
    rng = random.Random(variant.seed + 1)
    if variant.kind == "truncate":
        return data[:offset]
    if variant.kind == "flip":
        damaged = bytearray(data)
        for position in [offset] + [rng.randrange(len(data)) for _ in range(parameter - 1)]:
            damaged[position] ^= rng.randrange(1, 256)
        return bytes(damaged)
    if variant.kind in ("zero_head", "zero_header"):
        return data[:offset] + bytes(len(data[offset : offset + parameter])) + data[offset + parameter :]
    if variant.kind == "scramble":
        return data[:offset] + rng.randbytes(parameter) + data[offset + parameter :]
    if variant.kind == "append":
        return data + rng.randbytes(parameter)
    if variant.kind == "empty":
        return b""
    raise ValueError(f"unknown corruption kind {variant.kind!r}")


def _draw(kind: str, data: bytes, rng: random.Random) -> tuple[int, int]:
    """(offset, parameter) of a corruption of `data`: where it starts, and its size or count."""
    size = len(data)
    if kind == "truncate":
        return rng.randrange(1, size), 0
    if kind == "flip":
        return rng.randrange(size), rng.choice((1, 2, 4, 8, 16, 64))  # first flipped byte, bytes flipped
    if kind == "zero_head":
        return 0, rng.choice((4, 8, 16, 32, 64, 256, 1024))  # bytes zeroed from the start
    if kind == "zero_header":
        return max(0, _header_start(data) + rng.randrange(-8, 64)), rng.choice((4, 8, 16, 64, 256))
    if kind == "scramble":
        return rng.randrange(size), rng.choice((16, 64, 256))  # random bytes over a run of this length
    if kind == "append":
        return size, rng.choice((1, 7, 100, 4096))  # garbage bytes appended
    return 0, 0


def _header_start(data: bytes) -> int:
    """Offset of the first container or stream header marker in `data` (0 when none is found)."""
    found = [offset for offset in (data.find(marker) for marker in HEADER_MARKERS) if offset >= 0]
    return min(found) if found else 0


# -- the checks -------------------------------------------------------------------------------------------------------
def exercise(path: Path, out_dir: Path) -> str:
    """Index, open, load every representation and re-encode `path`; return a summary (raises on failure)."""
    from cvkd.codec.encode import EncodeSettings, reencode
    from cvkd.codec.index import index_video
    from cvkd.codec.reader import REPRESENTATIONS, CompressedVideo
    from cvkd.errors import CvkdError

    notes = []
    try:
        index = index_video(path, use_cache=False)
        video = CompressedVideo(path, index)
        frames = sorted({0, index.num_frames // 2, index.num_frames - 1})
        for accumulate in (True, False):
            loaded = video.load_many(frames, REPRESENTATIONS, accumulate)
            _check_shapes(loaded, index.height, index.width, len(frames))
        video.close()
        notes.append(f"read {index.num_frames} frames")
    except CvkdError as error:
        _check_one_line(error)
        notes.append(f"reader: {type(error).__name__}")
    output = out_dir / "reencoded.mp4"
    output.unlink(missing_ok=True)
    try:
        written = reencode(path, output, EncodeSettings(gop=12, width=64, height=48))
        check = index_video(output, use_cache=False)  # whatever reencode writes must be a usable cvkd video
        assert check.num_frames == written and not check.has_b_frames, (check.num_frames, written)
        notes.append(f"reencoded {written} frames")
    except CvkdError as error:
        _check_one_line(error)
        assert not output.exists(), "a failed re-encode left an output behind"
        notes.append(f"reencode: {type(error).__name__}")
    leftovers = [p.name for p in out_dir.iterdir() if p.name.startswith(".")]
    assert not leftovers, f"temporary files left behind: {leftovers}"
    return "; ".join(notes)


def _check_shapes(loaded: dict, height: int, width: int, count: int) -> None:
    channels = {"iframe": 3, "rgb": 3, "mv": 2, "residual": 3}
    for name, arrays in loaded.items():
        assert len(arrays) == count, (name, len(arrays))
        for array in arrays:
            assert array.shape == (height, width, channels[name]), (name, array.shape)


def _check_one_line(error: Exception) -> None:
    assert "\n" not in str(error), f"multi-line error: {error!r}"


def run_worker(specs: Path, out_dir: Path) -> None:
    """Check every variant listed in `specs` (JSON list of Variant fields), reporting one JSON line per step."""
    out_dir.mkdir(parents=True, exist_ok=True)
    clean: dict[str, bytes] = {}
    for fields in json.loads(specs.read_text()):
        variant = Variant(**fields)
        print(json.dumps({"start": variant.id}), flush=True)
        if variant.clip not in clean:
            clean[variant.clip] = Path(variant.clip).read_bytes()
        damaged = out_dir / f"variant{Path(variant.clip).suffix}"
        damaged.write_bytes(corrupt(clean[variant.clip], variant))
        try:
            _sabotage(variant.id)
            outcome, detail = HANDLED, exercise(damaged, out_dir)
        except BaseException as error:  # noqa: BLE001 - anything else is the finding
            lines = traceback.format_exception(type(error), error, error.__traceback__)
            outcome, detail = FOREIGN_ERROR, "".join(lines[-12:])[-3000:]
        print(json.dumps({"id": variant.id, "outcome": outcome, "detail": detail}), flush=True)


def _sabotage(variant_id: int) -> None:
    """Misbehave on purpose when CVKD_FUZZ_SABOTAGE (JSON {id: "crash"|"hang"|"raise"}) names this variant: the
    harness's own test uses it to show that crashes, hangs and foreign errors are caught."""
    action = json.loads(os.environ.get("CVKD_FUZZ_SABOTAGE", "{}")).get(str(variant_id))
    if action == "crash":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif action == "hang":
        time.sleep(3600)
    elif action == "raise":
        raise ValueError("sabotaged")


def variant_dicts(variants: list[Variant]) -> list[dict]:
    """Variants as JSON-ready dicts (the worker's input)."""
    return [asdict(variant) for variant in variants]


if __name__ == "__main__":
    run_worker(Path(sys.argv[1]), Path(sys.argv[2]))

"""`cvkd reencode --shard K/N`: disjoint shares whose union is every source, assigned by path; long file names."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from clips import encode, pan

from cvkd.cli import main
from cvkd.codec.index import index_video
from cvkd.data.shards import Shard, parse_shard, share_of
from cvkd.errors import ConfigError

NAMES = ("run/r1.mp4", "run/r2.mp4", "run/r3.mp4", "walk/w1.mp4", "walk/w2.mp4", "walk/w3.mp4", "j1.mp4")


def by_hand(relative: str, n: int) -> int:
    """The documented rule, recomputed another way: the first 16 hex digits of SHA-256 as a number, mod n, plus 1."""
    return int(hashlib.sha256(relative.encode("utf-8")).hexdigest()[:16], 16) % n + 1


def make_sources(root: Path, names=NAMES) -> Path:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        encode(pan((32, 32), 3, (1, 0)), root / name, gop=50)
    return root


def outputs(folder: Path) -> set[str]:
    """Every file under `folder`, relative paths (hidden ones too: nothing temporary may be left)."""
    return {path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()}


def reencode(*args) -> int:
    return main(["reencode", *map(str, args), "--size", "16x16", "--gop", "2", "--workers", "1"])


def test_shares_are_disjoint_cover_every_source_and_follow_the_hash_rule(tmp_path, capsys):
    src = make_sources(tmp_path / "src")
    expected = {name: by_hand(name, 3) for name in NAMES}
    assert set(expected.values()) == {1, 2, 3}  # every share gets work: the test can tell shares apart
    out = tmp_path / "out"
    seen: dict[int, set[str]] = {}
    for k in (1, 2, 3):
        before = outputs(out) if out.exists() else set()
        assert reencode(src, "--out", out, "--shard", f"{k}/3") == 0
        seen[k] = outputs(out) - before
        assert f"share {k}/3: {len(seen[k])} of {len(NAMES)} video(s)" in capsys.readouterr().out
    for k, names in seen.items():
        assert names == {name for name, share in expected.items() if share == k}
    assert sum(len(names) for names in seen.values()) == len(NAMES)  # disjoint
    assert set().union(*seen.values()) == set(NAMES)  # whole (same names: the sources are .mp4 already)
    assert index_video(out / "walk" / "w2.mp4", use_cache=False).num_frames == 3


def test_assignment_does_not_depend_on_root_listing_order_or_other_files():
    relatives = [f"class{c}/video_{v:03d}.avi" for c in range(5) for v in range(40)]
    for n in (1, 2, 7):
        shares = {r: share_of(r, n) for r in relatives}
        assert shares == {r: by_hand(r, n) for r in relatives}
        grown = relatives[::-1] + [f"new/extra{v}.avi" for v in range(30)]  # reordered, and files added
        for k in range(1, n + 1):
            picked = Shard(k, n).select(grown, lambda r: r)
            assert set(picked) & set(relatives) == {r for r in relatives if shares[r] == k}
            assert picked == [r for r in grown if by_hand(r, n) == k]  # listing order kept
    assert len({share_of(r, 7) for r in relatives}) == 7


def test_moved_root_keeps_assignments(tmp_path):
    first = make_sources(tmp_path / "a" / "videos", NAMES[:4])
    moved = tmp_path / "elsewhere" / "copy"
    shutil.copytree(first, moved)
    for k in (1, 2):
        assert reencode(first, "--out", tmp_path / "o1", "--shard", f"{k}/2") == 0
        assert reencode(moved, "--out", tmp_path / "o2", "--shard", f"{k}/2") == 0
        assert outputs(tmp_path / "o1") == outputs(tmp_path / "o2")


@pytest.mark.parametrize("text", ["0/3", "4/3", "a/b", "3", "1/0", "1/3/5", ""])
def test_bad_shard_is_one_line_exit_2(tmp_path, capsys, text):
    make_sources(tmp_path / "src", NAMES[:1])
    assert reencode(tmp_path / "src", "--out", tmp_path / "o", "--shard", text) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error: --shard" in err, err
    assert not (tmp_path / "o").exists()
    with pytest.raises(ConfigError, match="--shard"):
        parse_shard(text)


def test_a_254_character_file_name_is_re_encoded(tmp_path, capsys):
    stem = "v" * 250
    src = make_sources(tmp_path / "src", ["walk/short.avi"])
    (src / "walk" / "short.avi").rename(src / "walk" / f"{stem}.avi")  # written short: cvkd's writer needs room too
    assert len(f"{stem}.mp4") == 254
    assert reencode(src, "--out", tmp_path / "out") == 0, capsys.readouterr().err
    assert outputs(tmp_path / "out") == {f"walk/{stem}.mp4"}  # and no temporary file left
    assert index_video(tmp_path / "out" / "walk" / f"{stem}.mp4", use_cache=False).num_frames == 3

"""Benchmark profiles: `split` unchanged byte for byte, `realistic` recorded, deterministic and blurred as stated."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from cvkd.cli import main
from cvkd.data.folder import dataset_digest
from cvkd.data.synthetic import PROFILES, SynthSettings, generate_synthetic, get_profile, video_rng
from cvkd.data.synthetic.profiles import Profile, sample_video_scene
from cvkd.errors import ConfigError, DatasetError

TINY = dict(classes=2, videos_per_class=3, size=(32, 32), frames=12, progress=False, workers=1)
# Computed before profiles existed (commit 484925e) on this machine: the split profile must keep writing these
# bytes. The videos depend on numpy's floating-point kernels, so another machine may differ (docs/synthetic.md).
SPLIT_TINY_DIGEST = "636717c504615ba478bbc094416befad62066c23b780a86a7e2f129151faa67f"
SPLIT_TINY_MANIFEST_SHA256 = "df0c7f98bf27bf57041a8ab2d652b479a5fe165aeb6dff41966debdb389dbeea"
REALISTIC = get_profile("realistic")


def files(root: Path) -> dict[str, bytes]:
    """Every file under `root` by relative path, with its bytes."""
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


@pytest.mark.parametrize("profile", [{}, {"profile": "split"}])
def test_split_profile_writes_the_bytes_it_wrote_before_profiles(profile: dict, tmp_path: Path) -> None:
    generate_synthetic(tmp_path, **TINY, **profile)
    assert dataset_digest(tmp_path) == SPLIT_TINY_DIGEST
    assert hashlib.sha256((tmp_path / "synth.json").read_bytes()).hexdigest() == SPLIT_TINY_MANIFEST_SHA256


def test_realistic_profile_is_deterministic_recorded_and_differs_from_split(tmp_path: Path) -> None:
    settings = dict(TINY, classes=3)
    generate_synthetic(tmp_path / "a", profile="realistic", **settings)
    generate_synthetic(tmp_path / "b", profile="realistic", **dict(settings, workers=2))
    generate_synthetic(tmp_path / "split", **settings)
    first = files(tmp_path / "a")
    assert first == files(tmp_path / "b")
    names = REALISTIC.catalogue
    assert (tmp_path / "a" / "classes.txt").read_text().splitlines() == [spec.name for spec in names[:3]]
    assert len([name for name in first if name.endswith(".mp4")]) == 9
    manifest = json.loads(first["synth.json"])
    assert manifest["settings"]["profile"] == "realistic"
    assert manifest["mix"] == dataclasses.asdict(REALISTIC.mix)
    assert [look["shape"] for look in manifest["looks"]] == [look.shape for look in REALISTIC.looks[:3]]
    assert "profile" not in json.loads((tmp_path / "split" / "synth.json").read_text())["settings"]


@pytest.mark.parametrize("first, second, change", [
    ("split", "realistic", "profile split -> realistic"),
    ("realistic", "split", "profile realistic -> split"),
])
def test_a_directory_of_another_profile_is_refused_unless_forced(
    first: str, second: str, change: str, tmp_path: Path
) -> None:
    generate_synthetic(tmp_path, profile=first, **TINY)
    with pytest.raises(DatasetError, match=change) as error:
        generate_synthetic(tmp_path, profile=second, **TINY)
    assert "\n" not in str(error.value)
    generate_synthetic(tmp_path, profile=second, force=True, **TINY)
    assert (tmp_path / "classes.txt").read_text().splitlines() == [s.name for s in get_profile(second).catalogue[:2]]
    assert {path.parent.name for path in (tmp_path / "videos").rglob("*.mp4")} == {
        s.name for s in get_profile(second).catalogue[:2]}  # the other profile's videos are gone


def test_unknown_profile_is_a_one_line_config_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(ConfigError, match="synth profile: must be one of split, realistic"):
        SynthSettings(profile="real")
    with pytest.raises(SystemExit) as exit_info:  # argparse's own choices check
        main(["synth", str(tmp_path / "out"), "--profile", "real", "--quiet"])
    assert exit_info.value.code == 2 and "--profile" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- what makes the realistic profile realistic


def motion_of(spec) -> tuple:
    """A class's motion signature: every field but its name, shape and summary."""
    return tuple(value for key, value in dataclasses.asdict(spec).items() if key not in ("name", "shape", "summary"))


def test_every_realistic_class_has_its_own_look_and_its_own_motion() -> None:
    assert len(REALISTIC.catalogue) == len(REALISTIC.looks) == len(PROFILES["split"].catalogue) == 16
    assert len(set(REALISTIC.looks)) == 16
    assert len({motion_of(spec) for spec in REALISTIC.catalogue}) == 16
    assert all(spec.shape == look.shape for spec, look in zip(REALISTIC.catalogue, REALISTIC.looks))
    # no left-vs-right class: a direction is up, down or random, or else its left-right sense is drawn per video
    # (sway and spin senses are drawn at random too)
    assert all(spec.direction in (None, 90.0, -90.0) or spec.either_side for spec in REALISTIC.catalogue)


def own_cue_scenes(profile: Profile, class_index: int, count: int) -> list:
    """Scenes of `count` videos of a class that kept their own look and motion."""
    scenes = []
    for video in range(200):
        cues, scene = sample_video_scene(profile, 16, class_index, video_rng(5, class_index, video), (64, 64), 13)
        if cues.look_from == cues.motion_from == class_index:
            scenes.append(scene)
        if len(scenes) == count:
            return scenes
    raise AssertionError(f"fewer than {count} of 200 videos kept their cues")


def test_two_realistic_classes_differ_in_appearance_and_in_motion() -> None:
    names = [spec.name for spec in REALISTIC.catalogue]
    rise, fall = names.index("disc_rise"), names.index("square_fall")
    for up, down in zip(own_cue_scenes(REALISTIC, rise, 5), own_cue_scenes(REALISTIC, fall, 5)):
        assert (up.main.shape, down.main.shape) == ("disc", "square")
        # colours lean to the class tint (red vs blue) and backgrounds to the scene's (field: blobs, court: checker)
        assert up.main.colour[0] > up.main.colour[2] and down.main.colour[2] > down.main.colour[0]
        assert (up.background_texture.kind, down.background_texture.kind) == ("blobs", "checker")
        # image y grows downwards; the camera pan is taken out
        rise_speed = -(up.main.centre[-1, 1] - up.main.centre[0, 1] - (up.pan[-1, 1] - up.pan[0, 1])) / 12
        fall_speed = (down.main.centre[-1, 1] - down.main.centre[0, 1] - (down.pan[-1, 1] - down.pan[0, 1])) / 12
        for speed, index in ((rise_speed, rise), (fall_speed, fall)):
            low, high = REALISTIC.catalogue[index].speed
            assert low - 0.05 < speed < high + 0.05


def test_videos_borrow_another_class_look_and_motion_at_the_stated_rates() -> None:
    draws = 800
    looks = motions = 0
    for video in range(draws):
        class_index = video % 16
        cues, scene = sample_video_scene(REALISTIC, 16, class_index, video_rng(9, class_index, video), (32, 32), 2)
        assert scene.main.shape == REALISTIC.looks[cues.look_from].shape  # the scene shows the look it drew
        looks += cues.look_from != class_index
        motions += cues.motion_from != class_index
    mix = REALISTIC.mix
    # binomial sd at these rates and 800 draws is under 0.017: 0.05 is three of them
    assert abs(looks / draws - (mix.look + mix.both)) < 0.05
    assert abs(motions / draws - (mix.motion + mix.both)) < 0.05


def test_split_profile_draws_no_cues_and_one_class_cannot_borrow() -> None:
    split = get_profile("split")
    for video in range(50):
        cues, _ = sample_video_scene(split, 16, 3, video_rng(0, 3, video), (32, 32), 2)
        assert (cues.look_from, cues.motion_from) == (3, 3)
        cues, _ = sample_video_scene(REALISTIC, 1, 0, video_rng(0, 0, video), (32, 32), 2)
        assert (cues.look_from, cues.motion_from) == (0, 0)
    assert np.isclose(split.mix.look + split.mix.motion + split.mix.both, 0.0)

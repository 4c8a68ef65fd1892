"""The synthetic benchmark: determinism, layout, splits, encoding, class signatures and argument checking."""

from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path

import av
import numpy as np
import pytest

from cvkd.cli import main
from cvkd.data.synthetic import CLASS_CATALOGUE, generate_synthetic, render_clip, video_rng
from cvkd.data.synthetic.render import Scene, draw_scene, sample_scene
from cvkd.errors import ConfigError, DatasetError

TINY = dict(classes=3, videos_per_class=5, size=(48, 48), frames=13, progress=False)
TINY_NAMES = ["disc_up", "disc_down", "square_up"]  # the catalogue's first three, in label order
SPEC = {spec.name: spec for spec in CLASS_CATALOGUE}


def all_files(root: Path) -> dict[str, bytes]:
    """Every file under `root` by relative path, with its bytes."""
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def read_split(root: Path, split: str) -> list[tuple[str, int]]:
    with open(root / f"{split}.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["path", "label"]
    return [(path, int(label)) for path, label in rows[1:]]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "seed0"
    generate_synthetic(root, seed=0, workers=1, **TINY)
    return root


# ---------------------------------------------------------------- determinism


def test_same_seed_gives_identical_files_whatever_the_worker_count(tiny: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    summary = generate_synthetic(again, seed=0, workers=2, **TINY)
    assert summary.videos_written == 15 and summary.videos_skipped == 0
    first, second = all_files(tiny), all_files(again)
    assert first.keys() == second.keys()
    assert len([name for name in first if name.endswith(".mp4")]) == 15
    for name in first:
        assert first[name] == second[name], name


def test_different_seed_gives_different_videos(tiny: Path, tmp_path: Path) -> None:
    other = tmp_path / "seed1"
    generate_synthetic(other, seed=1, workers=1, **TINY)
    first, second = all_files(tiny), all_files(other)
    videos = [name for name in first if name.endswith(".mp4")]
    assert all(first[name] != second[name] for name in videos)
    assert first["train.csv"] == second["train.csv"]  # the layout depends on counts only


# ---------------------------------------------------------------- layout and splits


def test_classes_file_lists_the_catalogue_prefix_in_label_order(tiny: Path) -> None:
    assert (tiny / "classes.txt").read_text().splitlines() == TINY_NAMES


def test_split_rows_point_at_videos_of_their_label(tiny: Path) -> None:
    for split in ("train", "val", "test"):
        for path, label in read_split(tiny, split):
            folder, name, file = path.split("/")
            assert folder == "videos" and name == TINY_NAMES[label]
            assert file.startswith(f"{name}_") and file.endswith(".mp4") and len(file) == len(name) + 8
            assert (tiny / path).is_file()


def test_splits_are_disjoint_cover_every_video_and_hold_out_a_fifth_each(tiny: Path) -> None:
    splits = {split: [path for path, _ in read_split(tiny, split)] for split in ("train", "val", "test")}
    on_disk = {str(p.relative_to(tiny)) for p in (tiny / "videos").rglob("*.mp4")}
    listed = [path for paths in splits.values() for path in paths]
    assert len(listed) == len(set(listed)) == 15
    assert set(listed) == on_disk
    # 5 videos per class: 20 % of 5 = 1 each for val and test, 3 for train; indices in order.
    assert [len(paths) for paths in splits.values()] == [9, 3, 3]
    assert "videos/disc_up/disc_up_004.mp4" in splits["test"]
    assert "videos/disc_up/disc_up_003.mp4" in splits["val"]


def test_manifest_and_contact_sheet_are_written(tiny: Path) -> None:
    import json

    manifest = json.loads((tiny / "synth.json").read_text())
    assert manifest["settings"]["frames"] == 13 and manifest["settings"]["gop"] == 12
    assert manifest["class_names"] == TINY_NAMES
    assert (tiny / "contact_sheet.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- encoding


def test_every_video_decodes_to_the_requested_frames_with_a_gop_of_12(tiny: Path) -> None:
    for video in sorted((tiny / "videos").rglob("*.mp4")):
        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "mpeg4"
            frames = list(container.decode(stream))
        assert len(frames) == 13, video
        assert (frames[0].width, frames[0].height) == (48, 48)
        assert [i for i, frame in enumerate(frames) if frame.key_frame] == [0, 12]


# ---------------------------------------------------------------- rendering and class signatures


def test_render_clip_returns_frames_height_width_rgb_uint8() -> None:
    clip = render_clip(CLASS_CATALOGUE[0], np.random.default_rng(0), (64, 32), 7)
    assert clip.shape == (7, 32, 64, 3) and clip.dtype == np.uint8
    assert clip.std() > 1.0  # something is drawn


def clean_scene(name: str, video: int, size: tuple[int, int] = (112, 112), frames: int = 13) -> Scene:
    """A class's scene with the main object only, flat (no texture), on a flat background, without noise."""
    scene = sample_scene(SPEC[name], video_rng(7, 0, video), size, frames)
    flat = dataclasses.replace(scene.main, contrast=0.0)
    return dataclasses.replace(scene, layers=(flat,), background_contrast=0.0, noise_sigma=0.0,
                               lighting=np.ones(frames))


def object_masks(scene: Scene) -> np.ndarray:
    """(F, H, W) bool: pixels that differ from the flat background colour."""
    frames = draw_scene(scene).astype(np.float32)
    return np.abs(frames - np.rint(scene.background_colour)).max(axis=-1) > 12


@pytest.mark.parametrize("name, sign", [("disc_up", -1), ("disc_down", 1), ("square_up", -1), ("square_down", 1)])
def test_translating_objects_move_in_their_class_direction(name: str, sign: int) -> None:
    for video in range(3):
        masks = object_masks(clean_scene(name, video))
        rows = np.arange(masks.shape[1])[None, :, None]
        centroid_y = (masks * rows).sum(axis=(1, 2)) / masks.sum(axis=(1, 2))
        per_frame = (centroid_y[-1] - centroid_y[0]) / 12
        # speed 1.0..1.6 px/frame along the class direction, plus a camera pan of at most 0.6 px/frame
        assert 0.4 - 0.1 < sign * per_frame < 1.6 + 0.6 + 0.1


def test_disc_and_square_differ_in_shape_not_size() -> None:
    # Area over the area of the disc through the farthest pixel: 1 for a disc, 2/pi for a square of any rotation.
    def fill_ratio(mask: np.ndarray) -> float:
        ys, xs = np.nonzero(mask)
        reach = np.hypot(xs - xs.mean(), ys - ys.mean()).max() + 0.5
        return len(xs) / (math.pi * reach**2)

    for video in range(3):
        disc = object_masks(clean_scene("disc_up", video))[0]
        square = object_masks(clean_scene("square_up", video))[0]
        assert fill_ratio(disc) > 0.85
        assert abs(fill_ratio(square) - 2 / math.pi) < 0.08
        assert 0.5 < square.sum() / disc.sum() < 2.0


def object_luma(scene: Scene) -> np.ndarray:
    """Per frame, the median luma of the flat object's pixels."""
    frames = draw_scene(scene).astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    masks = object_masks(scene)
    # A blinking object can match the background for a frame (no pixel differs): that frame has no luma (nan).
    return np.array([np.median(frame[mask]) if mask.any() else np.nan for frame, mask in zip(frames, masks)])


def test_blinking_ring_changes_brightness_and_steady_ring_does_not() -> None:
    for video in range(3):
        blink = object_luma(clean_scene("ring_blink", video, frames=24))
        steady = object_luma(clean_scene("ring_steady", video, frames=24))
        # amplitude >= 0.35 over at least one 8..14-frame period: relative std near 0.35/sqrt(2)
        assert np.isnan(blink).sum() <= 2 and not np.isnan(steady).any()
        assert np.nanstd(blink) / np.nanmean(blink) > 0.15
        assert steady.std() / steady.mean() < 0.02


@pytest.mark.parametrize("name, grows", [("bar_grow", True), ("bar_shrink", False)])
def test_zooming_bars_change_area(name: str, grows: bool) -> None:
    for video in range(3):
        areas = object_masks(clean_scene(name, video)).sum(axis=(1, 2))
        # log-scale rate 0.015..0.025 per frame over 12 frames: area factor exp(2 * 12 * rate) = 1.43..1.82
        factor = areas[-1] / areas[0] if grows else areas[0] / areas[-1]
        assert 1.3 < factor < 2.0


@pytest.mark.parametrize("name, sign", [("disc_up", -1), ("square_down", 1)])
def test_encoder_motion_vectors_follow_the_object(name: str, sign: int, tmp_path: Path) -> None:
    """The textures are smooth enough for MPEG-4 block matching: vectors on the object point its way."""
    from cvkd.codec.encode import EncodeSettings, encode_rgb_frames

    class_index = [spec.name for spec in CLASS_CATALOGUE].index(name)
    for video in range(2):
        scene = sample_scene(CLASS_CATALOGUE[class_index], video_rng(3, class_index, video), (112, 112), 13)
        path = tmp_path / f"{name}_{video}.mp4"
        encode_rgb_frames(draw_scene(scene), path, EncodeSettings(gop=12, width=112, height=112, q=5))
        vertical = []
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.codec_context.options = {"flags2": "+export_mvs"}
            for index, frame in enumerate(container.decode(stream)):
                vectors = frame.side_data.get("MOTION_VECTORS")
                if vectors is None:
                    continue
                mv = vectors.to_ndarray()
                x, y = scene.main.centre[index]
                on_object = np.hypot(mv["dst_x"] - x, mv["dst_y"] - y) < scene.main.radius[index]
                # motion_y / motion_scale = src_y - dst_y: the displacement is its negative
                vertical.extend(-mv["motion_y"][on_object] / mv["motion_scale"][on_object])
        assert len(vertical) > 0
        assert sign * np.mean(vertical) > 0.3


# ---------------------------------------------------------------- resuming and bad arguments


def test_rerun_skips_existing_videos_and_redoes_a_missing_one(tmp_path: Path) -> None:
    settings = dict(TINY, classes=2, videos_per_class=2)
    generate_synthetic(tmp_path, workers=1, **settings)
    lost = tmp_path / "videos/disc_down/disc_down_001.mp4"
    original = lost.read_bytes()
    lost.unlink()
    summary = generate_synthetic(tmp_path, workers=1, **settings)
    assert (summary.videos_written, summary.videos_skipped) == (1, 3)
    assert lost.read_bytes() == original


def test_other_settings_in_the_same_directory_need_force(tmp_path: Path) -> None:
    generate_synthetic(tmp_path, workers=1, **dict(TINY, classes=2, videos_per_class=3))
    with pytest.raises(DatasetError, match="seed 0 -> 1") as error:
        generate_synthetic(tmp_path, workers=1, seed=1, **dict(TINY, classes=2, videos_per_class=3))
    assert "\n" not in str(error.value)
    summary = generate_synthetic(tmp_path, workers=1, seed=1, force=True, **dict(TINY, classes=1, videos_per_class=2))
    assert summary.videos_written == 2
    assert sorted(p.name for p in (tmp_path / "videos").rglob("*.mp4")) == ["disc_up_000.mp4", "disc_up_001.mp4"]


@pytest.mark.parametrize("change, key", [
    ({"classes": len(CLASS_CATALOGUE) + 1}, "classes"),
    ({"classes": 0}, "classes"),
    ({"frames": 0}, "frames"),
    ({"size": (50, 48)}, "size"),
    ({"size": (48, 40)}, "size"),
    ({"videos_per_class": 0}, "videos_per_class"),
    ({"workers": 0}, "workers"),
])
def test_bad_arguments_raise_one_line_config_errors_before_writing(change: dict, key: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=key) as error:
        generate_synthetic(tmp_path / "out", **dict(TINY, **change))
    assert "\n" not in str(error.value)
    assert not (tmp_path / "out").exists()


def test_output_that_is_a_file_is_a_dataset_error(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(DatasetError, match="not a directory"):
        generate_synthetic(target, **TINY)


@pytest.mark.parametrize("flags", [["--classes", "99"], ["--size", "50x48"], ["--size", "big"], ["--frames", "0"]])
def test_cli_exits_with_2_on_bad_arguments(flags: list[str], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["synth", str(tmp_path / "out"), "--quiet", *flags]) == 2
    message = capsys.readouterr().err.strip()
    assert message.startswith("cvkd synth: error:") and "\n" not in message


def test_cli_generates_a_dataset(tmp_path: Path) -> None:
    code = main(["synth", str(tmp_path), "--classes", "2", "--videos-per-class", "1", "--size", "32x32",
                 "--frames", "2", "--workers", "1", "--quiet"])
    assert code == 0
    assert read_split(tmp_path, "train") == [("videos/disc_up/disc_up_000.mp4", 0),
                                              ("videos/disc_down/disc_down_000.mp4", 1)]

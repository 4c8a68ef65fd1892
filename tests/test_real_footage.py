"""benchmarks/real_footage.py, the real-footage check, end to end on a folder of clips encoded on the fly (two classes,
one epoch, small networks), and its one-line refusals of folders it cannot check."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from benchmark_scripts import load_benchmark
from clips import encode, pan

from cvkd.config import load_config
from cvkd.recipes import recipe_path
from cvkd.runs.schema import RunConfig

SMALL = {"data": {"crop_size": 32, "val_segments": 1, "batch_size": 4},
         "model": {"streams": {"iframe": "cnn_micro", "mv": "cnn_micro", "residual": "cnn_micro"}}}


@pytest.fixture(scope="module")
def real_footage():
    return load_benchmark("real_footage")


def write_clips(root: Path, counts: dict[str, int], name: str = "clip{:02d}.mp4") -> Path:
    """`counts[label]` short pans per class folder, each class moving its own way."""
    for velocity, (label, count) in zip(((1, 0), (0, 1), (-1, 0)), counts.items()):
        for clip in range(count):
            path = root / label / name.format(clip + 1)
            path.parent.mkdir(parents=True, exist_ok=True)
            encode(pan((64, 48), 24 + 2 * clip, velocity), path)
    return root


def small_recipes(folder: Path) -> Path:
    """The small_real recipes made small (32-pixel crops, cnn_micro streams), beside each other as the script wants."""
    folder.mkdir()
    for name in ("teachers", "compact_nokd", "compact_kd", "compact_streams"):
        recipe = {"base": str(recipe_path(f"small_real/{name}.yaml")), **SMALL}
        if name == "teachers":
            recipe["name"] = "tiny_teachers"
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(recipe))
    return folder / "teachers.yaml"


def test_a_folder_of_clips_ends_in_the_comparison_table(real_footage, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CVKD_CACHE_DIR", str(tmp_path / "cache"))
    clips = write_clips(tmp_path / "clips", {"swipe_left": 5, "nod": 5})
    recipe = small_recipes(tmp_path / "recipes")
    out = tmp_path / "out"
    assert real_footage.main(["--clips", str(clips), "--out", str(out), "--epochs", "1", "--workers", "0",
                              "--recipe", str(recipe)]) == 0
    printed = capsys.readouterr().out
    assert "test split: 2 videos, 2 classes, chance 50.00 %" in printed  # one of each class's five clips
    assert "| iframe |" in printed and "| fused |" in printed  # the teacher's test, stream by stream
    table = printed[printed.index("| variant |"):]
    for row in ("| CoViAR teacher |", "| no KD |", "| KD (1 teacher: fused) |", "| KD per output"):
        assert row in table
    assert (out / "report" / "compare.md").is_file()
    runs = sorted(path.name for path in (out / "runs").iterdir())
    assert runs == ["small_real_compact_kd", "small_real_compact_nokd", "small_real_compact_streams", "tiny_teachers"]
    for run in runs:  # every run without mirroring, one epoch, on the prepared folder
        config = load_config(RunConfig, out / "runs" / run / "config.yaml")
        assert (config.data.flip, config.optim.epochs, config.data.root) == (False, 1, str(out / "data"))
    streams = load_config(RunConfig, out / "runs" / "small_real_compact_streams" / "config.yaml")
    teacher = out / "runs" / "tiny_teachers"
    assert streams.distill.teachers == [str(teacher), f"{teacher}:fused"]  # the recipe's specs, on this teacher


@pytest.mark.parametrize("layout, message", [
    ({}, "no videos found in class folders"),
    ({"wave": 6}, "one class (wave); a comparison needs at least two class folders"),
    ({"wave": 6, "nod": 4}, "class 'nod' has 4 clip(s); each class needs at least 5"),
])
def test_a_folder_it_cannot_check_is_refused_in_one_line(real_footage, tmp_path, capsys, layout, message):
    clips = tmp_path / "clips"
    clips.mkdir()
    write_clips(clips, layout)
    assert real_footage.main(["--clips", str(clips), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith(f"real_footage: error: {clips}") and message in error
    assert not (tmp_path / "out").exists()  # refused before anything was prepared


def test_a_class_whose_clips_form_one_group_gets_no_test_clip_and_is_refused(real_footage, tmp_path, capsys):
    clips = write_clips(tmp_path / "clips", {"wave": 6}, name="v_wave_g{:02d}_c01.mp4")  # six groups of one clip
    write_clips(clips, {"nod": 6}, name="v_nod_g01_c{:02d}.mp4")  # one group: the test split takes whole groups
    assert real_footage.main(["--clips", str(clips), "--out", str(tmp_path / "out")]) == 2
    assert "class 'nod' gets no test clip" in capsys.readouterr().err


def test_train_and_test_folders_must_share_their_classes(real_footage, tmp_path, capsys):
    write_clips(tmp_path / "clips" / "train", {"wave": 3, "nod": 3})
    write_clips(tmp_path / "clips" / "test", {"wave": 1})
    assert real_footage.main(["--clips", str(tmp_path / "clips"), "--out", str(tmp_path / "out")]) == 2
    assert "class 'nod' gets no test clip (add some to" in capsys.readouterr().err


def test_epochs_set_the_schedule_with_a_decay_at_four_fifths(real_footage):
    assert real_footage.schedule_overrides(None) == []
    assert real_footage.schedule_overrides(10) == ["optim.epochs=10", "optim.lr_steps=[8]"]
    assert real_footage.schedule_overrides(1) == ["optim.epochs=1", "optim.lr_steps=[]"]

"""Video lists from the official UCF-101 / HMDB-51 split files, class folders, CSV files and cvkd's own layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from cvkd.data.lists import (
    VideoList,
    hold_out,
    missing_videos,
    read_class_order,
    read_classes,
    video_group,
    write_dataset,
)
from cvkd.errors import DatasetError

UCF_CLASSES = ["ApplyEyeMakeup", "Archery", "YoYo"]


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode())
    return path


@pytest.fixture
def ucf(tmp_path) -> Path:
    """A UCF-101-shaped tree: UCF-101/<Class>/*.avi beside ucfTrainTestlist/ (official CRLF line endings)."""
    notes = tmp_path / "ucfTrainTestlist"
    write(notes / "classInd.txt", "".join(f"{i} {name}\r\n" for i, name in enumerate(UCF_CLASSES, 1)))
    write(
        notes / "trainlist01.txt",
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\r\n"
        "Archery/v_Archery_g08_c01.avi 2\r\n"
        "YoYo/v_YoYo_g08_c01.avi 3\r\n",
    )
    write(notes / "trainlist02.txt", "YoYo/v_YoYo_g01_c01.avi 3\r\n")
    write(
        notes / "testlist01.txt",
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\r\n\r\n"
        "YoYo/v_YoYo_g01_c01.avi\r\n"
        "archery/v_Archery_g01_c01.avi\r\n",  # a folder spelled in another case still finds its class
    )
    root = tmp_path / "UCF-101"
    for line in (notes / "trainlist01.txt").read_text().splitlines():
        touch(root / line.split()[0])
    return root


def test_ucf101_train_labels_are_zero_based(ucf):
    videos = VideoList.ucf101(ucf, split=1, subset="train")
    assert videos.classes == tuple(UCF_CLASSES)
    assert videos.items == (
        ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", 0),
        ("Archery/v_Archery_g08_c01.avi", 1),
        ("YoYo/v_YoYo_g08_c01.avi", 2),
    )
    assert videos.path(1) == ucf / "Archery" / "v_Archery_g08_c01.avi"


def test_ucf101_test_labels_come_from_class_folders(ucf):
    videos = VideoList.ucf101(ucf, split=1, subset="test")
    assert videos.labels == [0, 2, 1]


def test_ucf101_split_selects_the_list_file(ucf):
    assert VideoList.ucf101(ucf, split=2, subset="train").items == (("YoYo/v_YoYo_g01_c01.avi", 2),)


def test_ucf101_explicit_annotation_folder(ucf, tmp_path):
    moved = tmp_path / "elsewhere" / "notes"
    moved.parent.mkdir()
    (tmp_path / "ucfTrainTestlist").rename(moved)
    with pytest.raises(DatasetError, match="classInd.txt"):
        VideoList.ucf101(ucf)
    assert len(VideoList.ucf101(ucf, annotation_dir=moved)) == 3


def test_ucf101_missing_list_file_is_named(ucf):
    with pytest.raises(DatasetError, match=r"trainlist03\.txt"):
        VideoList.ucf101(ucf, split=3)


@pytest.mark.parametrize(
    "name, text, problem",
    [
        ("trainlist01.txt", "Archery/v_Archery_g08_c01.avi 2\nArchery/v_Archery_g09_c01.avi\n", "expected"),
        ("trainlist01.txt", "Archery/v_Archery_g08_c01.avi 2\n\nArchery/v_Archery_g09_c01.avi 4\n", "out of range"),
        ("testlist01.txt", "Archery/v_Archery_g08_c01.avi\nSurfing/v_Surfing_g01_c01.avi\n", "unknown class 'Surfing'"),
    ],
)
def test_ucf101_bad_lines_name_file_and_line(ucf, name, text, problem):
    path = write(ucf.parent / "ucfTrainTestlist" / name, text)
    with pytest.raises(DatasetError) as caught:
        VideoList.ucf101(ucf, subset=name[:-10] if name.startswith("test") else "train")
    message = str(caught.value)
    line = 3 if "\n\n" in text else 2
    assert message.startswith(f"{path}:{line}:") and problem in message and "\n" not in message


def test_ucf101_bad_class_index_file(ucf):
    path = write(ucf.parent / "ucfTrainTestlist" / "classInd.txt", "1 ApplyEyeMakeup\n3 Archery\n")
    with pytest.raises(DatasetError, match=rf"{path}:2: class index 3 out of order"):
        VideoList.ucf101(ucf)


def test_missing_videos_are_reported_together(ucf):
    videos = VideoList.ucf101(ucf, subset="test")
    touch(ucf / "YoYo" / "v_YoYo_g01_c01.avi")
    assert missing_videos(videos) == ["ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", "archery/v_Archery_g01_c01.avi"]


@pytest.fixture
def hmdb(tmp_path) -> Path:
    """An HMDB-51-shaped tree with testTrainMulti_7030_splits/ inside the video root (official trailing spaces)."""
    root = tmp_path / "hmdb51"
    notes = root / "testTrainMulti_7030_splits"
    for name in ("wave", "brush_hair", "cartwheel"):  # created out of order: labels must still be alphabetical
        write(notes / f"{name}_test_split1.txt", f"{name}_a.avi 1 \n{name}_b.avi 2 \n{name}_c.avi 0 \n")
        write(notes / f"{name}_test_split2.txt", f"{name}_a.avi 2 \n{name}_b.avi 1 \n{name}_c.avi 1 \n")
    return root


def test_hmdb51_train_and_test_subsets(hmdb):
    train = VideoList.hmdb51(hmdb, split=1, subset="train")
    assert train.classes == ("brush_hair", "cartwheel", "wave")
    assert train.items == (("brush_hair/brush_hair_a.avi", 0), ("cartwheel/cartwheel_a.avi", 1), ("wave/wave_a.avi", 2))
    test = VideoList.hmdb51(hmdb, split=1, subset="test")
    assert [p for p, _ in test] == ["brush_hair/brush_hair_b.avi", "cartwheel/cartwheel_b.avi", "wave/wave_b.avi"]


def test_hmdb51_split_two(hmdb):
    train = VideoList.hmdb51(hmdb, split=2, subset="train")
    assert [p for p, label in train if label == 2] == ["wave/wave_b.avi", "wave/wave_c.avi"]


def test_hmdb51_bad_code_names_file_and_line(hmdb):
    path = write(hmdb / "testTrainMulti_7030_splits" / "wave_test_split1.txt", "wave_a.avi 1\nwave_b.avi 3\n")
    with pytest.raises(DatasetError, match=rf"^{path}:2: expected"):
        VideoList.hmdb51(hmdb)


def test_hmdb51_missing_split_files(tmp_path):
    with pytest.raises(DatasetError, match=r"_test_split1\.txt: missing annotation file"):
        VideoList.hmdb51(tmp_path)


def test_bad_split_or_subset(hmdb):
    with pytest.raises(DatasetError, match="split"):
        VideoList.hmdb51(hmdb, split=4)
    with pytest.raises(DatasetError, match="subset"):
        VideoList.hmdb51(hmdb, subset="val")


def test_folder_list(tmp_path):
    for name in ("walk/b.mp4", "walk/a.AVI", "run/x.mkv", "run/notes.txt", ".hidden/z.mp4", "empty_class/readme.md"):
        touch(tmp_path / name)
    videos = VideoList.folder(tmp_path)
    assert videos.classes == ("run", "walk")
    assert videos.items == (("run/x.mkv", 0), ("walk/a.AVI", 1), ("walk/b.mp4", 1))


def test_folder_with_fixed_classes(tmp_path):
    touch(tmp_path / "walk" / "a.mp4")
    assert VideoList.folder(tmp_path, classes=["run", "walk"]).items == (("walk/a.mp4", 1),)
    touch(tmp_path / "jump" / "j.mp4")
    with pytest.raises(DatasetError, match="jump: class folder not among"):
        VideoList.folder(tmp_path, classes=["run", "walk"])


def test_empty_folder_is_an_error(tmp_path):
    touch(tmp_path / "walk" / "notes.txt")
    with pytest.raises(DatasetError, match=f"^{tmp_path}: no videos"):
        VideoList.folder(tmp_path)


def test_csv_with_header_and_integer_labels(tmp_path):
    path = write(tmp_path / "lists" / "all.csv", "path,label\nclips/a.mp4,2\n\n\"clips/b,c.mp4\",0\n")
    videos = VideoList.csv(path)
    assert videos.classes == ("0", "1", "2")
    assert videos.items == (("clips/a.mp4", 2), ("clips/b,c.mp4", 0))
    assert videos.path(0) == tmp_path / "lists" / "clips" / "a.mp4"


def test_csv_with_class_names(tmp_path):
    path = write(tmp_path / "all.csv", "v1.mp4,walk\nv2.mp4,run\nv3.mp4,walk\n")
    assert VideoList.csv(path).items == (("v1.mp4", 1), ("v2.mp4", 0), ("v3.mp4", 1))
    assert VideoList.csv(path, classes=["walk", "run", "jump"]).labels == [0, 1, 0]


@pytest.mark.parametrize(
    "text, classes, problem",
    [
        ("path,label\na.mp4,run\nb.mp4,swim\n", ["run"], "3: unknown class 'swim'"),
        ("a.mp4,0\nb.mp4,1\n", ["run"], "2: label 1 out of range 0..0"),
        ("a.mp4,0\nb.mp4\n", None, "2: expected 'path,label'"),
        ("a.mp4,run\nb.mp4,1\n", None, "2: mixes integer labels"),
    ],
)
def test_csv_errors_name_file_and_line(tmp_path, text, classes, problem):
    path = write(tmp_path / "bad.csv", text)
    with pytest.raises(DatasetError, match=f"^{path}:{problem}"):
        VideoList.csv(path, classes)


def test_cvkd_layout_round_trip(tmp_path):
    classes = ["run", "walk"]
    train = [("videos/walk/a.mp4", 1), ("videos/run/b.mp4", 0)]
    write_dataset(tmp_path, classes, {"train": train, "test": [("videos/run/c.mp4", 0)]})
    assert (tmp_path / "classes.txt").read_text() == "run\nwalk\n"
    assert (tmp_path / "train.csv").read_text().splitlines()[0] == "path,label"
    loaded = VideoList.cvkd_dataset(tmp_path, "train")
    assert loaded.root == tmp_path and loaded.classes == tuple(classes) and loaded.items == tuple(train)
    assert VideoList.cvkd_dataset(tmp_path, "test").labels == [0]
    with pytest.raises(DatasetError, match=r"val\.csv"):
        VideoList.cvkd_dataset(tmp_path, "val")


def test_classes_file_with_duplicate(tmp_path):
    path = write(tmp_path / "classes.txt", "run\nwalk\nrun\n")
    with pytest.raises(DatasetError, match=f"^{path}:1: class 'run' listed twice"):
        read_classes(path)


def test_hold_out_is_deterministic_stratified_and_disjoint(tmp_path):
    items = tuple((f"c{label}/v{i}.mp4", label) for label in range(3) for i in range(10))
    videos = VideoList(tmp_path, items, ("a", "b", "c"))
    kept, held = hold_out(videos, 0.2, seed=5)
    assert [label for _, label in held].count(0) == 2 and len(held) == 6 and len(kept) == 24
    assert set(kept.items) | set(held.items) == set(items) and not set(kept.items) & set(held.items)
    assert hold_out(videos, 0.2, seed=5) == (kept, held)
    assert hold_out(videos, 0.2, seed=6)[1] != held
    single = VideoList(tmp_path, (("a/x.mp4", 0),), ("a",))
    assert len(hold_out(single, 0.5)[0]) == 1  # a class never loses its last training video


def test_labels_must_name_a_class(tmp_path):
    with pytest.raises(DatasetError, match=r"walk/a\.mp4: label 2 out of range 0\.\.1"):
        VideoList(tmp_path, (("walk/a.mp4", 2),), ("run", "walk"))


# -- class orders for score files (CoViAR's HMDB-51 data lists number classes in their own order) ------------------
COVIAR_HMDB_LIST = (
    "smile/Me_smiling_smile_h_nm_np1_fr_goo_0.avi smile 0\n"
    "clap/A_clap_u_nm_np1_fr_med_1.avi clap 1\n"
    "smile/Glory_smile_h_nm_np1_fr_med_5.avi smile 0\n"
    "brush_hair/Brush_my_hair_h_cm_np1_le_goo_0.avi brush_hair 2\n"
)


@pytest.mark.parametrize("text", [
    COVIAR_HMDB_LIST,
    "smile\nclap\nbrush_hair\n",  # classes.txt
    "1 smile\r\n2 clap\r\n3 brush_hair\r\n",  # classInd.txt
])
def test_class_order_is_read_from_coviar_lists_and_class_lists(tmp_path, text):
    assert read_class_order(write(tmp_path / "order.txt", text)) == ("smile", "clap", "brush_hair")


@pytest.mark.parametrize("text, problem", [
    ("a/x.avi a 0\nb/y.avi b 0\n", r"order\.txt:2: label 0 is 'b' here but 'a' earlier"),
    ("a/x.avi a 0\nb/y.avi b 2\n", r"order\.txt: labels must run 0\.\.1, label 1 has no video"),
    ("a/x.avi a 0\na/y.avi a 1\n", r"order\.txt: class 'a' has two labels"),
    ("a/x.avi a zero\n", r"order\.txt:1: expected '<Class>/<video> <Class> <label>'"),
    ("a b c d\n", r"order\.txt:1: expected a class list or CoViAR's"),
    ("\n", r"order\.txt: no classes listed"),
])
def test_bad_class_orders_are_refused_naming_the_line(tmp_path, text, problem):
    with pytest.raises(DatasetError, match=problem):
        read_class_order(write(tmp_path / "order.txt", text))


# -- group-aware hold-out: UCF-101 clips of one group (same actor and scene) stay on one side ------------------------
@pytest.mark.parametrize("relative, group", [
    ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.mp4", "v_ApplyEyeMakeup_g08"),
    ("v_YoYo_g25_c04.avi", "v_YoYo_g25"),
    ("brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi", "brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi"),
])
def test_video_group_is_ucf101s_group_or_the_clip_itself(relative, group):
    assert video_group(relative) == group


def ucf_like(tmp_path) -> VideoList:
    """Two classes; class 0 has groups of 4, 3, 5 and 2 clips (14), class 1 has 3 groups of 2 clips (6)."""
    sizes = {0: (4, 3, 5, 2), 1: (2, 2, 2)}
    items = tuple((f"C{label}/v_C{label}_g{g + 1:02d}_c{c + 1:02d}.mp4", label)
                  for label, groups in sizes.items() for g, size in enumerate(groups) for c in range(size))
    return VideoList(tmp_path, items, ("C0", "C1"))


@pytest.mark.parametrize("seed", range(8))
def test_hold_out_keeps_groups_together_and_every_class_keeps_a_group(tmp_path, seed):
    videos = ucf_like(tmp_path)
    kept, held = hold_out(videos, 0.25, seed=seed)
    kept_groups = {video_group(path) for path, _ in kept}
    held_groups = {video_group(path) for path, _ in held}
    assert not kept_groups & held_groups and len(kept) + len(held) == len(videos)
    for label, total, largest in ((0, 14, 5), (1, 6, 2)):
        target = round(0.25 * total)  # 4 of 14 and 2 of 6
        count = sum(1 for _, held_label in held if held_label == label)
        assert target <= count < target + largest  # whole groups until the target is reached
        assert any(kept_label == label for _, kept_label in kept)
    assert hold_out(videos, 0.25, seed=seed) == (kept, held)


@pytest.mark.parametrize("row", ["../../x.mp4", "/etc/passwd", "a/../../x.mp4", ".."])
def test_a_list_row_outside_its_folder_is_refused_with_its_line(tmp_path, row):
    path = tmp_path / "train.csv"
    path.write_text(f"path,label\na/ok.mp4,0\n{row},0\n")
    with pytest.raises(DatasetError, match=rf"train.csv:3: .* is outside the list's folder"):
        VideoList.csv(path)


def test_a_list_whose_header_says_external_path_may_name_videos_anywhere(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("external_path,label\n/data/elsewhere/a.mp4,0\n../b.mp4,1\nc/../d.mp4,1\n")
    videos = VideoList.csv(path)
    assert [relative for relative, _ in videos] == ["/data/elsewhere/a.mp4", "../b.mp4", "c/../d.mp4"]
    assert videos.path(0) == Path("/data/elsewhere/a.mp4")  # an absolute row stays absolute

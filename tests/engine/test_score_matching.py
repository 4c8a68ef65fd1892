"""Score files of different tools fuse: names normalised, matched by position when spelled differently, classes mapped
from CoViAR's numbering, default weights by recorded stream. Expected accuracies are worked out by hand below."""

import json

import numpy as np
import pytest

from coviar_files import write_coviar_scores
from cvkd.cli import main
from cvkd.errors import CvkdError
from cvkd.scores.files import ScoreSet, save_scores
from cvkd.scores.fusion import default_weights_for, fuse
from cvkd.scores.matching import align_scores, reorder_classes, video_key

# Three HMDB-51-like classes. cvkd numbers them alphabetically; CoViAR's data lists number them smile 0, clap 1,
# brush_hair 2 (its HMDB-51 order is not alphabetical).
CVKD_CLASSES = ("brush_hair", "clap", "smile")
COVIAR_CLASSES = ("smile", "clap", "brush_hair")
TO_COVIAR = [2, 1, 0]  # CoViAR column j holds cvkd column TO_COVIAR[j]; label l (cvkd) is label 2 - l in CoViAR
CVKD_NAMES = ["videos/brush_hair/b1.mp4", "videos/clap/c!1.mp4", "videos/smile/s1.mp4", "videos/smile/s2.mp4"]
# CoViAR's file of the same videos: its own relative names (.avi), sorted, and one spelled with "_" for "!".
COVIAR_NAMES = ["brush_hair/b1.avi", "clap/c_1.avi", "smile/s1.avi", "smile/s2.avi"]
LABELS = [0, 1, 2, 2]  # cvkd's numbering
# Scores in cvkd's (alphabetical) class order. I-frame alone: v0 right, v1 -> smile, v2 -> clap, v3 right: 50 %.
IFRAME = np.array([[1, 0, 0], [0, 0, 1], [0, 1, 0], [0, 0, 2]], np.float32)
# MV alone: v0 -> clap, v1 right, v2 right, v3 -> clap: 50 %.
MV = np.array([[0, 1, 0], [0, 4, 0], [0, 0, 3], [0, 3, 0]], np.float32)
# 2*I + MV: v0 [2 1 0], v1 [0 4 2], v2 [0 2 3], v3 [0 3 4] -> all right: 100 %.
# 1*I + MV: v0 [1 1 0] (tie, argmax takes brush_hair: right), v1 [0 4 1], v2 [0 1 3], v3 [0 3 2] (clap): 75 %.
# Read in the wrong class order, MV's v2 row [3 0 0] would vote brush_hair: 2*I + MV = [3 2 0], wrong.


def coviar_mv(path, names=COVIAR_NAMES, labels=LABELS, label_type="tensor"):
    """The MV stream as CoViAR writes it: CoViAR's class order in columns and labels, tensor labels."""
    coviar_labels = [TO_COVIAR.index(label) for label in labels]
    return write_coviar_scores(path, MV[:, TO_COVIAR], coviar_labels, names, "rows", label_type)


def cvkd_iframe(path, names=CVKD_NAMES):
    return save_scores(ScoreSet(IFRAME, LABELS, names, CVKD_CLASSES, "iframe"), path)


def coviar_list(path, names=COVIAR_NAMES, labels=LABELS):
    """CoViAR's data-list format: `<Class>/<video>.avi <Class> <label>` in CoViAR's numbering."""
    lines = [f"{name} {name.split('/')[0]} {TO_COVIAR.index(label)}" for name, label in zip(names, labels)]
    path.write_text("\n".join(lines) + "\n")
    return path


def accuracy(score_set):
    return float(np.mean(score_set.scores.argmax(axis=1) == score_set.labels))


@pytest.mark.parametrize("name, key", [
    ("videos/brush_hair/b1.mp4", "brush_hair/b1"),
    ("brush_hair/b1.avi", "brush_hair/b1"),
    ("/data/UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01"),
    ("b1.AVI", "b1"),
    ("a\\b\\c.mp4", "b/c"),
    ("clip.v2", "clip.v2"),  # not a video extension: kept
])
def test_video_key_keeps_class_folder_and_file_name_without_extension(name, key):
    assert video_key(name) == key


def test_prefix_and_suffix_differences_match_by_name_in_any_order():
    reference = ScoreSet(IFRAME, LABELS, CVKD_NAMES[:1] + ["videos/clap/c_1.mp4"] + CVKD_NAMES[2:], source="a.npz")
    order = [3, 1, 0, 2]
    other = ScoreSet(MV[order], [LABELS[i] for i in order], [COVIAR_NAMES[i] for i in order], source="b.npz")
    alignment = align_scores([reference, other])
    np.testing.assert_array_equal(alignment.score_sets[1].scores, MV)
    assert alignment.score_sets[1].names.tolist() == reference.names.tolist()
    assert alignment.notes == ("b.npz: videos matched to a.npz by name after normalising folders and extensions",)


def test_names_spelled_differently_in_the_same_order_match_by_position_with_a_note():
    reference = ScoreSet(IFRAME, LABELS, CVKD_NAMES, source="a.npz")
    other = ScoreSet(MV, LABELS, COVIAR_NAMES, source="b.npz")
    alignment = align_scores([reference, other])
    assert alignment.notes == ("b.npz: matched to a.npz by position: 1 of 4 video names differ (first: clap/c_1.avi "
                               "for videos/clap/c!1.mp4); counts, order and labels agree",)
    assert accuracy(fuse(alignment.score_sets, (2, 1))) == 1.0


@pytest.mark.parametrize("change, reason", [
    ("labels", "labels differ at 1 position(s) (first: position 3)"),
    ("count", "3 videos against 4"),
    ("order", "2 shared video name(s) sit at other positions (first: position 2)"),
])
def test_position_matching_is_refused_in_one_line_when_counts_labels_or_order_disagree(change, reason):
    reference = ScoreSet(IFRAME, LABELS, CVKD_NAMES, source="a.npz")
    names, labels, scores = list(COVIAR_NAMES), list(LABELS), MV
    if change == "labels":
        labels[3] = 1
    elif change == "count":
        names, labels, scores = names[:3], labels[:3], MV[:3]
    else:  # the two smile videos swapped: their labels agree, but their names show the order is not the same
        names[2], names[3] = names[3], names[2]
    other = ScoreSet(scores, labels, names, source="b.npz")
    with pytest.raises(CvkdError) as caught:
        align_scores([reference, other])
    message = str(caught.value)
    assert "\n" not in message and message.startswith("b.npz: 1 video(s) not in a.npz (first: clap/c_1.avi)")
    assert message.endswith(f"not matched by position either: {reason}")


def test_reorder_classes_permutes_columns_and_labels():
    # CoViAR order (smile, clap, brush_hair) -> alphabetical: column j of the result is CoViAR column 2 - j.
    coviar = ScoreSet(MV[:, TO_COVIAR], [2, 1, 0, 0], COVIAR_NAMES, COVIAR_CLASSES)
    alphabetical = reorder_classes(coviar, CVKD_CLASSES)
    np.testing.assert_array_equal(alphabetical.scores, MV)
    assert alphabetical.labels.tolist() == LABELS and alphabetical.class_names == CVKD_CLASSES


def test_sets_recording_classes_in_another_order_are_fused_by_class_name():
    cvkd = ScoreSet(IFRAME, LABELS, COVIAR_NAMES, CVKD_CLASSES, source="a.npz")
    other = ScoreSet(MV[:, TO_COVIAR], [2, 1, 0, 0], COVIAR_NAMES, COVIAR_CLASSES, source="b.npz")
    fused = fuse([cvkd, other], (2, 1))
    np.testing.assert_array_equal(fused.scores, 2 * IFRAME + MV)
    assert accuracy(fused) == 1.0


def test_a_class_map_gives_classes_to_sets_without_them_and_must_fit():
    coviar = ScoreSet(MV[:, TO_COVIAR], [2, 1, 0, 0], COVIAR_NAMES, source="b.npz")
    cvkd = ScoreSet(IFRAME, LABELS, COVIAR_NAMES, CVKD_CLASSES, source="a.npz")
    with pytest.raises(CvkdError, match=r"^b\.npz: labels differ from a\.npz"):
        fuse([cvkd, coviar], (2, 1))  # without the map CoViAR's labels 2 1 0 0 meet cvkd's 0 1 2 2
    np.testing.assert_array_equal(fuse([cvkd, coviar], (2, 1), COVIAR_CLASSES).scores, 2 * IFRAME + MV)
    with pytest.raises(CvkdError, match=r"^b\.npz: 3 classes but the class map lists 2$"):
        fuse([cvkd, coviar], (2, 1), ("smile", "clap"))


def test_default_weights_follow_the_recorded_stream_not_the_position():
    sets = [ScoreSet(MV, LABELS, CVKD_NAMES, stream=stream) for stream in ("residual", "iframe", "mv")]
    assert default_weights_for(sets) == (1.0, 2.0, 1.0)
    unrecorded = [ScoreSet(MV, LABELS, CVKD_NAMES, stream=stream) for stream in (None, "fused", None)]
    assert default_weights_for(unrecorded) == (2.0, 1.0, 1.0)  # by position: CoViAR's I-frame, MV, residual
    assert default_weights_for([sets[2], sets[1]]) == (1.0, 2.0)


@pytest.mark.parametrize("map_format", ["coviar list", "class list", "classInd"])
def test_cli_fuses_a_coviar_file_with_a_cvkd_file_of_the_same_videos(tmp_path, capsys, map_format):
    coviar = coviar_mv(tmp_path / "coviar_mv.npz")
    cvkd = cvkd_iframe(tmp_path / "iframe.npz")
    class_map = tmp_path / "classes.txt"
    if map_format == "coviar list":
        coviar_list(class_map)
    elif map_format == "class list":
        class_map.write_text("".join(f"{name}\n" for name in COVIAR_CLASSES))
    else:
        class_map.write_text("".join(f"{i} {name}\n" for i, name in enumerate(COVIAR_CLASSES, 1)))
    # The CoViAR file comes first and records no stream (weight 1 by position); the cvkd file records "iframe" (2).
    assert main(["fuse", str(coviar), str(cvkd), "--class-map", str(class_map), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [f["weight"] for f in report["files"]] == [1.0, 2.0]
    assert [f["top1"] for f in report["files"]] == [50.0, 50.0]
    assert report["fused"]["top1"] == 100.0
    assert report["notes"] == [
        f"{cvkd}: classes put in the order of {coviar} by name",
        f"{cvkd}: matched to {coviar} by position: 1 of 4 video names differ (first: videos/clap/c!1.mp4 for "
        f"clap/c_1.avi); counts, order and labels agree",
    ]


def test_cli_prints_the_notes_before_the_table(tmp_path, capsys):
    coviar = coviar_mv(tmp_path / "coviar_mv.npz")
    class_map = coviar_list(tmp_path / "hmdb51_split1_test.txt")
    assert main(["fuse", str(cvkd_iframe(tmp_path / "iframe.npz")), str(coviar), "--class-map", str(class_map),
                 "--weights", "1", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"note: {coviar}: classes put in the order of {tmp_path / 'iframe.npz'} by name"
    assert lines[1].startswith(f"note: {coviar}: matched to ") and "1 of 4 video names differ" in lines[1]
    assert lines[2].split()[0] == "file"
    assert lines[-1].split()[-3:] == ["75.00", "100.00", "83.33"]  # 1:1 (see above); class recalls 1, 1, 1/2


def test_cli_without_the_class_map_refuses_in_one_line(tmp_path, capsys):
    coviar = coviar_mv(tmp_path / "coviar_mv.npz")
    assert main(["fuse", str(cvkd_iframe(tmp_path / "iframe.npz")), str(coviar)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert "not matched by position either: labels differ at 3 position(s) (first: position 0)" in captured.err

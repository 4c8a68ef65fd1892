"""Late fusion and `cvkd fuse` on hand-made three-stream score files whose accuracies are worked out by hand."""

import json

import numpy as np
import pytest

from cvkd.cli import main
from cvkd.scores.fusion import align, fuse, search_weights
from cvkd.scores.files import ScoreSet, save_scores
from cvkd.errors import CvkdError

NAMES = ["b/v0.avi", "a/v1.avi", "c/v2.avi", "a/v3.avi"]
LABELS = [0, 1, 2, 0]
# Each stream alone gets 2 of 4 videos right; 2*I + 1*MV + 1*R gets all 4; 1:1:1 gets 3 (video 0 goes to class 1).
IFRAME = np.array([[3, 0, 0], [0, 3, 0], [2, 0, 0], [0, 2, 0]], np.float32)  # preds 0 1 0 1: right on v0, v1
MV = np.array([[0, 2, 0], [2, 0, 0], [0, 0, 3], [3, 0, 0]], np.float32)  # preds 1 0 2 0: right on v2, v3
RESIDUAL = np.array([[0, 2, 0], [0, 0, 2], [0, 0, 3], [3, 0, 0]], np.float32)  # preds 1 2 2 0: right on v2, v3
# 2:1:1 -> v0 [6 4 0], v1 [2 6 2], v2 [4 0 6], v3 [6 4 0]: 4/4 = 100 %.
# 1:1:1 -> v0 [3 4 0] wrong, v1 [2 3 2], v2 [2 0 6], v3 [6 2 0]: 3/4 = 75 %; class recalls 1/2, 1, 1 -> 83.33 %.


def score_set(scores, stream, names=NAMES, labels=LABELS, source=None) -> ScoreSet:
    return ScoreSet(scores, labels, names, stream=stream, source=source)


@pytest.fixture
def three_streams():
    return [score_set(IFRAME, "iframe", source="i.npz"), score_set(MV, "mv", source="m.npz"),
            score_set(RESIDUAL, "residual", source="r.npz")]


@pytest.fixture
def stream_files(tmp_path):
    return [save_scores(score_set(scores, stream), tmp_path / f"{stream}.npz")
            for scores, stream in ((IFRAME, "iframe"), (MV, "mv"), (RESIDUAL, "residual"))]


def accuracy(score_set_) -> float:
    return float(np.mean(score_set_.scores.argmax(axis=1) == score_set_.labels))


def test_each_stream_alone_is_half_right_and_2_1_1_fusion_is_all_right(three_streams):
    assert [accuracy(s) for s in three_streams] == [0.5, 0.5, 0.5]
    fused = fuse(three_streams, (2, 1, 1))
    np.testing.assert_array_equal(fused.scores, 2 * IFRAME + MV + RESIDUAL)
    assert fused.scores.argmax(axis=1).tolist() == LABELS
    assert accuracy(fuse(three_streams, (1, 1, 1))) == 0.75


def test_reordered_files_are_aligned_by_name(three_streams):
    order = [2, 0, 3, 1]
    shuffled_mv = score_set(MV[order], "mv", names=[NAMES[i] for i in order], labels=[LABELS[i] for i in order])
    aligned = align([three_streams[0], shuffled_mv])
    assert aligned[1].names.tolist() == NAMES
    np.testing.assert_array_equal(aligned[1].scores, MV)
    fused = fuse([three_streams[0], shuffled_mv, three_streams[2]], (2, 1, 1))
    np.testing.assert_array_equal(fused.scores, 2 * IFRAME + MV + RESIDUAL)


def test_different_video_sets_are_an_error_naming_both_files(three_streams):
    # One video replaced and the labels of that position differ too, so matching by position is refused as well.
    other_names = NAMES[:3] + ["x/extra.avi"]
    other = score_set(MV, "mv", names=other_names, labels=LABELS[:3] + [2], source="b.npz")
    with pytest.raises(CvkdError) as caught:
        align([three_streams[0], other])
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("b.npz: 1 video(s) not in i.npz (first: x/extra.avi)")
    assert "1 video(s) of i.npz missing (first: a/v3.avi)" in message
    assert message.endswith("not matched by position either: labels differ at 1 position(s) (first: position 3)")


def test_different_class_counts_are_an_error_naming_both_files(three_streams):
    wider = score_set(np.zeros((4, 5), np.float32), "mv", source="wide.npz")
    with pytest.raises(CvkdError, match=r"^wide\.npz: 5 classes but i\.npz has 3$"):
        fuse([three_streams[0], wider], (1, 1))


def test_conflicting_labels_are_an_error(three_streams):
    relabelled = score_set(MV, "mv", labels=[0, 1, 2, 1], source="lab.npz")
    with pytest.raises(CvkdError, match=r"^lab\.npz: labels differ from i\.npz for 1 video\(s\) \(first: a/v3.avi"):
        align([three_streams[0], relabelled])


def test_duplicate_names_cannot_be_matched(three_streams):
    duplicated = score_set(MV, "mv", names=["a/v1.avi", "b/v0.avi", "a/v1.avi", "c/v2.avi"], source="dup.npz")
    with pytest.raises(CvkdError, match=r"dup\.npz: video a/v1.avi appears 2 times"):
        align([three_streams[0], duplicated])


@pytest.mark.parametrize("weights, problem", [
    ((2, 1), "2 weights for 3 score files"),
    ((1, -1, 1), ">= 0"),
    ((0, 0, 0), "not all be 0"),
    ((1, float("nan"), 1), "finite"),
])
def test_bad_weights_are_rejected(three_streams, weights, problem):
    with pytest.raises(CvkdError, match=problem):
        fuse(three_streams, weights)


def test_search_prefers_2_1_1_among_equally_good_weights(three_streams):
    # 2:1:1, 3:1:1, 3:2:1, ... all reach 100 %; the tie goes to the ratio nearest CoViAR's 2:1:1.
    assert search_weights(three_streams) == ((2.0, 1.0, 1.0), 100.0)


def designed_pair():
    """Two streams where only B/A = 3 among the grid's ratios gets both videos right.

    Video X (label 0): A [0 5], B [2 0] -> fused [2t, 5] is right iff t > 2.5.
    Video Y (label 1): A [0 7], B [2 0] -> fused [2t, 7] is right iff t < 3.5.
    Ratios from the grid (0, .5, 1, 2, 3) between 2.5 and 3.5: only 3 (e.g. 1:3); 2 and 4 each lose one video.
    """
    names, labels = ["x.avi", "y.avi"], [0, 1]
    a = ScoreSet(np.array([[0, 5], [0, 7]]), labels, names, source="a.npz")
    b = ScoreSet(np.array([[2, 0], [2, 0]]), labels, names, source="b.npz")
    return a, b


def test_search_finds_the_designed_best_ratio():
    assert search_weights(designed_pair()) == ((1.0, 3.0), 100.0)


def test_search_on_one_file_is_that_file():
    a, _ = designed_pair()
    assert search_weights([a]) == ((1.0,), 50.0)


# ---------------------------------------------------------------- `cvkd fuse`

def table_row(output: str, first_cell: str) -> list[str]:
    """The cells of the table line starting with `first_cell`."""
    lines = [line for line in output.splitlines() if line.startswith(first_cell)]
    assert len(lines) == 1, output
    return lines[0][len(first_cell):].split()


def test_cli_prints_per_file_and_fused_accuracies(stream_files, capsys):
    assert main(["fuse", *map(str, stream_files)]) == 0
    output = capsys.readouterr().out
    assert output.splitlines()[0].split() == ["file", "stream", "weight", "videos", "top-1", "top-3", "mean-class"]
    # per file: weight, videos, top-1 50 %, top-3 100 %, mean class 50 % (class recalls 1/2, 1, 0 or 1/2, 0, 1)
    for path, stream, weight in zip(stream_files, ("iframe", "mv", "residual"), ("2", "1", "1")):
        assert table_row(output, str(path)) == [stream, weight, "4", "50.00", "100.00", "50.00"]
    assert table_row(output, "fused 2:1:1") == ["4", "100.00", "100.00", "100.00"]


def test_cli_weights_change_the_fused_accuracy(stream_files, capsys):
    assert main(["fuse", *map(str, stream_files), "--weights", "1", "1", "1"]) == 0
    assert table_row(capsys.readouterr().out, "fused 1:1:1") == ["4", "75.00", "100.00", "83.33"]


def test_cli_wrong_weight_count_exits_2_with_one_line(stream_files, capsys):
    assert main(["fuse", *map(str, stream_files), "--weights", "2", "1"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "2 weights for 3 score files" in captured.err


def test_cli_missing_file_exits_2_naming_it(stream_files, tmp_path, capsys):
    missing = tmp_path / "nope.npz"
    assert main(["fuse", str(stream_files[0]), str(missing)]) == 2
    assert str(missing) in capsys.readouterr().err


def test_cli_search_reports_weights_as_json(stream_files, capsys):
    assert main(["fuse", *map(str, stream_files), "--search", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["search"] == {"weights": [2.0, 1.0, 1.0], "chosen_on": "files", "top1": 100.0}
    assert report["fused"]["weights"] == [2.0, 1.0, 1.0] and report["fused"]["top1"] == 100.0
    assert [f["top1"] for f in report["files"]] == [50.0, 50.0, 50.0]


def test_cli_val_files_choose_the_weights_for_the_main_files(tmp_path, capsys):
    a, b = designed_pair()
    val = [save_scores(s, tmp_path / f"val_{s.source}") for s in (a, b)]
    # The "test" files: same streams on the same videos, listed in another order (aligned by name).
    test = [save_scores(s.take(np.array([1, 0])), tmp_path / f"test_{s.source}") for s in (a, b)]
    assert main(["fuse", *map(str, test), "--val", *map(str, val)]) == 0
    output = capsys.readouterr().out
    assert output.startswith("best weights on the --val files: 1:3 (top-1 100.00%")
    assert table_row(output, "fused 1:3") == ["2", "100.00", "100.00", "100.00"]


def test_cli_val_count_must_match(stream_files, capsys):
    assert main(["fuse", *map(str, stream_files), "--val", str(stream_files[0])]) == 2
    assert "1 --val file(s) for 3 score file(s)" in capsys.readouterr().err


def test_cli_reads_coviar_score_files_next_to_cvkd_ones(stream_files, tmp_path, capsys):
    # CoViAR's test.py writes videos sorted by name, as (logits (1, C), label) pairs: another order than cvkd's files.
    order = np.argsort(NAMES)
    pairs = np.array([(IFRAME[i].reshape(1, 3), LABELS[i]) for i in order], dtype=object)
    coviar = tmp_path / "coviar_iframe.npz"
    np.savez(coviar, scores=pairs, labels=[LABELS[i] for i in order], names=[NAMES[i] for i in order])
    assert main(["fuse", str(coviar), *map(str, stream_files[1:])]) == 0
    assert table_row(capsys.readouterr().out, "fused 2:1:1") == ["4", "100.00", "100.00", "100.00"]

"""Score files: cvkd's format round-trips exactly, CoViAR's format loads, bad files fail with one line naming them."""

import os

import numpy as np
import pytest

from coviar_files import write_coviar_scores
from cvkd.scores.files import ScoreFileError, ScoreSet, load_scores, save_scores
from cvkd.errors import CvkdError

NAMES = ["ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", "brush_hair/Brüsh_01.avi", "Yo/yo.avi"]


def make_set(num_classes=4, stream="iframe", class_names=True) -> ScoreSet:
    rng = np.random.default_rng(7)
    scores = rng.normal(size=(len(NAMES), num_classes)).astype(np.float32)
    names = tuple(f"c{i}" for i in range(num_classes)) if class_names else None
    return ScoreSet(scores, [1, 0, num_classes - 1], NAMES, names, stream)


class SideEffect:
    """Unpickling this creates a directory: proves whether a file's pickle was executed."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.makedirs, (self.marker,)


def test_cvkd_format_round_trips_exactly(tmp_path):
    original = make_set()
    path = save_scores(original, tmp_path / "iframe.npz")
    loaded = load_scores(path)
    assert loaded.scores.dtype == np.float32 and loaded.scores.tobytes() == original.scores.tobytes()
    assert loaded.labels.dtype == np.int64 and loaded.labels.tolist() == [1, 0, 3]
    assert loaded.names.tolist() == NAMES
    assert loaded.class_names == ("c0", "c1", "c2", "c3")
    assert loaded.stream == "iframe"
    assert loaded.source == str(path)


def test_cvkd_format_needs_no_pickle(tmp_path):
    path = save_scores(make_set(), tmp_path / "s.npz")
    with np.load(path, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    assert set(arrays) == {"scores", "labels", "names", "class_names", "stream"}
    assert arrays["names"].dtype.kind == "U" and arrays["class_names"].dtype.kind == "U"


def test_optional_fields_may_be_absent(tmp_path):
    path = save_scores(make_set(stream=None, class_names=False), tmp_path / "s.npz")
    loaded = load_scores(path)
    assert loaded.class_names is None and loaded.stream is None


def test_save_writes_exactly_the_given_path_and_leaves_no_temporary_file(tmp_path):
    first, second = make_set(num_classes=4), make_set(num_classes=5)
    save_scores(first, tmp_path / "scores")
    save_scores(second, tmp_path / "scores")  # replaces the first
    assert sorted(os.listdir(tmp_path)) == ["scores"]
    assert load_scores(tmp_path / "scores").num_classes == 5


@pytest.mark.parametrize("pairs_as", ["rows", "tuples"])
@pytest.mark.parametrize("label_type", ["int", "numpy", "tensor"])
def test_coviar_format_loads_to_an_n_by_c_matrix(tmp_path, pairs_as, label_type):
    logits = np.arange(12, dtype=np.float32).reshape(3, 4) - 5.5
    path = write_coviar_scores(tmp_path / "mv.npz", logits, [2, 0, 3], NAMES, pairs_as, label_type)
    loaded = load_scores(path)
    assert loaded.scores.shape == (3, 4)
    np.testing.assert_array_equal(loaded.scores, logits)
    assert loaded.labels.tolist() == [2, 0, 3]
    assert loaded.names.tolist() == NAMES
    assert loaded.class_names is None and loaded.stream is None


def test_coviar_pairs_must_agree_with_the_labels_array(tmp_path):
    path = tmp_path / "bad_coviar.npz"
    pairs = np.array([(np.zeros((1, 3), np.float32), 1), (np.zeros((1, 3), np.float32), 2)], dtype=object)
    np.savez(path, scores=pairs, labels=[1, 0], names=["a.avi", "b.avi"])
    with pytest.raises(ScoreFileError, match=r"bad_coviar\.npz: score pair 1 has label 2 but labels\[1\] is 0"):
        load_scores(path)


def test_coviar_pairs_must_hold_logits_of_one_row(tmp_path):
    path = tmp_path / "two_rows.npz"
    pairs = np.array([(np.zeros((2, 3), np.float32), 1), (np.zeros((2, 3), np.float32), 0)], dtype=object)
    np.savez(path, scores=pairs, labels=[1, 0], names=["a.avi", "b.avi"])
    with pytest.raises(ScoreFileError, match=r"two_rows\.npz: score pair 0: logits must be .* shape \(1, C\)"):
        load_scores(path)


@pytest.mark.parametrize("layout", ["pickled names", "no names"])
def test_files_not_recognisably_coviar_are_never_unpickled(tmp_path, layout):
    marker = tmp_path / "pickle_ran"
    payload = np.empty(1, dtype=object)
    payload[0] = SideEffect(marker)
    arrays = {"scores": payload, "labels": [0]}
    if layout == "pickled names":
        arrays["names"] = np.array([3], dtype=object)
    path = tmp_path / "evil.npz"
    np.savez(path, **arrays)
    with pytest.raises(ScoreFileError, match=r"evil\.npz"):
        load_scores(path)
    assert not marker.exists()
    np.load(path, allow_pickle=True)["scores"]  # the payload is live: unpickling would have run it
    assert marker.exists()


def one_line_error(path) -> str:
    with pytest.raises(CvkdError) as caught:
        load_scores(path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(str(path))
    return message


def test_missing_file_is_named(tmp_path):
    assert "no such score file" in one_line_error(tmp_path / "absent.npz")


def test_garbage_file_is_named(tmp_path):
    path = tmp_path / "garbage.npz"
    path.write_bytes(b"this is not a zip archive at all")
    assert "not a readable .npz" in one_line_error(path)


def test_single_npy_array_is_not_a_score_file(tmp_path):
    path = tmp_path / "single.npz"
    with open(path, "wb") as handle:
        np.save(handle, np.zeros((2, 3)))
    assert "single .npy array" in one_line_error(path)


def test_missing_arrays_are_listed(tmp_path):
    path = tmp_path / "partial.npz"
    np.savez(path, scores=np.zeros((2, 3), np.float32))
    assert "labels, names" in one_line_error(path)


@pytest.mark.parametrize("arrays, problem", [
    ({"scores": np.zeros(3), "labels": [0, 1, 2], "names": ["a", "b", "c"]}, "shape (videos, classes)"),
    ({"scores": np.zeros((3, 4)), "labels": [0, 1], "names": ["a", "b", "c"]}, "labels must have shape (3,)"),
    ({"scores": np.zeros((3, 4)), "labels": [0, 1, 4], "names": ["a", "b", "c"]}, "labels must lie in 0..3"),
    ({"scores": np.zeros((3, 4)), "labels": [0, 1, 2], "names": ["a", "b"]}, "names must have shape (3,)"),
    ({"scores": np.full((3, 4), np.nan), "labels": [0, 1, 2], "names": ["a", "b", "c"]}, "NaN"),
    ({"scores": np.zeros((3, 4)), "labels": [0.0, 1.0, 2.0], "names": ["a", "b", "c"]}, "integers"),
    ({"scores": np.zeros((3, 4)), "labels": [0, 1, 2], "names": ["a", "b", "c"], "class_names": ["x"]},
     "1 class names for 4 classes"),
])
def test_wrong_shapes_are_reported_with_the_file_name(tmp_path, arrays, problem):
    path = tmp_path / "shapes.npz"
    np.savez(path, **arrays)
    assert problem in one_line_error(path)

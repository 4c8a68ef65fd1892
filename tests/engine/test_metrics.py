"""Accuracy metrics on hand-made scores, every expected figure worked out by hand in the comments."""

import numpy as np
import pytest

from cvkd.scores.metrics import confusion_matrix, mean_class_accuracy, predictions, summarize, top_k_accuracy

# 4 videos, 3 classes, unbalanced: three videos of class 0, one of class 1, none of class 2.
LABELS = np.array([0, 0, 0, 1])
SCORES = np.array([
    [5.0, 1.0, 0.0],  # true 0: ranking 0 > 1 > 2 -> top-1 right
    [4.0, 0.0, 1.0],  # true 0: ranking 0 > 2 > 1 -> top-1 right
    [1.0, 3.0, 2.0],  # true 0: ranking 1 > 2 > 0 -> wrong in top-1 and top-2
    [0.0, 1.0, 2.0],  # true 1: ranking 2 > 1 > 0 -> wrong in top-1, right in top-2
])


def test_top_k_accuracy_counts_labels_within_the_k_best_scores():
    assert top_k_accuracy(SCORES, LABELS, 1) == pytest.approx(100 * 2 / 4)
    assert top_k_accuracy(SCORES, LABELS, 2) == pytest.approx(100 * 3 / 4)
    assert top_k_accuracy(SCORES, LABELS, 3) == pytest.approx(100.0)


def test_top_k_beyond_the_class_count_counts_every_video():
    assert top_k_accuracy(SCORES, LABELS, 5) == pytest.approx(100.0)


def test_equal_scores_rank_the_lower_class_first_like_argmax():
    scores = np.array([[1.0, 1.0, 0.0]])
    assert predictions(scores).tolist() == [0]
    assert top_k_accuracy(scores, np.array([1]), 1) == 0.0
    assert top_k_accuracy(scores, np.array([1]), 2) == 100.0
    assert top_k_accuracy(scores, np.array([2]), 2) == 0.0


def test_mean_class_accuracy_averages_recall_over_present_classes_only():
    # class 0: 2 of 3 right; class 1: 0 of 1 right; class 2 has no video and is left out.
    expected = 100 * (2 / 3 + 0 / 1) / 2
    assert mean_class_accuracy(SCORES, LABELS) == pytest.approx(expected)
    assert mean_class_accuracy(SCORES, LABELS, num_classes=3) == pytest.approx(expected)
    assert expected != pytest.approx(top_k_accuracy(SCORES, LABELS, 1))  # unbalanced classes: differs from top-1


def test_confusion_matrix_rows_are_true_classes():
    matrix = confusion_matrix(predictions(SCORES), LABELS, 3)
    # predictions are 0, 0, 1, 2 for true classes 0, 0, 0, 1.
    expected = np.array([
        [2, 1, 0],
        [0, 0, 1],
        [0, 0, 0],
    ])
    assert matrix.dtype == np.int64
    np.testing.assert_array_equal(matrix, expected)


def test_confusion_matrix_rejects_classes_out_of_range():
    with pytest.raises(ValueError, match="pred"):
        confusion_matrix(np.array([3]), np.array([0]), 3)


def test_summarize_uses_top_min_5_c_and_percent():
    metrics = summarize(SCORES, LABELS)
    assert (metrics.n, metrics.num_classes) == (4, 3)
    assert metrics.top1 == pytest.approx(50.0)
    assert metrics.top5 == pytest.approx(100.0)  # top-3 with 3 classes
    assert metrics.mean_class == pytest.approx(100 / 3)


def test_summarize_top5_on_many_classes():
    # 7 classes; the label of video 0 ranks 5th (top-5 hit), of video 1 ranks 6th (miss).
    scores = np.array([[7, 6, 5, 4, 3, 2, 1], [7, 6, 5, 4, 3, 2, 1]], dtype=float)
    metrics = summarize(scores, np.array([4, 5]))
    assert metrics.top1 == 0.0
    assert metrics.top5 == pytest.approx(50.0)


@pytest.mark.parametrize("scores, labels", [
    (np.zeros((0, 3)), np.zeros(0, dtype=int)),
    (np.zeros((2, 3)), np.array([0, 3])),
    (np.zeros((2, 3)), np.array([0])),
    (np.zeros((2, 3)), np.array([0.0, 1.0])),
])
def test_invalid_inputs_are_rejected(scores, labels):
    with pytest.raises(ValueError):
        top_k_accuracy(scores, labels, 1)

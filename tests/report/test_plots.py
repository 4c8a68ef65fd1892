"""Result plots: real PNG files of the expected size appear atomically; bad inputs are refused."""

import os

import numpy as np
import pytest
from PIL import Image

from cvkd.report.plots import normalise_rows, plot_confusion, plot_run_log, plot_training_curves

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 1000
    with Image.open(path) as image:
        image.verify()
    assert [name for name in os.listdir(path.parent) if ".tmp" in name] == []  # no temporary file left behind


def test_normalise_rows_divides_each_row_by_its_sum_and_keeps_empty_rows_zero():
    fractions = normalise_rows(np.array([[3, 1], [0, 0]]))
    np.testing.assert_allclose(fractions, [[0.75, 0.25], [0.0, 0.0]])


@pytest.mark.parametrize("num_classes", [3, 101])
def test_confusion_plot_is_a_png(tmp_path, num_classes):
    rng = np.random.default_rng(num_classes)
    matrix = rng.integers(0, 4, (num_classes, num_classes)) + 30 * np.eye(num_classes, dtype=np.int64)
    matrix[-1] = 0  # a class without test videos must not break the normalisation
    path = plot_confusion(matrix, [f"class {i}" for i in range(num_classes)], tmp_path / "confusion.png", "UCF")
    assert path == tmp_path / "confusion.png"
    assert_png(path)


def test_confusion_plot_grows_with_the_class_count(tmp_path):
    small = plot_confusion(np.eye(3, dtype=int), None, tmp_path / "small.png")
    large = plot_confusion(np.eye(101, dtype=int), None, tmp_path / "large.png")
    with Image.open(small) as a, Image.open(large) as b:
        assert b.width > a.width and b.height > a.height


def test_confusion_plot_rejects_mismatched_class_names(tmp_path):
    with pytest.raises(ValueError, match="2 class names for a 3-class"):
        plot_confusion(np.eye(3, dtype=int), ["a", "b"], tmp_path / "c.png")
    assert not (tmp_path / "c.png").exists()


def test_training_curves_plot_what_the_log_holds(tmp_path):
    rows = [{"epoch": e, "train_loss": 2.0 / (e + 1), "train_acc": 40 + 5 * e, "lr": 0.01 * 0.1 ** (e // 3),
             "time": "12:00"} for e in range(6)]
    for row in rows[::2]:
        row["val_acc"] = row["train_acc"] - 3
    assert_png(plot_training_curves(rows, tmp_path / "curves.png"))
    only_loss = plot_training_curves([{"train_loss": 1.0}, {"train_loss": 0.5}], tmp_path / "loss.png")
    assert_png(only_loss)
    # Three panels (loss, accuracy, lr) make a wider figure than the single loss panel.
    with Image.open(tmp_path / "curves.png") as three, Image.open(only_loss) as one:
        assert three.width > 2 * one.width


def test_training_curves_need_something_to_plot(tmp_path):
    with pytest.raises(ValueError, match="no loss, accuracy or learning-rate values"):
        plot_training_curves([{"epoch": 1, "note": "x"}], tmp_path / "empty.png")


def test_run_log_curves_follow_the_suffix(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text('{"epoch": 1, "train_loss": 2.0, "lr": 0.1}\n\n{"epoch": 2, "train_loss": 1.0, "lr": 0.01}\n')
    assert_png(plot_run_log(log, tmp_path / "curves.png"))
    svg = plot_run_log(log, tmp_path / "curves.svg")
    assert svg.read_text().lstrip().startswith("<?xml") and "<svg" in svg.read_text()

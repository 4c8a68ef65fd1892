"""No data file executes code: a payload whose `__reduce__` would create a marker file goes through every entry point
that reads a file a user may be given; the marker never appears and the error is one line. A legitimate CoViAR score
file (object array of `(logits (1, C), label)` pairs, written with np.savez as CoViAR's test.py does) still fuses."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from coviar_files import write_coviar_scores

from cvkd.cli import main
from cvkd.config import load_config
from cvkd.engine import teacher_cache
from cvkd.engine.cache_files import LOGITS, ShardRange, clear_cache_folder, write_manifest, write_shard_record
from cvkd.engine.runtime import Runtime
from cvkd.engine.teacher_cache import TeacherCache, load_or_build_cache
from cvkd.errors import CheckpointError, CvkdError, StaleCacheError
from cvkd.models.weights import read_state_dict
from cvkd.runs.checkpoint import load_checkpoint
from cvkd.runs.schema import RunConfig
from cvkd.scores.files import load_scores


class Payload:
    """Unpickling this calls `open(marker, "w")`, which creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "MARKER"


def _poisoned_coviar(path: Path, marker: Path, where: str = "scores") -> Path:
    """A CoViAR-shaped score file whose `where` object array carries the payload (next to real-looking pairs)."""
    pairs = np.empty(2, dtype=object)
    pairs[0] = (np.zeros((1, 3), np.float32), 0)
    pairs[1] = (np.ones((1, 3), np.float32), Payload(marker)) if where == "scores" else (np.ones((1, 3), np.float32), 1)
    labels = np.empty(2, dtype=object)
    labels[0], labels[1] = 0, Payload(marker) if where == "labels" else 1
    np.savez(path, scores=pairs, labels=labels, names=np.asarray(["a/x.avi", "a/y.avi"]))
    return path


def _one_line_refusal(capsys, code: int) -> str:
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("where", ["scores", "labels"])
def test_fuse_refuses_poisoned_coviar_file(tmp_path, marker, capsys, where):
    path = _poisoned_coviar(tmp_path / "bad.npz", marker, where)
    err = _one_line_refusal(capsys, main(["fuse", str(path), str(path)]))
    assert not marker.exists()
    assert "bad.npz" in err and "open" in err and "refused" in err


def test_compare_eval_cache_loader_refuses_poison(tmp_path, marker):
    run = tmp_path / "run_a"
    run.mkdir()
    path = _poisoned_coviar(run / "eval_test_5x1_0123abcd.npz", marker)
    with pytest.raises(CvkdError) as caught:
        load_scores(path)
    assert not marker.exists()
    assert len(str(caught.value).splitlines()) == 1 and "eval_test_5x1_0123abcd.npz" in str(caught.value)


def test_torch_tensor_payload_cannot_smuggle_code(tmp_path, marker):
    """A tensor label's storage bytes are themselves a torch pickle; they are read weights-only, never trusted."""
    buffer = io.BytesIO()
    torch.save({"x": Payload(marker)}, buffer)
    smuggled = buffer.getvalue()

    class FakeStorage:
        def __reduce__(self):
            return (torch.storage._load_from_bytes, (smuggled,))

    pairs = np.empty(1, dtype=object)
    pairs[0] = (np.zeros((1, 3), np.float32), FakeStorage())
    np.savez(tmp_path / "s.npz", scores=pairs, labels=np.asarray([0]), names=np.asarray(["a/x.avi"]))
    with pytest.raises(CvkdError) as caught:
        load_scores(tmp_path / "s.npz")
    assert not marker.exists() and len(str(caught.value).splitlines()) == 1


def _torch_payload(path: Path, marker: Path, extra: dict | None = None) -> Path:
    torch.save({**(extra or {}), "evil": Payload(marker)}, path)
    return path


@pytest.mark.parametrize("reader", ["checkpoint", "weights file"])
def test_torch_files_refuse_payload(tmp_path, marker, reader):
    path = _torch_payload(tmp_path / "file.pt", marker, {"format": "x"})
    with pytest.raises(CvkdError) as caught:
        if reader == "checkpoint":
            load_checkpoint(path)
        else:
            read_state_dict(path)
    message = str(caught.value)
    assert not marker.exists()
    assert len(message.splitlines()) == 1 and "file.pt" in message
    assert "weights_only=False" not in message and "trust" not in message and "refused" in message


def _teacher_cache(folder: Path, logits: np.ndarray, key: str = "key") -> Path:
    """A complete teacher cache of one shard whose logits file holds `logits` (any dtype, pickled if object)."""
    folder.mkdir(parents=True, exist_ok=True)
    shard = ShardRange(0, 1, 0, len(logits))
    np.save(shard.array_file(folder, LOGITS), logits, allow_pickle=True)
    write_shard_record(folder, shard, key, [LOGITS])
    write_manifest(folder, key, [shard], views=logits.shape[1])
    return shard.array_file(folder, LOGITS)


def _poisoned_teacher_cache(folder: Path, marker: Path) -> Path:
    """A teacher cache whose logits file is a pickled object array carrying the payload."""
    logits = np.empty((1, 1, 1, 1), dtype=object)
    logits[0, 0, 0, 0] = Payload(marker)
    return _teacher_cache(folder, logits)


def test_a_teacher_cache_with_code_is_refused_without_running_it(tmp_path, marker):
    path = _poisoned_teacher_cache(tmp_path / "teacher_cache", marker)
    with pytest.raises(CheckpointError) as caught:
        TeacherCache.open(tmp_path / "teacher_cache", "key")
    message = str(caught.value)
    assert not marker.exists()
    assert len(message.splitlines()) == 1 and str(path) in message and "not a readable teacher cache" in message


def test_a_poisoned_teacher_cache_is_called_refused_not_stale(tmp_path, marker, monkeypatch, capsys):
    """A cache the reader refuses is not "stale": kept (rebuild_stale=False) it is re-raised as it is; otherwise a
    warning says it was refused as unsafe or unreadable before a new cache replaces it."""
    folder = tmp_path / "teacher_cache"
    path = _poisoned_teacher_cache(folder, marker)
    monkeypatch.setattr(teacher_cache, "cache_key", lambda *args: "key")  # no teachers or data: only the files matter
    cpu = Runtime(torch.device("cpu"))
    with pytest.raises(CheckpointError) as caught:
        load_or_build_cache(folder, None, None, 1, 1, 0, cpu, progress=False, rebuild_stale=False)
    assert not isinstance(caught.value, StaleCacheError) and "stale" not in str(caught.value)
    assert "not a readable teacher cache" in str(caught.value) and not marker.exists()

    def rebuild(folder, *args, **kwargs):
        clear_cache_folder(folder)
        _teacher_cache(folder, np.zeros((1, 1, 1, 2), np.float32))

    monkeypatch.setattr(teacher_cache, "build_cache", rebuild)
    cache = load_or_build_cache(folder, None, None, 1, 1, 0, cpu, progress=False)
    warning = capsys.readouterr().out.strip()
    assert cache.key == "key" and torch.equal(cache.read_all()[0], torch.zeros(1, 1, 1, 2)) and not marker.exists()
    assert len(warning.splitlines()) == 1 and str(path) in warning and "stale" not in warning
    assert "refused as unsafe or unreadable" in warning, warning


def test_config_refuses_python_tags(tmp_path, marker):
    path = tmp_path / "run.yaml"
    path.write_text(f"seed: !!python/object/apply:builtins.open ['{marker}', 'w']\n")
    with pytest.raises(CvkdError) as caught:
        load_config(RunConfig, path)
    assert not marker.exists() and len(str(caught.value).splitlines()) == 1


def test_onnx_file_that_is_a_pickle_is_refused(tmp_path, marker):
    pytest.importorskip("onnxruntime")
    from cvkd.inference.onnx_predictor import open_session

    path = tmp_path / "m.onnx"
    path.write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(CvkdError) as caught:
        open_session(path)
    assert not marker.exists() and len(str(caught.value).splitlines()) == 1


@pytest.mark.parametrize("label_type", ["int", "numpy", "tensor"])
@pytest.mark.parametrize("pairs_as", ["tuples", "rows"])
def test_real_coviar_file_still_fuses(tmp_path, capsys, label_type, pairs_as):
    # Hand-checked: stream A ranks the right class first on videos 0 and 2, stream B on 1 and 2; summed (1:1)
    # the fused rows are [3, 1, 0], [1, 3, 0], [0, 1, 4]: all three right.
    a = np.array([[2, 1, 0], [1, 0, 0], [0, 0, 3]], np.float32)
    b = np.array([[1, 0, 0], [0, 3, 0], [0, 1, 1]], np.float32)
    names = ["c/0.avi", "c/1.avi", "c/2.avi"]
    for name, logits in (("a.npz", a), ("b.npz", b)):
        write_coviar_scores(tmp_path / name, logits, [0, 1, 2], names, pairs_as=pairs_as, label_type=label_type)
    loaded = load_scores(tmp_path / "a.npz")
    np.testing.assert_array_equal(loaded.scores, a)
    np.testing.assert_array_equal(loaded.labels, [0, 1, 2])
    assert main(["fuse", str(tmp_path / "a.npz"), str(tmp_path / "b.npz"), "--json"]) == 0
    assert "1.0" in capsys.readouterr().out

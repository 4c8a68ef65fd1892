"""Score files cannot steer NumPy's object machinery or make cvkd allocate what they declare: the dtype-flags file
that made an object array out of raw bytes (a segfault before), its variants, a header declaring terabytes, an
oversized member, and an eval-cache index naming a file outside its run folder are each refused in one line."""

from __future__ import annotations

import io
import json
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from coviar_files import write_coviar_scores

from cvkd.errors import CheckpointError, ScoreFileError
from cvkd.scores import safe_npz
from cvkd.scores.files import load_scores

OBJECT_FLAGS = 0x3F  # NumPy's flags of the object dtype; 0x02 (NPY_LIST_PICKLE) says "pickled as a list"


class _Dtype:
    """Pickles as numpy.dtype(code) followed by BUILD with a state whose flags the test chooses."""

    def __init__(self, code: str, flags: int, order: str = "|") -> None:
        self.code, self.flags, self.order = code, flags, order

    def __reduce__(self):
        return (np.dtype, (self.code, False, True), (3, self.order, None, None, None, -1, -1, self.flags))


class _Array:
    """Pickles as NumPy's ndarray reconstruction with the given state (shape, dtype, fortran, data)."""

    def __init__(self, shape, dtype, data) -> None:
        self.shape, self.dtype, self.data = shape, dtype, data

    def __reduce__(self):
        from numpy._core.multiarray import _reconstruct
        return (_reconstruct, (np.ndarray, (0,), b"b"), (1, self.shape, self.dtype, False, self.data))


def _npy_member(header_shape: tuple, descr: str, payload: bytes) -> bytes:
    """A .npy member: NumPy's header for (shape, descr), then the payload bytes as they are."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": header_shape})
    return buffer.getvalue() + payload


def _archive(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(f"{name}.npy", data)
    return path


def _names_and_labels() -> dict[str, bytes]:
    buffer_labels, buffer_names = io.BytesIO(), io.BytesIO()
    np.save(buffer_labels, np.asarray([0, 1]))
    np.save(buffer_names, np.asarray(["a/x.avi", "a/y.avi"]))
    return {"labels": buffer_labels.getvalue(), "names": buffer_names.getvalue()}


def crafted_dtype_file(path: Path, flags: int = OBJECT_FLAGS & ~0x02, data: object = b"A" * 16) -> Path:
    """The crafted file: `scores` is an object array whose dtype state clears the list-pickle flag and whose data is
    16 raw bytes, which NumPy would copy into the array as two object pointers."""
    payload = pickle.dumps(_Array((2,), _Dtype("O8", flags), data), protocol=3)
    return _archive(path, {"scores": _npy_member((2,), "|O", payload), **_names_and_labels()})


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cvkd", *args], capture_output=True, text=True, timeout=120)


def test_the_dtype_flags_file_is_refused_in_one_line_without_a_signal(tmp_path):
    crafted = crafted_dtype_file(tmp_path / "crafted.npz")
    legit = write_coviar_scores(tmp_path / "legit.npz", np.eye(2), [0, 1], ["a/x.avi", "a/y.avi"])
    done = _cli("fuse", str(crafted), str(legit))
    assert done.returncode == 2, (done.returncode, done.stderr[-500:])  # not -11 (SIGSEGV) nor 139
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "crafted.npz" in lines[0] and "raw bytes" in lines[0]


@pytest.mark.parametrize("variant", ["flags kept", "all flags cleared", "structured state", "object scalar",
                                     "other class", "bytes as a list of the wrong length"])
def test_variants_of_the_crafted_file_are_refused(tmp_path, variant):
    if variant == "flags kept":  # a well-formed object array of 2 raw byte strings: still not pairs of logits
        path = crafted_dtype_file(tmp_path / "v.npz", flags=OBJECT_FLAGS, data=[b"A" * 8, b"B" * 8])
    elif variant == "all flags cleared":
        path = crafted_dtype_file(tmp_path / "v.npz", flags=0)
    elif variant == "structured state":
        class Structured(_Dtype):
            def __reduce__(self):
                return (np.dtype, ("O8", False, True), (3, "|", None, ("a",), {"a": (np.dtype("O"), 0)}, 8, 8, 63))
        payload = pickle.dumps(_Array((2,), Structured("O8", 63), [1, 2]), protocol=3)
        path = _archive(tmp_path / "v.npz", {"scores": _npy_member((2,), "|O", payload), **_names_and_labels()})
    elif variant == "object scalar":
        class Scalar:
            def __reduce__(self):
                from numpy._core.multiarray import scalar
                return (scalar, (_Dtype("O8", 0), b"A" * 8))
        payload = pickle.dumps(_Array((2,), _Dtype("O8", 63), [Scalar(), Scalar()]), protocol=3)
        path = _archive(tmp_path / "v.npz", {"scores": _npy_member((2,), "|O", payload), **_names_and_labels()})
    elif variant == "other class":
        class Other:
            def __reduce__(self):
                from numpy._core.multiarray import _reconstruct
                return (_reconstruct, (np.ma.MaskedArray, (0,), b"b"), None)
        payload = pickle.dumps(Other(), protocol=3)
        path = _archive(tmp_path / "v.npz", {"scores": _npy_member((2,), "|O", payload), **_names_and_labels()})
    else:
        path = crafted_dtype_file(tmp_path / "v.npz", flags=OBJECT_FLAGS, data=[b"A" * 16])
    with pytest.raises(ScoreFileError) as caught:
        load_scores(path)
    assert "v.npz" in str(caught.value) and len(str(caught.value).splitlines()) == 1


def test_a_header_declaring_terabytes_is_refused_before_allocation(tmp_path):
    bomb = _npy_member((1 << 20, 1 << 20), "<f4", b"\0" * 64)
    path = _archive(tmp_path / "bomb.npz", {"scores": bomb, **_names_and_labels()})
    with pytest.raises(ScoreFileError, match=r"declares 4,398,046,511,104 bytes of data, the file holds 64"):
        load_scores(path)


def test_a_member_over_the_size_bound_is_refused_before_it_is_inflated(tmp_path, monkeypatch):
    path = tmp_path / "big.npz"
    np.savez_compressed(path, scores=np.zeros((400, 10), np.float32), labels=np.zeros(400, np.int64),
                        names=np.asarray([f"a/{i}.avi" for i in range(400)]))
    monkeypatch.setattr(safe_npz, "MAX_MEMBER_BYTES", 15_000)  # names: 14,528 bytes; scores: 128 + 16,000
    with pytest.raises(ScoreFileError, match="scores declares 16,128 bytes uncompressed, over the 15,000"):
        load_scores(path)


def test_legitimate_files_still_load(tmp_path):
    for label_type in ("int", "numpy", "tensor"):
        for pairs_as in ("rows", "tuples"):
            path = write_coviar_scores(tmp_path / f"{label_type}_{pairs_as}.npz", np.arange(6.0).reshape(2, 3),
                                       [2, 0], ["a/x.avi", "a/y.avi"], pairs_as=pairs_as, label_type=label_type)
            loaded = load_scores(path)
            assert loaded.scores.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]] and loaded.labels.tolist() == [2, 0]


def test_an_eval_cache_naming_a_file_outside_its_run_is_refused(tmp_path):
    from types import SimpleNamespace

    from cvkd.engine.protocol import Protocol, eval_cache_path, read_cached_evaluation
    run = tmp_path / "run"
    run.mkdir()
    checkpoint = run / "best.pt"
    checkpoint.write_bytes(b"x")
    protocol = Protocol("test", 5, 1)
    path = eval_cache_path(checkpoint, protocol)
    loaded = SimpleNamespace(checkpoint=checkpoint, class_names=("a", "b"), epoch=1,
                             model=SimpleNamespace(modalities=("iframe",)))
    metrics = {"top1": 50.0, "top5": 100.0, "mean_class": 50.0, "n": 2, "num_classes": 2}
    path.write_text(json.dumps({
        "format": 1, "checkpoint": "best.pt", "split": "test", "segments": 5, "crops": 1, "data_root": "/d",
        "class_names": ["a", "b"], "metrics": {"iframe": metrics, "fused": metrics},
        "scores": {"iframe": "ok.npz", "fused": "../../../x.npz"},
    }))
    from cvkd.engine import protocol as protocol_module
    path.write_text(path.read_text().replace('"format": 1', f'"format": {json.dumps(protocol_module.EVAL_FORMAT)}'))
    with pytest.raises(CheckpointError, match=r"names the score file '\.\./\.\./\.\./x\.npz', which is not a file"):
        read_cached_evaluation(loaded, protocol, "/d")

"""Score files cannot steer NumPy's object machinery or make cvkd allocate what they declare: the dtype-flags file
that made an object array out of raw bytes (a segfault before), its variants, a header declaring terabytes, an
oversized member, and an eval-cache index naming a file outside its run folder are each refused in one line."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from coviar_files import write_coviar_scores
from hardening.hostile_files import CRAFTED_VARIANTS, crafted_dtype_file, crafted_variant, header_bomb

from cvkd.errors import CheckpointError, ScoreFileError
from cvkd.scores import safe_npz
from cvkd.scores.files import load_scores, read_scores


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cvkd", *args], capture_output=True, text=True, timeout=120)


def test_the_dtype_flags_file_is_refused_in_one_line_without_a_signal(tmp_path):
    crafted = crafted_dtype_file(tmp_path / "crafted.npz")
    legit = write_coviar_scores(tmp_path / "legit.npz", np.eye(2), [0, 1], ["a/x.avi", "a/y.avi"])
    done = _cli("fuse", str(crafted), str(legit))
    assert done.returncode == 2, (done.returncode, done.stderr[-500:])  # not -11 (SIGSEGV) nor 139
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "crafted.npz" in lines[0] and "raw bytes" in lines[0]


@pytest.mark.parametrize("variant", CRAFTED_VARIANTS)
def test_variants_of_the_crafted_file_are_refused(tmp_path, variant):
    path = crafted_variant(tmp_path / "v.npz", variant)
    with pytest.raises(ScoreFileError) as caught:
        load_scores(path)
    assert "v.npz" in str(caught.value) and len(str(caught.value).splitlines()) == 1


def test_a_header_declaring_terabytes_is_refused_before_allocation(tmp_path):
    path = header_bomb(tmp_path / "bomb.npz")
    with pytest.raises(ScoreFileError, match=r"declares 4,398,046,511,104 bytes of data, the file holds 64"):
        load_scores(path)


def test_a_member_over_the_size_bound_is_refused_before_it_is_inflated(tmp_path, monkeypatch):
    path = tmp_path / "big.npz"
    np.savez_compressed(path, scores=np.zeros((400, 10), np.float32), labels=np.zeros(400, np.int64),
                        names=np.asarray([f"a/{i}.avi" for i in range(400)]))
    monkeypatch.setattr(safe_npz, "MAX_MEMBER_BYTES", 15_000)  # names: 14,528 bytes; scores: 128 + 16,000
    with pytest.raises(ScoreFileError, match="scores declares 16,128 bytes uncompressed, over the 15,000"):
        read_scores(path)  # in this process: the parser child keeps the real bound


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

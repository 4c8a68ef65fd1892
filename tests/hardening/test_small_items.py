"""Smaller hardening items of issue 15: each a one-line refusal instead of a silent side effect."""

from __future__ import annotations

from cvkd.cli import main


def test_export_to_a_missing_folder_is_refused(tmp_path, capsys):
    target = tmp_path / "no_such_dir" / "m.onnx"
    code = main(["export", str(tmp_path), "--onnx", str(target)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "does not exist" in err, err
    assert not target.parent.exists()

"""An output folder that cannot be created (here: a regular file stands where a folder should be, which refuses even
root) and absurd sizes are one line and exit 2 from every command that writes, never a traceback."""

from __future__ import annotations

import pytest
from clips import encode, pan

from cvkd.cli import main
from cvkd.recipes import recipe_path


@pytest.fixture
def blocked(tmp_path):
    """A path under a regular file: no folder can be made there."""
    (tmp_path / "afile").write_text("not a folder")
    return tmp_path / "afile" / "sub"


def one_line(capsys, argv) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, (code, err[-400:])
    return err


def test_train_into_an_impossible_output_folder(blocked, tmp_path, capsys):
    from cvkd.data.synthetic import generate_synthetic
    generate_synthetic(tmp_path / "data", classes=2, videos_per_class=3, size=(32, 32), frames=12, workers=1,
                       progress=False)
    argv = ["train", str(recipe_path("synthetic/teachers.yaml")), f"data.root={tmp_path / 'data'}",
            f"output_dir={blocked}", "optim.epochs=1", "optim.lr_steps=[]", "data.workers=0", "data.crop_size=32"]
    err = one_line(capsys, argv)
    assert err.endswith(f"{blocked / 'synth_teachers'}: cannot create the output folder (Not a directory)")


def clip(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    return encode(pan((64, 48), 12, (1, 0)), path)


def test_prepare_into_an_impossible_output_folder(blocked, tmp_path, capsys):
    clip(tmp_path / "src" / "wave" / "a.mp4")
    err = one_line(capsys, ["prepare", "folder", str(tmp_path / "src"), "--out", str(blocked)])
    assert err.endswith(f"{blocked}: cannot create the output folder (Not a directory)")


def test_reencode_refuses_an_absurd_size(tmp_path, capsys):
    source = clip(tmp_path / "a.mp4")
    err = one_line(capsys, ["reencode", str(source), "--out", str(tmp_path / "out"), "--size", "100000x100000"])
    assert "from 16x16 to 4096x4096, got 100000x100000" in err

"""Settings fuzzer: every numeric field of the run schema given 0, -1, nan, inf and a huge value through
`cvkd train` in-process: one line and exit code 2 (a refusal naming the key, or, for a valid value, the missing
dataset), never a traceback. The bad settings of issue 15 are each refused naming their key."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from cvkd.cli import main
from cvkd.runs.schema import RunConfig
from cvkd.runs.validate import batch_bytes, validate_run_config


def _numeric_fields(cls: type, prefix: str = "") -> list[tuple[str, type]]:
    """Dotted keys of every int or float field (bool excluded) of `cls` and its nested dataclasses."""
    hints = typing.get_type_hints(cls)
    found = []
    for field in dataclasses.fields(cls):
        tp = hints[field.name]
        if dataclasses.is_dataclass(tp):
            found += _numeric_fields(tp, f"{prefix}{field.name}.")
        elif tp in (int, float):
            found.append((f"{prefix}{field.name}", tp))
    return found


FIELDS = _numeric_fields(RunConfig)
VALUES = ["0", "-1", ".nan", ".inf", "1000000000000"]


def _run(capsys, tmp_path, *overrides: str) -> tuple[int, str]:
    try:
        code = main(["train", *overrides, f"output_dir={tmp_path / 'runs'}", f"data.root={tmp_path / 'none'}"])
    except SystemExit as exit_:  # argparse
        code = int(exit_.code or 0)
    return code, capsys.readouterr().err.strip()


def test_schema_has_the_fields_the_issue_names():
    keys = {key for key, _ in FIELDS}
    assert {"data.segments", "data.workers", "data.crop_size", "data.batch_size", "optim.lr", "optim.epochs"} <= keys


@pytest.mark.parametrize("key", [key for key, _ in FIELDS])
def test_fuzz_numeric_field(tmp_path, capsys, monkeypatch, key):
    monkeypatch.chdir(tmp_path)
    for value in VALUES:
        code, err = _run(capsys, tmp_path, f"{key}={value}")
        assert code == 2, (key, value, err)
        assert len(err.splitlines()) == 1 and "Traceback" not in err, (key, value, err)
        assert key in err or "not a cvkd dataset folder" in err, (key, value, err)


@pytest.mark.parametrize("override, key", [
    ("data.segments=0", "data.segments"), ("data.workers=-3", "data.workers"), ("optim.lr=-1", "optim.lr"),
    ("optim.lr=.nan", "optim.lr"), ("data.crop_size=100000", "data.crop_size"), ("optim.epochs=-1", "optim.epochs"),
    ("optim.epochs=0", "optim.epochs"), ("data.batch_size=0", "data.batch_size"),
    ("optim.lr_steps=[-5]", "optim.lr_steps[0]"), ("optim.lr_steps=[11]", "optim.lr_steps[0]"),
    ("device=cuda:7", "device"), ("device=nonsense", "device"),
])
def test_issue_settings_refused_naming_the_key(tmp_path, capsys, monkeypatch, override, key):
    monkeypatch.chdir(tmp_path)
    code, err = _run(capsys, tmp_path, override)
    assert code == 2 and len(err.splitlines()) == 1 and f"error: {key}" in err, err


def test_binary_config_file_is_one_line(tmp_path, capsys):
    path = tmp_path / "run.yaml"
    path.write_bytes(bytes(range(256)) * 4)
    code, err = _run(capsys, tmp_path, str(path))
    assert code == 2 and len(err.splitlines()) == 1 and "not a text config file" in err, err


def test_memory_estimate_is_the_hand_computed_product():
    config = RunConfig()
    config.model.streams = {"iframe": "resnet18", "mv": "resnet18"}  # 3 + 2 channels
    config.data.batch_size, config.data.crop_size = 2, 10
    assert batch_bytes(config, 3) == 2 * 3 * 5 * 10 * 10 * 4
    validate_run_config(config, memory=2 * 5 * 5 * 100 * 4)  # val batch (5 segments) exactly fits
    with pytest.raises(Exception, match="data.val_segments=5: one batch of inputs needs"):
        validate_run_config(config, memory=2 * 5 * 5 * 100 * 4 - 1)


@pytest.mark.parametrize("segments", ["0", "-1", "100000"])
def test_predict_segments_bounded(tmp_path, capsys, segments):
    code = main(["predict", str(tmp_path / "v.mp4"), "--model", str(tmp_path), "--segments", segments])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--segments must be in 1..1000" in err, err

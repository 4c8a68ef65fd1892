"""`cvkd train --print-config` lists every key of the schema (compared with the dataclasses themselves), with the
resolved value, the default where it differs, and the description the schema's comments give."""

from __future__ import annotations

import dataclasses
import typing

from cvkd.cli import main
from cvkd.runs.schema import RunConfig


def schema_keys(cls: type = RunConfig, prefix: str = "") -> list[str]:
    """Every leaf key of the schema, by walking the dataclasses (independently of the code under test)."""
    keys = []
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[field.name]):
            keys += schema_keys(hints[field.name], f"{prefix}{field.name}.")
        else:
            keys.append(prefix + field.name)
    return keys


def test_every_schema_key_is_printed_once_in_order(capsys):
    assert main(["train", "optim.lr=0.5", "data.flip=false", "--print-config"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":", 1)[0] for line in lines] == schema_keys()
    by_key = {line.split(":", 1)[0]: line for line in lines}
    assert by_key["optim.lr"].startswith("optim.lr: 0.5  (default 0.001)  # Adam's base learning rate")
    assert by_key["data.flip"].startswith("data.flip: false  (default true)  # Horizontal mirroring")
    assert by_key["data.segments"] == "data.segments: 3  # TSN segments per training sample"  # a default: no note
    described = [line for line in lines if "  # " in line]
    assert len(described) >= 0.8 * len(lines)  # most keys say what they mean


def test_distill_prints_the_config_without_needing_teachers(capsys):
    assert main(["distill", "distill.strategy=kd", "--print-config"]) == 0
    assert 'distill.strategy: "kd"  (default "none")' in capsys.readouterr().out


def test_built_in_recipes_are_addressed_by_name_from_any_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no configs/ folder here: the recipes come from the installed package
    for name, run in (("ucf101/mv", "ucf101_mv"), ("hmdb51/student_mkd.yaml", "hmdb51_student_mkd"),
                      ("synthetic/teachers", "synth_teachers")):
        assert main(["train", name, "--print-config"]) == 0
        assert capsys.readouterr().out.startswith(f'name: "{run}"')
    assert main(["train", "ucf101/nonexistent"]) == 2
    assert "ucf101/nonexistent: config file not found" in capsys.readouterr().err

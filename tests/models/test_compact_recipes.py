"""The synthetic compact students' recipes profile as the docs state: >= 4x fewer parameters, >= 2x fewer GMACs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cvkd.cli import main

RECIPES = Path(__file__).resolve().parents[2] / "src" / "cvkd" / "recipes" / "synthetic"


@pytest.mark.parametrize("recipe", ["compact_nokd", "compact_kd", "compact_mkd", "compact_streams"])
def test_every_stream_compact_student_is_4x_smaller_and_2x_cheaper_than_the_teacher(recipe, capsys):
    code = main(["profile", str(RECIPES / f"{recipe}.yaml"), "--teacher", str(RECIPES / "teachers.yaml"),
                 "--classes", "16", "--no-latency", "--json"])
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    teacher, student = payload["models"]
    assert set(student["backbones"].values()) == {"cnn_tiny"}  # every stream compressed, none copied
    ratios = payload["ratios_teacher_over_student"]
    assert ratios["params"] >= 4 and ratios["macs_per_gop_frame"] >= 2

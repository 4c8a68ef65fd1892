"""Configs cannot make cvkd read forever, expand forever or recurse forever: /dev/zero, an oversized file, an alias
bomb and deep nesting are each refused in one short line, fast; `test --segments` is bounded like `predict`'s."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hardening.hostile_files import alias_bomb

from cvkd.cli import main
from cvkd.config import MAX_CONFIG_BYTES, MAX_EXPANDED_NODES, expanded_size, load_config, parse_yaml
from cvkd.errors import ConfigError
from cvkd.runs.schema import RunConfig


def one_line_error(capsys, argv: list[str]) -> str:
    started = time.perf_counter()
    code = main(argv)
    seconds = time.perf_counter() - started
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert len(err) < 400 and seconds < 10, (len(err), seconds)
    return err


def test_expanded_size_counts_shared_nodes_as_often_as_they_are_referenced():
    import yaml
    node = yaml.compose("a: &x [1, 2]\nb: [*x, *x, *x]\n")
    # mapping 1 + key a 1 + x (1 + 2) + key b 1 + list (1 + 3 x 3) = 1 + 1 + 3 + 1 + 10
    assert expanded_size(node) == 16
    assert parse_yaml("a: &x {b: 1}\nc: *x\n") == {"a": {"b": 1}, "c": {"b": 1}}  # ordinary aliases still work


def test_an_alias_bomb_is_refused_fast(tmp_path, capsys):
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb())
    assert len(path.read_bytes()) < 1000
    err = one_line_error(capsys, ["train", str(path)])
    assert "bomb.yaml" in err and f"more than {MAX_EXPANDED_NODES:,} values through its aliases" in err


def test_deep_nesting_is_refused_in_one_line(tmp_path, capsys):
    path = tmp_path / "deep.yaml"
    path.write_text("a: " + "[" * 100_000)
    err = one_line_error(capsys, ["train", str(path)])
    assert "deep.yaml" in err and "nested too deeply" in err


def test_special_and_oversized_files_are_refused_before_reading_them_whole(tmp_path, capsys):
    err = one_line_error(capsys, ["train", "/dev/zero"])
    assert "/dev/zero: not a regular file" in err
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * MAX_CONFIG_BYTES + "\n")
    with pytest.raises(ConfigError, match=f"larger than {MAX_CONFIG_BYTES:,} bytes"):
        load_config(RunConfig, big)


def test_a_long_yaml_problem_is_cut_to_a_short_line(tmp_path):
    path = tmp_path / "long.yaml"
    path.write_text("a: '" + "y" * 5000)  # an unterminated quote: the scanner quotes what it read
    with pytest.raises(ConfigError) as caught:
        load_config(RunConfig, path)
    assert len(str(caught.value)) < 400 and len(str(caught.value).splitlines()) == 1


@pytest.mark.parametrize("segments", ["0", "100000000"])
def test_test_segments_are_bounded_like_predicts(tmp_path, capsys, segments):
    err = one_line_error(capsys, ["test", str(tmp_path / "no_run"), "--segments", segments])
    assert "--segments must be in 1..1000" in err

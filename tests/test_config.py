"""Tests of the YAML -> dataclass config mechanism."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import pytest

from cvkd.config import apply_overrides, config_from_dict, config_to_dict, load_config, save_config
from cvkd.errors import ConfigError


@dataclass
class Optim:
    lr: float = 0.01
    steps: list[int] = field(default_factory=lambda: [10, 20])
    kind: Literal["adam", "sgd"] = "adam"


@dataclass
class Model:
    arch: str = "resnet18"
    dropout: Optional[float] = None
    input_size: tuple[int, int] = (224, 224)


@dataclass
class Run:
    name: str = "run"
    epochs: int = 5
    amp: bool = False
    out: Optional[Path] = None
    optim: Optim = field(default_factory=Optim)
    model: Model = field(default_factory=lambda: Model(arch="resnet152"))
    stream_weights: dict[str, float] = field(default_factory=lambda: {"iframe": 2.0, "mv": 1.0})


@dataclass
class Required:
    arch: str
    classes: int = 10


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_nested_yaml_builds_nested_dataclasses(tmp_path):
    cfg_file = write(
        tmp_path / "run.yaml",
        "name: demo\nepochs: 7\noptim:\n  lr: 1e-3\n  steps: [3, 6]\n  kind: sgd\n"
        "model:\n  dropout: 0.5\n  input_size: [112, 96]\nstream_weights: {iframe: 1, residual: 0.5}\n",
    )
    cfg = load_config(Run, cfg_file)
    assert cfg == Run(
        name="demo",
        epochs=7,
        optim=Optim(lr=0.001, steps=[3, 6], kind="sgd"),
        # arch not given: the field's own default instance (resnet152) fills it, not Model()'s default
        model=Model(arch="resnet152", dropout=0.5, input_size=(112, 96)),
        stream_weights={"iframe": 1.0, "residual": 0.5},
    )
    assert isinstance(cfg.optim.lr, float) and isinstance(cfg.stream_weights["iframe"], float)
    assert isinstance(cfg.model.input_size, tuple)


def test_no_file_gives_defaults_and_overrides_apply():
    assert load_config(Run, None) == Run()
    cfg = load_config(
        Run,
        None,
        ["epochs=12", "optim.lr=1e-3", "optim.steps=[10, 20, 30]", "amp=true", "model.arch=mobilenet_v3_small",
         "model.dropout=0.2", "out=runs/a", "stream_weights.mv=0.25"],
    )
    assert cfg.epochs == 12
    assert cfg.optim.lr == pytest.approx(0.001)
    assert cfg.optim.steps == [10, 20, 30]
    assert cfg.amp is True
    assert cfg.model == Model(arch="mobilenet_v3_small", dropout=0.2)
    assert cfg.out == Path("runs/a")
    # a dict-typed field is a value: setting it (or one of its keys) replaces the default dict whole
    assert cfg.stream_weights == {"mv": 0.25}


def test_override_null_and_int_to_float(tmp_path):
    cfg_file = write(tmp_path / "run.yaml", "model:\n  dropout: 0.3\n")
    cfg = load_config(Run, cfg_file, ["model.dropout=null", "optim.lr=1"])
    assert cfg.model.dropout is None
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)


def test_apply_overrides_returns_new_dict_and_creates_levels():
    data = {"a": {"b": 1}, "c": 2}
    result = apply_overrides(data, ["a.b=3", "x.y.z=[1, 2]", "c='text'"])
    assert result == {"a": {"b": 3}, "x": {"y": {"z": [1, 2]}}, "c": "text"}
    assert data == {"a": {"b": 1}, "c": 2}


@pytest.mark.parametrize("bad", ["epochs", "=3", "optim..lr=1"])
def test_malformed_override_is_rejected(bad):
    with pytest.raises(ConfigError, match="key.sub=value"):
        apply_overrides({}, [bad])


def test_override_through_a_scalar_is_rejected():
    with pytest.raises(ConfigError, match="'epochs'.*not a mapping"):
        apply_overrides({"epochs": 3}, ["epochs.x=1"])


def test_unknown_key_names_dotted_key_file_and_suggestion(tmp_path):
    cfg_file = write(tmp_path / "run.yaml", "optim:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError) as info:
        load_config(Run, cfg_file)
    message = str(info.value)
    assert str(cfg_file) in message
    assert "optim.lrr" in message
    assert "did you mean 'optim.lr'" in message
    assert "\n" not in message


def test_unknown_key_from_override_names_the_override():
    with pytest.raises(ConfigError) as info:
        load_config(Run, None, ["model.arhc=resnet50"])
    message = str(info.value)
    assert "model.arhc=resnet50" in message and "did you mean 'model.arch'" in message


def test_type_error_caused_by_override_names_the_override(tmp_path):
    with pytest.raises(ConfigError, match=r"^override 'epochs.x=1': epochs: expected int"):
        load_config(Run, write(tmp_path / "run.yaml", "name: a\n"), ["epochs.x=1"])


def test_unknown_top_level_key_without_close_match_lists_known_keys(tmp_path):
    cfg_file = write(tmp_path / "run.yaml", "zzzz: 1\n")
    with pytest.raises(ConfigError, match="zzzz.*known keys: name, epochs"):
        load_config(Run, cfg_file)


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ("epochs: ten\n", "epochs", "expected int, got 'ten'"),
        ("epochs: 2.5\n", "epochs", "expected int, got 2.5"),
        ("epochs: true\n", "epochs", "expected int, got True"),
        ("optim:\n  steps: [1, x]\n", "optim.steps[1]", "expected int, got 'x'"),
        ("optim: 3\n", "optim", "expected Optim, got 3"),
        ("model:\n  input_size: [1, 2, 3]\n", "model.input_size", "expected 2 items"),
        ("stream_weights: {mv: fast}\n", "stream_weights.mv", "expected float, got 'fast'"),
        ("amp: 1\n", "amp", "expected bool, got 1"),
    ],
)
def test_wrong_type_names_key_expected_and_got(tmp_path, text, key, expected):
    cfg_file = write(tmp_path / "run.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_config(Run, cfg_file)
    message = str(info.value)
    assert message.startswith(f"{cfg_file}: {key}: ")
    assert expected in message


def test_literal_choice_is_validated(tmp_path):
    with pytest.raises(ConfigError, match=r"optim.kind: expected one of 'adam', 'sgd', got 'adma' \(did you mean 'adam'"):
        load_config(Run, None, ["optim.kind=adma"])


def test_missing_required_key(tmp_path):
    with pytest.raises(ConfigError, match="arch: missing required key"):
        load_config(Required, write(tmp_path / "r.yaml", "classes: 3\n"))
    assert load_config(Required, None, ["arch=x"]) == Required(arch="x")


def test_base_file_is_deep_merged_underneath(tmp_path):
    (tmp_path / "common").mkdir()
    write(tmp_path / "common" / "root.yaml", "epochs: 50\noptim:\n  kind: sgd\n")
    write(tmp_path / "common" / "base.yaml", "base: root.yaml\nname: base\noptim:\n  lr: 0.1\n  steps: [1, 2, 3]\n")
    child = write(tmp_path / "child.yaml", "base: common/base.yaml\nname: child\noptim:\n  steps: [5]\n")
    cfg = load_config(Run, child, ["optim.lr=0.5"])
    assert cfg.name == "child"
    assert cfg.epochs == 50
    # lists are replaced, mappings merged key by key, overrides win over every file
    assert cfg.optim == Optim(lr=0.5, steps=[5], kind="sgd")


def test_circular_base_is_rejected(tmp_path):
    write(tmp_path / "a.yaml", "base: b.yaml\n")
    write(tmp_path / "b.yaml", "base: a.yaml\n")
    with pytest.raises(ConfigError, match="circular"):
        load_config(Run, tmp_path / "a.yaml")


def test_save_and_load_round_trip(tmp_path):
    cfg = Run(
        name="x: y",
        epochs=3,
        amp=True,
        out=Path("runs/1"),
        optim=Optim(lr=1e-7, steps=[], kind="sgd"),
        model=Model(arch="resnet18", dropout=0.25, input_size=(7, 9)),
        stream_weights={"residual": 0.125},
    )
    path = tmp_path / "out" / "config.yaml"
    save_config(cfg, path)
    assert load_config(Run, path) == cfg
    assert config_to_dict(cfg)["model"]["input_size"] == [7, 9]
    assert not list(path.parent.glob(".*tmp*"))


def test_bad_yaml_names_file_and_line(tmp_path):
    cfg_file = write(tmp_path / "bad.yaml", "name: ok\noptim:\n  lr: [1, 2\n  kind: sgd\n")
    with pytest.raises(ConfigError) as info:
        load_config(Run, cfg_file)
    message = str(info.value)
    assert message.startswith(f"{cfg_file}:")
    line = int(message[len(str(cfg_file)) + 1 :].split(":")[0])
    assert 3 <= line <= 4
    assert "\n" not in message


def test_missing_file_and_non_mapping(tmp_path):
    with pytest.raises(ConfigError, match="missing.yaml: config file not found"):
        load_config(Run, tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="list.yaml: expected a mapping"):
        load_config(Run, write(tmp_path / "list.yaml", "- 1\n- 2\n"))


def test_yaml_tags_are_not_executed(tmp_path):
    cfg_file = write(tmp_path / "evil.yaml", "name: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ConfigError, match="evil.yaml"):
        load_config(Run, cfg_file)



@dataclass
class _StreamsInner:
    streams: dict[str, str] = field(default_factory=lambda: {"iframe": "resnet18"})
    depth: int = 3


@dataclass
class _StreamsOuter:
    model: _StreamsInner = field(default_factory=_StreamsInner)


def test_dict_field_inside_a_nested_dataclass_is_replaced_whole():
    """Regression: giving `model.streams` in a file must not keep the default dict's other keys."""
    built = config_from_dict(_StreamsOuter, {"model": {"streams": {"mv": "resnet18"}}})
    assert built.model.streams == {"mv": "resnet18"}
    assert built.model.depth == 3


def test_base_file_dict_fields_are_replaced_not_merged(tmp_path):
    """A derived recipe can drop entries of a dict its base sets (e.g. a strategy's parameters)."""
    (tmp_path / "base.yaml").write_text("model:\n  streams: {iframe: a, mv: b}\n  depth: 5\n")
    (tmp_path / "derived.yaml").write_text("base: base.yaml\nmodel:\n  streams: {mv: c}\n")
    built = load_config(_StreamsOuter, tmp_path / "derived.yaml")
    assert built.model.streams == {"mv": "c"}
    assert built.model.depth == 5

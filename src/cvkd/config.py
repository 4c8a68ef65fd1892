"""YAML configs mapped onto (nested) dataclasses, with `key.sub=value` overrides and strict checking.

A config file is plain YAML data (no tags, nothing executable). An optional top-level `base: other.yaml`
(relative to the file) is loaded first and the file merged over it section by section (dataclass-typed sections merge
key by key; every other value, dicts included, is replaced whole). Overrides are applied next, then the
result is checked against the dataclass: unknown keys, wrong types and invalid `Literal` choices raise
`ConfigError` naming the dotted key and where it came from.

Keys left out take the dataclass defaults. A mapping given for a dataclass-typed field is merged over that field's
default instance; a `dict`-typed field is a value: giving it (or one key of it) replaces the default dict whole.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import enum
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence, TypeVar, Union

import yaml

from cvkd.errors import ConfigError
from cvkd.fileio import atomic_write_text

T = TypeVar("T")

BASE_KEY = "base"
_NO_FILE = "<defaults>"


MAX_CONFIG_BYTES = 1 << 20  # a config file larger than 1 MiB is not a config
MAX_EXPANDED_NODES = 100_000  # YAML nodes a config may expand to once aliases are followed (alias bombs)
MAX_ERROR_CHARS = 200  # a YAML problem quoted in an error line is cut to this


class _DataLoader(yaml.SafeLoader):
    """SafeLoader that also reads `1e-3` as a float (plain YAML 1.1 needs a dot: `1.0e-3`) and refuses a document
    that expands to more than MAX_EXPANDED_NODES nodes once its aliases are followed."""

    def compose_document(self):  # type: ignore[no-untyped-def]
        """Compose, then count the expanded nodes (linear time: shared nodes are counted once and multiplied)."""
        node = super().compose_document()
        if expanded_size(node) > MAX_EXPANDED_NODES:
            raise yaml.composer.ComposerError(None, None, f"expands to more than {MAX_EXPANDED_NODES:,} values "
                                              "through its aliases; refused", node.start_mark)
        return node


def expanded_size(node: yaml.Node, memo: dict[int, int] | None = None) -> int:
    """How many nodes `node` stands for once every alias is expanded (each shared node's size computed once)."""
    memo = {} if memo is None else memo
    stack: list[tuple[yaml.Node, bool]] = [(node, False)]
    while stack:  # iterative post-order: deep documents cannot exhaust Python's stack here
        current, ready = stack.pop()
        if id(current) in memo:
            continue
        children = _children(current)
        if ready or not children:
            memo[id(current)] = min(1 + sum(memo[id(child)] for child in children), 1 << 62)
            continue
        stack.append((current, True))
        stack.extend((child, False) for child in children if id(child) not in memo)
    return memo[id(node)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    """The child nodes of a sequence or mapping node (keys and values), none for a scalar."""
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


_DataLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def parse_yaml(text: str) -> Any:
    """Parse YAML data (safe: no tags, no objects), reading `1e-3` as a float; deep nesting is a YAMLError."""
    try:
        return yaml.load(text, Loader=_DataLoader)  # noqa: S506 - _DataLoader is a SafeLoader
    except RecursionError:
        raise yaml.YAMLError("nested too deeply") from None


# ---------------------------------------------------------------- reading files and overrides


def _read_mapping(path: Path) -> dict[str, Any]:
    """Read one YAML file that must hold a mapping (an empty file is an empty mapping)."""
    try:
        if path.exists() and not path.is_file():
            raise ConfigError(f"{path}: not a regular file; a config must be a YAML file")
        with open(path, "rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES:,} bytes; not a config file")
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a text config file (byte {exc.start} is not UTF-8)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror or exc}") from None
    try:
        data = parse_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError(_yaml_error_line(path, exc)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level, got {type(data).__name__}")
    return data


def _yaml_error_line(path: Path, exc: yaml.YAMLError) -> str:
    """Render a YAML syntax error as one line: `file:line:column: invalid YAML: problem`."""
    mark = getattr(exc, "problem_mark", None)
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
    problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
    if len(problem) > MAX_ERROR_CHARS:
        problem = problem[:MAX_ERROR_CHARS - 3] + "..."
    return f"{where}: invalid YAML: {problem}"


def _load_with_bases(path: Path, cls: type, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read `path`, recursively merged over the file its `base` key names, following `cls`'s schema."""
    resolved = path.resolve()
    if resolved in seen:
        raise ConfigError(f"{path}: circular 'base' chain: {' -> '.join(str(p) for p in (*seen, resolved))}")
    data = _read_mapping(path)
    base = data.pop(BASE_KEY, None)
    if base is None:
        return data
    if not isinstance(base, str) or not base:
        raise ConfigError(f"{path}: '{BASE_KEY}' must be a file name, got {base!r}")
    parent = _load_with_bases(path.parent / base, cls, (*seen, resolved))
    return merge_by_schema(cls, parent, data)


def merge_by_schema(cls: type, base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """Merge `top` over `base`: sections that are dataclasses of `cls` merge key by key; any other value (a dict-typed
    field included) is replaced whole, so a derived file can drop entries of its base's dicts."""
    hints = typing.get_type_hints(cls) if dataclasses.is_dataclass(cls) else {}
    merged = copy.deepcopy(dict(base))
    for key, value in top.items():
        field_type = hints.get(key)
        nested = isinstance(field_type, type) and dataclasses.is_dataclass(field_type)
        if nested and isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_by_schema(field_type, merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _parse_override(text: str) -> tuple[list[str], Any]:
    """Split `a.b.c=value` into its key path and its YAML-parsed value."""
    key, sep, raw = text.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(part.strip() for part in parts):
        raise ConfigError(f"override {text!r}: expected key.sub=value")
    try:
        value = parse_yaml(raw)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or "cannot parse the value"
        raise ConfigError(f"override {text!r}: invalid YAML value: {problem}") from None
    return [part.strip() for part in parts], value


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of `data` with each `key.sub=value` override set (value parsed as YAML)."""
    result = copy.deepcopy(dict(data))
    for text in overrides:
        parts, value = _parse_override(text)
        node = result
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                prefix = ".".join(parts[: depth + 1])
                raise ConfigError(f"override {text!r}: {prefix!r} holds {child!r}, not a mapping of keys")
            node = child
        node[parts[-1]] = value
    return result


# ---------------------------------------------------------------- building dataclasses


@dataclass(frozen=True)
class _Origin:
    """Where the values come from, to name it in error messages."""

    file: str
    overrides: tuple[tuple[str, str], ...] = ()  # (dotted key, override text)

    def of(self, dotted: str) -> str:
        """The source of the value at `dotted`: the override that set it (or a key under it), else the file."""
        for key, text in reversed(self.overrides):
            if _is_within(dotted, key) or _is_within(key, dotted):
                return f"override {text!r}"
        return self.file


def _is_within(dotted: str, ancestor: str) -> bool:
    """Whether dotted key `dotted` is `ancestor` or lies under it."""
    return dotted == ancestor or dotted.startswith((ancestor + ".", ancestor + "["))


def _type_name(tp: Any) -> str:
    """A short readable name of a type annotation."""
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _join(prefix: str, key: Any) -> str:
    """Dotted key of `key` under `prefix`."""
    return f"{prefix}.{key}" if prefix else str(key)


class _Builder:
    """Turns checked YAML data into instances of the annotated types."""

    def __init__(self, origin: _Origin) -> None:
        self.origin = origin

    def fail(self, dotted: str, problem: str) -> ConfigError:
        """An error naming the source and the dotted key."""
        return ConfigError(f"{self.origin.of(dotted)}: {dotted or '<top level>'}: {problem}")

    def wrong_type(self, dotted: str, tp: Any, value: Any) -> ConfigError:
        """An error for a value of the wrong type."""
        return self.fail(dotted, f"expected {_type_name(tp)}, got {value!r} ({type(value).__name__})")

    def build(self, tp: Any, value: Any, dotted: str) -> Any:
        """Convert `value` to the annotated type `tp`, checking it on the way."""
        origin = typing.get_origin(tp)
        if tp is Any:
            return value
        if origin is Union or origin is types.UnionType:
            return self._union(tp, value, dotted)
        if origin is Literal:
            return self._literal(tp, value, dotted)
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            return self.dataclass(tp, value, dotted)
        if origin in (list, tuple, dict) or tp in (list, tuple, dict):
            return self._container(tp, value, dotted)
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            return self._enum(tp, value, dotted)
        return self._scalar(tp, value, dotted)

    def dataclass(self, cls: type, value: Any, dotted: str) -> Any:
        """Build dataclass `cls` from a mapping; missing keys take the field defaults."""
        if isinstance(value, cls):
            return value
        if not isinstance(value, Mapping):
            raise self.wrong_type(dotted, cls, value)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        for key in value:
            if key not in fields:
                raise self._unknown_key(dotted, key, list(fields))
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for name, field in fields.items():
            if name in value:
                item = _merge_over_default(field, value[name])
                kwargs[name] = self.build(hints[name], item, _join(dotted, name))
            elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise self.fail(_join(dotted, name), "missing required key")
        return cls(**kwargs)

    def _unknown_key(self, dotted: str, key: Any, known: list[str]) -> ConfigError:
        """An error for a key the dataclass does not have, with the closest known key."""
        close = difflib.get_close_matches(str(key), known, n=1)
        hint = f"did you mean {_join(dotted, close[0])!r}?" if close else f"known keys: {', '.join(known)}"
        return self.fail(_join(dotted, key), f"unknown key ({hint})")

    def _union(self, tp: Any, value: Any, dotted: str) -> Any:
        """Optional[X] / X | Y: None if allowed, else the first member that accepts the value."""
        members = typing.get_args(tp)
        if value is None and type(None) in members:
            return None
        candidates = [m for m in members if m is not type(None)]
        if len(candidates) == 1:
            return self.build(candidates[0], value, dotted)
        for member in candidates:
            try:
                return self.build(member, value, dotted)
            except ConfigError:
                continue
        raise self.wrong_type(dotted, tp, value)

    def _literal(self, tp: Any, value: Any, dotted: str) -> Any:
        """A value that must be one of the Literal's choices."""
        choices = typing.get_args(tp)
        if any(value == c and type(value) is type(c) for c in choices):
            return value
        close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        listed = ", ".join(repr(c) for c in choices)
        raise self.fail(dotted, f"expected one of {listed}, got {value!r}{hint}")

    def _container(self, tp: Any, value: Any, dotted: str) -> Any:
        """list[X], tuple[X, ...], tuple[X, Y], dict[K, V] (bare list/tuple/dict accept any items)."""
        origin = typing.get_origin(tp) or tp
        args = typing.get_args(tp)
        if origin is dict:
            if not isinstance(value, Mapping):
                raise self.wrong_type(dotted, tp, value)
            key_tp, val_tp = args or (Any, Any)
            return {
                self.build(key_tp, k, _join(dotted, k)): self.build(val_tp, v, _join(dotted, k))
                for k, v in value.items()
            }
        if not isinstance(value, (list, tuple)):
            raise self.wrong_type(dotted, tp, value)
        if origin is list:
            item_tp = args[0] if args else Any
            return [self.build(item_tp, v, f"{dotted}[{i}]") for i, v in enumerate(value)]
        if not args or (len(args) == 2 and args[1] is Ellipsis):
            item_tp = args[0] if args else Any
            return tuple(self.build(item_tp, v, f"{dotted}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise self.fail(dotted, f"expected {len(args)} items ({_type_name(tp)}), got {len(value)}: {value!r}")
        return tuple(self.build(a, v, f"{dotted}[{i}]") for i, (a, v) in enumerate(zip(args, value)))

    def _enum(self, tp: type[enum.Enum], value: Any, dotted: str) -> Any:
        """An Enum member given by its value."""
        try:
            return tp(value)
        except ValueError:
            listed = ", ".join(repr(m.value) for m in tp)
            raise self.fail(dotted, f"expected one of {listed}, got {value!r}") from None

    def _scalar(self, tp: Any, value: Any, dotted: str) -> Any:
        """bool, int, float (ints accepted), str, Path (from a string), or any other plain class."""
        if tp is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if tp is int and isinstance(value, bool):
            raise self.wrong_type(dotted, tp, value)
        if isinstance(tp, type) and issubclass(tp, Path) and isinstance(value, str):
            return tp(value)
        if isinstance(tp, type) and isinstance(value, tp):
            return value
        raise self.wrong_type(dotted, tp, value)


def _merge_over_default(field: dataclasses.Field, value: Any) -> Any:
    """A partial mapping for a dataclass-valued field is merged over the field's default instance."""
    if not isinstance(value, Mapping):
        return value
    if field.default_factory is not dataclasses.MISSING:
        default = field.default_factory()
    elif field.default is not dataclasses.MISSING:
        default = field.default
    else:
        return value
    if not (dataclasses.is_dataclass(default) and not isinstance(default, type)):
        return value
    return _merge_over_instance(default, value)


def _merge_over_instance(default: Any, value: Mapping[str, Any]) -> dict[str, Any]:
    """Merge `value` over a dataclass instance: nested dataclasses merge key by key, any other field is replaced whole."""
    merged = config_to_dict(default)
    for key, item in value.items():
        current = getattr(default, key, None)
        is_nested = dataclasses.is_dataclass(current) and not isinstance(current, type)
        merged[key] = _merge_over_instance(current, item) if is_nested and isinstance(item, Mapping) else item
    return merged


# ---------------------------------------------------------------- public entry points


def load_config(cls: type[T], path: str | Path | None, overrides: Sequence[str] = ()) -> T:
    """Load dataclass `cls` from a YAML file (or from defaults when `path` is None), then apply overrides."""
    data = _load_with_bases(Path(path), cls) if path is not None else {}
    data = apply_overrides(data, overrides)
    override_keys = tuple((".".join(_parse_override(text)[0]), text) for text in overrides)
    builder = _Builder(_Origin(str(path) if path is not None else _NO_FILE, override_keys))
    return builder.dataclass(cls, data, "")


def config_from_dict(cls: type[T], data: Mapping[str, Any], source: str = _NO_FILE) -> T:
    """Build dataclass `cls` from plain data, with the same checks as `load_config`."""
    return _Builder(_Origin(source)).dataclass(cls, data, "")


def config_to_dict(obj: Any) -> dict[str, Any]:
    """Plain YAML-ready data of a dataclass instance (tuples become lists, paths strings, enums values)."""
    if not (dataclasses.is_dataclass(obj) and not isinstance(obj, type)):
        raise TypeError(f"config_to_dict expects a dataclass instance, got {type(obj).__name__}")
    return _to_plain(obj)


def _to_plain(value: Any) -> Any:
    """Recursively convert a config value into YAML-safe data."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init}
    if isinstance(value, Mapping):
        return {_to_plain(k): _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    if isinstance(value, enum.Enum):
        return _to_plain(value.value)
    if isinstance(value, Path):
        return str(value)
    return value


def dump_config(obj: Any) -> str:
    """The YAML text of a dataclass config, keys in field order."""
    return yaml.safe_dump(config_to_dict(obj), sort_keys=False, default_flow_style=False, allow_unicode=True)


def save_config(obj: Any, path: str | Path) -> None:
    """Write the resolved config as YAML, atomically; `load_config(type(obj), path)` gives it back."""
    atomic_write_text(path, dump_config(obj))

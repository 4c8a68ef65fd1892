"""Every key of the run schema with its value, its default and a one-line description taken from the comments that
document it in `cvkd/runs/schema.py` (the one place they are written), for `cvkd train --print-config`."""

from __future__ import annotations

import dataclasses
import inspect
import io
import json
import tokenize
import typing
from dataclasses import dataclass
from typing import Any

from cvkd.config import config_to_dict
from cvkd.runs import schema


@dataclass(frozen=True)
class KeyLine:
    """One key of the resolved config: its dotted name, its value, its default and what it means."""

    key: str
    value: Any
    default: Any
    description: str

    def render(self) -> str:
        """`key: value  (default X)  # description`."""
        value = json.dumps(self.value)
        default = "" if self.value == self.default else f"  (default {json.dumps(self.default)})"
        return f"{self.key}: {value}{default}" + (f"  # {self.description}" if self.description else "")


def field_comments(cls: type) -> dict[str, str]:
    """The comment that documents each field of a schema dataclass: the one on its line, else the block just above
    it (joined into one line)."""
    source = inspect.getsource(cls)
    comments: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string.lstrip("#").strip()
    lines = source.splitlines()
    found: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        name = line.strip().split(":", 1)[0]
        if not line.startswith("    ") or line.startswith("     ") or not name.isidentifier():
            continue
        if number in comments:
            found[name] = comments[number]
            continue
        above, row = [], number - 1
        while row in comments and lines[row - 1].strip().startswith("#"):
            above.insert(0, comments[row])
            row -= 1
        if above:
            found[name] = " ".join(above)
    return found


def describe_config(config: schema.RunConfig) -> list[KeyLine]:
    """One KeyLine per leaf key of `config`, in schema order (sections' keys under their section)."""
    return _describe(config, type(config)(), "")


def _describe(instance: Any, default: Any, prefix: str) -> list[KeyLine]:
    """KeyLines of one dataclass instance against a default instance of the same class."""
    lines: list[KeyLine] = []
    comments = field_comments(type(instance))
    hints = typing.get_type_hints(type(instance))
    for field in dataclasses.fields(instance):
        value, base = getattr(instance, field.name), getattr(default, field.name)
        key = f"{prefix}{field.name}"
        if dataclasses.is_dataclass(hints.get(field.name)) and dataclasses.is_dataclass(value):
            lines += _describe(value, base, key + ".")
            continue
        lines.append(KeyLine(key, _plain(value), _plain(base), comments.get(field.name, "")))
    return lines


def _plain(value: Any) -> Any:
    """A value as YAML/JSON data (dataclasses and tuples included)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return config_to_dict(value)
    if isinstance(value, tuple):
        return list(value)
    return value

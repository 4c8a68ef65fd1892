"""Shares of a video collection for several machines (`--shard K/N`): a file's share depends only on its path.

A file belongs to share `int.from_bytes(sha256(relative path, UTF-8)[:8], "big") % N + 1`, where the relative path
is taken from the source root with `/` separators. The shares are disjoint and together hold every file once; a
file keeps its share when the collection is listed in another order, moved to another root or grows.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Callable, Iterable, TypeVar

from cvkd.errors import ConfigError

T = TypeVar("T")
_SHARD = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


@dataclass(frozen=True)
class Shard:
    """The k-th (1-based) of n shares."""

    k: int
    n: int

    def __post_init__(self) -> None:
        if not 1 <= self.k <= self.n:
            raise ConfigError(f"--shard: K/N needs 1 <= K <= N, got {self.k}/{self.n}")

    def __str__(self) -> str:
        return f"{self.k}/{self.n}"

    def holds(self, relative: str) -> bool:
        """Whether the file at `relative` (path from the source root) is in this share."""
        return share_of(relative, self.n) == self.k

    def select(self, items: Iterable[T], relative_of: Callable[[T], str]) -> list[T]:
        """The items whose `relative_of(item)` path is in this share, in their given order."""
        return [item for item in items if self.holds(relative_of(item))]


def share_of(relative: str, n: int) -> int:
    """The 1-based share, of n, that the file at `relative` (a `/`-separated path from the source root) belongs to."""
    digest = hashlib.sha256(relative.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % n + 1


def parse_shard(text: str | None) -> Shard | None:
    """`"K/N"` as a Shard (None stays None); ConfigError naming --shard for anything else."""
    if text is None:
        return None
    match = _SHARD.fullmatch(text)
    if not match:
        raise ConfigError(f"--shard: expected K/N (two whole numbers, e.g. 2/8), got {text!r}")
    return Shard(int(match[1]), int(match[2]))

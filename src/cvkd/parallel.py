"""cvkd's one process pool: run one job per item over spawned worker processes, with a progress bar."""

from __future__ import annotations

import multiprocessing
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

from tqdm import tqdm

from cvkd.errors import CvkdError


@dataclass(frozen=True)
class JobOutcome:
    """The result of one job: its item, its return value, or the one-line error it raised."""

    item: Any
    value: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the job finished without a cvkd error."""
        return self.error is None


class _Guarded:
    """Picklable wrapper that turns a CvkdError of `function(item)` into a JobOutcome."""

    def __init__(self, function: Callable[[Any], Any]) -> None:
        self.function = function

    def __call__(self, item: Any) -> JobOutcome:
        try:
            return JobOutcome(item, value=self.function(item))
        except CvkdError as error:
            return JobOutcome(item, error=str(error))


def default_workers() -> int:
    """Worker processes to use by default: the CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


START_METHOD = "spawn"
"""The one start method of cvkd's worker pools: a forked child may inherit FFmpeg's or torch's locks mid-use."""


def pool_map(
    function: Callable[[Any], Any],
    items: Sequence[Any] | Iterable[Any],
    workers: int | None = None,
    description: str = "",
    unit: str = "file",
    progress: bool | None = True,
) -> Iterator[Any]:
    """Yield `function(item)` for every item in item order, over `workers` spawned processes (1 runs inline).

    `function` must be picklable (a module-level function); `progress=None` shows the bar only on a terminal.
    """
    items = list(items)
    workers = default_workers() if workers is None else max(1, workers)
    disable = None if progress is None else (not progress or not items)
    with tqdm(total=len(items), desc=description, unit=unit, disable=disable, leave=False) as bar:
        if workers == 1 or len(items) <= 1:
            for item in items:
                yield function(item)
                bar.update()
            return
        with multiprocessing.get_context(START_METHOD).Pool(min(workers, len(items))) as pool:
            for value in pool.imap(function, items):
                yield value
                bar.update()


def run_jobs(
    function: Callable[[Any], Any],
    items: Sequence[Any] | Iterable[Any],
    workers: int | None = None,
    description: str = "",
    progress: bool = True,
) -> list[JobOutcome]:
    """Apply `function` to every item (in `workers` processes; 1 runs inline) and return outcomes in item order;
    a CvkdError of one item becomes its outcome's `error` instead of stopping the others."""
    return list(pool_map(_Guarded(function), items, workers, description, progress=progress))

"""Run one job per item over worker processes, with a progress bar, collecting cvkd errors instead of stopping."""

from __future__ import annotations

import multiprocessing
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

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


def run_jobs(
    function: Callable[[Any], Any],
    items: Sequence[Any] | Iterable[Any],
    workers: int | None = None,
    description: str = "",
    progress: bool = True,
) -> list[JobOutcome]:
    """Apply `function` to every item (in `workers` processes; 1 runs inline) and return outcomes in item order."""
    items = list(items)
    workers = default_workers() if workers is None else max(1, workers)
    guarded = _Guarded(function)
    bar = tqdm(total=len(items), desc=description, unit="file", disable=not progress or not items, leave=False)
    outcomes: list[JobOutcome] = []
    try:
        if workers == 1 or len(items) <= 1:
            for item in items:
                outcomes.append(guarded(item))
                bar.update()
        else:
            context = multiprocessing.get_context("spawn")
            with context.Pool(min(workers, len(items))) as pool:
                for outcome in pool.imap(guarded, items):
                    outcomes.append(outcome)
                    bar.update()
    finally:
        bar.close()
    return outcomes

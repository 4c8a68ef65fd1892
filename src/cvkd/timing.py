"""Wall-clock timing of repeated calls: the one latency timer behind `cvkd profile`, `cvkd compare` and ONNX parity."""

from __future__ import annotations

import time
from typing import Callable


def time_calls(call: Callable[[], object], repeats: int, warmup: int = 1) -> list[float]:
    """Seconds of each of `repeats` calls of `call`, after `warmup` untimed calls."""
    if warmup < 0 or repeats < 1:
        raise ValueError(f"need warmup >= 0 and repeats >= 1, got warmup={warmup}, repeats={repeats}")
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times

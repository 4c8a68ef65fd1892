"""Run under torchrun: train one tiny run per (strategy, live or cached) case in the same pair of processes.

Usage: python -m torch.distributed.run --nproc_per_node=2 strategies_ddp_worker.py CASES_JSON OVERRIDE...
CASES_JSON is a list of [run name, override...]; each case is trained with the common overrides followed by its own.
Rank 0 prints one line `CASE <name> <json of the last log row>` per finished case.
"""

from __future__ import annotations

import json
import sys

import torch.distributed as dist

import cvkd.engine.runtime as engine_runtime
import cvkd.engine.train as engine_train
from cvkd.config import load_config
from cvkd.runs.schema import RunConfig


def main(cases_json: str, common: list[str]) -> None:
    """Join the process group once and train every case in it (a gloo mesh per case is slow and flaky to set up)."""
    dist.init_process_group(backend="gloo")
    engine_runtime.stop_runtime = lambda runtime: None  # train() leaves the group otherwise; it finds it joined
    try:
        for name, *overrides in json.loads(cases_json):
            config = load_config(RunConfig, None, [*common, f"name={name}", *overrides])
            result = engine_train.train(config, progress=False)
            if result.is_main:
                print(f"CASE {name} {json.dumps(result.history[-1])}", flush=True)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])

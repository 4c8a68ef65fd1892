"""Run under torchrun: train MMKD cases in one pair of processes and compare the weight networks across ranks.

Usage: python -m torch.distributed.run --nproc_per_node=2 mmkd_ddp_worker.py CASES_JSON OVERRIDE...
Rank 0 prints one line per case: `CASE <name> <json>` with whether every rank holds the same weight networks
(parameters and Adam moments), whether they moved from their start, the meta steps taken and the last log row.
"""

from __future__ import annotations

import json
import sys

import torch
import torch.distributed as dist

import cvkd.engine.runtime as engine_runtime
import cvkd.engine.train as engine_train
from cvkd.config import load_config
from cvkd.runs.schema import RunConfig


def flat_state(module: torch.nn.Module) -> torch.Tensor:
    """Every parameter and buffer of `module`, flattened into one float64 vector."""
    return torch.cat([t.detach().double().reshape(-1) for t in (*module.parameters(), *module.buffers())])


def main(cases_json: str, common: list[str]) -> None:
    """Train every case; keep each run's parts (through build_run) to read its strategy on this rank."""
    dist.init_process_group(backend="gloo")
    engine_runtime.stop_runtime = lambda runtime: None  # leaving train()'s runtime would leave the group
    built = []
    build_run = engine_train.build_run
    engine_train.build_run = lambda *args, **kwargs: built.append(build_run(*args, **kwargs)) or built[-1]
    try:
        for name, *overrides in json.loads(cases_json):
            config = load_config(RunConfig, None, [*common, f"name={name}", *overrides])
            start = None
            original_run = engine_train._Trainer.run

            def run(trainer, resume, original_run=original_run):
                nonlocal start
                start = flat_state(trainer.parts.objective.strategies["mv"].meta)
                return original_run(trainer, resume)

            engine_train._Trainer.run = run
            result = engine_train.train(config, progress=False)
            engine_train._Trainer.run = original_run
            meta = built[-1].objective.strategies["mv"].meta
            state = flat_state(meta)
            gathered = [torch.zeros_like(state) for _ in range(dist.get_world_size())]
            dist.all_gather(gathered, state)
            if result.is_main:
                report = {"equal": all(torch.equal(gathered[0], g) for g in gathered),
                          "moved": not torch.equal(start, state), "meta_steps": int(meta.steps),
                          "row": result.history[-1]}
                print(f"CASE {name} {json.dumps(report)}", flush=True)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])

"""MMKD under DDP: two gloo processes (one torchrun launch) keep identical weight networks, live and cached.

Each process learns on its own half of every batch, so without averaging the hypergradients the two copies would
part after the first meta step. 36 training videos, global batch 6 (3 per process): 6 steps, meta steps at steps 0
and 5 (the epoch's last), in one epoch.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from distill.ddp_cases import launch_cases
from engine.conftest import TinyRuns, data_root, shared_runs, teacher_run  # noqa: F401  (fixtures, used by name)

from cvkd.runs.checkpoint import LAST, load_checkpoint

WORKER = Path(__file__).with_name("mmkd_ddp_worker.py")
LAUNCH_TIMEOUT = 900
CASES = {
    "mmkd-live": [],
    "mmkd-cached-adam-buffer": ["distill.cache=true", "distill.cache_views=1",
                                "distill.params={virtual_optimizer: adam, hard_buffer: true, buffer_size: 6}"],
    "mmkd-live-features": ["distill.params={gamma: 1.0}"],
    "mmkd-cached-features": ["distill.cache=true", "distill.cache_views=1", "distill.params={gamma: 1.0}"],
}


@pytest.fixture(scope="module")
def launch(teacher_run, shared_runs) -> tuple[TinyRuns, dict[str, dict]]:  # noqa: F811
    """The runs' folder and case name -> the report rank 0 printed, all trained by one 2-process launch."""
    tiny: TinyRuns = shared_runs("ddp_mmkd")
    common = tiny.overrides("unused", "optim.epochs=1", "data.batch_size=6", "distill.strategy=mmkd",
                            f"distill.teachers=[{teacher_run}]")
    cases = [[name, *overrides] for name, overrides in CASES.items()]
    reports = launch_cases(WORKER, cases, common, tiny.output_dir.parent, LAUNCH_TIMEOUT)
    return tiny, reports


@pytest.mark.parametrize("case", sorted(CASES))
def test_both_ranks_hold_the_same_weight_networks_after_meta_steps(case, launch):
    tiny, reports = launch
    report = reports[case]
    assert report["equal"] and report["moved"]
    assert report["meta_steps"] == 2  # steps 0 and 5 of 6
    assert math.isfinite(report["row"]["train_loss"])
    assert sum(report["row"]["teacher_weights_mv"].values()) == pytest.approx(1.0, abs=1e-5)
    strategies = load_checkpoint(tiny.run_dir(case) / LAST)["strategies"]
    assert int(strategies["mv.meta.steps"]) == 2  # the weight networks and their Adam moments are checkpointed

"""Every strategy trains under DDP: one torchrun launch of 2 gloo processes runs each strategy live and cached.

Each case is one optimiser step (6 training videos, global batch 6) on the engine tests' tiny dataset, distilling
the engine tests' 3-stream teacher run into an MV student.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
from distill.ddp_cases import launch_cases
from engine.conftest import TinyRuns, data_root, shared_runs, teacher_run  # noqa: F401  (fixtures, used by name)

from cvkd.distill import available_strategies

WORKER = Path(__file__).with_name("strategies_ddp_worker.py")
LAUNCH_TIMEOUT = 900  # seconds for all cases (about 4 s of CPU each; far longer on a loaded machine)
TRAIN_PER_CLASS, VAL_PER_CLASS = 2, 1
PARAMS = {
    "fixed": "{weights: [1, 2, 1]}",
    "camkd": "{gamma: 1.0}",  # live only: the feature term needs the teachers' features
    "dkd": "{weighting: confidence}",
}
# Teacher weights per sample sum to 1, except EBKD's 1 - H_k / sum_j H_j, which sum to K - 1 = 2 for 3 teachers.
WEIGHT_SUM = {"entropy": 2.0, "dkd_entropy": 2.0, "none": 0.0}


def cases() -> dict[str, list[str]]:
    """Run name -> overrides: every strategy live, every one that can be cached cached, one matched-strength run."""
    result: dict[str, list[str]] = {}
    for name in available_strategies():
        params = [f"distill.params={PARAMS[name]}"] if name in PARAMS else []
        teachers = "[]" if name == "none" else "[{teacher}:mv]" if name == "kd" else "[{teacher}]"
        result[f"{name}-live"] = [f"distill.strategy={name}", f"distill.teachers={teachers}", *params]
        if name == "none":
            continue
        if name == "camkd":
            params = []  # logit-only CA-MKD is what a cache can serve
        result[f"{name}-cached"] = [*result[f"{name}-live"][:2], *params, "distill.cache=true", "distill.cache_views=1"]
    result["entropy-normalised-cached"] = [*result["entropy-cached"], "distill.params={normalise_soft: true}"]
    return result


@pytest.fixture(scope="module")
def small_root(data_root, tmp_path_factory) -> Path:  # noqa: F811
    """The tiny dataset cut to 2 training and 1 validation video per class (videos linked, lists rewritten)."""
    root = tmp_path_factory.mktemp("ddp_strategies_data")
    (root / "videos").symlink_to(data_root / "videos", target_is_directory=True)
    shutil.copy(data_root / "classes.txt", root / "classes.txt")
    for split, per_class in (("train", TRAIN_PER_CLASS), ("val", VAL_PER_CLASS)):
        header, *rows = (data_root / f"{split}.csv").read_text().splitlines()
        kept, seen = [], {}
        for row in rows:
            label = row.rsplit(",", 1)[1]
            seen[label] = seen.get(label, 0) + 1
            if seen[label] <= per_class:
                kept.append(row)
        (root / f"{split}.csv").write_text("\n".join([header, *kept]) + "\n")
    return root


@pytest.fixture(scope="module")
def results(small_root, teacher_run, shared_runs) -> dict[str, dict]:  # noqa: F811
    """Run name -> the last log row of that run, all trained by one 2-process launch."""
    tiny: TinyRuns = shared_runs("ddp_strategies")
    common = tiny.overrides("unused", f"data.root={small_root}", "optim.epochs=1", "data.batch_size=6")
    all_cases = [[name, *(o.replace("{teacher}", str(teacher_run)) for o in overrides)]
                 for name, overrides in cases().items()]
    rows = launch_cases(WORKER, all_cases, common, tiny.output_dir.parent, LAUNCH_TIMEOUT)
    return rows


@pytest.mark.parametrize("case", sorted(cases()))
def test_strategy_trains_with_two_processes(case, results):
    row = results[case]
    assert math.isfinite(row["train_loss"]) and row["train_loss"] > 0
    strategy = case.split("-")[0]
    expected = 1.0 if "normalised" in case else WEIGHT_SUM.get(strategy, 1.0)
    weights = row.get("teacher_weights_mv", {})
    assert sum(weights.values()) == pytest.approx(expected, abs=1e-5)
    assert len(weights) == (0 if strategy == "none" else 1 if strategy == "kd" else 3)

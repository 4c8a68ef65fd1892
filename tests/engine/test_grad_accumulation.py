"""Global batch semantics: data.batch_size is the batch of one optimiser step on any number of processes, split into
micro-batches by optim.grad_accumulation; optim.lr_scaling adapts the learning rate to another global batch.

The exact comparison: two gloo processes accumulating 2 micro-batches of 3 clips each against one process
accumulating 4 micro-batches of 3, both with the global batch of 12. The micro-batches are the same clips in both
(`GlobalBatchSampler` gives micro-batch k of process r slot k x processes + r of the global batch), so BatchNorm
normalises the same 3 clips in both runs and the averaged gradient is the same sum in another order: the trained
parameters agree to float32 rounding. One process with the whole batch of 12 at once is *not* the same function:
BatchNorm would normalise 12 clips together (its comparison is measured below and is far larger); with frozen or no
BatchNorm it would be. BatchNorm's running statistics are left out of the comparison: they are buffers updated in the
forward pass (DDP broadcasts rank 0's, which saw 2 of the 4 micro-batches) and do not enter a training step.

"Agree to float32 rounding" is not bit-identical: one process sums ((g0 + g1) + g2) + g3, the two processes
(g0 + g2) + (g1 + g3). Measured here, the largest difference is 1.2e-7 after 4 steps of micro-batches of 6 clips.
With micro-batches of 3 clips BatchNorm amplifies that rounding (1.2e-7 after 3 steps, 6e-4 after 6: the variance
of 6 pictures is small and its inverse steep), so the test uses 6; without accumulation (2 processes x 1 vs 1 process
x 2, where halving is exact) the weights are bit-identical over 18 steps.
"""

from __future__ import annotations

import sys

import pytest
import torch
from torch.utils.data import DistributedSampler

from cvkd.config import load_config
from cvkd.data.batches import GlobalBatchSampler
from cvkd.engine.objective import set_learning_rate
from cvkd.errors import ConfigError
from cvkd.runs.checkpoint import LAST, load_checkpoint
from cvkd.runs.schema import RunConfig
from cvkd.runs.validate import micro_batch_size, validate_run_config

from engine.test_ddp import free_port

GLOBAL = ("data.batch_size=12", "optim.epochs=1")  # 36 training videos: 3 steps
EXACT = ("data.batch_size=24", "optim.epochs=4")  # 1 step an epoch (12 videos left out), 4 in all; micro-batches of 6
TOLERANCE = 1e-5


def _micro_batches(sampler: GlobalBatchSampler) -> list[list[int]]:
    items = list(sampler)
    assert len(items) == len(sampler)
    return [items[i:i + sampler.micro_batch] for i in range(0, len(items), sampler.micro_batch)]


def test_one_process_without_accumulation_draws_the_batches_it_drew_before():
    sampler = GlobalBatchSampler(30, 7, seed=5)
    sampler.set_epoch(2)
    before = DistributedSampler(range(30), num_replicas=1, rank=0, shuffle=True, seed=5)  # make_loader's, drop_last
    before.set_epoch(2)
    order = list(before)
    assert _micro_batches(sampler) == [order[i:i + 7] for i in range(0, 28, 7)]  # 4 whole batches, 2 left out


def test_two_processes_without_accumulation_draw_what_the_distributed_sampler_gave_them():
    for rank in (0, 1):
        sampler = GlobalBatchSampler(30, 4, world_size=2, rank=rank, seed=5)
        sampler.set_epoch(3)
        before = DistributedSampler(range(30), num_replicas=2, rank=rank, shuffle=True, seed=5, drop_last=True)
        before.set_epoch(3)
        order = list(before)  # 15 items a rank; the loader kept its 3 whole batches of 4
        assert _micro_batches(sampler) == [order[i:i + 4] for i in range(0, 12, 4)]


def test_every_process_count_takes_the_same_micro_batches_of_the_same_global_batches():
    one = GlobalBatchSampler(30, 3, accumulation=4, seed=5)
    two = [GlobalBatchSampler(30, 3, accumulation=2, world_size=2, rank=r, seed=5) for r in (0, 1)]
    for sampler in (one, *two):
        sampler.set_epoch(1)
    alone, ranks = _micro_batches(one), [_micro_batches(s) for s in two]
    assert len(alone) == 8 and [len(r) for r in ranks] == [4, 4]  # 2 global batches of 12; 6 videos left out
    # step s, micro-batch k of rank r is micro-batch 2k + r of the lone process's 4 in that step
    interleaved = [ranks[r][2 * s + k] for s in range(2) for k in range(2) for r in range(2)]
    assert interleaved == alone
    assert len({i for batch in alone for i in batch}) == 24  # no clip twice


def test_a_global_batch_that_does_not_divide_is_refused_in_one_line():
    def config(*extra):
        return load_config(RunConfig, None, ["data.batch_size=80", *extra])

    assert micro_batch_size(config(), 8) == 10
    assert micro_batch_size(config("optim.grad_accumulation=8"), 1) == 10
    with pytest.raises(ConfigError) as refused:
        micro_batch_size(config(), 3)  # 80 // 3 used to train with 78 in silence
    assert "\n" not in str(refused.value) and "data.batch_size=78 or 81" in str(refused.value)
    with pytest.raises(ConfigError, match="data.batch_size=78 or 84"):
        micro_batch_size(config("optim.grad_accumulation=2"), 3)
    with pytest.raises(ConfigError, match="optim.grad_accumulation: must be >= 1"):
        validate_run_config(config("optim.grad_accumulation=0"))


@pytest.mark.parametrize("rule, factor", [("none", 1.0), ("linear", 4.0), ("sqrt", 2.0)])
def test_the_learning_rate_follows_the_batch_rule(rule, factor):
    config = load_config(RunConfig, None, ["data.batch_size=320", "optim.lr=0.01", f"optim.lr_scaling={rule}",
                                           "optim.lr_reference_batch=80", "optim.lr_steps=[2]", "optim.epochs=3"])
    weights = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([{"params": [weights], "lr_mult": 0.1}])
    assert set_learning_rate(optimizer, config, 0) == pytest.approx(0.01 * factor)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.001 * factor)
    assert set_learning_rate(optimizer, config, 2) == pytest.approx(0.001 * factor)  # the decay still applies


def test_a_batch_rule_needs_its_reference_batch():
    with pytest.raises(ConfigError, match="optim.lr_reference_batch: must be >= 1"):
        validate_run_config(load_config(RunConfig, None, ["optim.lr_scaling=sqrt"]))


def test_a_skipped_step_counts_once_however_many_micro_batches_it_has(tiny, read_log, monkeypatch):
    from cvkd.engine import objective as objective_module
    forward = objective_module.StreamObjective.forward

    def poisoned(self, *args, **kwargs):
        loss, logits, parts = forward(self, *args, **kwargs)
        return loss * float("nan"), logits, parts

    monkeypatch.setattr(objective_module.StreamObjective, "forward", poisoned)
    run = tiny.train("skipping", *GLOBAL, "optim.grad_accumulation=2", "max_nonfinite_steps=100")
    assert [row["skipped_steps"] for row in read_log(run.run_dir)] == [3]  # 3 steps of 2 micro-batches each


def _parameters(run) -> dict[str, torch.Tensor]:
    state = load_checkpoint(run / LAST)["model"]
    return {k: v for k, v in state.items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))}


def _largest_difference(first: dict, second: dict) -> float:
    assert sorted(first) == sorted(second)
    return max(float((first[key] - second[key]).abs().max()) for key in first)


def test_two_processes_accumulating_train_the_weights_one_process_trains(tiny, run_command):
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
        f"--master_port={free_port()}", "-m", "cvkd", "train",
        *tiny.overrides("ddp", *EXACT, "optim.grad_accumulation=2"), "--no-progress",
    ]
    finished = run_command(command, tiny.output_dir.parent)
    assert finished.returncode == 0, finished.stderr[-3000:]
    alone = tiny.train("alone", *EXACT, "optim.grad_accumulation=4").run_dir
    whole = tiny.train("whole", *EXACT).run_dir  # one batch of 24: BatchNorm over 24 clips, another function
    ddp = tiny.run_dir("ddp")
    for run in (ddp, alone, whole):
        steps = {float(slots["step"]) for slots in load_checkpoint(run / LAST)["optimizer"]["state"].values()}
        assert steps == {4.0}, run.name  # one optimiser step per global batch, micro-batches are not steps
    difference = _largest_difference(_parameters(ddp), _parameters(alone))
    print(f"largest parameter difference, 2 processes x 2 vs 1 process x 4 micro-batches of 6: {difference:.2e}")
    assert difference < TOLERANCE
    batch_norm = _largest_difference(_parameters(alone), _parameters(whole))
    print(f"largest parameter difference, 4 micro-batches of 6 vs 1 batch of 24: {batch_norm:.2e}")
    assert batch_norm > 100 * TOLERANCE

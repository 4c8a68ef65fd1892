"""Global batches: the same optimiser-step batches for any number of processes and micro-batches (training)."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from cvkd.data.datasets import make_loader, seed_worker
from cvkd.errors import ConfigError


class GlobalBatchSampler(Sampler[int]):
    """One process's share of every global batch, the same global batches for any number of processes.

    The epoch's order is DistributedSampler's (`torch.randperm` seeded by seed + epoch); it is cut into global batches
    of `micro_batch * accumulation * world_size` items (items past the last whole one are left out). A global batch
    has `accumulation * world_size` slots, slot t holding its items t, t + slots, t + 2 slots, ...; micro-batch k of
    process `rank` is slot `k * world_size + rank`. So 1 process accumulating 4 micro-batches and 2 processes
    accumulating 2 run the very same micro-batches; without accumulation each process takes the batches
    DistributedSampler (under torchrun) or `make_loader` (alone) gives it. A DataLoader with `batch_size=micro_batch`
    over this sampler yields the process's micro-batches in step order.
    """

    def __init__(self, size: int, micro_batch: int, accumulation: int = 1, world_size: int = 1, rank: int = 0,
                 seed: int = 0) -> None:
        self.size, self.micro_batch, self.accumulation = size, micro_batch, accumulation
        self.world_size, self.rank, self.seed, self.epoch = world_size, rank, seed, 0
        self.global_batch = micro_batch * accumulation * world_size

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose order comes next."""
        self.epoch = epoch

    def __len__(self) -> int:
        return (self.size // self.global_batch) * self.accumulation * self.micro_batch

    def __iter__(self):
        generator = torch.Generator()
        generator.manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.size, generator=generator).tolist()
        slots = self.accumulation * self.world_size
        for start in range(0, (self.size // self.global_batch) * self.global_batch, self.global_batch):
            for k in range(self.accumulation):
                yield from order[start + k * self.world_size + self.rank:start + self.global_batch:slots]


def make_train_loader(
    dataset: Dataset, micro_batch: int, accumulation: int, world_size: int, rank: int, workers: int = 0,
    seed: int = 0, pin_memory: bool = False,
) -> DataLoader:
    """Training micro-batches of `GlobalBatchSampler` (whole global batches only), seeded as `make_loader`."""
    sampler = GlobalBatchSampler(len(dataset), micro_batch, accumulation, world_size, rank, seed)
    return DataLoader(
        dataset, batch_size=micro_batch, sampler=sampler, num_workers=workers, persistent_workers=workers > 0,
        worker_init_fn=seed_worker, generator=torch.Generator().manual_seed(seed), drop_last=True,
        pin_memory=pin_memory,
    )


def training_loader(
    dataset: Dataset, global_batch: int, micro_batch: int, accumulation: int = 1, world_size: int = 1, rank: int = 0,
    workers: int = 0, seed: int = 0, pin_memory: bool = False,
) -> DataLoader:
    """A training run's loader: `make_train_loader`'s global batches under several processes or with accumulation
    (more global batch than videos refused in one line), else `make_loader`'s shuffled batches (as before)."""
    if world_size > 1 or accumulation > 1:  # the same global batches for any process count
        if len(dataset) < global_batch:
            raise ConfigError(f"data.batch_size={global_batch}: more than the {len(dataset)} training videos")
        return make_train_loader(dataset, micro_batch, accumulation, world_size, rank, workers, seed, pin_memory)
    return make_loader(dataset, micro_batch, shuffle=True, workers=workers, seed=seed,
                       drop_last=len(dataset) > micro_batch, pin_memory=pin_memory)

"""MMKD's buffer of hard examples (Rorozhl/MMKD, dataset/buffer.py), for batches of named batch-first tensors."""

from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor


class HardBuffer:
    """Whole batches until `size` samples are held; then each batch's misclassified samples replace random entries.

    As in the authors' `HardBuffer`: `add` puts the entire batch while the buffer is filling (the authors' `put`),
    and once it is full the samples the student got wrong overwrite randomly chosen slots (`update`); `sample(n)`
    draws n entries without replacement. Tensors are kept detached on the device they come from.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: dict[str, Tensor] = {}

    def __len__(self) -> int:
        return 0 if not self.items else next(iter(self.items.values())).shape[0]

    @property
    def full(self) -> bool:
        """Whether `size` samples are held."""
        return len(self) >= self.size

    def add(self, batch: Mapping[str, Tensor], wrong: Tensor) -> None:
        """Offer one batch (name -> (B, ...) tensor) and which of its samples the student got wrong ((B,) bool)."""
        batch = {name: tensor.detach() for name, tensor in batch.items()}
        if not self.full:
            room = self.size - len(self)
            taken = {name: tensor[:room] for name, tensor in batch.items()}
            self.items = {name: torch.cat([self.items[name], t]) if self.items else t.clone()
                          for name, t in taken.items()}
            return
        count = min(int(wrong.sum()), self.size)
        if count == 0:
            return
        slots = torch.randperm(self.size)[:count]
        for name, tensor in batch.items():
            self.items[name][slots.to(tensor.device)] = tensor[wrong][:count]

    def sample(self, count: int) -> dict[str, Tensor]:
        """`count` entries (all, if fewer are held) drawn without replacement."""
        index = torch.randperm(len(self))[:count]
        return {name: tensor[index.to(tensor.device)] for name, tensor in self.items.items()}

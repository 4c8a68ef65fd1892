"""MMKD's parts (Rorozhl/MMKD, models/meta_util.py): the feature-weight network, the feature matching, the weight
networks with their own Adam, and the batch a meta step learns on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import torch
from torch import Tensor, nn

from cvkd.distill.features import MapAdapter, frames_of, map_mse_per_sample, resize_map
from cvkd.distill.meta import TeacherWeightNet
from cvkd.distill.virtual import adam_step


def gram(feature_map: Tensor) -> Tensor:
    """The (B, B) matrix of dot products between the batch's flattened maps."""
    flat = feature_map.reshape(feature_map.shape[0], -1)
    return flat @ flat.T


class FeatureWeightNet(nn.Module):
    """MMKD's `FeatureWeight`: the K teachers' and the student's Gram matrices side by side, (B, (K+1)B), through
    Linear((K+1)B, (K+1)B/2), ReLU, Linear(.., K) and a softmax over the teachers. Built for one batch size."""

    def __init__(self, num_teachers: int, batch_size: int) -> None:
        super().__init__()
        width = batch_size * (num_teachers + 1)
        self.batch_size = batch_size
        self.layers = nn.Sequential(nn.Linear(width, width // 2), nn.ReLU(), nn.Linear(width // 2, num_teachers))

    def forward(self, teacher_maps: Sequence[Tensor], student_map: Tensor) -> Tensor:
        """Weights (K, B) of the teachers' feature terms, each sample's summing to 1."""
        if student_map.shape[0] != self.batch_size:
            raise ValueError(f"MMKD's feature-weight network takes batches of {self.batch_size} (its input width "
                             f"depends on it), got {student_map.shape[0]}")
        features = torch.cat([gram(m) for m in (*teacher_maps, student_map)], dim=1)
        return self.layers(features).softmax(dim=1).T


class FeatureMatch(nn.Module):
    """MMKD's `MatchFeature`: per teacher an adapter of the student's map and the MSE per sample, (K, B).

    Sizes as the authors match them: the larger of the two maps is average-pooled to the smaller's size (the
    student's through its adapter's resize, the teacher's directly). `deep` is their `--convs` embedding.
    """

    def __init__(self, student_channels: int, teacher_channels: Sequence[int], deep: bool = False) -> None:
        super().__init__()
        self.adapters = nn.ModuleList(MapAdapter(student_channels, c, 1, deep) for c in teacher_channels)

    def forward(self, student_map: Tensor, teacher_maps: Sequence[Tensor]) -> Tensor:
        """Per-teacher, per-sample MSE (K, B) between the adapted student map and the teacher's."""
        errors = []
        for adapter, teacher in zip(self.adapters, teacher_maps):
            size = tuple(min(s, t) for s, t in zip(student_map.shape[-2:], teacher.shape[-2:]))
            target = resize_map(frames_of(teacher), size).view(*teacher.shape[:-2], *size)
            errors.append(map_mse_per_sample(adapter(student_map, size), target))
        return torch.stack(errors)


class MetaWeights(nn.Module):
    """The weight networks a meta step trains (logits; features when there is a feature term) and their own Adam.

    Adam's moments and step count are buffers, so checkpoints carry them; `update` is torch.optim.Adam's step
    (defaults betas (0.9, 0.999), eps 1e-8; L2 weight decay), as the authors' `optim.Adam(lr, weight_decay)`.
    """

    def __init__(
        self, logits: TeacherWeightNet, features: FeatureWeightNet | None, lr: float, weight_decay: float
    ) -> None:
        super().__init__()
        self.logits, self.features = logits, features
        self.lr, self.weight_decay = lr, weight_decay
        for index, parameter in enumerate(list(self.parameters())):
            self.register_buffer(f"exp_avg_{index}", torch.zeros_like(parameter))
            self.register_buffer(f"exp_avg_sq_{index}", torch.zeros_like(parameter))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, grads: Sequence[Tensor]) -> None:
        """One Adam step of every parameter on its (hyper)gradient."""
        self.steps += 1
        step = int(self.steps)
        for index, (parameter, grad) in enumerate(zip(self.parameters(), grads)):
            moments = getattr(self, f"exp_avg_{index}"), getattr(self, f"exp_avg_sq_{index}")
            new, exp_avg, exp_avg_sq = adam_step(parameter, grad, *moments, step, self.lr, self.weight_decay,
                                                 (0.9, 0.999), 1e-8)
            parameter.copy_(new)
            moments[0].copy_(exp_avg)
            moments[1].copy_(exp_avg_sq)


@dataclass
class MetaBatch:
    """What a meta step learns on: inputs, labels, the teachers' logits (K, B, C) and, for the feature term, maps."""

    inputs: dict[str, Tensor]
    labels: Tensor
    teacher_logits: Tensor
    teacher_maps: list[Tensor] | None = None

    def items(self) -> dict[str, Tensor]:
        """Batch-first tensors under fixed names (for the hard buffer)."""
        items = {f"input:{name}": tensor for name, tensor in self.inputs.items()}
        items.update(label=self.labels, teacher_logits=self.teacher_logits.transpose(0, 1))
        items.update({f"map:{k}": m for k, m in enumerate(self.teacher_maps or [])})
        return items

    @classmethod
    def from_items(cls, items: Mapping[str, Tensor]) -> "MetaBatch":
        """The batch `items` describes."""
        maps = [items[f"map:{k}"] for k in range(sum(name.startswith("map:") for name in items))]
        inputs = {name.split(":", 1)[1]: t for name, t in items.items() if name.startswith("input:")}
        return cls(inputs, items["label"], items["teacher_logits"].transpose(0, 1), maps or None)

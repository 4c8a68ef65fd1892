"""What one training step optimises: the trainable streams, each with its distillation strategy, and the optimiser."""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch
from torch import nn

from cvkd.distill import DistillLoss, DistillStrategy, create_strategy
from cvkd.distill.context import StepContext, StrategyContext
from cvkd.distill.features import MultiTeacherHints
from cvkd.engine.routes import resolve_routes, teacher_routes
from cvkd.engine.teachers import TeacherSet
from cvkd.runs.schema import RunConfig
from cvkd.errors import ConfigError
from cvkd.modalities import FUSED
from cvkd.models.coviar import CoViAR

HINTS_KEY = "distill.hint_teachers"


class StreamObjective(nn.Module):
    """The student's trainable streams and one strategy per stream: `forward` returns the summed loss and its parts.

    Frozen streams are not run here (they only matter for fused evaluation). With strategy `none` and no teachers this is
    plain supervised training, so teachers and students share one code path (and one DDP wrapper). `strategies` are
    keyed by student output: a trainable stream, or `fused` (a term on the fused logits of all streams); `routes`
    gives the teachers (indices into the teacher logits) an output learns from, every teacher for one it leaves out.
    With `normalise_fused` the fused logits are divided by the sum of the fusion weights, as a fused teacher's are.
    `hints` (stream -> `MultiTeacherHints`) add `hint_weight` x that stream's feature-hint loss to the total; with
    hints or a strategy's feature term the streams are run for their spatial maps (and the teachers must give theirs).
    """

    def __init__(
        self,
        model: CoViAR,
        trainable: Sequence[str],
        strategies: Mapping[str, DistillStrategy],
        routes: Mapping[str, Sequence[int]] | None = None,
        normalise_fused: bool = False,
        hints: Mapping[str, MultiTeacherHints] | None = None,
        hint_weight: float = 0.0,
    ) -> None:
        super().__init__()
        self.model = model
        self.trainable = tuple(trainable)
        self.strategies = nn.ModuleDict(dict(strategies))
        self.outputs = tuple(self.strategies)
        self.routes = {output: tuple(route) for output, route in (routes or {}).items()}
        self.fused_scale = 1.0 / sum(model.fusion_weights.values()) if normalise_fused else 1.0
        self.hints = nn.ModuleDict(dict(hints or {}))
        self.hint_weight = float(hint_weight)
        self.uses_features = bool(self.hints) or any(s.uses_features for s in self.strategies.values())
        self.meta_outputs = tuple(o for o, s in self.strategies.items() if getattr(s, "has_meta_step", False))
        self._output_modules: dict[str, OutputModule] = {}  # not registered: they hold the model's own streams

    def routed(self, output: str, items):
        """The entries of `items` (teacher logits (K, B, C), features or names; None stays None) `output` learns from."""
        route = self.routes.get(output)
        if items is None or route is None:
            return items
        if isinstance(items, torch.Tensor):
            return items[list(route)]
        return [items[i] for i in route]

    def forward(
        self,
        sample: Mapping[str, torch.Tensor],
        labels: torch.Tensor,
        teacher_logits: torch.Tensor | None,
        teacher_features: list[torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, DistillLoss]]:
        """Total loss, each output's logits (trainable streams, and `fused` if it has a term), and its loss parts."""
        logits: dict[str, torch.Tensor] = {}
        features: dict[str, torch.Tensor | None] = {}
        parts: dict[str, DistillLoss] = {}
        for modality in self.trainable:
            stream = self.model.streams[modality]
            if self.uses_features:
                logits[modality], features[modality] = stream.forward_with_map(sample[modality])
            else:
                logits[modality], features[modality] = stream(sample[modality]), None
        if FUSED in self.strategies:
            logits[FUSED] = self.model.fuse(logits) * self.fused_scale
        for output, strategy in self.strategies.items():
            maps = strategy.uses_features  # only a feature term reads the maps
            parts[output] = strategy(
                logits[output].float(), self.routed(output, teacher_logits), labels,
                features.get(output) if maps else None, self.routed(output, teacher_features) if maps else None,
            )
        total = sum(part.loss for part in parts.values())
        for modality, hint in self.hints.items():
            total = total + self.hint_weight * hint(features[modality], teacher_features)
        return total, logits, parts


    def output_module(self, output: str) -> "OutputModule":
        """The student output `output` as a module of its inputs (a strategy's own step runs it functionally)."""
        if output not in self._output_modules:
            net = self.model if output == FUSED else self.model.streams[output]
            self._output_modules[output] = OutputModule(net, output, self.trainable, self.fused_scale,
                                                        self.strategies[output].uses_features)
        return self._output_modules[output]

    def meta_steps(
        self, sample: Mapping[str, torch.Tensor], labels: torch.Tensor, teacher_logits: torch.Tensor | None,
        teacher_features: list[torch.Tensor] | None, logits: Mapping[str, torch.Tensor],
        optimizer: torch.optim.Optimizer, step: int, steps_per_epoch: int, distributed: bool,
    ) -> None:
        """After the student's optimiser step: `meta_step` of every strategy that has one, with its `StepContext`."""
        for output in self.meta_outputs:
            strategy = self.strategies[output]
            reads = self.trainable if output == FUSED else (output,)
            strategy.meta_step(StepContext(
                student=self.output_module(output), inputs={m: sample[m] for m in reads}, labels=labels,
                student_logits=logits[output].detach().float(), teacher_logits=self.routed(output, teacher_logits),
                teacher_features=self.routed(output, teacher_features) if strategy.uses_features else None,
                optimizer=optimizer, step=step, steps_per_epoch=steps_per_epoch, distributed=distributed,
            ))

    def meta_state_names(self) -> list[str]:
        """Every parameter and buffer (by name in this module) a strategy trains in its own step, not by backward:
        DistributedDataParallel must leave them out (the strategy keeps its copies equal itself)."""
        names = []
        for strategy in self.strategies.values():
            meta = meta_module(strategy)
            if meta is not None:
                prefix = next(name for name, module in self.named_modules() if module is meta)
                names += [f"{prefix}.{name}" for name, _ in (*meta.named_parameters(), *meta.named_buffers())]
        return names


def meta_module(strategy: nn.Module) -> nn.Module | None:
    """The part of a strategy its own step trains (`DistillStrategy.meta_module`); None for any other module."""
    own = getattr(strategy, "meta_module", None)
    return own() if callable(own) else None


class OutputModule(nn.Module):
    """One student output as a module: inputs (modality -> tensor) -> (logits (B, C) as float, spatial map or None).

    `net` is the output's stream, or for `fused` the whole CoViAR (its trainable streams fused as the objective
    fuses them); `with_map` runs the stream for its map too (a strategy's feature term).
    """

    def __init__(self, net: nn.Module, output: str, streams: Sequence[str], fused_scale: float, with_map: bool) -> None:
        super().__init__()
        self.net, self.output, self.streams = net, output, tuple(streams)
        self.fused_scale, self.with_map = fused_scale, with_map

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The output's logits (and map) for `inputs`."""
        if self.output == FUSED:
            logits = {m: self.net.streams[m](inputs[m]) for m in self.streams}
            return (self.net.fuse(logits) * self.fused_scale).float(), None
        if self.with_map:
            logits, feature_map = self.net.forward_with_map(inputs[self.output])
            return logits.float(), feature_map
        return self.net(inputs[self.output]).float(), None


def trainable_streams(config: RunConfig, model: CoViAR) -> tuple[str, ...]:
    """Streams the run trains: every stream of the model except `model.frozen`."""
    unknown = sorted(set(config.model.frozen) - set(model.modalities))
    if unknown:
        raise ConfigError(f"model.frozen names {unknown}, which are not streams of the model {list(model.modalities)}")
    trainable = tuple(m for m in model.modalities if m not in config.model.frozen)
    if not trainable:
        raise ConfigError("every stream is frozen (model.frozen): nothing to train")
    return trainable


def assemble_objective(
    config: RunConfig, model: CoViAR, teachers: TeacherSet | None, batch_size: int | None = None,
) -> StreamObjective:
    """What a step optimises, assembled in one place: the trainable streams with their strategies, routed to the
    teachers each output learns from (cvkd.engine.routes), and their feature hints (`batch_size`: the per-process
    batch, for strategies whose parts are sized by it)."""
    distill = config.distill
    trainable = trainable_streams(config, model)
    teacher_dims = teachers.map_channels() if teachers else []
    refs = teachers.teachers if teachers else []
    routes = resolve_routes(distill.stream_teachers, refs, trainable)
    heads = teachers.heads() if teachers else None
    strategies = build_strategies(config, model, trainable, teacher_dims, routes, heads, batch_size)
    hinting = tuple(range(len(refs)))
    if distill.hint_teachers and refs:
        hinting = teacher_routes({HINTS_KEY: distill.hint_teachers}, refs, [HINTS_KEY])[HINTS_KEY]
    hints = build_hints(config, model, trainable, teacher_dims, hinting)
    objective = StreamObjective(model, trainable, strategies, routes, normalise_fused=distill.normalise_fused,
                                hints=hints, hint_weight=distill.hint_weight)
    if config.optim.grad_accumulation > 1 and objective.meta_outputs:
        raise ConfigError(f"optim.grad_accumulation > 1 with distill.strategy={distill.strategy}: its own step "
                          "(after each student step) reads one batch; train it with optim.grad_accumulation=1")
    return objective


def build_strategies(
    config: RunConfig,
    model: CoViAR,
    trainable: Sequence[str],
    teacher_feature_dims: Sequence[int],
    routes: Mapping[str, Sequence[int]] | None = None,
    teacher_heads: Sequence[object] | None = None,
    batch_size: int | None = None,
) -> dict[str, DistillStrategy]:
    """One strategy per student output, from `distill.strategy` and `distill.params`.

    The outputs are the keys of `routes` (output -> indices of its teachers, cvkd.engine.routes) or, without routes,
    the trainable streams, each then learning from every teacher. What a strategy needs and the config cannot know
    reaches it as a `StrategyContext` per output (classes, map channels of the output and of its teachers, their
    classifiers on their maps, the per-process batch, the run's epochs); the strategy takes what it needs from it.
    """
    name = config.distill.strategy
    if not teacher_feature_dims and name != "none":
        raise ConfigError(f"distill.strategy is {name!r} but distill.teachers is empty")
    all_teachers = tuple(range(len(teacher_feature_dims)))
    strategies = {}
    for output, route in (routes or {m: all_teachers for m in trainable}).items():
        if output == FUSED and set(trainable) != set(model.modalities):
            raise ConfigError(f"distill.stream_teachers.{FUSED}: the fused logits need every stream trainable")
        context = StrategyContext(
            num_classes=model.num_classes,
            student_dim=0 if output == FUSED else model.streams[output].map_channels,
            teacher_dims=tuple(teacher_feature_dims[i] for i in route),
            teacher_heads=None if teacher_heads is None else tuple(teacher_heads[i] for i in route),
            batch_size=batch_size, epochs=config.optim.epochs, scale_warmup=config.distill.scale_warmup,
        )
        strategies[output] = create_strategy(name, len(route), context, **config.distill.params)
        if output == FUSED and strategies[output].uses_features:
            raise ConfigError(f"distill.stream_teachers.{FUSED}: fused logits have no features for a feature term")
    return strategies


def build_optimizer(config: RunConfig, objective: StreamObjective) -> torch.optim.Optimizer:
    """Adam with CoViAR's per-layer learning-rate multipliers; strategy parameters (if any) at the base rate, except
    those a strategy trains in its own step (`meta_module`)."""
    optim = config.optim
    groups = []
    placed: set[int] = set()  # a layer several streams share (a shared trunk) joins the first stream's groups only
    for modality in objective.trainable:
        for group in objective.model.streams[modality].param_groups(optim.lr, optim.weight_decay, optim.norm_weight_decay):
            group["params"] = [p for p in group["params"] if id(p) not in placed]
            placed.update(id(p) for p in group["params"])
            if not group["params"]:
                continue
            if optim.layer_lr == "uniform":
                group.update(lr=optim.lr, lr_mult=1.0)
            scale = stream_lr_scale(config, objective.model, modality)
            group.update(lr=group["lr"] * scale, lr_mult=group["lr_mult"] * scale)
            groups.append({**group, "name": f"{modality}.{group['name']}"})
    own = {id(p) for s in objective.strategies.values() if meta_module(s) for p in meta_module(s).parameters()}
    extra = [p for p in (*objective.strategies.parameters(), *objective.hints.parameters())
             if p.requires_grad and id(p) not in own]  # a strategy's meta step trains its own
    if extra:
        groups.append({"params": extra, "lr": optim.lr, "weight_decay": 0.0, "lr_mult": 1.0, "name": "strategy"})
    return torch.optim.Adam(groups, lr=optim.lr, eps=optim.eps, weight_decay=optim.weight_decay)


def stream_lr_scale(config: RunConfig, model: CoViAR, modality: str) -> float:
    """optim.stream_lr[modality] / optim.lr (1 for a stream it does not name); ConfigError on a bad entry."""
    stream_lr = config.optim.stream_lr
    unknown = sorted(set(stream_lr) - set(model.modalities))
    if unknown:
        raise ConfigError(f"optim.stream_lr names {unknown}, which are not streams of the model {list(model.modalities)}")
    bad = sorted(m for m, lr in stream_lr.items() if not lr > 0)
    if bad:
        raise ConfigError(f"optim.stream_lr: the learning rate of {bad} must be positive")
    return stream_lr[modality] / config.optim.lr if modality in stream_lr else 1.0


def learning_rate_factor(config: RunConfig, epoch: int) -> float:
    """Step decay: lr_decay to the power of the number of lr_steps reached by `epoch` (0-based)."""
    passed = sum(1 for step in config.optim.lr_steps if epoch >= step)
    return config.optim.lr_decay**passed


def batch_lr_factor(config: RunConfig) -> float:
    """What optim.lr_scaling multiplies every learning rate by (timm's rule): (data.batch_size /
    optim.lr_reference_batch) to the power 1 (linear) or 1/2 (sqrt); 1 with none."""
    rule = config.optim.lr_scaling
    if rule == "none":
        return 1.0
    ratio = config.data.batch_size / config.optim.lr_reference_batch
    return ratio if rule == "linear" else math.sqrt(ratio)


def set_learning_rate(optimizer: torch.optim.Optimizer, config: RunConfig, epoch: int) -> float:
    """Apply the schedule for `epoch` to every group (base lr x batch rule x group multiplier x decay); return the
    base lr (the batch rule and the decay applied)."""
    base = config.optim.lr * learning_rate_factor(config, epoch)
    if config.optim.lr_scaling != "none":  # the default leaves lr untouched, bit for bit
        base = config.optim.lr * batch_lr_factor(config) * learning_rate_factor(config, epoch)
    for group in optimizer.param_groups:
        group["lr"] = base * group.get("lr_mult", 1.0)
    return base


def build_hints(
    config: RunConfig, model: CoViAR, trainable: Sequence[str], teacher_channels: Sequence[int],
    hint_teachers: Sequence[int],
) -> dict[str, MultiTeacherHints]:
    """One `MultiTeacherHints` per trainable stream when `distill.hint_weight` > 0: adapters to the hinting teachers."""
    distill = config.distill
    if not isinstance(distill.hint_weight, (int, float)) or not 0 <= distill.hint_weight < float("inf"):
        raise ConfigError(f"distill.hint_weight must be a finite number >= 0, got {distill.hint_weight!r}")
    if distill.hint_weight == 0:
        return {}
    if not teacher_channels:
        raise ConfigError("distill.hint_weight > 0 needs teachers (distill.teachers)")
    fused = [k for k in hint_teachers if teacher_channels[k] == 0]
    if fused:
        raise ConfigError("distill.hint_teachers: a fused teacher has no spatial map; name stream teachers")
    return {
        modality: MultiTeacherHints(
            model.streams[modality].map_channels, [teacher_channels[k] for k in hint_teachers], hint_teachers,
            distill.hint_kernel,
        )
        for modality in trainable
    }

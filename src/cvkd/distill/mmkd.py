"""MMKD (ICME 2023, "Adaptive Multi-Teacher Knowledge Distillation with Meta-Learning"; code Rorozhl/MMKD): per-sample
teacher weights from a weight network trained by a hypergradient through virtual steps of the student."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from cvkd.distill.base import DistillInputs, DistillStrategy, DistillTerms, per_sample_weighted_mean
from cvkd.distill.context import StepContext, StrategyContext
from cvkd.distill.hard_buffer import HardBuffer
from cvkd.distill.kl import kl_per_sample
from cvkd.distill.meta import TeacherWeightNet
from cvkd.distill.mmkd_parts import FeatureMatch, FeatureWeightNet, MetaBatch, MetaWeights
from cvkd.distill.virtual import VIRTUAL_OPTIMIZERS, VirtualSteps, look_ahead, parameter_rules


class MetaMultiTeacher(DistillStrategy):
    """MMKD: soft = mean_i sum_k w_ik T^2 KL(p_ik^T || p_is^T), w_i = softmax(MLP(concat(z_i1..z_iK, z_is))).

    The weight MLP (the authors' `LogitsWeight`) has hidden width (K+1)C/2 and PyTorch's default initialisation;
    with `gamma > 0` the feature term is `sum_ik v_ik MSE_ik / B` with v from `FeatureWeightNet` (Gram matrices of
    the batch's maps; needs `batch_size`, the per-process batch) and the authors' `MatchFeature` adapters
    (`student_dim`, `teacher_dims`; `convs` for their 3-layer embedding). The student's loss treats both weights as
    constants: the weight networks are trained only by `meta_step`, which the trainer calls after every student step.
    Every `meta_interval` steps (and at an epoch's last step) it takes `virtual_steps` virtual steps of the student on
    the weighted distillation loss (`warmup * (beta soft + gamma feature)`, no CE), then one virtual CE step, and
    updates the weight networks with their own Adam (`meta_lr`, `meta_weight_decay`) on the gradient of the CE after
    those steps, differentiated through them (`create_graph`). The steps are virtual: the student is left as it was.
    They are on the step's batch, or with `hard_buffer` on a batch drawn from a buffer of `buffer_size` hard examples.
    `virtual_optimizer`: `sgd` (the paper's derivation; the authors' student optimiser) or `adam` (the step cvkd's Adam
    student actually takes, from its moments); `virtual_lr` replaces the student's learning rates in those steps.
    Under DDP each process learns on its own batch and the hypergradients are averaged, so every copy stays equal.
    """

    name = "mmkd"
    supports_features = True
    has_meta_step = True

    @classmethod
    def from_context(cls, context: StrategyContext) -> dict[str, object]:
        """The weight networks' sizes (classes, the per-process batch) and the feature term's, from the run."""
        return {**super().from_context(context), "num_classes": context.num_classes, "batch_size": context.batch_size,
                "student_dim": context.student_dim, "teacher_dims": list(context.teacher_dims)}

    def __init__(
        self,
        num_teachers: int,
        *,
        num_classes: int | None = None,
        batch_size: int | None = None,
        student_dim: int | None = None,
        teacher_dims: Sequence[int] | None = None,
        meta_interval: int = 5,
        virtual_steps: int = 2,
        virtual_optimizer: str = "sgd",
        virtual_lr: float | None = None,
        hard_buffer: bool = False,
        buffer_size: int = 256,
        meta_lr: float = 1e-3,
        meta_weight_decay: float = 1e-4,
        convs: bool = False,
        **common: float,
    ) -> None:
        super().__init__(num_teachers, **common)
        self.num_classes = self._positive("num_classes", num_classes)
        self.meta_interval = self._positive("meta_interval", meta_interval)
        self.virtual_steps = self.count("virtual_steps", virtual_steps)
        self.buffer_size = self._positive("buffer_size", buffer_size)
        if virtual_optimizer not in VIRTUAL_OPTIMIZERS:
            raise self.config_error(f"virtual_optimizer must be one of {', '.join(VIRTUAL_OPTIMIZERS)}, "
                                    f"got {virtual_optimizer!r}")
        self.virtual_optimizer = virtual_optimizer
        self.virtual_lr = None if virtual_lr is None else self.number("virtual_lr", virtual_lr, positive=True)
        for key, value in (("hard_buffer", hard_buffer), ("convs", convs)):
            if not isinstance(value, bool):
                raise self.config_error(f"{key} must be true or false, got {value!r}")
        self.buffer = HardBuffer(self.buffer_size) if hard_buffer else None
        logits = TeacherWeightNet(num_teachers, self.num_classes, (num_teachers + 1) * self.num_classes // 2,
                                  zero_last=False)
        features = None
        self.feature_match: FeatureMatch | None = None
        if self.gamma:
            if student_dim is None or teacher_dims is None or len(teacher_dims) != num_teachers:
                raise self.config_error(f"gamma > 0 needs student_dim and {num_teachers} teacher_dims (map channels)")
            features = FeatureWeightNet(num_teachers, self._positive("batch_size", batch_size))
            self.feature_match = FeatureMatch(student_dim, list(teacher_dims), convs)
        self.meta = MetaWeights(logits, features, self.number("meta_lr", meta_lr, positive=True),
                                self.number("meta_weight_decay", meta_weight_decay))
        self._synced = False

    def _positive(self, key: str, value: object) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise self.config_error(f"{key} must be a positive integer, got {value!r}")
        return value

    def meta_module(self) -> nn.Module:
        """The weight networks and their Adam moments: trained by `meta_step` only."""
        return self.meta

    def weights(
        self, batch: MetaBatch, logits: Tensor, student_map: Tensor | None, detach: bool = True
    ) -> tuple[Tensor, Tensor | None]:
        """Teacher weights w (K, B) of the KL terms and, with a feature term, v (K, B) of the feature terms.

        The networks read the student's logits (and map) detached, as the authors' do, unless `detach` is False
        (the look-ahead, where the gradient treats the weights as constants by itself).
        """
        if logits.shape[-1] != self.num_classes:
            raise ValueError(f"strategy {self.name!r} was built for {self.num_classes} classes, got {logits.shape[-1]}")
        weights = self.meta.logits(batch.teacher_logits, logits.detach() if detach else logits).exp()
        if self.meta.features is None:
            return weights, None
        return weights, self.meta.features(batch.teacher_maps, student_map.detach() if detach else student_map)

    def divergences(self, batch: MetaBatch, logits: Tensor) -> Tensor:
        """D_ik = T^2 KL(p_ik^T || p_is^T), (K, B)."""
        return self.temperature**2 * kl_per_sample(batch.teacher_logits, logits, self.temperature)

    def distill_terms(self, inputs: DistillInputs) -> DistillTerms:
        """The weighted KL (and feature) terms with the weight networks' outputs as constants."""
        batch = MetaBatch({}, inputs.labels, inputs.teacher_logits, inputs.teacher_features)
        errors = None
        if self.gamma:
            if inputs.student_features is None or inputs.teacher_features is None:
                raise self.config_error("gamma > 0 needs student_features and teacher_features in every call")
            errors = self.feature_match(inputs.student_features, inputs.teacher_features)
        with torch.no_grad():
            weights, feature_weights = self.weights(batch, inputs.student_logits, inputs.student_features)
        soft = per_sample_weighted_mean(self.divergences(batch, inputs.student_logits), weights)
        feature = None if errors is None else (feature_weights * errors).sum() / errors.shape[1]
        return DistillTerms(soft=soft, teacher_weights=weights, feature=feature)

    def is_meta_step(self, step: int, steps_per_epoch: int) -> bool:
        """The authors' schedule: every `meta_interval` steps from the first, and the epoch's last step."""
        return step % self.meta_interval == 0 or step == steps_per_epoch - 1

    def meta_step(self, context: StepContext) -> None:
        """Feed the hard buffer; at a meta step, update the weight networks by the averaged hypergradient."""
        batch = MetaBatch(dict(context.inputs), context.labels, context.teacher_logits,
                          context.teacher_features if self.gamma else None)
        if self.buffer is not None:
            self.buffer.add(batch.items(), context.student_logits.argmax(dim=1) != context.labels)
        if not self.is_meta_step(context.step, context.steps_per_epoch):
            return
        if context.distributed and not self._synced:  # DDP leaves these out: start every copy from rank 0's
            for tensor in (*self.meta.parameters(), *self.meta.buffers()):
                dist.broadcast(tensor.data, src=0)
            self._synced = True
        if self.buffer is not None:
            batch = MetaBatch.from_items(self.buffer.sample(len(context.labels)))
        grads = self.hypergradient(context.student, context.optimizer, batch)
        if context.distributed:
            flat = torch.cat([g.reshape(-1) for g in grads])
            dist.all_reduce(flat)
            flat /= dist.get_world_size()
            grads = [part.view_as(g) for part, g in zip(flat.split([g.numel() for g in grads]), grads)]
        if all(bool(torch.isfinite(g).all()) for g in grads):  # the same verdict on every process
            self.meta.update(grads)

    def hypergradient(self, student: nn.Module, optimizer: torch.optim.Optimizer, batch: MetaBatch) -> list[Tensor]:
        """d CE(after the virtual steps) / d (weight-network parameters), one tensor per `self.meta.parameters()`.

        The virtual steps move every parameter of the student (and of the feature adapters) that `optimizer` steps,
        with its learning rate and weight decay there (`sgd`), or its Adam moments too (`adam`); buffers (BatchNorm
        statistics) are copies, so the real student and adapters are left exactly as they were.
        """
        modules = {"student": student, **({"match": self.feature_match} if self.feature_match is not None else {})}
        named = {f"{key}.{n}": p for key, m in modules.items() for n, p in m.named_parameters() if p.requires_grad}
        rules = parameter_rules(optimizer, named)
        buffers = {key: {n: b.clone() for n, b in m.named_buffers()} for key, m in modules.items()}

        def state(current: dict[str, Tensor], key: str) -> dict[str, Tensor]:
            own = {name[len(key) + 1:]: p for name, p in current.items() if name.startswith(key + ".")}
            return {**own, **buffers[key]}

        def matching(current: dict[str, Tensor]) -> tuple[list[Tensor], list[Tensor]]:
            # d/d params of warm-up * (beta sum_ik w_ik D_ik + gamma sum_ik v_ik MSE_ik) / B with w, v held constant
            logits, student_map = functional_call(student, state(current, "student"), (batch.inputs,))
            weights, feature_weights = self.weights(batch, logits, student_map, detach=False)
            scale = self.warmup_factor / logits.shape[0]
            outputs, grad_outputs = [self.divergences(batch, logits)], [self.beta * scale * weights]
            if self.feature_match is not None:
                match = state(current, "match")
                outputs.append(functional_call(self.feature_match, match, (student_map, batch.teacher_maps)))
                grad_outputs.append(self.gamma * scale * feature_weights)
            return outputs, grad_outputs

        def cross_entropy(current: dict[str, Tensor]) -> Tensor:
            logits, _ = functional_call(student, state(current, "student"), (batch.inputs,))
            return F.cross_entropy(logits, batch.labels)

        def cross_entropy_step(current: dict[str, Tensor]) -> tuple[list[Tensor], list[None]]:
            return [cross_entropy(current)], [None]

        steps = VirtualSteps(self.virtual_optimizer, rules, self.virtual_lr)
        stepped = {name: p for name, p in named.items() if name in rules}
        objectives = [matching] * self.virtual_steps + [cross_entropy_step]
        meta_loss = look_ahead(stepped, objectives, cross_entropy, steps)
        parameters = list(self.meta.parameters())
        grads = torch.autograd.grad(meta_loss, parameters, allow_unused=True)
        return [torch.zeros_like(p) if g is None else g.detach() for p, g in zip(parameters, grads)]

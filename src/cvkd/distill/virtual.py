"""Differentiable look-ahead: virtual SGD or Adam steps of a student whose graph is kept, for a hypergradient.

Parameters are plain tensors keyed by name (as `torch.func.functional_call` takes them); a step returns new tensors
and never touches the module's own parameters, so the real student is left exactly as it was.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import torch
from torch import Tensor

VIRTUAL_OPTIMIZERS = ("sgd", "adam")

Params = dict[str, Tensor]
LossOf = Callable[[Params], Tensor]
GradientOf = Callable[[Params], tuple[Sequence[Tensor], Sequence[Tensor | None]]]
"""Parameters -> (outputs, weights): the step's gradient is sum_j weights_j . d outputs_j / d params (None: 1)."""


@dataclass(frozen=True)
class ParameterRule:
    """How the student's optimiser steps one parameter: its group's settings and (Adam) its moments so far."""

    lr: float
    weight_decay: float
    betas: tuple[float, float]
    eps: float
    exp_avg: Tensor | None
    exp_avg_sq: Tensor | None
    step: int


def parameter_rules(optimizer: torch.optim.Optimizer, parameters: Mapping[str, Tensor]) -> dict[str, ParameterRule]:
    """The rule of every named parameter `optimizer` steps (those it does not step are left out)."""
    groups = {id(p): group for group in optimizer.param_groups for p in group["params"]}
    rules = {}
    for name, parameter in parameters.items():
        group = groups.get(id(parameter))
        if group is None:
            continue
        state = optimizer.state.get(parameter, {})
        rules[name] = ParameterRule(
            lr=float(group["lr"]), weight_decay=float(group.get("weight_decay", 0.0)),
            betas=tuple(group.get("betas", (0.9, 0.999))), eps=float(group.get("eps", 1e-8)),
            exp_avg=state.get("exp_avg"), exp_avg_sq=state.get("exp_avg_sq"), step=int(state.get("step", 0)),
        )
    return rules


def adam_step(
    param: Tensor, grad: Tensor, exp_avg: Tensor, exp_avg_sq: Tensor, step: int, lr: float, weight_decay: float,
    betas: tuple[float, float], eps: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """Adam's step `step` (1-based) as torch.optim.Adam takes it (L2 decay added to the gradient), out of place.

    Returns the new (param, exp_avg, exp_avg_sq); differentiable (the square root is taken of max(v, tiny)).
    """
    if weight_decay:
        grad = grad + weight_decay * param
    beta1, beta2 = betas
    exp_avg = beta1 * exp_avg + (1.0 - beta1) * grad
    exp_avg_sq = beta2 * exp_avg_sq + (1.0 - beta2) * grad * grad
    denominator = exp_avg_sq.clamp_min(torch.finfo(exp_avg_sq.dtype).tiny).sqrt() / math.sqrt(1.0 - beta2**step) + eps
    return param - (lr / (1.0 - beta1**step)) * exp_avg / denominator, exp_avg, exp_avg_sq


class VirtualSteps:
    """Successive differentiable steps of one optimiser kind over the parameters named in `rules`.

    `sgd`: p - lr (g + wd p). `adam`: `adam_step`, starting from the student optimiser's moments and step count.
    `lr` (when given) replaces every parameter's own learning rate.
    """

    def __init__(self, kind: str, rules: Mapping[str, ParameterRule], lr: float | None = None) -> None:
        if kind not in VIRTUAL_OPTIMIZERS:
            raise ValueError(f"virtual optimiser must be one of {', '.join(VIRTUAL_OPTIMIZERS)}, got {kind!r}")
        self.kind, self.rules, self.lr = kind, dict(rules), lr
        self.moments = {name: (rule.exp_avg, rule.exp_avg_sq, rule.step) for name, rule in self.rules.items()}

    def step(self, params: Params, grads: Mapping[str, Tensor | None]) -> Params:
        """The parameters after one step on `grads` (a parameter without a gradient stays where it is)."""
        updated = {}
        for name, param in params.items():
            grad, rule = grads.get(name), self.rules[name]
            lr = rule.lr if self.lr is None else self.lr
            if grad is None:
                updated[name] = param
            elif self.kind == "sgd":
                updated[name] = param - lr * (grad + rule.weight_decay * param if rule.weight_decay else grad)
            else:
                exp_avg, exp_avg_sq, count = self.moments[name]
                zeros = torch.zeros_like(param)
                updated[name], exp_avg, exp_avg_sq = adam_step(
                    param, grad, zeros if exp_avg is None else exp_avg, zeros if exp_avg_sq is None else exp_avg_sq,
                    count + 1, lr, rule.weight_decay, rule.betas, rule.eps,
                )
                self.moments[name] = (exp_avg, exp_avg_sq, count + 1)
        return updated


def look_ahead(params: Params, objectives: Sequence[GradientOf], final_loss: LossOf, steps: VirtualSteps) -> Tensor:
    """`final_loss` after one virtual step on each of `objectives` in turn, from `params` (taken as constants).

    A step's gradient is the vector-Jacobian product of its outputs with their weights, so weights that depend on the
    parameters (a weight network reading the student's logits) are constants of that gradient, yet their dependence
    on the parameters and on their own inputs stays in the graph. Every step keeps its graph (`create_graph=True`):
    the result differentiates exactly, through every step, with respect to whatever the weights depend on.
    """
    current = {name: param.detach().requires_grad_(True) for name, param in params.items()}
    for objective in objectives:
        names = list(current)
        outputs, weights = objective(current)
        grads = torch.autograd.grad(list(outputs), [current[n] for n in names], grad_outputs=list(weights),
                                    create_graph=True, allow_unused=True)
        current = steps.step(current, dict(zip(names, grads)))
    return final_loss(current)

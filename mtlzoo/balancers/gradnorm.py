"""GradNorm (Chen et al., ICML 2018): learn loss weights that equalise training rates."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from mtlzoo.balancers.base import LossBalancer, StepContext
from mtlzoo.balancers.registry import register_balancer


def last_shared_weight(shared: list[Tensor]) -> Tensor:
    """The last shared parameter with at least two dimensions (the last shared layer's weight)."""
    for p in reversed(shared):
        if p.ndim >= 2 and p.requires_grad:
            return p
    raise ValueError("GradNorm needs a shared weight tensor (ndim >= 2) in shared_parameters(); found none")


@register_balancer("gradnorm")
class GradNorm(LossBalancer):
    """GradNorm: loss ``sum_t w_t L_t``; ``w`` descends ``sum_t |w_t ||grad_W L_t|| - mean * r_t^alpha|``.

    ``W`` is the last shared layer's weight, ``r_t = (L_t / L_t(0)) / mean_s (L_s / L_s(0))`` the
    relative inverse training rate, ``alpha = 1.5`` (the paper's NYUv2 value). The weights are
    ``nn.Parameter``s renormalised to sum to T before every step: call ``bind(task_names)`` and
    add ``balancer.parameters()`` to the optimizer. The balance-loss gradient is written
    analytically (the target is a constant), costing one backward per task to ``W`` only.
    """

    def __init__(self, alpha: float = 1.5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.alpha = float(alpha)

    def _init_state(self, num_tasks: int) -> None:
        self.loss_weights = nn.Parameter(torch.ones(num_tasks))
        self.register_buffer("initial", torch.ones(num_tasks))
        self.register_buffer("has_initial", torch.zeros((), dtype=torch.bool))

    def total_loss(self, ctx: StepContext) -> tuple[Tensor, Tensor]:
        T = len(ctx.tasks)
        if self.initial.device != ctx.values.device:
            self.to(ctx.values.device)
        with torch.no_grad():
            self.loss_weights.clamp_(min=1e-4)
            self.loss_weights.mul_(T / self.loss_weights.sum())
        w = self.loss_weights.detach()
        layer = last_shared_weight(ctx.shared)
        norms = torch.stack([_grad_norm(loss, layer) for loss in ctx.task_losses])
        self.initial.copy_(torch.where(self.has_initial, self.initial, ctx.values))
        self.has_initial.fill_(True)
        ratio = ctx.values / self.initial.clamp_min(1e-12)
        rate = ratio / ratio.mean().clamp_min(1e-12)
        weighted = w * norms
        target = weighted.mean() * rate.pow(self.alpha)
        grad = torch.sign(weighted - target) * norms
        if self.loss_weights.grad is None:
            self.loss_weights.grad = grad
        else:
            self.loss_weights.grad.add_(grad)
        return (w * ctx.losses).sum(), w


def _grad_norm(loss: Tensor, layer: Tensor) -> Tensor:
    if not loss.requires_grad:
        return torch.zeros((), device=layer.device)
    (g,) = torch.autograd.grad(loss, layer, retain_graph=True, allow_unused=True)
    return g.norm() if g is not None else torch.zeros((), device=layer.device)

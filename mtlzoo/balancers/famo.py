"""FAMO (Liu et al., NeurIPS 2023): fast adaptive multitask optimisation, O(1) in the number of tasks."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from mtlzoo.balancers.base import LossBalancer, StepContext
from mtlzoo.balancers.registry import register_balancer
from mtlzoo.balancers.solvers import adam_step


@register_balancer("famo")
class FAMO(LossBalancer):
    """FAMO: minimise ``sum_t z_t log(L_t) / c`` with ``z = softmax(xi)``, ``c = sum_t z_t / L_t``.

    The logits ``xi`` take an Adam step (``lr=0.025``, ``weight_decay=0.001``, the paper's
    defaults) along ``J_softmax^T (log L_prev - log L_now)``. The reference code re-evaluates the
    losses on the same batch after the model step; here the next step's losses stand in for that
    (no extra forward), so the weights lag one step.
    """

    def __init__(self, lr: float = 0.025, weight_decay: float = 0.001, min_losses: float = 0.0,
                 eps: float = 1e-8, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lr, self.weight_decay, self.min_losses, self.eps = lr, weight_decay, min_losses, eps

    def _init_state(self, num_tasks: int) -> None:
        self.register_buffer("logits", torch.zeros(num_tasks))
        self.register_buffer("prev", torch.ones(num_tasks))
        self.register_buffer("has_prev", torch.zeros((), dtype=torch.bool))
        self.register_buffer("adam_m", torch.zeros(num_tasks))
        self.register_buffer("adam_v", torch.zeros(num_tasks))
        self.register_buffer("adam_step", torch.zeros((), dtype=torch.long))

    def total_loss(self, ctx: StepContext) -> tuple[Tensor, Tensor]:
        if self.logits.device != ctx.values.device:
            self.to(ctx.values.device)
        shifted = ctx.values - self.min_losses + self.eps
        delta = torch.log(self.prev - self.min_losses + self.eps) - torch.log(shifted)
        z = torch.softmax(self.logits, 0)
        grad = z * (delta - (z * delta).sum())
        active = self.has_prev & torch.isfinite(grad).all()
        state = {"m": self.adam_m, "v": self.adam_v, "step": self.adam_step}
        self.logits.copy_(adam_step(self.logits, torch.nan_to_num(grad), state, self.lr, active,
                                    weight_decay=self.weight_decay))
        self.prev.copy_(ctx.values)
        self.has_prev.fill_(True)
        z = torch.softmax(self.logits, 0)
        d = ctx.losses - self.min_losses + self.eps
        c = (z / d.detach()).sum()
        return (z * torch.log(d) / c).sum(), (z / (c * d.detach()))

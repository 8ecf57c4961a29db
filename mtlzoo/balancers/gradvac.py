"""GradVac (Wang et al., ICLR 2021): gradient vaccine towards adaptive cosine-similarity targets."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from mtlzoo.balancers.base import GramianBalancer, StepContext
from mtlzoo.balancers.pcgrad import random_orders
from mtlzoo.balancers.registry import register_balancer
from mtlzoo.balancers.solvers import normalise


@register_balancer("gradvac")
class GradVac(GramianBalancer):
    """GradVac: when ``cos(gtilde_i, g_j) < phi_ij`` add ``g_j`` so the cosine reaches the target.

    The coefficient is ``||gtilde_i|| (phi sqrt(1 - c^2) - c sqrt(1 - phi^2)) / (||g_j|| sqrt(1 - phi^2))``
    and the targets follow ``phi_ij <- (1 - beta) phi_ij + beta c`` (``beta = 0.01`` as in the
    paper, targets start at 0). Applied to the whole shared gradient (the paper's model-level
    variant), on the Gramian; heads keep their own gradients.
    """

    scale_heads = False

    def __init__(self, beta: float = 0.01, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 0 <= beta <= 1:
            raise ValueError(f"beta must be in [0, 1], got {beta}")
        self.beta = float(beta)

    def _init_state(self, num_tasks: int) -> None:
        self.register_buffer("targets", torch.zeros(num_tasks, num_tasks, dtype=torch.float64))

    def weights(self, gramian: Tensor, ctx: StepContext) -> Tensor:
        gn = normalise(gramian)
        T = gn.shape[0]
        rho = self.targets.to(gn.device)
        rows = torch.arange(T, device=gn.device)
        orders = random_orders(T, gn.device, exclude_self=True)[:, : T - 1]
        coef = torch.eye(T, dtype=gn.dtype, device=gn.device)
        norms = gn.diagonal().clamp_min(0).sqrt()
        tiny = 1e-30
        for k in range(T - 1):
            j = orders[:, k]
            own_norm = ((coef @ gn) * coef).sum(1).clamp_min(0).sqrt()
            cos = (coef @ gn)[rows, j] / (own_norm * norms[j]).clamp_min(tiny)
            target = rho[rows, j]
            sin_t = (1 - target.square()).clamp_min(0).sqrt()
            step = own_norm * (target * (1 - cos.square()).clamp_min(0).sqrt() - cos * sin_t)
            step = step / (norms[j] * sin_t).clamp_min(tiny)
            apply = (cos < target) & (norms[j] > 0) & (own_norm > 0)
            coef = coef.index_put((rows, j), torch.where(apply, step, 0.0), accumulate=True)
            rho = rho.index_put((rows, j), (1 - self.beta) * target + self.beta * cos)
        self.targets = torch.where(torch.isfinite(rho).all(), rho, self.targets.to(gn.device))
        return coef.sum(0)

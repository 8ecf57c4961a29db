"""DB-MTL (Lin et al., 2023): dual balancing of loss scales (log losses) and gradient magnitudes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from mtlzoo.balancers.base import JacobianBalancer
from mtlzoo.balancers.contract import StepContext
from mtlzoo.balancers.registry import register_balancer


@register_balancer("db_mtl")
class DBMTL(JacobianBalancer):
    """DB-MTL: gradients of ``log L_t``, averaged over steps (``g <- b_k g + (1 - b_k) grad``,
    ``b_k = beta / k^beta_sigma``), each rescaled to the largest norm: ``sum_t max_s ||g_s|| / ||g_t|| g_t``.

    Defaults ``beta=0.9``, ``beta_sigma=0.5`` as in the authors' code. The moving average is
    Jacobian-sized state (T x shared parameters). Heads get the gradient of ``log L_t``.
    """

    scale_heads = False

    def __init__(self, beta: float = 0.9, beta_sigma: float = 0.5, eps: float = 1e-8, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.beta, self.beta_sigma, self.eps = beta, beta_sigma, eps
        self.averages: list[Tensor] = []

    def _init_state(self, num_tasks: int) -> None:
        self.register_buffer("step", torch.zeros((), dtype=torch.float64))

    def prepare_losses(self, losses: Tensor) -> Tensor:
        return torch.log(losses + self.eps)

    def _set_averages(self, tensors: list[Tensor]) -> None:
        for i in range(len(self.averages)):
            delattr(self, f"average_{i}")
        for i, t in enumerate(tensors):
            self.register_buffer(f"average_{i}", t)
        self.averages = [getattr(self, f"average_{i}") for i in range(len(tensors))]

    def _prepare_load(self, state_dict: Mapping[str, Any]) -> None:
        shapes = [state_dict[f"average_{i}"] for i in range(len(state_dict)) if f"average_{i}" in state_dict]
        self._set_averages([torch.zeros_like(t) for t in shapes])

    def aggregate(self, jacobian: Any, gramian: Tensor, ctx: StepContext) -> tuple[list[Tensor], Tensor]:
        blocks = jacobian.blocks
        if [a.shape for a in self.averages] != [b.shape for b in blocks]:
            self._set_averages([torch.zeros_like(b) for b in blocks])
            self.step.zero_()
        finite = ctx.finite & torch.isfinite(gramian).all()
        self.step = self.step.to(gramian.device) + finite.double()
        beta = (self.beta / self.step.clamp_min(1).pow(self.beta_sigma)).float()
        new = [torch.where(finite, b + beta.to(b.dtype) * (a.to(b.device) - b), a.to(b.device))
               for a, b in zip(self.averages, blocks, strict=True)]
        self._set_averages(new)
        sq = sum(a.double().square().sum(1) for a in new)
        norms = sq.sqrt()
        alpha = norms.max() / (norms + self.eps)
        return [alpha.to(a.dtype) @ a for a in new], alpha

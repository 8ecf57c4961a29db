"""DB-MTL (Lin et al., 2023): dual balancing of loss scales (log losses) and gradient magnitudes."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mtlzoo.balancers.base import JacobianBalancer
from mtlzoo.balancers.contract import StepContext
from mtlzoo.balancers.host import HostState
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
        self._host = HostState(["step"])

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
        if self.step.device != gramian.device:
            self.step = self.step.to(gramian.device)
        # the one host round trip: whether the step is finite (the engine folds the Gramian's finiteness into
        # ctx.finite), and the step count from the host copy
        (finite,), (step,) = self._host.fetch(self, ctx.finite)
        if bool(finite):
            step = float(step) + 1
            self.step.fill_(step)
            beta = float(np.float32(self.beta / _pow(max(step, 1.0), self.beta_sigma)))  # float32, as before
            self._set_averages([b + beta * (a.to(b.device) - b) for a, b in zip(self.averages, blocks, strict=True)])
        self._host.remember(self, [step])
        new = self.averages
        sq = new[0].double().square().sum(1)
        for a in new[1:]:
            sq = sq + a.double().square().sum(1)
        norms = sq.sqrt()
        alpha = norms.max() / (norms + self.eps)
        return [alpha.to(a.dtype) @ a for a in new], alpha


def _pow(x: float, exponent: float) -> float:
    """``x ** exponent`` as torch computes it for a tensor (a square root for 0.5)."""
    return math.sqrt(x) if exponent == 0.5 else x**exponent

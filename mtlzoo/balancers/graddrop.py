"""GradDrop (Chen et al., NeurIPS 2020): keep one sign per coordinate, drawn by sign purity."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from mtlzoo.balancers.base import JacobianBalancer
from mtlzoo.balancers.contract import StepContext
from mtlzoo.balancers.registry import register_balancer


@register_balancer("graddrop")
class GradDrop(JacobianBalancer):
    """GradDrop: per coordinate, ``P = (1 + sum_t g_t / sum_t |g_t|) / 2``; with ``U ~ U(0, 1)`` keep
    the positive task gradients where ``P > U`` and the negative ones where ``P < U``.

    Decided per coordinate (not per tensor). ``leak`` in [0, 1] lets that fraction of every
    gradient through unmasked (0 = the paper's default). The paper applies it to the shared
    activations: ``level="features"``. The reported weights are each task's kept fraction of
    coordinates. Heads keep their own gradients.
    """

    scale_heads = False

    def __init__(self, leak: float = 0.0, level: str = "features", **kwargs: Any) -> None:
        super().__init__(level=level, **kwargs)
        if not 0 <= leak <= 1:
            raise ValueError(f"leak must be in [0, 1], got {leak}")
        self.leak = float(leak)

    def aggregate(self, jacobian: Any, gramian: Tensor, ctx: StepContext) -> tuple[list[Tensor], Tensor]:
        out, kept, total = [], torch.zeros(jacobian.num_tasks, device=gramian.device), 0
        for block in jacobian.blocks:
            purity = 0.5 * (1 + block.sum(0) / block.abs().sum(0).clamp_min(torch.finfo(block.dtype).tiny))
            u = torch.rand_like(purity)
            mask = ((purity > u) & (block > 0)) | ((purity < u) & (block < 0))
            masked = block * (self.leak + (1 - self.leak) * mask.to(block.dtype))
            out.append(masked.sum(0))
            kept += mask.sum(1).to(kept.dtype)
            total += block.shape[1]
        return out, (kept / max(total, 1)).double()

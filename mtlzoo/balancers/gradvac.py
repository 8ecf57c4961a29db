"""GradVac (Wang et al., ICLR 2021): gradient vaccine towards adaptive cosine-similarity targets.

Changed 2026-11-26 (issue 12): ``granularity="tensor"`` adds the paper's block-wise targets (one
target per task pair and shared parameter tensor); the default stays the whole-model targets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from mtlzoo.balancers.base import JacobianBalancer
from mtlzoo.balancers.contract import StepContext
from mtlzoo.balancers.pcgrad import random_orders
from mtlzoo.balancers.registry import register_balancer

GRANULARITIES = ("model", "tensor")
_CHUNK = 1 << 22  # columns per float64 copy when forming a block's Gramian
_TINY = 1e-30


@register_balancer("gradvac")
class GradVac(JacobianBalancer):
    """GradVac: when ``cos(gtilde_i, g_j) < phi_ij`` add ``g_j`` so the cosine reaches the target.

    The coefficient is ``||gtilde_i|| (phi sqrt(1 - c^2) - c sqrt(1 - phi^2)) / (||g_j|| sqrt(1 - phi^2))``
    and the targets follow ``phi_ij <- (1 - beta) phi_ij + beta c`` (``beta = 0.01`` as in the paper,
    targets start at 0; ``c`` is the cosine before the vaccine). Task i visits the other tasks in a
    random order, the same for every block. ``granularity="model"`` treats the whole shared gradient
    as one vector (needs only the Gramian); ``"tensor"`` runs the vaccine on every shared parameter
    tensor separately with its own targets (the paper's per-layer variant at its finest grain,
    LibMTL's ``all_matrix``: a layer's weight and bias get separate targets); it needs
    ``level="parameters"`` (the engine reduces only the whole feature Gramian across ranks). The
    reported weights are then the mean over blocks. Heads keep their own gradients.
    """

    scale_heads = False

    def __init__(self, beta: float = 0.01, granularity: str = "model", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 0 <= beta <= 1:
            raise ValueError(f"beta must be in [0, 1], got {beta}")
        if granularity not in GRANULARITIES:
            raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
        if granularity == "tensor" and self.level != "parameters":
            raise ValueError(f"granularity='tensor' sets targets per shared parameter tensor; it needs "
                             f"level='parameters', got level={self.level!r}")
        self.beta, self.granularity = float(beta), granularity
        self.needs = replace(self.needs, jacobian=granularity == "tensor")

    def _init_state(self, num_tasks: int) -> None:
        shape = (num_tasks, num_tasks) if self.granularity == "model" else (0, num_tasks, num_tasks)
        self.register_buffer("targets", torch.zeros(shape, dtype=torch.float64))

    def _prepare_load(self, state_dict: Mapping[str, Any]) -> None:
        saved = state_dict.get("targets")
        if self.granularity == "tensor" and saved is not None and saved.dim() == 3:
            self.targets = torch.zeros_like(saved, dtype=torch.float64)

    def aggregate(self, jacobian: Any, gramian: Tensor, ctx: StepContext) -> tuple[list[Tensor], Tensor]:
        T = gramian.shape[0]
        orders = random_orders(T, gramian.device, exclude_self=True)[:, : T - 1]
        if self.granularity == "model":
            coef, rho = vaccinate(gramian[None], self.targets.to(gramian.device)[None], orders, self.beta)
            self.targets = torch.where(torch.isfinite(rho).all() & ctx.finite, rho[0], self.targets.to(rho))
            weights = coef[0].sum(0)
            return jacobian.combine(weights), weights
        if self.targets.shape[0] != len(ctx.shared):
            self.targets = torch.zeros(len(ctx.shared), T, T, dtype=torch.float64, device=gramian.device)
        grams = torch.stack([_gramian(block) for block in jacobian.blocks])
        grams = torch.where(ctx.finite, grams, torch.eye(T, dtype=grams.dtype, device=grams.device))
        index = torch.tensor(jacobian.index, dtype=torch.long, device=gramian.device)
        targets = self.targets.to(gramian.device)
        coef, rho = vaccinate(grams, targets[index], orders, self.beta)
        self.targets = torch.where(torch.isfinite(rho).all() & ctx.finite, targets.index_put((index,), rho), targets)
        weights = coef.sum(1)  # (blocks, T)
        combined = [w.to(block.dtype) @ block for w, block in zip(weights, jacobian.blocks, strict=True)]
        return combined, weights.mean(0)


def _gramian(block: Tensor) -> Tensor:
    """``block block^T`` in float64 for one ``(T, n)`` block, a bounded number of columns at a time."""
    gram = torch.zeros(block.shape[0], block.shape[0], dtype=torch.float64, device=block.device)
    for part in block.split(_CHUNK, dim=1):
        b = part.double()
        gram.addmm_(b, b.T)
    return gram


def vaccinate(grams: Tensor, targets: Tensor, orders: Tensor, beta: float) -> tuple[Tensor, Tensor]:
    """GradVac on a batch of blocks: ``(K, T, T)`` Gramians and targets -> coefficients and new targets.

    ``coef[k, i, j]`` is the weight of ``g_j`` in the vaccinated ``gtilde_i`` of block k (so the
    block's update is ``coef[k].sum(0) @ J_k``); row i visits the tasks ``orders[i]``. Branch-free.
    """
    K, T = grams.shape[:2]
    scale = grams.diagonal(dim1=1, dim2=2).mean(1).clamp_min(torch.finfo(torch.float64).tiny)
    gn = grams / scale[:, None, None]  # per-block normalisation: cosines and coefficients are scale-free
    rows = torch.arange(T, device=gn.device)
    blocks = torch.arange(K, device=gn.device)[:, None]
    coef = torch.eye(T, dtype=gn.dtype, device=gn.device).expand(K, T, T).clone()
    norms = gn.diagonal(dim1=1, dim2=2).clamp_min(0).sqrt()
    rho = targets
    for k in range(orders.shape[1]):
        j = orders[:, k]
        cg = coef @ gn
        own_norm = (cg * coef).sum(2).clamp_min(0).sqrt()
        cos = cg[:, rows, j] / (own_norm * norms[:, j]).clamp_min(_TINY)
        target = rho[:, rows, j]
        sin_t = (1 - target.square()).clamp_min(0).sqrt()
        step = own_norm * (target * (1 - cos.square()).clamp_min(0).sqrt() - cos * sin_t)
        step = step / (norms[:, j] * sin_t).clamp_min(_TINY)
        apply = (cos < target) & (norms[:, j] > 0) & (own_norm > 0)
        coef = coef.index_put((blocks, rows, j), torch.where(apply, step, 0.0), accumulate=True)
        rho = rho.index_put((blocks, rows, j), (1 - beta) * target + beta * cos)
    return coef, rho

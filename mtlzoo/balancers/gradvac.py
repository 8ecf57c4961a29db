"""GradVac (Wang et al., ICLR 2021): gradient vaccine towards adaptive cosine-similarity targets.

Changed 2026-11-26 (issue 12): ``granularity="tensor"`` adds the paper's block-wise targets (one
target per task pair and shared parameter tensor); the default stays the whole-model targets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mtlzoo.balancers.base import JacobianBalancer
from mtlzoo.balancers.contract import StepContext
from mtlzoo.balancers.host import HostState, to_device, to_host
from mtlzoo.balancers.pcgrad import order_keys
from mtlzoo.balancers.registry import register_balancer
from mtlzoo.balancers.solvers import random_orders_from_keys

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
        self._host = HostState(["targets"])

    def _init_state(self, num_tasks: int) -> None:
        shape = (num_tasks, num_tasks) if self.granularity == "model" else (0, num_tasks, num_tasks)
        self.register_buffer("targets", torch.zeros(shape, dtype=torch.float64))

    def _prepare_load(self, state_dict: Mapping[str, Any]) -> None:
        saved = state_dict.get("targets")
        if self.granularity == "tensor" and saved is not None and saved.dim() == 3:
            self.targets = torch.zeros_like(saved, dtype=torch.float64)

    def aggregate(self, jacobian: Any, gramian: Tensor, ctx: StepContext) -> tuple[list[Tensor], Tensor]:
        T = gramian.shape[0]
        keys = order_keys(T, gramian.device)
        if self.granularity == "model":
            if self.targets.device != gramian.device:
                self.targets = self.targets.to(gramian.device)
            (gram, keys, finite), (targets,) = self._host.fetch(self, gramian, keys, ctx.finite)
            coef, rho = vaccinate(gram[None], targets[None], _orders(keys, T), self.beta)
            targets = rho[0] if np.isfinite(rho).all() and bool(finite) else targets
            weights, targets_d = to_device(gramian, coef[0].sum(0), targets)
            self._host.write(self, [targets], [targets_d])
            return jacobian.combine(weights), weights
        if self.targets.shape[0] != len(ctx.shared):
            self.targets = torch.zeros(len(ctx.shared), T, T, dtype=torch.float64, device=gramian.device)
        grams = torch.stack([_gramian(block) for block in jacobian.blocks])
        grams, keys, finite, targets = to_host(grams, keys, ctx.finite, self.targets.to(gramian.device))
        grams = grams if bool(finite) else np.broadcast_to(np.eye(T), grams.shape)
        coef, rho = vaccinate(grams, targets[jacobian.index], _orders(keys, T), self.beta)
        if np.isfinite(rho).all() and bool(finite):
            targets = targets.copy()
            targets[jacobian.index] = rho
        weights = coef.sum(1)  # (blocks, T)
        weights_d, mean_d, targets_d = to_device(gramian, weights, weights.mean(0), targets)
        self.targets = targets_d.view(targets.shape).clone()  # owns its memory (checkpoints)
        weights_d = weights_d.view(weights.shape)
        combined = [w.to(block.dtype) @ block for w, block in zip(weights_d, jacobian.blocks, strict=True)]
        return combined, mean_d


def _orders(keys: np.ndarray, T: int) -> np.ndarray:
    """Task i visits the other tasks in a random order (the last column, task i itself, is dropped)."""
    return random_orders_from_keys(keys.reshape(T, T), exclude_self=True)[:, : T - 1]


def _gramian(block: Tensor) -> Tensor:
    """``block block^T`` in float64 for one ``(T, n)`` block, a bounded number of columns at a time."""
    gram = torch.zeros(block.shape[0], block.shape[0], dtype=torch.float64, device=block.device)
    for part in block.split(_CHUNK, dim=1):
        b = part.double()
        gram.addmm_(b, b.T)
    return gram


def vaccinate(grams: np.ndarray, targets: np.ndarray, orders: np.ndarray, beta: float
              ) -> tuple[np.ndarray, np.ndarray]:
    """GradVac on a batch of blocks: ``(K, T, T)`` Gramians and targets -> coefficients and new targets.

    ``coef[k, i, j]`` is the weight of ``g_j`` in the vaccinated ``gtilde_i`` of block k (so the
    block's update is ``coef[k].sum(0) @ J_k``); row i visits the tasks ``orders[i]``. Host arrays (float64).
    """
    K, T = grams.shape[:2]
    with np.errstate(all="ignore"):
        scale = np.maximum(np.diagonal(grams, axis1=1, axis2=2).mean(1), np.finfo(np.float64).tiny)
        gn = grams / scale[:, None, None]  # per-block normalisation: cosines and coefficients are scale-free
        rows = np.arange(T)
        blocks = np.arange(K)[:, None]
        coef = np.broadcast_to(np.eye(T), (K, T, T)).copy()
        norms = np.sqrt(np.maximum(np.diagonal(gn, axis1=1, axis2=2), 0))
        rho = np.array(targets, dtype=np.float64)
        for k in range(orders.shape[1]):
            j = orders[:, k]
            cg = coef @ gn
            own_norm = np.sqrt(np.maximum((cg * coef).sum(2), 0))
            cos = cg[:, rows, j] / np.maximum(own_norm * norms[:, j], _TINY)
            target = rho[:, rows, j]
            sin_t = np.sqrt(np.maximum(1 - np.square(target), 0))
            step = own_norm * (target * np.sqrt(np.maximum(1 - np.square(cos), 0)) - cos * sin_t)
            step = step / np.maximum(norms[:, j] * sin_t, _TINY)
            apply = (cos < target) & (norms[:, j] > 0) & (own_norm > 0)
            coef[blocks, rows, j] += np.where(apply, step, 0.0)
            rho[blocks, rows, j] = (1 - beta) * target + beta * cos
    return coef, rho

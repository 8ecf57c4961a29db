"""IMTL-G (Liu et al., ICLR 2021): the update has equal projections on every task's unit gradient."""

from __future__ import annotations

import torch
from torch import Tensor

from mtlzoo.balancers.base import GramianBalancer
from mtlzoo.balancers.contract import StepContext
from mtlzoo.balancers.registry import register_balancer
from mtlzoo.balancers.solvers import normalise


@register_balancer("imtl")
class IMTLG(GramianBalancer):
    """IMTL-G: ``alpha_{2:T} = g_1 U^T (D U^T)^{-1}``, ``alpha_1 = 1 - sum alpha_{2:T}``, ``g = sum alpha_t g_t``.

    ``D`` has rows ``g_1 - g_t`` and ``U`` rows ``u_1 - u_t`` (``u_t = g_t / ||g_t||``); in Gramian
    terms ``g_i . u_j = G_ij / ||g_j||``. A tiny ridge keeps singular systems finite. Heads keep
    their own gradients.
    """

    scale_heads = False

    def weights(self, gramian: Tensor, ctx: StepContext) -> Tensor:
        gn = normalise(gramian)
        T = gn.shape[0]
        if T == 1:
            return torch.ones(1, dtype=gn.dtype, device=gn.device)
        norms = gn.diagonal().clamp_min(1e-30).sqrt()
        m = gn / norms[None, :]
        p = torch.zeros(T - 1, T, dtype=gn.dtype, device=gn.device)
        p[:, 0] = 1.0
        p[:, 1:] -= torch.eye(T - 1, dtype=gn.dtype, device=gn.device)
        a = p @ m @ p.T
        a = a + 1e-10 * torch.eye(T - 1, dtype=gn.dtype, device=gn.device) * a.diagonal().abs().mean().clamp_min(1e-30)
        rest = torch.linalg.solve_ex(a.T, p @ m[0])[0]
        return torch.cat([(1 - rest.sum())[None], rest])

"""IMTL-G (Liu et al., ICLR 2021): the update has equal projections on every task's unit gradient."""

from __future__ import annotations

import numpy as np
from torch import Tensor

from mtlzoo.balancers.base import GramianBalancer
from mtlzoo.balancers.contract import StepContext
from mtlzoo.balancers.host import to_device, to_host
from mtlzoo.balancers.registry import register_balancer
from mtlzoo.balancers.solvers import normalise, solve


@register_balancer("imtl")
class IMTLG(GramianBalancer):
    """IMTL-G: ``alpha_{2:T} = g_1 U^T (D U^T)^{-1}``, ``alpha_1 = 1 - sum alpha_{2:T}``, ``g = sum alpha_t g_t``.

    ``D`` has rows ``g_1 - g_t`` and ``U`` rows ``u_1 - u_t`` (``u_t = g_t / ||g_t||``); in Gramian
    terms ``g_i . u_j = G_ij / ||g_j||``. A tiny ridge keeps singular systems finite. Heads keep
    their own gradients.
    """

    scale_heads = False

    def weights(self, gramian: Tensor, ctx: StepContext) -> Tensor:
        (gram,) = to_host(gramian)
        return to_device(gramian, imtl_weights(gram))[0]


def imtl_weights(gram: np.ndarray) -> np.ndarray:
    """IMTL-G's weights from the Gramian (host, float64)."""
    gn = normalise(gram)
    T = gn.shape[0]
    if T == 1:
        return np.ones(1)
    with np.errstate(all="ignore"):
        m = gn / np.sqrt(np.maximum(np.diagonal(gn), 1e-30))[None, :]
        p = np.zeros((T - 1, T))
        p[:, 0] = 1.0
        p[:, 1:] -= np.eye(T - 1)
        a = p @ m @ p.T
        a = a + 1e-10 * np.eye(T - 1) * np.maximum(np.abs(np.diagonal(a)).mean(), 1e-30)
        rest = solve(a.T, (p @ m[0])[:, None])[:, 0]
        return np.concatenate([[1 - rest.sum()], rest])

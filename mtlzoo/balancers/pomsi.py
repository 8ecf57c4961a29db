"""POMSI, reconstructed: project competing gradients and rescale tasks by a learnt, similarity-based factor.

The POMSI paper (Frontiers of Computer Science, DOI 10.1007/s11704-024-40632-2) was not
available; this is the reconstruction of ``reference/methods.md`` section 3.2 (NOT verified
against the paper): PCGrad-style projection on the shared parameters plus learnable loss
weights ``lambda = T softmax(phi)`` trained to equalise the projected gradient magnitudes
towards targets scaled by each task's mean cosine similarity with the others.

Changed 2026-11-26 (issue 12): the projection visits the other tasks only (before, a task could
be projected off its own gradient), and the magnitude targets are normalised by ``mean_k h(rho_k)``
so that they sum to the total magnitude and can all be met (before, the learnt weights drifted to
a corner: 4:1:1 magnitudes for orthogonal gradients of norms 1:10:100).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from mtlzoo.balancers.base import GramianBalancer
from mtlzoo.balancers.contract import StepContext
from mtlzoo.balancers.pcgrad import pcgrad_coefficients, random_orders
from mtlzoo.balancers.registry import register_balancer
from mtlzoo.balancers.solvers import adam_step, normalise

SIMILARITY_MAPS = ("linear", "exp")


@register_balancer("pomsi")
class POMSI(GramianBalancer):
    """POMSI (reconstruction, methods.md 3.2): shared update ``sum_t lambda_t gtilde_t``, heads ``lambda_t``.

    ``gtilde_t`` is ``g_t`` projected off the conflicting ``g_j``, ``j != t`` (PCGrad, random
    order, original references). ``phi`` takes an Adam step (``lr``) on
    ``sum_t |m_t - sg(mean_k m_k h(rho_t) / mean_k h(rho_k))|`` with ``m_t = lambda_t ||gtilde_t||``,
    ``rho_t`` the mean cosine between ``g_t`` and the other tasks and ``h(rho) = (1 + rho) / 2``
    ("linear") or ``exp(-kappa (1 - rho))`` ("exp"): equal magnitudes when all ``rho_t`` are equal,
    more for tasks that agree with the others. Experimental.
    """

    def __init__(self, lr: float = 0.025, similarity: str = "linear", kappa: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if similarity not in SIMILARITY_MAPS:
            raise ValueError(f"similarity must be one of {SIMILARITY_MAPS}, got {similarity!r}")
        self.lr, self.similarity, self.kappa = lr, similarity, kappa

    def _init_state(self, num_tasks: int) -> None:
        self.register_buffer("phi", torch.zeros(num_tasks, dtype=torch.float64))
        self.register_buffer("adam_m", torch.zeros(num_tasks, dtype=torch.float64))
        self.register_buffer("adam_v", torch.zeros(num_tasks, dtype=torch.float64))
        self.register_buffer("adam_step", torch.zeros((), dtype=torch.long))
        self._lam: Tensor | None = None

    def weights(self, gramian: Tensor, ctx: StepContext) -> Tensor:
        if self.phi.device != gramian.device:
            self.to(gramian.device)
        gn = normalise(gramian)
        T = gn.shape[0]
        # each row visits the other tasks only: drop the last column, where random_orders puts the task itself
        coef = pcgrad_coefficients(gn, random_orders(T, gn.device, exclude_self=True)[:, : T - 1])
        proj_norms = ((coef @ gn) * coef).sum(1).clamp_min(0).sqrt()
        lam = T * torch.softmax(self.phi, 0)
        share = self._target_shares(gn)
        with torch.enable_grad():
            phi = self.phi.clone().requires_grad_(True)
            magnitude = T * torch.softmax(phi, 0) * proj_norms
            balance = (magnitude - magnitude.mean().detach() * share).abs().sum()
            (grad,) = torch.autograd.grad(balance, phi)
        state = {"m": self.adam_m, "v": self.adam_v, "step": self.adam_step}
        self.phi.copy_(adam_step(self.phi, torch.nan_to_num(grad), state, self.lr,
                                    torch.isfinite(grad).all() & ctx.finite))
        self._lam = lam
        return lam @ coef

    def _target_shares(self, gn: Tensor) -> Tensor:
        """``h(rho_t) / mean_k h(rho_k)``: each task's target as a multiple of the mean magnitude (mean 1)."""
        T = gn.shape[0]
        norms = gn.diagonal().clamp_min(0).sqrt()
        cos = gn / (norms[:, None] * norms[None, :]).clamp_min(1e-30)
        rho = (cos.sum(1) - cos.diagonal()) / max(T - 1, 1) if T > 1 else torch.ones_like(norms)
        h = (1 + rho) / 2 if self.similarity == "linear" else torch.exp(-self.kappa * (1 - rho))
        mean = h.mean()
        # all h zero (two opposite gradients under "linear"): no similarity signal, equal targets
        return torch.where(mean > 0, h / mean.clamp_min(1e-30), torch.ones_like(h))

    def head_weights(self, weights: Tensor) -> Tensor:
        return self._lam.to(weights) if self._lam is not None else weights

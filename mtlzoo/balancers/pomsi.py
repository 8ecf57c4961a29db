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

import numpy as np
import torch
from torch import Tensor

from mtlzoo.balancers.base import GramianBalancer
from mtlzoo.balancers.contract import StepContext
from mtlzoo.balancers.host import HostState, to_device
from mtlzoo.balancers.pcgrad import order_keys
from mtlzoo.balancers.registry import register_balancer
from mtlzoo.balancers.solvers import adam_update, normalise, pcgrad_coefficients, random_orders_from_keys, softmax

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
        self._host = HostState(["phi", "adam_m", "adam_v", "adam_step"])

    def _init_state(self, num_tasks: int) -> None:
        self.register_buffer("phi", torch.zeros(num_tasks, dtype=torch.float64))
        self.register_buffer("adam_m", torch.zeros(num_tasks, dtype=torch.float64))
        self.register_buffer("adam_v", torch.zeros(num_tasks, dtype=torch.float64))
        self.register_buffer("adam_step", torch.zeros((), dtype=torch.long))
        self._lam: Tensor | None = None

    def weights(self, gramian: Tensor, ctx: StepContext) -> Tensor:
        if self.phi.device != gramian.device:
            self.to(gramian.device)
        T = gramian.shape[0]
        (gram, keys, finite), (phi, m, v, step) = self._host.fetch(self, gramian, order_keys(T, gramian.device),
                                                                    ctx.finite)
        gn = normalise(gram)
        # each row visits the other tasks only: drop the last column, where the orders put the task itself
        coef = pcgrad_coefficients(gn, random_orders_from_keys(keys.reshape(T, T), exclude_self=True)[:, : T - 1])
        with np.errstate(all="ignore"):
            proj_norms = np.sqrt(np.maximum(((coef @ gn) * coef).sum(1), 0))
            z = softmax(phi)
            lam = T * z
            magnitude = lam * proj_norms
            balance_grad = np.sign(magnitude - magnitude.mean() * self._target_shares(gn))
            grad_z = (balance_grad * proj_norms) * T  # d balance / d softmax(phi), then through the softmax
            grad = z * (grad_z - (grad_z * z).sum())
        phi, (m, v, step) = adam_update(phi, grad, (m, v, float(step)), self.lr,
                                        bool(np.isfinite(grad).all() and finite))
        weights, self._lam, *state = to_device(gramian, lam @ coef, lam, phi, m, v, step)
        self._host.write(self, [phi, m, v, step], state)
        return weights

    def _target_shares(self, gn: np.ndarray) -> np.ndarray:
        """``h(rho_t) / mean_k h(rho_k)``: each task's target as a multiple of the mean magnitude (mean 1)."""
        T = gn.shape[0]
        norms = np.sqrt(np.maximum(np.diagonal(gn), 0))
        cos = gn / np.maximum(norms[:, None] * norms[None, :], 1e-30)
        rho = (cos.sum(1) - np.diagonal(cos)) / max(T - 1, 1) if T > 1 else np.ones_like(norms)
        h = (1 + rho) / 2 if self.similarity == "linear" else np.exp(-self.kappa * (1 - rho))
        mean = h.mean()
        # all h zero (two opposite gradients under "linear"): no similarity signal, equal targets
        return h / max(mean, 1e-30) if mean > 0 else np.ones_like(h)

    def head_weights(self, weights: Tensor) -> Tensor:
        return self._lam.to(weights) if self._lam is not None else weights


"""PCGrad (Yu et al., NeurIPS 2020): project each gradient off the ones it conflicts with."""

from __future__ import annotations

import torch
from torch import Tensor

from mtlzoo.balancers.base import GramianBalancer
from mtlzoo.balancers.contract import StepContext
from mtlzoo.balancers.registry import register_balancer
from mtlzoo.balancers.solvers import normalise


def random_orders(num_tasks: int, device: torch.device, exclude_self: bool) -> Tensor:
    """One random task order per task (rows); with ``exclude_self`` task i comes last in row i."""
    keys = torch.rand(num_tasks, num_tasks, device=device)
    if exclude_self:
        keys = keys + 2 * torch.eye(num_tasks, device=device)
    return keys.argsort(dim=1)


def pcgrad_coefficients(gramian: Tensor, orders: Tensor) -> Tensor:
    """Coefficients ``C`` with ``gtilde_i = sum_k C_ik g_k`` after PCGrad's projections.

    Task i visits the tasks in ``orders[i]``; whenever ``<gtilde_i, g_j> < 0`` it subtracts
    ``<gtilde_i, g_j> / ||g_j||^2 g_j`` (against the original ``g_j``). All tasks advance in
    lock step, so T small matrix steps replace the T^2 loop.
    """
    gn = normalise(gramian)
    T = gn.shape[0]
    rows = torch.arange(T, device=gn.device)
    coef = torch.eye(T, dtype=gn.dtype, device=gn.device)
    for k in range(orders.shape[1]):
        j = orders[:, k]
        dots = (coef @ gn)[rows, j]
        norm_sq = gn.diagonal()[j]
        step = torch.where(dots < 0, dots / norm_sq.clamp_min(torch.finfo(gn.dtype).tiny), torch.zeros_like(dots))
        coef = coef.index_put((rows, j), -step, accumulate=True)
    return coef


@register_balancer("pcgrad")
class PCGrad(GramianBalancer):
    """PCGrad: ``g = sum_i gtilde_i``, each ``gtilde_i`` projected off conflicting ``g_j`` in random order.

    Expressed on the Gramian (the projections only need inner products); heads keep their own
    unscaled gradients.
    """

    scale_heads = False

    def weights(self, gramian: Tensor, ctx: StepContext) -> Tensor:
        orders = random_orders(gramian.shape[0], gramian.device, exclude_self=False)
        return pcgrad_coefficients(gramian, orders).sum(0)

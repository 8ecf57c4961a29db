"""PCGrad (Yu et al., NeurIPS 2020): project each gradient off the ones it conflicts with."""

from __future__ import annotations

import torch
from torch import Tensor

from mtlzoo.balancers.base import GramianBalancer
from mtlzoo.balancers.contract import StepContext
from mtlzoo.balancers.host import to_device, to_host
from mtlzoo.balancers.registry import register_balancer
from mtlzoo.balancers.solvers import pcgrad_coefficients, random_orders_from_keys


def order_keys(num_tasks: int, device: torch.device) -> Tensor:
    """The uniform keys behind one step's random task orders, drawn on ``device`` (flat, T * T)."""
    return torch.rand(num_tasks * num_tasks, device=device)


def random_orders(num_tasks: int, device: torch.device, exclude_self: bool) -> Tensor:
    """One random task order per task (rows); with ``exclude_self`` task i comes last in row i.

    The orders a balancer draws at this point of the random stream (from :func:`order_keys`).
    """
    keys = order_keys(num_tasks, device).cpu().numpy().reshape(num_tasks, num_tasks)
    return torch.from_numpy(random_orders_from_keys(keys, exclude_self)).to(device)


@register_balancer("pcgrad")
class PCGrad(GramianBalancer):
    """PCGrad: ``g = sum_i gtilde_i``, each ``gtilde_i`` projected off conflicting ``g_j`` in random order.

    Expressed on the Gramian (the projections only need inner products); heads keep their own
    unscaled gradients.
    """

    scale_heads = False

    def weights(self, gramian: Tensor, ctx: StepContext) -> Tensor:
        T = gramian.shape[0]
        gram, keys = to_host(gramian, order_keys(T, gramian.device))
        orders = random_orders_from_keys(keys.reshape(T, T), exclude_self=False)
        return to_device(gramian, pcgrad_coefficients(gram, orders).sum(0))[0]

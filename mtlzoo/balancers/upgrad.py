"""UPGrad (Quinton & Rey, 2024): average of the gradients projected onto the dual cone."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from torch import Tensor

from mtlzoo.balancers.base import GramianBalancer, per_task_values
from mtlzoo.balancers.contract import StepContext
from mtlzoo.balancers.host import to_device, to_host
from mtlzoo.balancers.registry import register_balancer
from mtlzoo.balancers.solvers import project_dual_cone


@register_balancer("upgrad")
class UPGrad(GramianBalancer):
    """UPGrad: ``g = sum_i p_i proj_C(g_i)``, ``C = {x : g_t . x >= 0 for all t}``; non-conflicting.

    In weight space each projection is ``argmin_v v^T G v`` s.t. ``v >= p_i e_i``
    (:func:`~mtlzoo.balancers.solvers.project_dual_cone`); ``preference`` ``p`` defaults to
    ``1/T`` (the mean). Heads keep their own gradients.
    """

    scale_heads = False

    def __init__(self, preference: Sequence[float] | Mapping[str, float] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.preference = preference

    def weights(self, gramian: Tensor, ctx: StepContext) -> Tensor:
        (gram,) = to_host(gramian)
        p = np.array(per_task_values(self.preference, ctx.tasks, 1.0 / gram.shape[0]))
        return to_device(gramian, project_dual_cone(gram, np.diag(p)).sum(0))[0]

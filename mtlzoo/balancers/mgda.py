"""MGDA (Desideri 2012; Sener & Koltun, NeurIPS 2018): the min-norm point of the task gradients' hull."""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import Tensor

from mtlzoo.balancers.base import Balancer, GramianBalancer
from mtlzoo.balancers.contract import StepContext
from mtlzoo.balancers.host import to_device, to_host
from mtlzoo.balancers.registry import register_balancer
from mtlzoo.balancers.solvers import min_norm_simplex

NORMALISATIONS = ("none", "l2", "loss", "loss+")


@register_balancer("mgda")
class MGDA(GramianBalancer):
    """MGDA: ``w = argmin_{w in simplex} ||sum_t w_t g_t||``; heads get ``w_t`` times their gradient.

    ``normalization`` rescales the gradients before the solve only, as in Sener & Koltun's code
    ("l2": by their norms, "loss": by the losses, "loss+": both); the default "none" is MGDA as
    stated in both papers. Use ``level="features"`` (or the name ``mgda_ub``) for MGDA-UB.
    """

    def __init__(self, normalization: str = "none", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if normalization not in NORMALISATIONS:
            raise ValueError(f"normalization must be one of {NORMALISATIONS}, got {normalization!r}")
        self.normalization = normalization

    def weights(self, gramian: Tensor, ctx: StepContext) -> Tensor:
        if self.normalization == "none":
            (gram,) = to_host(gramian)
            return to_device(gramian, min_norm_simplex(gram))[0]
        gram, losses = to_host(gramian, ctx.values) if "loss" in self.normalization else (to_host(gramian)[0], 1.0)
        if self.normalization != "loss":
            losses = losses * np.sqrt(np.maximum(np.diagonal(gram), 0))  # "l2" and "loss+": the norms
        d = 1.0 / np.maximum(losses, 1e-12)
        return to_device(gramian, min_norm_simplex(gram * d[:, None] * d[None, :]))[0]


@register_balancer("mgda_ub")
def mgda_ub(**kwargs: Any) -> Balancer:
    """MGDA-UB (Sener & Koltun, NeurIPS 2018): MGDA on the gradients w.r.t. the shared representation."""
    return MGDA(level="features", **kwargs)

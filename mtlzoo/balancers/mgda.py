"""MGDA (Desideri 2012; Sener & Koltun, NeurIPS 2018): the min-norm point of the task gradients' hull."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from mtlzoo.balancers.base import Balancer, GramianBalancer
from mtlzoo.balancers.contract import StepContext
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
        norms = gramian.diagonal().clamp_min(0).sqrt()
        losses = ctx.values.to(gramian)
        divisor = {"none": None, "l2": norms, "loss": losses, "loss+": losses * norms}[self.normalization]
        if divisor is not None:
            d = 1.0 / divisor.clamp_min(1e-12)
            gramian = gramian * d[:, None] * d[None, :]
        return min_norm_simplex(gramian)


@register_balancer("mgda_ub")
def mgda_ub(**kwargs: Any) -> Balancer:
    """MGDA-UB (Sener & Koltun, NeurIPS 2018): MGDA on the gradients w.r.t. the shared representation."""
    return MGDA(level="features", **kwargs)

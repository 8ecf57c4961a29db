"""CAGrad (Liu et al., NeurIPS 2021): conflict-averse gradient descent."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from mtlzoo.balancers.base import GramianBalancer
from mtlzoo.balancers.contract import StepContext
from mtlzoo.balancers.host import to_device, to_host
from mtlzoo.balancers.registry import register_balancer
from mtlzoo.balancers.solvers import cagrad_weights

RESCALES = (0, 1, 2)


@register_balancer("cagrad")
class CAGrad(GramianBalancer):
    """CAGrad: ``d = g0 + c ||g0|| / ||g_w|| g_w`` with ``w`` minimising ``g_w . g0 + c ||g0|| ||g_w||``.

    ``g0`` is the mean gradient; ``rescale`` divides the update by ``1 + c^2`` (1, the official
    code's default), ``1 + c`` (2) or nothing (0). The dual is solved exactly on the host
    (:func:`~mtlzoo.balancers.solvers.cagrad_weights`). Heads keep their own gradients.
    """

    scale_heads = False

    def __init__(self, c: float = 0.4, rescale: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if c < 0:
            raise ValueError(f"c must be >= 0, got {c}")
        if rescale not in RESCALES:
            raise ValueError(f"rescale must be one of {RESCALES}, got {rescale}")
        self.c = float(c)
        self.rescale = rescale

    def weights(self, gramian: Tensor, ctx: StepContext) -> Tensor:
        (gram,) = to_host(gramian)
        w, lam = cagrad_weights(gram, self.c)
        weights = 1.0 / gram.shape[0] + lam * w
        return to_device(gramian, weights / {0: 1.0, 1: 1.0 + self.c**2, 2: 1.0 + self.c}[self.rescale])[0]

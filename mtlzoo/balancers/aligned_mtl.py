"""Aligned-MTL (Senushkin et al., CVPR 2023): align the gradient system to a well-conditioned one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from mtlzoo.balancers.base import Balancer, GramianBalancer, per_task_values
from mtlzoo.balancers.contract import StepContext
from mtlzoo.balancers.registry import register_balancer

SCALE_MODES = ("min", "median", "rmse")
_EPS32 = torch.finfo(torch.float32).eps


def balance_matrix(gramian: Tensor, scale_mode: str = "min") -> tuple[Tensor, Tensor]:
    """Aligned-MTL's ``B = V diag(sqrt(s / lambda)) V^T`` and the condition number of the system.

    ``(lambda, V)`` is the eigendecomposition of the Gramian; eigenvalues below
    ``lambda_max * T * eps_float32`` are dropped (masked, no shape change). ``s`` is the smallest
    kept eigenvalue ("min", the paper's choice), the square of the median kept singular value
    ("median") or the mean kept eigenvalue ("rmse"). The aligned system ``G B`` then has
    ``B^T G B = s I`` on the kept subspace.
    """
    T = gramian.shape[0]
    finite = torch.isfinite(gramian).all()
    # eigh raises on NaN / inf; a broken system gets the identity's (harmless) result and a NaN condition number
    lam, vec = torch.linalg.eigh(torch.where(finite, gramian, torch.eye(T, dtype=gramian.dtype, device=gramian.device)))
    kept = lam > lam[-1].clamp_min(0) * T * _EPS32
    inf = torch.full_like(lam, torch.inf)
    lam_min = torch.where(kept, lam, inf).min()
    if scale_mode == "min":
        s = lam_min
    elif scale_mode == "rmse":
        s = (lam * kept).sum() / kept.sum().clamp_min(1)
    else:
        sigma = torch.where(kept, lam.clamp_min(0).sqrt(), inf).sort().values
        s = sigma[((kept.sum() - 1).clamp_min(0) // 2)].square()
    factor = torch.where(kept, (s / torch.where(kept, lam, 1.0)).clamp_min(0).sqrt(), 0.0)
    cond = torch.where(finite, (lam[-1].clamp_min(0) / lam_min).sqrt(), float("nan"))
    return (vec * factor) @ vec.T, cond


@register_balancer("aligned_mtl")
class AlignedMTL(GramianBalancer):
    """Aligned-MTL: ``alpha = B w`` with ``B`` from :func:`balance_matrix`; the update is ``G alpha``.

    ``task_weights`` are the predefined weights ``w`` (default ones, as in the released code),
    applied as ``B w`` rather than as loss scales. Heads keep their own gradients unless
    ``scale_heads=True``. ``level="features"`` (or ``aligned_mtl_ub``) gives Aligned-MTL-UB.
    """

    def __init__(self, scale_mode: str = "min", task_weights: Sequence[float] | Mapping[str, float] | None = None,
                 scale_heads: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if scale_mode not in SCALE_MODES:
            raise ValueError(f"scale_mode must be one of {SCALE_MODES}, got {scale_mode!r}")
        self.scale_mode = scale_mode
        self.task_weights = task_weights
        self.scale_heads = scale_heads

    def weights(self, gramian: Tensor, ctx: StepContext) -> Tensor:
        w = torch.tensor(per_task_values(self.task_weights, ctx.tasks, 1.0), dtype=gramian.dtype,
                         device=gramian.device)
        b, cond = balance_matrix(gramian, self.scale_mode)
        ctx.extras["condition_number"] = cond
        return b @ w


@register_balancer("aligned_mtl_ub")
def aligned_mtl_ub(**kwargs: Any) -> Balancer:
    """Aligned-MTL-UB (Senushkin et al., CVPR 2023): Aligned-MTL on the shared-representation gradients."""
    return AlignedMTL(level="features", **kwargs)

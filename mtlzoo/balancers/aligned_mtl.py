"""Aligned-MTL (Senushkin et al., CVPR 2023): align the gradient system to a well-conditioned one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from torch import Tensor

from mtlzoo.balancers.base import Balancer, GramianBalancer, per_task_values
from mtlzoo.balancers.contract import StepContext
from mtlzoo.balancers.host import to_device, to_host
from mtlzoo.balancers.registry import register_balancer

SCALE_MODES = ("min", "median", "rmse")
_EPS32 = float(np.finfo(np.float32).eps)


def balance_matrix(gramian: np.ndarray, scale_mode: str = "min") -> tuple[np.ndarray, float]:
    """Aligned-MTL's ``B = V diag(sqrt(s / lambda)) V^T`` and the condition number of the system.

    ``(lambda, V)`` is the eigendecomposition of the Gramian; eigenvalues below
    ``lambda_max * T * eps_float32`` are dropped (masked, no shape change). ``s`` is the smallest
    kept eigenvalue ("min", the paper's choice), the square of the median kept singular value
    ("median") or the mean kept eigenvalue ("rmse"). The aligned system ``G B`` then has
    ``B^T G B = s I`` on the kept subspace. Host arrays (float64).
    """
    T = gramian.shape[0]
    finite = bool(np.isfinite(gramian).all())
    # eigh raises on NaN / inf; a broken system gets the identity's (harmless) result and a NaN condition number
    lam, vec = np.linalg.eigh(gramian if finite else np.eye(T))
    with np.errstate(all="ignore"):
        kept = lam > max(lam[-1], 0) * T * _EPS32
        lam_min = np.where(kept, lam, np.inf).min()
        if scale_mode == "min":
            s = lam_min
        elif scale_mode == "rmse":
            s = (lam * kept).sum() / max(kept.sum(), 1)
        else:
            sigma = np.sort(np.where(kept, np.sqrt(np.maximum(lam, 0)), np.inf))
            s = np.square(sigma[max(kept.sum() - 1, 0) // 2])
        factor = np.where(kept, np.sqrt(np.maximum(s / np.where(kept, lam, 1.0), 0)), 0.0)
        cond = float(np.sqrt(max(lam[-1], 0) / lam_min)) if finite else float("nan")
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
        (gram,) = to_host(gramian)
        b, cond = balance_matrix(gram, self.scale_mode)
        out = to_device(gramian, b @ np.array(per_task_values(self.task_weights, ctx.tasks, 1.0)), cond)
        ctx.extras["condition_number"] = out[1][0]
        return out[0]


@register_balancer("aligned_mtl_ub")
def aligned_mtl_ub(**kwargs: Any) -> Balancer:
    """Aligned-MTL-UB (Senushkin et al., CVPR 2023): Aligned-MTL on the shared-representation gradients."""
    return AlignedMTL(level="features", **kwargs)

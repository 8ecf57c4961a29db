"""Depth: rmse, log-rmse, abs / rel / squared-rel errors and delta accuracies on pixels with target > 0."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from mtlzoo.metrics.base import Meter, accumulate, check_same_numel, chunked_sum, safe_div

REDUCTIONS = ("pixel", "batch_mean")
_SUMS = ("sq", "log_sq", "abs", "abs_rel", "sq_rel", "delta1", "delta2", "delta3")
_MIN_DEPTH = 1e-9  # predictions are clamped here before logs and ratios (MTI-Net family)
_LOG_125 = math.log(1.25)


def _batch_sums(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Per-quantity sums over the valid pixels of one batch, and the valid count (float64, on device).

    Per-pixel terms are float32 (invalid pixels are set to pred = target = 1, so they add nothing); each
    batch's sums are carried across batches in float64.
    """
    pred = pred.float().reshape(-1)
    target = target.float().reshape(-1)
    valid = (target > 0) & (target < math.inf)
    gt = torch.where(valid, target, 1.0)
    raw = torch.where(valid, pred, 1.0)
    diff = raw - gt
    sq, absolute = diff.square(), diff.abs()
    log_ratio = raw.clamp_min(_MIN_DEPTH).log() - gt.log()
    abs_log = log_ratio.abs()  # max(p / g, g / p) < 1.25^k  <=>  |log p - log g| < k log 1.25
    n = torch.count_nonzero(valid).double()
    invalid = target.numel() - n
    totals = [t.sum().double() for t in (sq, log_ratio.square(), absolute, absolute / gt, sq / gt)]
    totals += [torch.count_nonzero(abs_log < k * _LOG_125).double() - invalid for k in (1, 2, 3)]
    return torch.stack(totals), n


def _finish(sums: Tensor, count: Tensor, empty: float = 0.0) -> Tensor:
    """Turn sums over ``count`` pixels into the metric vector (same order as ``DEPTH_KEYS``)."""
    means = safe_div(sums, count, empty)
    return torch.cat([means[:2].sqrt(), means[2:]])


DEPTH_KEYS = ("rmse", "log_rmse", "abs_err", "abs_rel", "sq_rel", "delta1", "delta2", "delta3")


class DepthMeter(Meter):
    """Depth errors in metres over pixels with a valid (> 0, finite) target.

    ``reduce="pixel"`` pools every valid pixel of the test set (MTI-Net, ATRC, LibMTL);
    ``reduce="batch_mean"`` computes each metric per batch and averages the batches with at
    least one valid pixel (MTAN, CAGrad, Nash-MTL, FAMO). log-rmse uses the natural log with
    predictions clamped to >= 1e-9. The delta accuracies are extras outside the anchored protocols.
    """

    kind = "depth"

    def __init__(self, reduce: str = "pixel") -> None:
        if reduce not in REDUCTIONS:
            raise ValueError(f"depth reduce must be one of {list(REDUCTIONS)}, got {reduce!r}")
        self.reduce = reduce
        self.reset()

    def reset(self) -> None:
        self.total: Tensor | None = None
        self.count: Tensor | None = None

    def update(self, pred: Tensor, target: Tensor) -> None:
        """Add a batch of depth predictions and targets of the same shape, e.g. (B, 1, H, W)."""
        check_same_numel(self.kind, pred, target)
        sums, n = chunked_sum(_batch_sums, pred, target.to(pred.device))
        if self.reduce == "pixel":
            self.total, self.count = accumulate(self.total, sums), accumulate(self.count, n)
        else:
            self.total = accumulate(self.total, _finish(sums, n))
            self.count = accumulate(self.count, (n > 0).double())

    def compute(self) -> dict[str, float]:
        """The metrics of every pixel (or batch) seen; NaN when no pixel was valid."""
        if self.total is None:
            raise ValueError("depth meter: compute() called before any update()")
        nan = float("nan")
        if self.reduce == "pixel":
            values = _finish(self.total, self.count, nan)
        else:
            values = safe_div(self.total, self.count, nan)
        return dict(zip(DEPTH_KEYS, values.tolist(), strict=True))

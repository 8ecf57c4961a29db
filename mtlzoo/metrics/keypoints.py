"""Keypoints: PCK (percentage of correct keypoints) from heatmaps."""

from __future__ import annotations

import torch
from torch import Tensor

from mtlzoo.metrics.base import Meter, accumulate, safe_div


def heatmap_peaks(heatmaps: Tensor) -> Tensor:
    """(B, K, 2) float (y, x) pixel coordinates of each channel's argmax (the first one on ties)."""
    b, k, _, w = heatmaps.shape
    index = heatmaps.reshape(b, k, -1).argmax(dim=-1)
    return torch.stack([index // w, index % w], dim=-1).double()


class PCKMeter(Meter):
    """Fraction of visible keypoints whose predicted peak lies within ``threshold * max(H, W)`` pixels of the
    target's peak. A keypoint is visible when its target heatmap has a positive maximum (all-zero or
    non-finite channels are invisible and not counted)."""

    kind = "keypoints"

    def __init__(self, threshold: float = 0.1) -> None:
        if not 0.0 < float(threshold):
            raise ValueError(f"keypoints meter: threshold must be > 0 (a fraction of max(H, W)), got {threshold!r}")
        self.threshold = float(threshold)
        self.reset()

    def reset(self) -> None:
        self.total: Tensor | None = None

    def update(self, pred: Tensor, target: Tensor) -> None:
        """Add a batch of predicted heatmaps (B, K, H, W) and target heatmaps of the same shape."""
        if pred.dim() != 4 or pred.shape != target.shape:
            raise ValueError(f"keypoints meter: prediction of shape {tuple(pred.shape)} and target of shape "
                             f"{tuple(target.shape)} must both be (B, K, H, W) heatmaps of one shape")
        target = target.to(pred.device).float()
        finite = torch.isfinite(target).flatten(2).all(dim=-1)
        visible = finite & (torch.nan_to_num(target).flatten(2).amax(dim=-1) > 0)
        distance = (heatmap_peaks(pred.float()) - heatmap_peaks(torch.nan_to_num(target))).norm(dim=-1)
        correct = (distance <= self.threshold * max(pred.shape[-2:])) & visible
        self.total = accumulate(self.total, torch.stack([correct.sum(), visible.sum()]).double())

    def compute(self) -> dict[str, float]:
        """``pck`` in [0, 1] (NaN when no keypoint was visible)."""
        if self.total is None:
            raise ValueError("keypoints meter: compute() called before any update()")
        return {"pck": float(safe_div(self.total[0], self.total[1], float("nan")))}

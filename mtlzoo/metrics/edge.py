"""Edges: the class-balanced BCE proxy (MTI-Net online meter) and an optional approximate odsF."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from mtlzoo.metrics.base import Meter, accumulate, check_same_numel, chunked_sum, safe_div

if TYPE_CHECKING:
    from mtlzoo.tasks import Task

_EPS = 1e-7


def default_edge_thresholds() -> tuple[float, ...]:
    """The 99 thresholds 0.01 ... 0.99 used when MTI-Net predictions go through SEISM."""
    return tuple(round(0.01 * i, 2) for i in range(1, 100))


def _disk(radius: float) -> np.ndarray:
    r = int(np.floor(radius))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return (yy * yy + xx * xx) <= radius * radius


def _at_or_above(values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """For each threshold t, how many ``values`` are >= t."""
    below = np.searchsorted(thresholds, values, side="right")  # thresholds <= value
    hist = np.bincount(below, minlength=thresholds.size + 1)
    return hist[::-1].cumsum()[::-1][1:]


def boundary_counts(prob: np.ndarray, gt: np.ndarray, thresholds: np.ndarray, max_dist: float,
                    ignore_index: int = 255) -> np.ndarray:
    """(matched predicted, predicted, matched ground truth, ground truth) per threshold, shape (4, K).

    A predicted boundary pixel (prob >= t) is matched when a ground-truth boundary pixel lies within
    ``max_dist`` times the image diagonal; a ground-truth pixel is matched when a predicted pixel lies
    within that distance. This is the SEISM/BSDS tolerance rule without its one-to-one assignment and
    without thinning, so it approximates (and can exceed) the MATLAB odsF.
    """
    from scipy import ndimage

    valid = (gt != ignore_index) & np.isfinite(gt)
    edge = (gt == 1) & valid
    radius = max_dist * float(np.hypot(*gt.shape))
    k = thresholds.size
    counts = np.zeros((4, k), dtype=np.float64)
    counts[1] = _at_or_above(prob[valid], thresholds)
    if not edge.any():
        return counts
    near = ndimage.distance_transform_edt(~edge) <= radius
    counts[0] = _at_or_above(prob[valid & near], thresholds)
    best_nearby = ndimage.maximum_filter(np.where(valid, prob, 0.0), footprint=_disk(radius), mode="constant")
    counts[2] = _at_or_above(best_nearby[edge], thresholds)
    counts[3] = edge.sum()
    return counts


def ods_f(counts: np.ndarray) -> float:
    """Optimal-dataset-scale F: the best F1 over one threshold for the whole set, from summed counts."""
    precision = np.divide(counts[0], counts[1], out=np.zeros(counts.shape[1]), where=counts[1] > 0)
    recall = np.divide(counts[2], counts[3], out=np.zeros(counts.shape[1]), where=counts[3] > 0)
    denom = precision + recall
    f = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
    return float(f.max())


class EdgeMeter(Meter):
    """Balanced BCE of edge probabilities (positives weighted ``pos_weight``), pooled over valid pixels.

    A target equal to ``ignore_index`` or non-finite is invalid.

    With ``odsf=True`` it also reports ``odsf`` from :func:`boundary_counts` (tolerance ``max_dist``
    of the image diagonal: 0.011 NYUD, 0.0075 PASCAL). That path runs on the CPU, syncs every batch,
    and approximates the SEISM MATLAB number: never report it as the official odsF.
    """

    kind = "edge"

    @classmethod
    def for_task(cls, task: Task, **options: Any) -> EdgeMeter:
        """The meter of ``task`` (its classes / ignore index) with a protocol's ``options``."""
        return cls(pos_weight=task.pos_weight or 0.95, ignore_index=task.ignore_index, **options)

    def __init__(self, pos_weight: float = 0.95, ignore_index: int = 255, odsf: bool = False,
                 max_dist: float = 0.011, thresholds: tuple[float, ...] | None = None) -> None:
        if not 0.0 < pos_weight < 1.0:
            raise ValueError(f"edge pos_weight must lie in (0, 1), got {pos_weight!r}")
        self.pos_weight, self.ignore_index = float(pos_weight), ignore_index
        self.odsf, self.max_dist = bool(odsf), float(max_dist)
        self.thresholds = np.asarray(thresholds if thresholds is not None else default_edge_thresholds(), float)
        self.reset()

    def reset(self) -> None:
        self.total: Tensor | None = None
        self.boundary = np.zeros((4, self.thresholds.size), dtype=np.float64)

    def update(self, pred: Tensor, target: Tensor) -> None:
        """Add a batch of edge probabilities (B, 1, H, W) and {0, 1, 255} targets of the same shape."""
        check_same_numel(self.kind, pred, target)
        target = target.reshape(pred.shape).to(pred.device)
        self.total = accumulate(self.total, chunked_sum(self._bce_sums, pred, target))
        if self.odsf:
            probs = pred.detach().float().cpu().numpy().reshape(pred.shape[0], *pred.shape[-2:])
            gts = target.cpu().numpy().reshape(probs.shape)
            for prob, gt in zip(probs, gts, strict=True):
                self.boundary += boundary_counts(prob, gt, self.thresholds, self.max_dist, self.ignore_index)

    def _bce_sums(self, pred: Tensor, target: Tensor) -> Tensor:
        p = pred.float().clamp(_EPS, 1.0 - _EPS)
        valid = (target != self.ignore_index) & (torch.isfinite(target) if target.is_floating_point() else True)
        positive = target == 1
        w = self.pos_weight
        # -w log p on positives, -(1 - w) log(1 - p) on negatives, with a single log pass
        likelihood = torch.where(positive, p, 1.0 - p)
        weight = torch.where(positive, w, 1.0 - w)
        loss = torch.where(valid, weight * likelihood.log(), 0.0)
        return torch.stack([-loss.sum().double(), torch.count_nonzero(valid).double()])

    def compute(self) -> dict[str, float]:
        """``bce`` (lower is better), plus ``odsf`` when enabled."""
        if self.total is None:
            raise ValueError("edge meter: compute() called before any update()")
        out = {"bce": float(safe_div(self.total[0], self.total[1], float("nan")))}
        if self.odsf:
            out["odsf"] = ods_f(self.boundary)
        return out

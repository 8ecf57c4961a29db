"""Saliency: maxF over binarisation thresholds and the matching Jaccard (mIoU), in two protocol flavours."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from mtlzoo.metrics.base import Meter, accumulate, check_same_numel, chunked_sum, counts_by_index, safe_div

if TYPE_CHECKING:
    from mtlzoo.tasks import Task

REDUCTIONS = ("image", "pixel")


def default_thresholds(reduce: str) -> tuple[float, ...]:
    """MTI-Net: 15 values in linspace(0.2, 0.9); ATRC / InvPT: 0.05, 0.10, ..., 0.95."""
    if reduce == "image":
        return tuple(0.2 + 0.05 * i for i in range(15))
    return tuple(0.05 * i for i in range(1, 20))


def _threshold_counts(prob: Tensor, target: Tensor, thresholds: Tensor, ignore_index: int) -> Tensor:
    """Per image and threshold: (predicted positive, true positive, actual positive), shape (B, 3, K).

    A pixel is predicted positive at threshold t when prob > t; targets equal to ``ignore_index`` or
    non-finite are dropped.
    """
    b, k = prob.shape[0], thresholds.numel()
    prob = prob.reshape(b, -1).float().contiguous()
    target = target.reshape(b, -1).to(prob.device)
    valid = (target != ignore_index) & (torch.isfinite(target) if target.is_floating_point() else True)
    positive = (target == 1) & valid
    above = torch.bucketize(prob, thresholds)  # number of thresholds strictly below prob
    image = torch.arange(b, device=prob.device).unsqueeze(1) * (k + 1)
    index = torch.where(valid, image + above, torch.full_like(above, b * (k + 1)))
    size = b * (k + 1) + 1
    every = counts_by_index(index, size)[:-1].view(b, k + 1).double()
    hits = counts_by_index(index, size, positive.double())[:-1].view(b, k + 1)
    # predicted positive at threshold j = pixels whose bucket is > j: a reversed cumulative sum.
    predicted = every.flip(1).cumsum(1).flip(1)[:, 1:]
    true_pos = hits.flip(1).cumsum(1).flip(1)[:, 1:]
    actual = hits.sum(dim=1, keepdim=True).expand(b, k)
    return torch.stack([predicted, true_pos, actual], dim=1)


def _image_scores(counts: Tensor) -> Tensor:
    """Per image and threshold (precision, recall, jaccard), shape (B, 3, K); empty-vs-empty scores 1."""
    predicted, true_pos, actual = counts.unbind(1)
    both_empty = (predicted == 0) & (actual == 0)
    one = torch.ones_like(predicted)
    precision = torch.where(both_empty, one, safe_div(true_pos, predicted))
    recall = torch.where(both_empty, one, safe_div(true_pos, actual))
    jaccard = torch.where(both_empty, one, safe_div(true_pos, predicted + actual - true_pos))
    return torch.stack([precision, recall, jaccard], dim=1)


def f_beta(precision: Tensor, recall: Tensor, beta2: float) -> Tensor:
    """(1 + beta^2) P R / (beta^2 P + R), 0 where both are 0."""
    return safe_div((1.0 + beta2) * precision * recall, beta2 * precision + recall)


class SaliencyMeter(Meter):
    """maxF and mIoU of saliency probabilities against binary targets (255 and non-finite = ignore).

    ``reduce="image"`` (MTI-Net / ASTMT): per-image precision, recall and Jaccard at each threshold,
    averaged over images, F from the averaged P and R with ``beta2=1``; mIoU = max over thresholds of
    the mean Jaccard. An image with an empty target and an empty prediction scores 1.
    ``reduce="pixel"`` (ATRC / InvPT): counts pooled over the whole set, ``beta2=0.3``; mIoU = max over
    thresholds of the pooled IoU. Both are fractions in [0, 1].
    """

    kind = "saliency"

    @classmethod
    def for_task(cls, task: Task, **options: Any) -> SaliencyMeter:
        """The meter of ``task`` (its classes / ignore index) with a protocol's ``options``."""
        return cls(ignore_index=task.ignore_index, **options)

    def __init__(self, reduce: str = "image", beta2: float | None = None,
                 thresholds: tuple[float, ...] | None = None, ignore_index: int = 255) -> None:
        if reduce not in REDUCTIONS:
            raise ValueError(f"saliency reduce must be one of {list(REDUCTIONS)}, got {reduce!r}")
        self.reduce = reduce
        self.beta2 = float(beta2 if beta2 is not None else (1.0 if reduce == "image" else 0.3))
        self.thresholds = tuple(thresholds if thresholds is not None else default_thresholds(reduce))
        self.ignore_index = ignore_index
        self.reset()

    def reset(self) -> None:
        self.total: Tensor | None = None
        self.images: Tensor | None = None

    def update(self, pred: Tensor, target: Tensor) -> None:
        """Add a batch of probabilities (B, 1, H, W) and {0, 1, 255} targets of the same shape."""
        check_same_numel(self.kind, pred, target)
        thresholds = torch.tensor(self.thresholds, dtype=torch.float32, device=pred.device)
        counts = chunked_sum(lambda p, t: _threshold_counts(p, t, thresholds, self.ignore_index), pred,
                             target.to(pred.device))
        if self.reduce == "image":
            self.total = accumulate(self.total, _image_scores(counts).sum(dim=0))
            self.images = accumulate(self.images, torch.tensor(float(pred.shape[0]), device=pred.device))
        else:
            self.total = accumulate(self.total, counts.sum(dim=0))

    def compute(self) -> dict[str, float]:
        """maxF and mIoU (the best over thresholds of each)."""
        if self.total is None:
            raise ValueError("saliency meter: compute() called before any update()")
        if self.reduce == "image":
            precision, recall, jaccard = (self.total / self.images).unbind(0)
        else:
            predicted, true_pos, actual = self.total.unbind(0)
            precision, recall = safe_div(true_pos, predicted), safe_div(true_pos, actual)
            jaccard = safe_div(true_pos, predicted + actual - true_pos)
        return {"maxf": float(f_beta(precision, recall, self.beta2).max()), "miou": float(jaccard.max())}

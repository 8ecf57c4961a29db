"""Semantic segmentation / human parts: a pooled confusion matrix -> mIoU, pixel accuracy, mean class accuracy."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from mtlzoo.metrics.base import Meter, accumulate, check_same_numel, chunked_sum, counts_by_index, safe_div

if TYPE_CHECKING:
    from mtlzoo.tasks import Task

ABSENT_RULES = ("zero", "nan", "skip")


class SegmentationMeter(Meter):
    """Confusion matrix accumulated by bincount over the whole test set (pixels with 0 <= target < C).

    ``absent`` says what a class with an empty union (absent from prediction and ground truth)
    contributes to mIoU, and what a class absent from the ground truth contributes to mean accuracy:
    ``"zero"`` (counts as 0, MTI-Net / ATRC), ``"nan"`` (the mean becomes NaN, MTAN ConfMatrix) or
    ``"skip"`` (left out of the mean, nanmean). Targets equal to ``ignore_index`` (default: both 255 and -1)
    or non-finite are void; any other label outside [0, C) is left out too, counted on the device, and
    ``compute`` warns once naming the task (``name``), as such labels usually mean a wrong class count.
    """

    kind = "segmentation"

    @classmethod
    def for_task(cls, task: Task, **options: Any) -> SegmentationMeter:
        """The meter of ``task`` (its classes / ignore index) with a protocol's ``options``."""
        return cls(task.channels, ignore_index=task.ignore_index, name=task.name, **options)

    def __init__(self, num_classes: int, absent: str = "zero", ignore_index: int | None = None,
                 name: str | None = None) -> None:
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        if absent not in ABSENT_RULES:
            raise ValueError(f"absent must be one of {list(ABSENT_RULES)}, got {absent!r}")
        self.num_classes = num_classes
        self.absent = absent
        self.void = (255, -1) if ignore_index is None else (ignore_index,)
        self.name = name or self.kind
        self.reset()

    def reset(self) -> None:
        self.confusion: Tensor | None = None
        self.out_of_range: Tensor | None = None

    def update(self, pred: Tensor, target: Tensor) -> None:
        """Add a batch of class-id predictions (B, H, W) and targets (B, H, W) or (B, 1, H, W)."""
        check_same_numel(self.kind, pred, target)
        c = self.num_classes
        counts = chunked_sum(self._counts, pred, target.to(pred.device)).double()
        self.out_of_range = accumulate(self.out_of_range, counts[c * c + 1])
        counts = counts[: c * c].view(c, c)
        self.confusion = counts if self.confusion is None else self.confusion + counts

    def _counts(self, pred: Tensor, target: Tensor) -> Tensor:
        """Confusion counts in bins [0, C*C), then void pixels, then out-of-range labels."""
        c = self.num_classes
        pred, target = pred.reshape(-1).long(), target.reshape(-1)
        void = ~target.isfinite() if target.is_floating_point() else torch.zeros_like(target, dtype=torch.bool)
        target = torch.where(void, -1, target).long()
        for value in self.void:
            void |= target == value
        in_range = (target >= 0) & (target < c)
        valid = in_range & (pred >= 0) & (pred < c)
        index = torch.where(valid, target * c + pred, torch.where(in_range | void, c * c, c * c + 1))
        return counts_by_index(index, c * c + 2)

    def compute(self) -> dict[str, float]:
        """mIoU, pixel accuracy and mean class accuracy as fractions in [0, 1]."""
        if self.confusion is None:
            raise ValueError("segmentation meter: compute() called before any update()")
        outside = int(self.out_of_range)
        if outside:
            warnings.warn(f"task {self.name!r}: {outside} target label(s) outside [0, {self.num_classes - 1}] and "
                          f"not the ignore index {' / '.join(map(str, self.void))} were left out; check the "
                          "number of classes and the ignore index", stacklevel=2)
        cm = self.confusion
        tp = cm.diagonal()
        gt = cm.sum(dim=1)
        predicted = cm.sum(dim=0)
        union = gt + predicted - tp
        iou = safe_div(tp, union, empty=float("nan"))
        acc = safe_div(tp, gt, empty=float("nan"))
        return {
            "miou": self._mean(iou),
            "pixel_acc": float(safe_div(tp.sum(), cm.sum())),
            "mean_acc": self._mean(acc),
        }

    def _mean(self, per_class: Tensor) -> float:
        if self.absent == "zero":
            return float(per_class.nan_to_num(0.0).mean())
        if self.absent == "nan":
            return float(per_class.mean())
        return float(per_class.nanmean())


class PartsMeter(SegmentationMeter):
    """Human parts: the same pooled IoU; images without a person are all ignore and add nothing."""

    kind = "parts"

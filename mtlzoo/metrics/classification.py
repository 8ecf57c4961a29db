"""Image-level tasks: classification accuracy and regression mae / rmse."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from mtlzoo.metrics.base import Meter, accumulate, check_same_numel, safe_div

if TYPE_CHECKING:
    from mtlzoo.tasks import Task


class AccuracyMeter(Meter):
    """Fraction of samples whose predicted class id equals the target (``ignore_index`` samples dropped)."""

    kind = "classification"

    @classmethod
    def for_task(cls, task: Task, **options: Any) -> AccuracyMeter:
        """The meter of ``task`` (its classes / ignore index) with a protocol's ``options``."""
        return cls(ignore_index=task.ignore_index, **options)

    def __init__(self, ignore_index: int = 255) -> None:
        self.ignore_index = ignore_index
        self.reset()

    def reset(self) -> None:
        self.total: Tensor | None = None

    def update(self, pred: Tensor, target: Tensor) -> None:
        """Add a batch of predicted class ids (B,) and targets (B,)."""
        check_same_numel(self.kind, pred, target)
        target = target.reshape(-1).to(pred.device).long()
        valid = target != self.ignore_index
        correct = (pred.reshape(-1).long() == target) & valid
        self.total = accumulate(self.total, torch.stack([correct.sum(), valid.sum()]).double())

    def compute(self) -> dict[str, float]:
        """``accuracy`` in [0, 1]."""
        if self.total is None:
            raise ValueError("classification meter: compute() called before any update()")
        return {"accuracy": float(safe_div(self.total[0], self.total[1], float("nan")))}


class RegressionMeter(Meter):
    """Mean absolute error and root-mean-square error over finite targets (NaN targets are missing); with
    ``mse=True`` also the mean squared error (what the MMoE paper's synthetic benchmark reports)."""

    kind = "regression"

    def __init__(self, mse: bool = False) -> None:
        self.mse = bool(mse)
        self.reset()

    def reset(self) -> None:
        self.total: Tensor | None = None

    def update(self, pred: Tensor, target: Tensor) -> None:
        """Add a batch of predictions (B, C) and targets of the same size."""
        check_same_numel(self.kind, pred, target)
        pred = pred.double().reshape(-1)
        target = target.double().reshape(-1).to(pred.device)
        valid = torch.isfinite(target)
        diff = torch.where(valid, pred - torch.where(valid, target, torch.zeros_like(target)), torch.zeros_like(pred))
        self.total = accumulate(self.total, torch.stack([diff.abs().sum(), diff.square().sum(), valid.sum().double()]))

    def compute(self) -> dict[str, float]:
        """``mae`` and ``rmse`` in the target's units (and ``mse``, its square, when asked for)."""
        if self.total is None:
            raise ValueError("regression meter: compute() called before any update()")
        nan = float("nan")
        mse = safe_div(self.total[1], self.total[2], nan)
        out = {"mae": float(safe_div(self.total[0], self.total[2], nan)), "rmse": float(mse.sqrt())}
        return {**out, "mse": float(mse)} if self.mse else out

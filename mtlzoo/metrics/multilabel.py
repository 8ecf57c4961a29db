"""Multilabel image-level tasks: mean average precision over classes and micro F1 at probability 0.5."""

from __future__ import annotations

import torch
from torch import Tensor

from mtlzoo.metrics.base import Meter


def average_precision(scores: Tensor, positive: Tensor) -> Tensor:
    """AP of one class: sum over distinct score thresholds (high to low) of (R_n - R_{n-1}) * P_n.

    Without ties this is the mean, over the positives, of the precision at each positive's rank. Tied scores
    form one threshold, as in the PASCAL VOC / scikit-learn step-wise definition.
    """
    order = torch.argsort(scores, descending=True, stable=True)
    scores, positive = scores[order], positive[order].double()
    tp = torch.cumsum(positive, 0)
    last = torch.ones_like(scores, dtype=torch.bool)
    last[:-1] = scores[1:] != scores[:-1]  # the last entry of each group of tied scores
    ranks = torch.arange(1, len(scores) + 1, device=scores.device, dtype=torch.float64)
    precision, recall = tp[last] / ranks[last], tp[last] / positive.sum()
    previous = torch.cat([recall.new_zeros(1), recall[:-1]])
    return ((recall - previous) * precision).sum()


class MultilabelMeter(Meter):
    """``map``: mean over classes of the average precision (classes with no positive target are skipped);
    ``f1``: micro F1 (true / false positives and negatives pooled over classes and images) with a class
    predicted present when its probability is >= ``cutoff`` (0.5). Targets are 0 / 1, -1 = ignore."""

    kind = "multilabel"

    def __init__(self, cutoff: float = 0.5) -> None:
        self.cutoff = float(cutoff)
        self.reset()

    def reset(self) -> None:
        self.scores: list[Tensor] = []
        self.targets: list[Tensor] = []

    def update(self, pred: Tensor, target: Tensor) -> None:
        """Add a batch of class probabilities (B, C) and targets (B, C) in {0, 1, -1}."""
        if pred.dim() != 2 or pred.shape != target.shape:
            raise ValueError(f"multilabel meter: prediction of shape {tuple(pred.shape)} and target of shape "
                             f"{tuple(target.shape)} must both be (B, C)")
        self.scores.append(pred.detach().double())
        self.targets.append(target.detach().to(pred.device).double())

    def compute(self) -> dict[str, float]:
        """``map`` and ``f1`` in [0, 1] (NaN when no class has a positive / nothing is positive)."""
        if not self.scores:
            raise ValueError("multilabel meter: compute() called before any update()")
        scores, target = torch.cat(self.scores), torch.cat(self.targets)
        valid = (target == 0) | (target == 1)
        aps = [average_precision(scores[valid[:, c], c], target[valid[:, c], c] == 1)
               for c in range(scores.shape[1]) if bool((target[:, c] == 1).any())]
        predicted = (scores >= self.cutoff) & valid
        positive = (target == 1) & valid
        tp = (predicted & positive).sum()
        errors = (predicted ^ positive).sum()  # false positives + false negatives
        denominator = int(2 * tp + errors)
        return {"map": float(torch.stack(aps).mean()) if aps else float("nan"),
                "f1": float(2 * tp) / denominator if denominator else float("nan")}

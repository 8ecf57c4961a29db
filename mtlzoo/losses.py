"""Masked task losses. Every loss is a finite scalar that stays in the graph, even when nothing is valid.

Target conventions (shared with the data loaders and the metrics):
segmentation / parts / classification: int64 class ids, ``ignore_index`` marks void;
depth: float (B, 1, H, W) in metres, 0 = invalid; normals: float (B, 3, H, W) unit vectors,
the zero vector = invalid; edge / saliency: float (B, 1, H, W) in {0, 1}, 255 = ignore;
regression: float (B, C); keypoints: float (B, K, H, W) heatmaps; multilabel: (B, C) in {0, 1},
-1 = ignore. Non-finite (NaN / inf) target values are invalid in every float target.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``values`` over ``mask``; 0 (still in the graph) when the mask is empty."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


def cross_entropy(logits: Tensor, target: Tensor, ignore_index: int) -> Tensor:
    """Cross-entropy averaged over the non-ignored pixels (or samples)."""
    target = target.long()
    valid = target != ignore_index
    safe_target = torch.where(valid, target, torch.zeros_like(target))
    per_element = F.cross_entropy(logits.float(), safe_target, reduction="none")
    return _masked_mean(per_element, valid)


def _finite_or_zero(target: Tensor, valid: Tensor) -> Tensor:
    """``target`` as float with invalid entries set to 0, so a NaN never reaches the loss or its gradient."""
    target = target.float()
    return torch.where(valid, target, torch.zeros_like(target))


def masked_l1_depth(pred: Tensor, target: Tensor) -> Tensor:
    """L1 on the pixels with a valid depth (finite and > 0)."""
    valid = torch.isfinite(target) & (target > 0)
    return _masked_mean((pred.float() - _finite_or_zero(target, valid)).abs(), valid)


def normals_loss(pred: Tensor, target: Tensor, mode: str = "l1") -> Tensor:
    """L1 between unit normals, or 1 - cosine, on pixels whose target is finite and not the zero vector."""
    valid = torch.isfinite(target).all(dim=1, keepdim=True) & (target.abs().sum(dim=1, keepdim=True) > 0)
    unit = F.normalize(pred.float(), dim=1, eps=1e-12)
    target = _finite_or_zero(target, valid)
    if mode == "l1":
        return _masked_mean((unit - target).abs(), valid.expand_as(unit))
    if mode == "cosine":
        return _masked_mean(1.0 - (unit * target).sum(dim=1, keepdim=True), valid)
    raise ValueError(f"normals loss must be 'l1' or 'cosine', got {mode!r}")


def balanced_bce(logits: Tensor, target: Tensor, pos_weight: float | None, ignore_index: int = 255) -> Tensor:
    """Class-balanced BCE: positives weighted ``w``, negatives ``1 - w``.

    With ``pos_weight=None`` w is the batch's fraction of negatives (saliency); a fixed w
    (0.95 for edges) follows the MTI-Net family.
    """
    target = target.float()
    valid = ((target != ignore_index) & torch.isfinite(target)).float()
    positives = (target == 1).float() * valid
    if pos_weight is None:
        w = 1.0 - positives.sum() / valid.sum().clamp_min(1.0)
    else:
        w = torch.as_tensor(pos_weight, dtype=torch.float32, device=logits.device)
    safe_target = positives
    logits = logits.float()
    log_p = F.logsigmoid(logits)
    log_not_p = F.logsigmoid(-logits)
    per_pixel = -(w * safe_target * log_p + (1.0 - w) * (1.0 - safe_target) * log_not_p)
    return _masked_mean(per_pixel, valid > 0)


def regression_loss(pred: Tensor, target: Tensor, mode: str = "l1") -> Tensor:
    """L1 or MSE on finite targets (NaN targets are treated as missing)."""
    target = target.float().reshape(pred.shape)
    valid = torch.isfinite(target)
    diff = pred.float() - _finite_or_zero(target, valid)
    if mode == "l1":
        return _masked_mean(diff.abs(), valid)
    if mode == "mse":
        return _masked_mean(diff.square(), valid)
    raise ValueError(f"regression loss must be 'l1' or 'mse', got {mode!r}")


def heatmap_mse(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error between predicted and target heatmaps over the finite target pixels (keypoints)."""
    valid = torch.isfinite(target)
    return _masked_mean((pred.float() - _finite_or_zero(target, valid)).square(), valid)


def multilabel_bce(logits: Tensor, target: Tensor) -> Tensor:
    """Binary cross-entropy with logits averaged over the (image, class) entries whose target is 0 or 1;
    -1 (and non-finite) entries are ignored."""
    target = target.float()
    valid = torch.isfinite(target) & (target != -1)
    per_entry = F.binary_cross_entropy_with_logits(logits.float(), _finite_or_zero(target, valid), reduction="none")
    return _masked_mean(per_entry, valid)

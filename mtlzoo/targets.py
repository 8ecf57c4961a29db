"""Target checks per task kind: shape, dtype and value range, with one-line errors naming the task.

Each check takes ``(task, prediction, target)`` and returns the target, reshaped where the layout is
unambiguous (a (B, H, W) depth map gains its channel; a (B, 1, H, W) label map loses it). Shape and
dtype checks read only metadata; the value-range checks of label, edge and saliency targets read one
boolean back from the device (one host sync per loss call of such a task).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from mtlzoo.tasks import Task


def _shape(t: Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def _mismatch(task: Task, pred: Tensor, target: Tensor, expected: str) -> ValueError:
    return ValueError(f"task {task.name!r}: target shape {_shape(target)} does not match prediction "
                      f"{_shape(pred)}; expected {expected}")


def _check_batch(task: Task, pred: Tensor, target: Tensor, expected: str) -> None:
    if target.dim() == 0 or target.shape[0] != pred.shape[0]:
        raise _mismatch(task, pred, target, expected)


def _first_bad(target: Tensor, bad: Tensor) -> str:
    """A short listing of the offending values (error path only, so the extra syncs do not matter)."""
    values = torch.unique(target[bad])[:5].tolist()
    return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def check_batch(task: Task, pred: Tensor, target: Tensor) -> Tensor:
    """The default for a user kind: only the batch size must match the prediction's."""
    _check_batch(task, pred, target, f"a batch of {pred.shape[0] if pred.dim() else '?'} targets")
    return target


def check_labels(task: Task, pred: Tensor, target: Tensor) -> Tensor:
    """Integer class ids: (B, H, W) for a (B, C, H, W) prediction, (B,) for (B, C); values in [0, C) or ignore."""
    dense = pred.dim() == 4
    expected = (f"(B, H, W) integer class ids in [0, {task.channels - 1}] or {task.ignore_index}" if dense
                else f"(B,) integer class ids in [0, {task.channels - 1}] or {task.ignore_index}")
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        hint = "; a one-hot or probability target must be turned into class ids (argmax over dim 1)" \
            if target.dim() == pred.dim() and target.shape[1:2] == pred.shape[1:2] else ""
        raise ValueError(f"task {task.name!r}: target dtype {target.dtype} of shape {_shape(target)}; "
                         f"expected integer class ids ({expected}){hint}")
    if target.dim() == pred.dim() and target.shape[1] == 1:
        target = target.squeeze(1)
    _check_batch(task, pred, target, expected)
    if target.shape[1:] != (pred.shape[2:] if dense else ()):
        raise _mismatch(task, pred, target, expected)
    bad = ((target < 0) | (target >= task.channels)) & (target != task.ignore_index)
    if bool(bad.any()):
        raise ValueError(f"task {task.name!r}: target labels {_first_bad(target, bad)} lie outside "
                         f"[0, {task.channels - 1}] or the ignore index {task.ignore_index}; "
                         f"check the number of classes (channels={task.channels}) and ignore_index")
    return target


def check_map(task: Task, pred: Tensor, target: Tensor) -> Tensor:
    """A (B, C, H, W) target of the prediction's shape; a (B, H, W) one gains its channel when C is 1."""
    expected = f"(B, {task.channels}, H, W) like the prediction"
    if target.is_complex() or target.dtype == torch.bool:
        raise ValueError(f"task {task.name!r}: target dtype {target.dtype}; expected real values, {expected}")
    if pred.dim() == 4 and pred.shape[1] == 1 and target.dim() == 3:
        target = target.unsqueeze(1)
    _check_batch(task, pred, target, expected)
    if target.shape != pred.shape:
        raise _mismatch(task, pred, target, expected)
    return target


def check_binary_map(task: Task, pred: Tensor, target: Tensor) -> Tensor:
    """Edge / saliency: a map as :func:`check_map` whose values are 0, 1, the ignore index or non-finite
    (a bool mask is read as 0 / 1)."""
    target = check_map(task, pred, target.float() if target.dtype == torch.bool else target)
    bad = (target != 0) & (target != 1) & (target != task.ignore_index) & torch.isfinite(target)
    if bool(bad.any()):
        raise ValueError(f"task {task.name!r}: target values {_first_bad(target, bad)} are not 0, 1 or the "
                         f"ignore index {task.ignore_index}; binarise soft labels before training")
    return target


def check_vector(task: Task, pred: Tensor, target: Tensor) -> Tensor:
    """Regression: a (B, C) target (or (B,) when C is 1) for a (B, C) prediction."""
    expected = f"(B, {task.channels}) like the prediction"
    _check_batch(task, pred, target, expected)
    if target.numel() != pred.numel():
        raise _mismatch(task, pred, target, expected)
    return target.reshape(pred.shape)


def check_heatmaps(task: Task, pred: Tensor, target: Tensor) -> Tensor:
    """Keypoints: float (B, K, H, W) heatmaps like the prediction, one channel per keypoint."""
    if not target.is_floating_point():
        raise ValueError(f"task {task.name!r}: target dtype {target.dtype}; expected float heatmaps "
                         f"(B, {task.channels}, H, W), an all-zero channel for an invisible keypoint")
    return check_map(task, pred, target)


def check_multilabel(task: Task, pred: Tensor, target: Tensor) -> Tensor:
    """Multilabel: a (B, C) target of 0 / 1 per class, -1 (or non-finite) to ignore an entry (a bool target is
    read as 0 / 1)."""
    target = target.float() if target.dtype == torch.bool else target
    expected = f"(B, {task.channels}) values in {{0, 1}} or -1 (ignore) like the prediction"
    _check_batch(task, pred, target, expected)
    if target.shape != pred.shape:
        raise _mismatch(task, pred, target, expected)
    bad = (target != 0) & (target != 1) & (target != -1) & torch.isfinite(target)
    if bool(bad.any()):
        raise ValueError(f"task {task.name!r}: target values {_first_bad(target, bad)} are not 0, 1 or -1 "
                         f"(ignore); expected {expected}")
    return target

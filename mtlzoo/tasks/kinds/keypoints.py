"""Keypoints as heatmap regression: K channels, one Gaussian blob per visible keypoint, MSE loss, PCK.

Targets are float (B, K, H, W) heatmaps (peak 1 at the keypoint); an all-zero channel marks an invisible
keypoint. :func:`render_heatmaps` draws them from (x, y, visibility) coordinates. PCK counts a visible
keypoint as correct when the predicted heatmap's argmax lies within ``threshold * max(H, W)`` pixels of the
target's (meter option ``threshold``, default 0.1). A horizontal flip swaps the channels of each
left / right pair a data set declares (``RandomHorizontalFlip(swaps={"keypoints": [(1, 2)]})``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from mtlzoo import losses, targets
from mtlzoo.tasks.kind import HIGHER, TaskKind, identity, register_task_kind
from mtlzoo.tasks.kinds._maps import channels_last_to_tensor

if TYPE_CHECKING:
    from mtlzoo.tasks.task import Task


def render_heatmaps(points: Tensor, size: tuple[int, int], sigma: float = 2.0) -> Tensor:
    """(B, K, H, W) Gaussian heatmaps (peak 1) from (B, K, 3) pixel coordinates (x, y, visibility);
    a keypoint with visibility 0 gets an all-zero channel."""
    if points.dim() != 3 or points.shape[-1] != 3:
        raise ValueError(f"render_heatmaps: points must be (B, K, 3) as (x, y, visibility), got {tuple(points.shape)}")
    h, w = size
    ys = torch.arange(h, dtype=torch.float32).view(1, 1, h, 1)
    xs = torch.arange(w, dtype=torch.float32).view(1, 1, 1, w)
    x, y, visible = (points[..., i].float().view(*points.shape[:2], 1, 1) for i in range(3))
    blobs = torch.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2.0 * sigma**2))
    return blobs * (visible > 0)


def swap_channels(target: Tensor, pairs: Sequence[tuple[int, int]]) -> Tensor:
    """After a horizontal flip a left keypoint is a right one: exchange channels a <-> b of a (K, H, W) map."""
    order = list(range(target.shape[0]))
    for a, b in pairs:
        order[a], order[b] = order[b], order[a]
    return target[order]


def _random_heatmaps(task: Task, batch: int, size: tuple[int, int], generator: torch.Generator | None) -> Tensor:
    """Heatmaps of keypoints at uniform random pixels, each visible with probability 0.8."""
    h, w = size
    u = torch.rand(batch, task.channels, 3, generator=generator)
    points = torch.stack([(u[..., 0] * w).floor(), (u[..., 1] * h).floor(), (u[..., 2] < 0.8).float()], -1)
    return render_heatmaps(points, size)


register_task_kind(TaskKind(
    name="keypoints", dense=True, default_channels=None, default_head="aspp", losses=("mse",),
    metrics={"pck": HIGHER}, headline_metric="pck",
    compute_loss=lambda task, out, y: losses.heatmap_mse(out, y), postprocess=identity,
    check_target=targets.check_heatmaps, to_tensor=channels_last_to_tensor, resample="bilinear",
    on_flip=swap_channels, meter="mtlzoo.metrics.keypoints:PCKMeter.for_task", fraction_metrics=("pck",),
    hf_task_type="keypoint-detection", example_target=_random_heatmaps,
))

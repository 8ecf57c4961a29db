"""Surface normals: unit vectors per pixel (zero vector = invalid), L1 or cosine loss, angular-error metrics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from mtlzoo import losses, targets
from mtlzoo.tasks.kind import HIGHER, LOWER, TaskKind, register_task_kind
from mtlzoo.tasks.kinds._maps import channels_last_to_tensor

if TYPE_CHECKING:
    from mtlzoo.tasks.task import Task

NORMALS_METRICS = {
    "mean": LOWER, "median": LOWER, "rmse": LOWER,
    "within_11_25": HIGHER, "within_22_5": HIGHER, "within_30": HIGHER,
}


def unit_normals(task: Task, out: Tensor) -> Tensor:
    """Postprocess: the output divided by its norm over the channel axis."""
    # the norm as a sum over channel planes: several times faster on CPU than a strided reduction over dim 1
    out = out.float()
    norm = sum(plane * plane for plane in out.unbind(1)).sqrt().clamp_min(1e-12)
    return out / norm.unsqueeze(1)


def mirror_normals(target: Tensor, swaps: Sequence[tuple[int, int]]) -> Tensor:
    """A horizontal flip points every normal the other way along x: negate channel 0 of a (3, H, W) map."""
    target = target.clone()
    target[0] = -target[0]
    return target


register_task_kind(TaskKind(
    name="normals", dense=True, default_channels=3, default_head="aspp", losses=("l1", "cosine"),
    metrics=NORMALS_METRICS, headline_metric="mean",
    compute_loss=lambda task, out, y: losses.normals_loss(out, y, task.loss), postprocess=unit_normals,
    check_target=targets.check_map, to_tensor=channels_last_to_tensor, on_flip=mirror_normals,
    meter="mtlzoo.metrics.normals:NormalsMeter.for_task",
    fraction_metrics=("within_11_25", "within_22_5", "within_30"), hf_task_type="image-to-image",
    example_target=lambda task, b, size, g: F.normalize(torch.randn(b, 3, *size, generator=g), dim=1),
))

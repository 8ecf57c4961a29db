"""A user task kind in one file: object-density maps for counting (crowd-counting style).

A density map holds, per pixel, how many objects it covers (a blob summing to 1 per object), so the count
of an image is the sum of its map. Importing this module registers the kind "density"; then
``Task("crowd", "density")`` works in every model, and losses, heads, ``evaluate`` under any protocol,
``delta_m``, model cards, checkpoints, fine-tuning and configs follow from the TaskKind below.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import mtlzoo
from mtlzoo.metrics import Meter
from mtlzoo.tasks import HIGHER, LOWER, Task, TaskKind


def density_loss(task: Task, output: Tensor, target: Tensor) -> Tensor:
    """Pixel-wise squared error, scaled by the pixels per image so that it reads as a count error."""
    return F.mse_loss(output.float(), target.float()) * target[0].numel()


def check_density(task: Task, output: Tensor, target: Tensor) -> Tensor:
    """A non-negative float (B, 1, H, W) map at the output's resolution; (B, H, W) gains its channel."""
    if target.dim() == 3:
        target = target.unsqueeze(1)
    if not target.is_floating_point() or target.shape != output.shape:
        raise ValueError(f"task {task.name!r}: target {target.dtype} of shape {tuple(target.shape)}; expected a "
                         f"float density map of shape {tuple(output.shape)}")
    if bool((target < 0).any()):
        raise ValueError(f"task {task.name!r}: density targets must be >= 0, got a minimum of {target.min():g}")
    return target


class DensityHead(nn.Module):
    """Fuse the finest and the coarsest feature maps, predict one channel, upsample to the input size."""

    def __init__(self, in_channels: Sequence[int], width: int = 32) -> None:
        super().__init__()
        self.fine, self.coarse = nn.Conv2d(in_channels[0], width, 1), nn.Conv2d(in_channels[-1], width, 1)
        self.out = nn.Sequential(nn.ReLU(), nn.Conv2d(width, 1, 3, padding=1))

    def forward(self, features: Sequence[Tensor], size: tuple[int, int]) -> Tensor:
        fine = features[0]
        x = self.fine(fine) + F.interpolate(self.coarse(features[-1]), size=fine.shape[-2:], mode="bilinear")
        return F.interpolate(self.out(x), size=size, mode="bilinear")


class CountMeter(Meter):
    """Counts are sums of the maps: mean absolute count error and the fraction of images within ``tolerance``."""

    kind = "density"

    def __init__(self, tolerance: float = 1.0) -> None:
        self.tolerance = tolerance
        self.reset()

    @classmethod
    def for_task(cls, task: Task, **options: Any) -> CountMeter:
        return cls(**options)

    def reset(self) -> None:
        self.total: Tensor | None = None

    def update(self, pred: Tensor, target: Tensor) -> None:
        error = (pred.sum(dim=(1, 2, 3)) - target.reshape(pred.shape).sum(dim=(1, 2, 3))).abs().double()
        batch = torch.stack([error.sum(), (error <= self.tolerance).sum(), error.new_tensor(len(error))])
        self.total = batch if self.total is None else self.total + batch

    def compute(self) -> dict[str, float]:
        if self.total is None:
            raise ValueError("density meter: compute() called before any update()")
        return {"count_mae": float(self.total[0] / self.total[2]), "within_1": float(self.total[1] / self.total[2])}


DENSITY = mtlzoo.register_task_kind(TaskKind(
    name="density", dense=True, default_channels=1, default_head="light", losses=("mse",),
    metrics={"count_mae": LOWER, "within_1": HIGHER}, headline_metric="count_mae",
    build_head=lambda task, in_channels: DensityHead(in_channels),
    compute_loss=density_loss, postprocess=lambda task, output: output.float().clamp_min(0.0),
    check_target=check_density,
    to_tensor=lambda array: torch.from_numpy(np.asarray(array, np.float32)).reshape(1, *np.shape(array)[:2]),
    resample="bilinear",  # a soft map: bilinear keeps its mass where nearest-neighbour would drop blobs
    zoom_exponent=-2.0,  # zooming by s spreads each object over s^2 times the pixels: divide by s^2
    meter=CountMeter.for_task, fraction_metrics=("within_1",), hf_task_type="image-to-image",
))

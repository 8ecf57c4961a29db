"""Semantic segmentation and human parts: per-pixel class ids, cross-entropy, pooled-confusion-matrix IoU."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from mtlzoo import losses, targets
from mtlzoo.tasks.kind import HIGHER, TaskKind, argmax, register_task_kind
from mtlzoo.tasks.kinds._maps import labels_to_tensor

if TYPE_CHECKING:
    from mtlzoo.tasks.task import Task

SEG_METRICS = {"miou": HIGHER, "pixel_acc": HIGHER, "mean_acc": HIGHER}


def random_labels(task: Task, batch: int, size: tuple[int, int], generator: torch.Generator | None) -> Tensor:
    """Uniform random class ids: (B, H, W) for a dense kind, (B,) for an image-level one (empty ``size``)."""
    return torch.randint(0, task.channels, (batch, *size), generator=generator)


for _name, _meter in (("segmentation", "SegmentationMeter"), ("parts", "PartsMeter")):
    register_task_kind(TaskKind(
        name=_name, dense=True, default_channels=None, default_head="aspp", losses=("ce",),
        metrics=SEG_METRICS, headline_metric="miou",
        compute_loss=lambda task, out, y: losses.cross_entropy(out, y, task.ignore_index),
        postprocess=argmax, check_target=targets.check_labels, uses_ignore_index=True,
        to_tensor=labels_to_tensor, meter=f"mtlzoo.metrics.segmentation:{_meter}.for_task",
        fraction_metrics=tuple(SEG_METRICS), hf_task_type="image-segmentation", example_target=random_labels,
    ))

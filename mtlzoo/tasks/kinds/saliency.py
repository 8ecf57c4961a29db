"""Saliency: binary salient-object maps, class-balanced BCE (weight from the batch), maxF and mIoU."""

from __future__ import annotations

import torch

from mtlzoo import losses, targets
from mtlzoo.tasks.kind import HIGHER, TaskKind, register_task_kind, sigmoid
from mtlzoo.tasks.kinds._maps import map_to_tensor

register_task_kind(TaskKind(
    name="saliency", dense=True, default_channels=1, default_head="aspp", losses=("balanced_bce",),
    metrics={"maxf": HIGHER, "miou": HIGHER}, headline_metric="maxf",
    compute_loss=lambda task, out, y: losses.balanced_bce(out, y, task.pos_weight, task.ignore_index),
    postprocess=sigmoid, check_target=targets.check_binary_map, uses_ignore_index=True,
    to_tensor=map_to_tensor, meter="mtlzoo.metrics.saliency:SaliencyMeter.for_task",
    # Vandenhende et al. (survey Eq. 10) score saliency by its mIoU, not by the headline maxF
    delta_metric="miou", fraction_metrics=("maxf", "miou"), hf_task_type="image-segmentation",
    example_target=lambda task, b, size, g: (torch.rand(b, 1, *size, generator=g) > 0.5).float(),
))

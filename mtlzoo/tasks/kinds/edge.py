"""Edges: binary boundary maps (255 = ignore), class-balanced BCE with positive weight 0.95, odsF."""

from __future__ import annotations

import torch

from mtlzoo import losses, targets
from mtlzoo.tasks.kind import HIGHER, LOWER, TaskKind, register_task_kind, sigmoid
from mtlzoo.tasks.kinds._maps import map_to_tensor

register_task_kind(TaskKind(
    name="edge", dense=True, default_channels=1, default_head="aspp", losses=("balanced_bce",),
    metrics={"odsf": HIGHER, "bce": LOWER}, headline_metric="odsf",
    compute_loss=lambda task, out, y: losses.balanced_bce(out, y, task.pos_weight, task.ignore_index),
    postprocess=sigmoid, check_target=targets.check_binary_map, uses_ignore_index=True, default_pos_weight=0.95,
    to_tensor=map_to_tensor, meter="mtlzoo.metrics.edge:EdgeMeter.for_task", fraction_metrics=("odsf",),
    hf_task_type="image-segmentation",
    example_target=lambda task, b, size, g: (torch.rand(b, 1, *size, generator=g) > 0.8).float(),
))

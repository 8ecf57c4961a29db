"""Depth: metres per pixel (0 = invalid), masked L1, error and threshold-accuracy metrics."""

from __future__ import annotations

import torch

from mtlzoo import losses, targets
from mtlzoo.tasks.kind import HIGHER, LOWER, TaskKind, identity, register_task_kind
from mtlzoo.tasks.kinds._maps import map_to_tensor

DEPTH_METRICS = {
    "rmse": LOWER, "log_rmse": LOWER, "abs_err": LOWER, "abs_rel": LOWER, "sq_rel": LOWER,
    "delta1": HIGHER, "delta2": HIGHER, "delta3": HIGHER,
}

register_task_kind(TaskKind(
    name="depth", dense=True, default_channels=1, default_head="aspp", losses=("l1",),
    metrics=DEPTH_METRICS, headline_metric="rmse",
    compute_loss=lambda task, out, y: losses.masked_l1_depth(out, y), postprocess=identity,
    check_target=targets.check_map, to_tensor=map_to_tensor, zoom_exponent=-1.0,
    meter="mtlzoo.metrics.depth:DepthMeter.for_task", fraction_metrics=("delta1", "delta2", "delta3"),
    hf_task_type="depth-estimation",
    example_target=lambda task, b, size, g: 0.5 + 4.5 * torch.rand(b, 1, *size, generator=g),
))

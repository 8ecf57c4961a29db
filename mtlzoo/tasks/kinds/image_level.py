"""Image-level classification (one class id per image, accuracy) and regression (a vector, MAE / RMSE, MSE on
request)."""

from __future__ import annotations

import torch

from mtlzoo import losses, targets
from mtlzoo.tasks.kind import HIGHER, LOWER, TaskKind, argmax, identity, register_task_kind
from mtlzoo.tasks.kinds._maps import labels_to_tensor, values_to_tensor
from mtlzoo.tasks.kinds.segmentation import random_labels

register_task_kind(TaskKind(
    name="classification", dense=False, default_channels=None, default_head="mlp", losses=("ce",),
    metrics={"accuracy": HIGHER}, headline_metric="accuracy",
    compute_loss=lambda task, out, y: losses.cross_entropy(out, y, task.ignore_index),
    postprocess=argmax, check_target=targets.check_labels, uses_ignore_index=True, to_tensor=labels_to_tensor,
    resample=None, meter="mtlzoo.metrics.classification:AccuracyMeter.for_task", fraction_metrics=("accuracy",),
    hf_task_type="image-classification", example_target=lambda task, b, size, g: random_labels(task, b, (), g),
))
register_task_kind(TaskKind(
    name="regression", dense=False, default_channels=1, default_head="mlp", losses=("l1", "mse"),
    metrics={"mae": LOWER, "rmse": LOWER, "mse": LOWER}, headline_metric="mae",
    compute_loss=lambda task, out, y: losses.regression_loss(out, y, task.loss), postprocess=identity,
    check_target=targets.check_vector, to_tensor=values_to_tensor, resample=None,
    meter="mtlzoo.metrics.classification:RegressionMeter.for_task", hf_task_type="image-feature-extraction",
    example_target=lambda task, b, size, g: torch.randn(b, task.channels, generator=g),
))

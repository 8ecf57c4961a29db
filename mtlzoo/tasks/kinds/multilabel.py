"""Multilabel image-level classification: C independent present / absent labels per image.

Targets are (B, C) with 1 = present, 0 = absent and -1 = unknown (ignored by the loss and the metrics).
Loss: binary cross-entropy with logits. Metrics: ``map``, the mean over classes of the average precision
(classes with no positive target are skipped), and ``f1``, the micro F1 pooled over classes and images with
a class predicted present at probability >= 0.5. Both higher is better; the headline is ``map``.
"""

from __future__ import annotations

import torch

from mtlzoo import losses, targets
from mtlzoo.tasks.kind import HIGHER, TaskKind, register_task_kind, sigmoid
from mtlzoo.tasks.kinds._maps import values_to_tensor

register_task_kind(TaskKind(
    name="multilabel", dense=False, default_channels=None, default_head="mlp", losses=("bce",),
    metrics={"map": HIGHER, "f1": HIGHER}, headline_metric="map",
    compute_loss=lambda task, out, y: losses.multilabel_bce(out, y), postprocess=sigmoid,
    check_target=targets.check_multilabel, to_tensor=values_to_tensor, resample=None,
    meter="mtlzoo.metrics.multilabel:MultilabelMeter.for_task", fraction_metrics=("map", "f1"),
    hf_task_type="image-classification",
    example_target=lambda task, b, size, g: torch.randint(0, 2, (b, task.channels), generator=g).float(),
))

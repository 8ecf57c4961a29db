"""The TaskKind contract: everything a kind of prediction means, in one object, and its registry.

A kind owns its loss(es), head, target check and conversion, how joint transforms (scaling, flips) touch its
targets, its meter factory, its metric names with their directions, its headline metric and its Hugging Face
task type. Losses, heads, ``evaluate``, ``delta_m``, model cards, fine-tuning and configs read the kind;
:func:`register_task_kind` adds one from user code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from mtlzoo import targets
from mtlzoo.registry import Registry, unknown_name_error

if TYPE_CHECKING:
    from mtlzoo.tasks.task import Task

HIGHER, LOWER = 1, -1  # metric directions: +1 means a larger value is better
RESAMPLE_MODES = ("nearest", "bilinear")


def as_tensor(array: np.ndarray) -> Tensor:
    """The default target conversion: the array as a tensor (image-level targets, user kinds)."""
    return torch.as_tensor(np.ascontiguousarray(array))


def argmax(task: Task, output: Tensor) -> Tensor:
    """Postprocess logits into class ids (dim 1)."""
    return output.argmax(dim=1)


def sigmoid(task: Task, output: Tensor) -> Tensor:
    """Postprocess logits into probabilities."""
    return output.float().sigmoid()


def identity(task: Task, output: Tensor) -> Tensor:
    """Postprocess a regressed output: the values themselves, as float32."""
    return output.float()


def swap_values(target: Tensor, pairs: Sequence[tuple[int, int]]) -> Tensor:
    """Exchange label values ``a`` <-> ``b`` for each pair (left / right part ids after a flip)."""
    for a, b in pairs:
        target = torch.where(target == a, b, torch.where(target == b, a, target))
    return target


@dataclass(frozen=True)
class TaskKind:
    """What a kind of prediction means. Fields after ``postprocess`` have defaults that suit a user kind.

    Training: ``compute_loss(task, output, target)`` after ``check_target(task, output, target) -> target``
    (shape, dtype and range; may add or drop an unambiguous channel axis; default: batch size only).
    ``losses`` names the variants a Task may pick with ``loss=`` (first = default). The head:
    ``build_head(task, in_channels)`` builds the kind's own (a module called as ``head(features, size)`` on the
    feature maps, finest first, whose channels ``in_channels`` lists); without it the model's head type is
    used, or ``default_head``, a head of ``mtlzoo.models.heads.HEADS`` ("aspp" / "light" / "mlp");
    ``Task(head=...)`` overrides both.
    ``default_pos_weight`` fills ``Task.pos_weight``.

    Data: ``to_tensor(array)`` turns a loaded (H, W[, C]) numpy target into the tensor the loss reads.
    ``resample`` is how scaling / cropping resizes the target ("nearest" keeps label ids and invalid markers,
    "bilinear" suits soft maps; None: image-level, joint transforms leave it alone). A zoom by ``s``
    multiplies the target by ``s ** zoom_exponent`` (depth: -1, the scene looks s times closer).
    ``on_flip(target, swaps)`` fixes a horizontally mirrored target (normals negate x; default: swap the
    label values of each ``(a, b)`` pair a data set declares).

    Evaluation: ``meter(task, **options)`` builds the streaming meter (a callable or its ``"module:attr"``
    path, resolved by ``mtlzoo.metrics.create_meter``; protocols pass options or override it).
    ``metrics`` maps each metric name to HIGHER / LOWER; ``headline_metric`` is the one a table shows;
    ``delta_metric`` the one Vandenhende's delta_m uses (default: the headline); ``fraction_metrics`` are
    ratios in [0, 1] (delta_m refuses to compare them with percentages). ``hf_task_type`` is the Hugging
    Face task id of the model card. ``example_target(task, batch, (H, W), generator)`` draws a random valid
    target batch (benchmarks and smoke tests feed models with it).
    """

    name: str
    dense: bool
    default_channels: int | None
    default_head: str
    losses: tuple[str, ...]
    metrics: Mapping[str, int]
    headline_metric: str
    compute_loss: Callable[[Task, Tensor, Tensor], Tensor]
    postprocess: Callable[[Task, Tensor], Tensor]
    check_target: Callable[[Task, Tensor, Tensor], Tensor] = targets.check_batch
    uses_ignore_index: bool = False
    default_pos_weight: float | None = None
    to_tensor: Callable[[np.ndarray], Tensor] = as_tensor
    resample: str | None = "nearest"
    zoom_exponent: float = 0.0
    on_flip: Callable[[Tensor, Sequence[tuple[int, int]]], Tensor] = swap_values
    meter: Callable[..., Any] | str | None = None
    delta_metric: str | None = None
    fraction_metrics: tuple[str, ...] = ()
    hf_task_type: str = "other"
    example_target: Callable[[Task, int, tuple[int, int], torch.Generator | None], Tensor] | None = None
    build_head: Callable[[Task, list[int]], nn.Module] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"task kind name must be a Python identifier like 'keypoints', got {self.name!r}")
        if not self.metrics or set(self.metrics.values()) - {HIGHER, LOWER}:
            raise ValueError(f"task kind {self.name!r}: metrics must map each metric name to HIGHER (+1) or "
                             f"LOWER (-1), got {dict(self.metrics)!r}")
        for what, metric in (("headline_metric", self.headline_metric), ("delta_metric", self.delta_metric)):
            if metric is not None and metric not in self.metrics:
                raise unknown_name_error(f"{self.name} {what}", metric, list(self.metrics))
        if not self.losses:
            raise ValueError(f"task kind {self.name!r}: losses must name at least one loss variant")
        if self.resample is not None and self.resample not in RESAMPLE_MODES:
            raise ValueError(f"task kind {self.name!r}: resample must be one of {list(RESAMPLE_MODES)} or None, "
                             f"got {self.resample!r}")
        if self.resample is not None and not self.dense:
            raise ValueError(f"task kind {self.name!r} is image-level (dense=False); set resample=None")
        unknown = sorted(set(self.fraction_metrics) - set(self.metrics))
        if unknown:
            raise ValueError(f"task kind {self.name!r}: fraction_metrics {unknown} are not among its metrics "
                             f"{list(self.metrics)}")

    def direction(self, metric: str) -> int:
        """+1 when a larger ``metric`` is better, -1 when a smaller one is."""
        try:
            return self.metrics[metric]
        except KeyError:
            raise unknown_name_error(f"{self.name} metric", metric, list(self.metrics)) from None

    @property
    def vandenhende_metric(self) -> str:
        """The metric Vandenhende's delta_m scores this kind by."""
        return self.delta_metric or self.headline_metric


TASK_KINDS: Registry[TaskKind] = Registry("task kind")


def register_task_kind(kind: TaskKind) -> TaskKind:
    """Add a task kind; every Task, loss, head, meter, delta_m, config and model card then knows it.

    Raises a ValueError when the name is taken (remove a test's kind with ``TASK_KINDS`` snapshots).
    """
    if not isinstance(kind, TaskKind):
        raise TypeError(f"register_task_kind takes a TaskKind, got {type(kind).__name__}")
    return TASK_KINDS.register(kind.name)(kind)

"""Single-task learning: one independent encoder and head per task, in one module.

The baseline every delta_m is measured against. Nothing is shared: ``shared_parameters()`` is
empty and each task's encoder is its own parameter group, so a gradient balancer has nothing to
balance (the engine gives each task its own gradient) and feature-level balancing is refused.
Training it with ``ew`` trains T single-task networks at once, each exactly as alone (an Adam
step per parameter only sees its own task's loss).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from functools import partial
from itertools import chain
from typing import Any

from torch import nn

from mtlzoo.models.columns import IndependentColumns, TaskColumns
from mtlzoo.models.encoders import create_encoder
from mtlzoo.models.factory import register_model
from mtlzoo.tasks import Task

TaskSpec = str | Iterable[Task | Mapping[str, Any]]


class IndependentTaskModels(TaskColumns):
    """T independent networks behind the multi-task contract: ``self.encoder`` is an :class:`IndependentColumns`
    (one column per task) and each task owns its column and head. Subclasses build the columns and the heads."""

    encoder: IndependentColumns

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
        """The task's encoder and head."""
        self.task(task)
        return chain(self.encoder.columns[task].parameters(), self.heads[task].parameters())

    def add_task(self, task: Task | Mapping[str, Any]) -> nn.Module:
        """Add a task with a fresh encoder and head."""
        head = super().add_task(task)
        column = self.encoder.add_column(self.tasks[-1].name)
        column.train(self.training)
        if self._encoder_frozen:
            column.requires_grad_(False).eval()
        return head

    def remove_task(self, name: str) -> Task:
        removed = super().remove_task(name)
        del self.encoder.columns[name]
        return removed

    def freeze_encoder(self) -> None:
        """Stop training every task's encoder (a single-task model has no shared part; the heads stay trainable)."""
        self.encoder.requires_grad_(False)
        self._encoder_frozen = True
        self.train(self.training)

    def unfreeze_encoder(self) -> None:
        """Train every task's encoder again."""
        self.encoder.requires_grad_(True)
        self._encoder_frozen = False
        self._frozen_tasks = set()
        self.train(self.training)

    def train(self, mode: bool = True) -> IndependentTaskModels:
        """As the base class; a frozen task's encoder stays in eval mode too (its outputs do not change)."""
        super().train(mode)
        for name in self._frozen_tasks & set(self.encoder.columns.keys()):
            self.encoder.columns[name].eval()
        return self


class SingleTaskModels(IndependentTaskModels):
    """T independent networks (any timm / smp / tiny encoder + the task's head) behind the multi-task contract."""

    def __init__(self, tasks: TaskSpec, encoder: str = "resnet50", output_stride: int = 8,
                 encoder_weights: str | None = None, head: str | None = None, head_width: int | None = None,
                 in_chans: int = 3) -> None:
        super().__init__(tasks, head=head, head_width=head_width, in_chans=in_chans)
        self.encoder_name, self.output_stride = encoder, output_stride
        self.encoder = IndependentColumns(self.task_names, partial(create_encoder, encoder, in_chans=in_chans,
                                                                   output_stride=output_stride,
                                                                   encoder_weights=encoder_weights))
        self.build_heads()


@register_model
def stl(tasks: TaskSpec, encoder: str = "resnet50", **kwargs: Any) -> SingleTaskModels:
    """Single-task baselines on any encoder: one ``encoder`` (timm name or ``"smp:<name>"``) and head per task."""
    return SingleTaskModels(tasks, encoder=encoder, **kwargs)


@register_model
def stl_tiny(tasks: TaskSpec, **kwargs: Any) -> SingleTaskModels:
    """Single-task baselines: one tiny 4-stage conv encoder + light head per task, for tests and CPU demos."""
    kwargs = {"output_stride": 32, "head": "light", "head_width": 32, **kwargs}
    return SingleTaskModels(tasks, encoder="tiny", **kwargs)


@register_model
def stl_resnet18(tasks: TaskSpec, **kwargs: Any) -> SingleTaskModels:
    """Single-task baselines: one ResNet-18 (dilated, output stride 8) + DeepLab ASPP head per task."""
    return SingleTaskModels(tasks, encoder="resnet18", **{"output_stride": 8, **kwargs})

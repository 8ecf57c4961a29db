"""Multi-task attention network (Liu et al., "End-to-End Multi-Task Learning with Attention", CVPR 2019).

A shared encoder, and per task one soft attention module per encoder stage j. The mask is
computed from the shared feature p_j and the task's previous attended feature a_{j-1} (brought
to p_j's channels by a residual bottleneck, as in the released ResNet MTAN, and to its resolution
by max pooling), and multiplies p_j element-wise:

    a_j = sigmoid(g_j([p_j; f_j(a_{j-1})])) * p_j,   g_j = 1x1 conv-BN-ReLU-1x1 conv-BN,

and the task's head reads (a_1, ..., a_L). With a generic encoder only the stage outputs are
known, so the mask reads p_j itself (the paper reads the first layer of the block and masks its
last); f_j belongs to the task, so the encoder output is a shared representation followed only
by task parameters and feature-level balancing applies. ``mtan_segnet`` (in
:mod:`mtlzoo.models.mtan_segnet`) is the released SegNet version of the NYUv2 benchmark.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import chain
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mtlzoo.models.base import MultiTaskModel, Representation
from mtlzoo.models.encoders import create_encoder
from mtlzoo.models.factory import register_model
from mtlzoo.tasks import Task

TaskSpec = str | Iterable[Task | Mapping[str, Any]]


def attention_mask(cin: int, mid: int, cout: int) -> nn.Sequential:
    """g: 1x1 conv-BN-ReLU-1x1 conv-BN-sigmoid, the attention mask block of the paper."""
    return nn.Sequential(nn.Conv2d(cin, mid, 1), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
                         nn.Conv2d(mid, cout, 1), nn.BatchNorm2d(cout), nn.Sigmoid())


def conv_block(cin: int, cout: int) -> nn.Sequential:
    """3x3 conv (with bias) - BN - ReLU, the conv layer of the released MTAN code."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Bottleneck(nn.Module):
    """Residual bottleneck (1x1 to C_out/4, 3x3, 1x1 to C_out; 1x1 projection shortcut): the block that carries a
    task's attended features to the next stage in the released ResNet MTAN (cheaper than a full 3x3 conv)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        mid = max(cout // 4, 1)
        self.body = nn.Sequential(nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
                                  nn.Conv2d(mid, mid, 3, padding=1, bias=False), nn.BatchNorm2d(mid),
                                  nn.ReLU(inplace=True), nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class TaskAttention(nn.Module):
    """One task's attention modules over a feature pyramid with ``channels`` (finest first)."""

    def __init__(self, channels: Sequence[int], reduction: int = 4) -> None:
        super().__init__()
        self.masks = nn.ModuleList([attention_mask(c if j == 0 else 2 * c, max(c // reduction, 1), c)
                                    for j, c in enumerate(channels)])
        pairs = zip(channels[:-1], channels[1:], strict=True)
        self.projections = nn.ModuleList([Bottleneck(cin, cout) for cin, cout in pairs])

    def forward(self, features: Sequence[Tensor]) -> tuple[Tensor, ...]:
        attended: list[Tensor] = []
        for j, (shared, mask) in enumerate(zip(features, self.masks, strict=True)):
            if j == 0:
                inputs = shared
            else:
                previous = self.projections[j - 1](attended[-1])
                if previous.shape[-2:] != shared.shape[-2:]:
                    previous = F.adaptive_max_pool2d(previous, shared.shape[-2:])
                inputs = torch.cat([shared, previous], dim=1)
            attended.append(mask(inputs) * shared)
        return tuple(attended)


class TaskAttentionModel(MultiTaskModel):
    """Base of the MTAN models: ``self.attention`` holds one attention module per task, owned by that task."""

    attention: nn.ModuleDict

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
        """The task's attention modules and head."""
        self.task(task)
        return chain(self.attention[task].parameters(), self.heads[task].parameters())

    def remove_task(self, name: str) -> Task:
        removed = super().remove_task(name)
        del self.attention[name]
        return removed

    def train(self, mode: bool = True) -> TaskAttentionModel:
        """As the base class; attention modules follow their task (eval when the task is frozen), not the encoder."""
        super().train(mode)
        for name, attention in self.attention.items():
            attention.train(mode and name not in self._frozen_tasks)
        return self


class MTAN(TaskAttentionModel):
    """Any timm / smp / tiny encoder shared by all tasks, per-task attention over its stages, per-task heads."""

    def __init__(self, tasks: TaskSpec, encoder: str = "resnet50", output_stride: int = 8,
                 encoder_weights: str | None = None, reduction: int = 4, head: str | None = None,
                 head_width: int | None = None, in_chans: int = 3) -> None:
        super().__init__(tasks, head=head, head_width=head_width, in_chans=in_chans)
        self.encoder = create_encoder(encoder, in_chans=in_chans, output_stride=output_stride,
                                      encoder_weights=encoder_weights)
        self.reduction = reduction
        self.attention = nn.ModuleDict({t.name: self._new_attention() for t in self.tasks})
        self.build_heads()

    def _new_attention(self) -> TaskAttention:
        return TaskAttention(self.encoder.out_channels, self.reduction)

    def head_features(self, rep: Representation, task: Task) -> tuple[Tensor, ...]:
        """The shared features, attended by the task's masks."""
        return self.attention[task.name](rep.features)

    def add_task(self, task: Task | Mapping[str, Any]) -> nn.Module:
        """Add a task with fresh attention modules and head."""
        head = super().add_task(task)
        reference = next(self.parameters())
        attention = self._new_attention().to(device=reference.device, dtype=reference.dtype)
        self.attention[self.tasks[-1].name] = attention.train(self.training)
        return head



@register_model
def mtan(tasks: TaskSpec, encoder: str = "resnet50", **kwargs: Any) -> MTAN:
    """MTAN on any encoder: a shared timm / smp encoder with one attention module per task and stage."""
    return MTAN(tasks, encoder=encoder, **kwargs)


@register_model
def mtan_tiny(tasks: TaskSpec, **kwargs: Any) -> MTAN:
    """MTAN on the tiny 4-stage conv encoder + light heads, for tests and CPU demos."""
    kwargs = {"output_stride": 32, "head": "light", "head_width": 32, **kwargs}
    return MTAN(tasks, encoder="tiny", **kwargs)


@register_model
def mtan_resnet18(tasks: TaskSpec, **kwargs: Any) -> MTAN:
    """MTAN on ResNet-18 (dilated, output stride 8) with per-task attention and DeepLab ASPP heads."""
    return MTAN(tasks, encoder="resnet18", **{"output_stride": 8, **kwargs})

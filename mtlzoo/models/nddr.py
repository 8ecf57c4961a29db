"""NDDR-CNN (Gao et al., "NDDR-CNN: Layerwise Feature Fusing in Multi-Task CNNs by Neural Discriminative
Dimensionality Reduction", CVPR 2019).

One encoder column per task; after every stage the tasks' features are concatenated and each
task takes a 1x1 convolution of the concatenation, then BatchNorm and ReLU:

    x'_t = ReLU(BN_t(W_t [x_1; ...; x_T])),   W_t initialised to [beta I, ..., alpha I, ..., beta I],

alpha = 0.9 on the task's own channels and beta = 0.1 spread evenly over the other tasks (the
paper's diagonal initialisation). Columns and NDDR layers are shared parameters (every loss
reaches every column); heads are the task parameters. Feature-level balancing is refused: as in
cross-stitch, each head reads only its own task's fused features, so no tensor is shared by all
tasks with only task-specific layers after it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from mtlzoo.models.columns import MixedColumnModel, from_single_task
from mtlzoo.models.factory import register_model
from mtlzoo.tasks import Task

TaskSpec = str | Iterable[Task | Mapping[str, Any]]


def nddr_init(num_tasks: int, channels: int, task: int, alpha: float, beta: float) -> Tensor:
    """The diagonal initial weight (C, T*C, 1, 1) of task ``task``'s 1x1 conv: alpha I on its own block."""
    other = beta / (num_tasks - 1) if num_tasks > 1 else 0.0
    eye = torch.eye(channels)
    blocks = [eye * (alpha if s == task else other) for s in range(num_tasks)]
    return torch.cat(blocks, dim=1)[:, :, None, None]


class NDDRLayer(nn.Module):
    """Per task: 1x1 conv over the concatenated T feature maps (T*C -> C), BatchNorm, ReLU."""

    def __init__(self, num_tasks: int, channels: int, alpha: float = 0.9, beta: float = 0.1) -> None:
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(num_tasks * channels, channels, 1, bias=False) for _ in range(num_tasks)])
        self.norms = nn.ModuleList([nn.BatchNorm2d(channels) for _ in range(num_tasks)])
        with torch.no_grad():
            for t, conv in enumerate(self.convs):
                conv.weight.copy_(nddr_init(num_tasks, channels, t, alpha, beta))

    def forward(self, xs: Sequence[Tensor]) -> list[Tensor]:
        fused = torch.cat(list(xs), dim=1)
        return [torch.relu(norm(conv(fused))) for conv, norm in zip(self.convs, self.norms, strict=True)]


class NDDRNetwork(MixedColumnModel):
    """One encoder column per task (any tiny / timm CNN encoder) fused by NDDR layers, per-task heads."""

    def __init__(self, tasks: TaskSpec, encoder: str = "resnet50", output_stride: int = 8,
                 encoder_weights: str | None = None, alpha: float = 0.9, beta: float = 0.1, head: str | None = None,
                 head_width: int | None = None, in_chans: int = 3, width: int | None = None) -> None:
        super().__init__(tasks, head=head, head_width=head_width, in_chans=in_chans)
        self._build(lambda t, c: NDDRLayer(t, c, alpha, beta), encoder, output_stride, encoder_weights, width)

    @classmethod
    def from_single_task(cls, single: nn.Module, alpha: float = 0.9, beta: float = 0.1) -> NDDRNetwork:
        """An NDDR network whose columns and heads start from a trained single-task model (``stl_*``)."""
        return from_single_task("nddr", single, {"alpha": alpha, "beta": beta})


@register_model
def nddr(tasks: TaskSpec, encoder: str = "resnet50", **kwargs: Any) -> NDDRNetwork:
    """NDDR-CNN on any timm CNN encoder: one column per task, an NDDR layer (1x1 conv + BN + ReLU) after each stage."""
    return NDDRNetwork(tasks, encoder=encoder, **kwargs)


@register_model
def nddr_tiny(tasks: TaskSpec, **kwargs: Any) -> NDDRNetwork:
    """NDDR-CNN on tiny 4-stage conv columns + light heads, for tests and CPU demos."""
    kwargs = {"output_stride": 32, "head": "light", "head_width": 32, **kwargs}
    return NDDRNetwork(tasks, encoder="tiny", **kwargs)


@register_model
def nddr_resnet18(tasks: TaskSpec, **kwargs: Any) -> NDDRNetwork:
    """NDDR-CNN: one ResNet-18 column per task (dilated, output stride 8) + DeepLab ASPP heads."""
    return NDDRNetwork(tasks, encoder="resnet18", **{"output_stride": 8, **kwargs})

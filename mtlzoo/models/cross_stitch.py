"""Cross-stitch networks (Misra et al., "Cross-stitch Networks for Multi-task Learning", CVPR 2016).

One encoder column per task; after every stage a cross-stitch unit mixes the columns channel by
channel with a learnt T x T matrix,

    x'_t[c] = sum_s alpha[c, t, s] * x_s[c],

initialised near identity (``alpha[c, t, t] = 0.9``, the other 0.1 spread evenly over the other
tasks, the paper's (alpha_S, alpha_D) = (0.9, 0.1) for two tasks). Every task's loss reaches every
column through the units, so columns and units are shared parameters; the heads are the task
parameters. :meth:`CrossStitchNetwork.from_single_task` starts from trained single-task encoders,
as the paper does.

Where the units sit: after every stage of the staged encoder (:mod:`mtlzoo.models.staged`). On a timm
ResNet the first stage is the stem (conv1-BN-ReLU at stride 2, before the max pooling), so ``cross_stitch``
and ``cross_stitch_resnet18`` have five units: one on the stem (C = 64, 64 T^2 parameters, near identity at
the start) and one after each of the four residual layers. The paper (AlexNet) puts units after pool1, pool2,
pool5, fc6 and fc7; ResNet re-implementations mix only after residual layers (LibMTL: after layers 1-3, one
scalar per task pair). The unit on the pre-pooling stem output is mtlzoo's extra. The tiny encoder has four
stages, hence four units (its first stage is a stride-4 stem of two conv blocks).
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


class CrossStitchUnit(nn.Module):
    """Per-channel linear mixing of T same-shaped feature maps, ``alpha`` of shape (C, T, T)."""

    def __init__(self, num_tasks: int, channels: int, self_weight: float = 0.9) -> None:
        super().__init__()
        if not 0.0 <= self_weight <= 1.0:
            raise ValueError(f"cross-stitch self_weight must be in [0, 1], got {self_weight!r}")
        other = (1.0 - self_weight) / (num_tasks - 1) if num_tasks > 1 else 0.0
        alpha = torch.full((num_tasks, num_tasks), other)
        alpha.fill_diagonal_(self_weight if num_tasks > 1 else 1.0)
        self.alpha = nn.Parameter(alpha.expand(channels, -1, -1).clone())

    def forward(self, xs: Sequence[Tensor]) -> list[Tensor]:
        stacked = torch.stack(list(xs), dim=1)  # (B, T, C, H, W)
        mixed = torch.einsum("cts,bschw->btchw", self.alpha.to(stacked.dtype), stacked)
        return list(mixed.unbind(dim=1))


class CrossStitchNetwork(MixedColumnModel):
    """One encoder column per task (any tiny / timm CNN encoder) joined by cross-stitch units, per-task heads."""

    def __init__(self, tasks: TaskSpec, encoder: str = "resnet50", output_stride: int = 8,
                 encoder_weights: str | None = None, self_weight: float = 0.9, head: str | None = None,
                 head_width: int | None = None, in_chans: int = 3, width: int | None = None) -> None:
        super().__init__(tasks, head=head, head_width=head_width, in_chans=in_chans)
        self._build(lambda t, c: CrossStitchUnit(t, c, self_weight), encoder, output_stride, encoder_weights, width)

    @classmethod
    def from_single_task(cls, single: nn.Module, self_weight: float = 0.9) -> CrossStitchNetwork:
        """A cross-stitch network whose columns and heads start from a trained single-task model (``stl_*``).

        The units start at their near-identity initialisation; the result is registered as ``cross_stitch``
        with the single-task model's encoder and options, so its ``config.json`` rebuilds it.
        """
        return from_single_task("cross_stitch", single, {"self_weight": self_weight})


@register_model
def cross_stitch(tasks: TaskSpec, encoder: str = "resnet50", **kwargs: Any) -> CrossStitchNetwork:
    """Cross-stitch network on any timm CNN encoder: one column per task, a cross-stitch unit after each stage (on a
    ResNet: after the stem and after each of the four layers, see the module docstring)."""
    return CrossStitchNetwork(tasks, encoder=encoder, **kwargs)


@register_model
def cross_stitch_tiny(tasks: TaskSpec, **kwargs: Any) -> CrossStitchNetwork:
    """Cross-stitch network on tiny 4-stage conv columns + light heads, for tests and CPU demos."""
    kwargs = {"output_stride": 32, "head": "light", "head_width": 32, **kwargs}
    return CrossStitchNetwork(tasks, encoder="tiny", **kwargs)


@register_model
def cross_stitch_resnet18(tasks: TaskSpec, **kwargs: Any) -> CrossStitchNetwork:
    """Cross-stitch network: one ResNet-18 column per task (dilated, output stride 8), five cross-stitch units (stem
    and four layers) + DeepLab ASPP heads."""
    return CrossStitchNetwork(tasks, encoder="resnet18", **{"output_stride": 8, **kwargs})

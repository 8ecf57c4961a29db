"""MTI-Net (Vandenhende et al., "MTI-Net: Multi-Scale Task Interaction Networks for Multi-Task Learning", ECCV 2020).

    encoder scales 1/4 1/8 1/16 1/32:   B1      B2      B3      B4
                                                                | initial branch per task
    scale 4:                                                  f_t^4 -> aux_t^4 (deep supervision)
    scale k < 4:  FPM_k(f_1^{k+1} .. f_T^{k+1}) = SE_t(conv[up(f_1^{k+1}); ...; up(f_T^{k+1})])  (feature propagation)
                  f_t^k = branch_t^k([B_k; FPM_k,t]) -> aux_t^k (deep supervision)
    every scale:  d_t^k = distillation_t^k(f_t^k, {f_l^k}_{l != t})   (spatial attention per task pair)
    aggregation:  prediction_t = head_t([d_t^1; up(d_t^2); up(d_t^3); up(d_t^4)])

Written from the paper's description, with a simplified decoder (see :func:`mtinet_hrnet18` and docs/zoo.md:
conv-block branches, one-conv messages and gates, light heads; 18.5 M parameters on HRNet-18 for ``nyud``, where
the Vandenhende et al. survey lists 27 M for MTI-Net on HRNet-18).

The encoder is HRNet-18 (timm ``hrnet_w18``, its four raw branches, 18-36-72-144 channels) or any
encoder with at least four stages (the last four are read). Task features at scale k have the
encoder's channels there, or ``task_channels[k]`` (``mtinet_resnet18`` uses HRNet-18's widths: with
ResNet-18's 64-512 channels the per-pair distillation convolutions alone would hold ~70 M parameters).
The shared representation is the encoder's four scales B1..B4. The branches and the FPMs are shared in
the multi-task sense (every task's distillation and propagation reads f_l^k), so they are declared as
shared layers after the representation (``decoder_shared_parameters``): feature-level balancers weigh the
task gradients on B1..B4 and train them with the same weights. Each task owns its four initial-prediction
layers, its four distillation units and its aggregation head. ``model.losses`` returns
``final + sum_k aux_weights[k] * initial_k`` per task (finest scale first; default weight 1 at every
scale, the deep supervision of the paper).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mtlzoo.models.base import MultiTaskModel, Representation
from mtlzoo.models.distillation import (
    AuxRecord,
    DeepSupervised,
    Distillation,
    PerForward,
    check_dense,
    check_weights,
    task_branch,
)
from mtlzoo.models.encoders import Encoder, create_encoder, create_timm_model
from mtlzoo.models.factory import register_model
from mtlzoo.models.heads import build_head
from mtlzoo.models.mtan import conv_block
from mtlzoo.tasks import Task

TaskSpec = str | Iterable[Task | Mapping[str, Any]]
SCALES = 4


class HRNetBranches(Encoder):
    """A timm HRNet's four raw branches (``feature_location=""``; 18-36-72-144 channels for ``hrnet_w18``), as MTI-Net
    reads them; timm's default HRNet features go through its classification "incre" blocks (128-1024 channels)."""

    def __init__(self, name: str, in_chans: int = 3, encoder_weights: str | None = None) -> None:
        super().__init__()
        self.model = create_timm_model(name, encoder_weights, features_only=True, feature_location="",
                                       out_indices=(1, 2, 3, 4), in_chans=in_chans)
        self.out_channels = list(self.model.feature_info.channels())
        self.reductions = list(self.model.feature_info.reduction())

    def forward(self, x: Tensor) -> list[Tensor]:
        return list(self.model(x))


class SqueezeExcitation(nn.Module):
    """Channel attention (Hu et al. 2018): x * sigmoid(W2 relu(W1 avgpool(x)))."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        mid = max(channels // reduction, 1)
        self.fc = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, mid, 1), nn.ReLU(inplace=True),
                                nn.Conv2d(mid, channels, 1), nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        return x * self.fc(x)


class FeaturePropagation(nn.Module):
    """FPM: the coarser scale's task features, upsampled and concatenated, one shared conv, then a task SE each."""

    def __init__(self, tasks: Sequence[str], cin: int, cout: int, reduction: int) -> None:
        super().__init__()
        self.shared = conv_block(len(tasks) * cin, cout)
        self.select = nn.ModuleDict({t: SqueezeExcitation(cout, reduction) for t in tasks})

    def forward(self, features: Sequence[Tensor], size: Sequence[int]) -> list[Tensor]:
        up = [F.interpolate(f, size=tuple(size), mode="bilinear", align_corners=False) for f in features]
        shared = self.shared(torch.cat(up, dim=1))
        return [se(shared) for se in self.select.values()]


class MtiTaskDecoder(nn.Module):
    """One task's own layers: an initial prediction and a distillation unit per scale, and the aggregation head."""

    def __init__(self, task: Task, channels: Sequence[int], sources: Sequence[str], head: str | None,
                 head_width: int | None) -> None:
        super().__init__()
        self.aux = nn.ModuleList([nn.Conv2d(c, task.channels, 1) for c in channels])
        self.distill = nn.ModuleList([Distillation(c, sources, gate="source") for c in channels])
        self.final = build_head(task, [sum(channels)], head, head_width)
        self.record = AuxRecord()

    def forward(self, features: Sequence[Tensor], size: tuple[int, int]) -> Tensor:
        """``features``: per scale (finest first) the task's own feature, then the other tasks' in task order."""
        per_scale = len(features) // SCALES
        groups = [features[k * per_scale:(k + 1) * per_scale] for k in range(SCALES)]
        distilled = [unit(group[0], group[1:]) for unit, group in zip(self.distill, groups, strict=True)]
        fine = distilled[0].shape[-2:]
        aggregated = torch.cat([distilled[0]] + [F.interpolate(d, size=fine, mode="bilinear", align_corners=False)
                                                 for d in distilled[1:]], dim=1)
        out = self.final([aggregated], size)
        self.record.set(out, [aux(group[0]) for aux, group in zip(self.aux, groups, strict=True)])
        return out


def _create_scales_encoder(name: str, in_chans: int, encoder_weights: str | None) -> Encoder:
    if name.removeprefix("timm:").startswith("hrnet"):
        return HRNetBranches(name.removeprefix("timm:"), in_chans, encoder_weights)
    encoder = create_encoder(name, in_chans=in_chans, output_stride=32, encoder_weights=encoder_weights)
    if len(encoder.out_channels) < SCALES:
        raise ValueError(f"MTI-Net reads the last {SCALES} stages of its encoder; {name!r} has "
                         f"{len(encoder.out_channels)} ({encoder.out_channels} channels)")
    return encoder


def _task_channels(task_channels: Sequence[int] | None, stages: list[int]) -> list[int]:
    """Task feature widths per scale: the encoder's by default, else ``SCALES`` positive ints."""
    if task_channels is None:
        return stages
    values = list(task_channels)
    if len(values) != SCALES or not all(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in values):
        raise ValueError(f"task_channels must be {SCALES} positive ints (finest scale first), got {task_channels!r}")
    return values


class MTINet(DeepSupervised, MultiTaskModel):
    """Multi-scale task features, feature propagation, per-scale distillation, aggregation (module docstring)."""

    def __init__(self, tasks: TaskSpec, encoder: str = "hrnet_w18", encoder_weights: str | None = None,
                 task_channels: Sequence[int] | None = None, aux_weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
                 se_reduction: int = 4, head: str | None = "light", head_width: int | None = None,
                 in_chans: int = 3) -> None:
        super().__init__(tasks, head=head, head_width=head_width, in_chans=in_chans)
        check_dense(self.tasks, "MTI-Net")
        self.aux_weights = check_weights(aux_weights, SCALES, "aux_weights")
        self.encoder = _create_scales_encoder(encoder, in_chans, encoder_weights)
        stages = list(self.encoder.out_channels[-SCALES:])
        channels = self.channels = _task_channels(task_channels, stages)
        names = self.task_names
        self.branches = nn.ModuleList(
            [nn.ModuleDict({t: task_branch(b if k == SCALES - 1 else b + c, c) for t in names})
             for k, (b, c) in enumerate(zip(stages, channels, strict=True))])
        self.propagation = nn.ModuleList([FeaturePropagation(names, channels[k + 1], channels[k], se_reduction)
                                          for k in range(SCALES - 1)])
        self._propagated = PerForward()
        self.build_heads()

    def _new_head(self, task: Task) -> nn.Module:
        sources = [name for name in self.task_names if name != task.name]
        return MtiTaskDecoder(task, self.channels, sources, self.head_type, self.head_width)

    def encode(self, x: Tensor) -> Representation:
        """The encoder's last four stages B1..B4, finest first (the shared representation)."""
        self.check_input(x)
        return Representation(tuple(self.encoder(x)[-SCALES:]), (x.shape[-2], x.shape[-1]))

    def decoder_shared_parameters(self) -> list[nn.Parameter]:
        """The task branches and the propagation modules: after the representation, read by every task."""
        return [*self.branches.parameters(), *self.propagation.parameters()]

    def task_features(self, rep: Representation) -> list[Tensor]:
        """The task features f_t^k of every scale (finest first), task order within a scale (once per forward)."""
        return self._propagated.get(rep.features[0], lambda _: self._propagate(rep.features))

    def _propagate(self, stages: Sequence[Tensor]) -> list[Tensor]:
        names = self.task_names
        scales: list[list[Tensor]] = [[] for _ in range(SCALES)]
        scales[-1] = [self.branches[-1][t](stages[-1]) for t in names]
        for k in range(SCALES - 2, -1, -1):
            propagated = self.propagation[k](scales[k + 1], stages[k].shape[-2:])
            scales[k] = [self.branches[k][t](torch.cat([stages[k], p], dim=1)) for t, p in zip(names, propagated,
                                                                                               strict=True)]
        return [f for scale in scales for f in scale]

    def head_features(self, rep: Representation, task: Task) -> tuple[Tensor, ...]:
        """Per scale: the task's own feature, then the other tasks' in task order."""
        T, i = len(self.tasks), self.task_names.index(task.name)
        features = self.task_features(rep)
        out: list[Tensor] = []
        for k in range(SCALES):
            scale = features[k * T:(k + 1) * T]
            out += [scale[i], *scale[:i], *scale[i + 1:]]
        return tuple(out)

    def add_task(self, task: Task | Mapping[str, Any]) -> nn.Module:
        raise ValueError("mtinet: the feature propagation modules read every task's features, so adding a task "
                         "changes shared layers; build a new model with the new task list")

    def remove_task(self, name: str) -> Task:
        raise ValueError("mtinet: the feature propagation modules read every task's features, so removing a task "
                         "changes shared layers; build a new model with the new task list")


@register_model
def mtinet(tasks: TaskSpec, encoder: str = "hrnet_w18", **kwargs: Any) -> MTINet:
    """MTI-Net on HRNet (``hrnet_w18``, ``hrnet_w48``...) or any encoder with four or more stages."""
    return MTINet(tasks, encoder=encoder, **kwargs)


@register_model
def mtinet_tiny(tasks: TaskSpec, **kwargs: Any) -> MTINet:
    """MTI-Net on the tiny 4-stage conv encoder (16-128 channels), task widths 8-64, light heads: tests and CPU."""
    return MTINet(tasks, encoder="tiny", **{"task_channels": [8, 16, 32, 64], "head_width": 32, **kwargs})


@register_model
def mtinet_resnet18(tasks: TaskSpec, **kwargs: Any) -> MTINet:
    """MTI-Net on ResNet-18 (its four stages at 1/4..1/32) with HRNet-18's task widths 18-36-72-144, light heads."""
    return MTINet(tasks, encoder="resnet18", **{"task_channels": [18, 36, 72, 144], **kwargs})


@register_model
def mtinet_hrnet18(tasks: TaskSpec, **kwargs: Any) -> MTINet:
    """MTI-Net on the paper's backbone, HRNet-18 (timm ``hrnet_w18`` raw branches, 18-36-72-144 channels), with a
    simplified decoder: two 3x3 conv-BN-ReLU blocks per task branch, one 3x3 conv per message and per gate, light
    heads. 18.49 M parameters on ``nyud`` (encoder 9.56 M), where the Vandenhende et al. survey lists 27 M for
    MTI-Net on HRNet-18; its re-implementation has residual blocks in the branches and its own heads."""
    return MTINet(tasks, encoder="hrnet_w18", **kwargs)

"""Task heads built from a Task: DeepLab ASPP (dense default), a light FPN-style head, an MLP head."""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mtlzoo.registry import Registry
from mtlzoo.tasks import Task

HEADS: Registry[type[nn.Module]] = Registry("head")


def _conv_bn_relu(cin: int, cout: int, kernel: int = 3, dilation: int = 1) -> nn.Sequential:
    padding = dilation * (kernel - 1) // 2
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=padding, dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


@HEADS.register("aspp")
class ASPPHead(nn.Module):
    """DeepLab-v3 head: atrous spatial pyramid pooling on the coarsest feature, then a classifier.

    The defaults (rates 6/12/18, no norm in the pooling branch, no dropout) are mtlzoo's light
    variant; ``rates=(12, 24, 36), pool_norm=True, dropout=0.5`` is the head of the DeepLab-v3
    release at output stride 8 (torchvision's ``DeepLabHead``; what SquadNet's release uses).
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int, width: int = 256,
                 rates: Sequence[int] = (6, 12, 18), pool_norm: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        if not rates or any(not isinstance(r, int) or isinstance(r, bool) or r < 1 for r in rates):
            raise ValueError(f"ASPP rates must be positive ints (e.g. [12, 24, 36]), got {rates!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"ASPP dropout must be in [0, 1), got {dropout!r}")
        cin = in_channels[-1]
        self.branches = nn.ModuleList([_conv_bn_relu(cin, width, 1)] +
                                      [_conv_bn_relu(cin, width, 3, r) for r in rates])
        pool_conv = [nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width)] if pool_norm else [
            nn.Conv2d(cin, width, 1)]
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), *pool_conv, nn.ReLU(inplace=True))
        self.project = _conv_bn_relu(width * (len(rates) + 2), width, 1)
        if dropout > 0:
            self.project.append(nn.Dropout(dropout))
        self.refine = _conv_bn_relu(width, width, 3)
        self.classifier = nn.Conv2d(width, out_channels, 1)

    def forward(self, features: Sequence[Tensor], size: tuple[int, int]) -> Tensor:
        x = features[-1]
        pooled = self.pool(x).expand(-1, -1, *x.shape[-2:])
        x = self.project(torch.cat([branch(x) for branch in self.branches] + [pooled], dim=1))
        out = self.classifier(self.refine(x))
        return F.interpolate(out, size=size, mode="bilinear", align_corners=False)


@HEADS.register("light")
class LightHead(nn.Module):
    """FPN-style head: 1x1 laterals on every level, top-down sum, one 3x3 conv, classifier."""

    def __init__(self, in_channels: Sequence[int], out_channels: int, width: int = 64) -> None:
        super().__init__()
        self.laterals = nn.ModuleList([nn.Conv2d(c, width, 1) for c in in_channels])
        self.fuse = _conv_bn_relu(width, width, 3)
        self.classifier = nn.Conv2d(width, out_channels, 1)

    def forward(self, features: Sequence[Tensor], size: tuple[int, int]) -> Tensor:
        x = self.laterals[-1](features[-1])
        for lateral, feature in zip(reversed(self.laterals[:-1]), reversed(features[:-1]), strict=True):
            x = lateral(feature) + F.interpolate(x, size=feature.shape[-2:], mode="bilinear", align_corners=False)
        out = self.classifier(self.fuse(x))
        return F.interpolate(out, size=size, mode="bilinear", align_corners=False)


@HEADS.register("mlp")
class MLPHead(nn.Module):
    """Global average pooling of the coarsest feature, then a two-layer MLP (classification, regression)."""

    def __init__(self, in_channels: Sequence[int], out_channels: int, width: int = 256, dropout: float = 0.0) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_channels[-1], width), nn.ReLU(inplace=True),
                                 nn.Dropout(dropout), nn.Linear(width, out_channels))

    def forward(self, features: Sequence[Tensor], size: tuple[int, int]) -> Tensor:
        return self.mlp(features[-1].mean(dim=(-2, -1)))


def build_head(task: Task, in_channels: Sequence[int], default: str | None = None,
               width: int | None = None, options: Mapping[str, Any] | None = None) -> nn.Module:
    """The head for ``task``: its own ``head`` field, else the kind's ``build_head``, else the model's ``default``,
    else the kind's ``default_head``.

    Dense models asking for a dense head on a non-dense task (classification, regression) get the MLP head.
    ``options`` (e.g. ``{"rates": [12, 24, 36]}``) are keyword arguments of the ``default`` head; a task
    whose own head differs from the default is built without them.
    """
    if task.head is None and task.spec.build_head is not None:  # the kind builds its own head
        return task.spec.build_head(task, list(in_channels))
    name = task.head or (default if task.dense else None) or task.spec.default_head
    if not task.dense and name != "mlp":
        raise ValueError(f"task {task.name!r} of kind {task.kind!r} predicts one vector per image; use head='mlp'")
    if task.dense and name == "mlp":
        raise ValueError(f"task {task.name!r} of kind {task.kind!r} is dense; use head='aspp' or 'light'")
    kwargs = {"width": width} if width is not None else {}
    if options and name == default:
        head_cls = HEADS.get(name)
        accepted = [p for p in inspect.signature(head_cls).parameters if p not in ("in_channels", "out_channels")]
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise TypeError(f"head options {unknown} are not arguments of the {name!r} head; it accepts {accepted}")
        kwargs.update(options)
    return HEADS.get(name)(list(in_channels), task.channels, **kwargs)

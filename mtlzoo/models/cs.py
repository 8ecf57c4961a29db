"""Connection-strength models (Jeong & Yoon, CVPR 2024): a ResNet whose every shared conv has task-specific BN.

Features differ per task from the first BN on, so ``model(x, task=name)`` runs one task, and
``model(x)`` runs all T tasks in one call by folding the task dimension into the batch (the convs
see a T*B batch; each task's BN normalises its own chunk). Heads are HPS-style (ASPP by default).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import chain
from typing import Any

from torch import Tensor, nn

from mtlzoo.models.base import MultiTaskModel, Representation
from mtlzoo.models.encoders import Encoder
from mtlzoo.models.factory import register_model
from mtlzoo.models.task_bn import ConvTaskBN
from mtlzoo.tasks import Task

TaskSpec = str | Iterable[Task | Mapping[str, Any]]


class TaskBNBasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convs, identity or 1x1 shortcut) with task-specific BN after every conv."""

    def __init__(self, cin: int, cout: int, tasks: Sequence[str], stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = ConvTaskBN(cin, cout, 3, tasks, stride=stride, dilation=dilation)
        self.conv2 = ConvTaskBN(cout, cout, 3, tasks, dilation=dilation)
        self.shortcut = ConvTaskBN(cin, cout, 1, tasks, stride=stride) if stride != 1 or cin != cout else None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor, task: str | None = None) -> Tensor:
        out = self.conv2(self.relu(self.conv1(x, task)), task)
        identity = x if self.shortcut is None else self.shortcut(x, task)
        return self.relu(out + identity)


class TaskBNResNet(Encoder):
    """A basic-block ResNet in plain torch.nn with task-specific BN; dilates the last stages for ``output_stride``."""

    def __init__(self, tasks: Sequence[str], layers: Sequence[int] = (2, 2, 2, 2),
                 widths: Sequence[int] = (64, 128, 256, 512), output_stride: int = 8, in_chans: int = 3) -> None:
        super().__init__()
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be one of (8, 16, 32), got {output_stride!r}")
        self.stem = ConvTaskBN(in_chans, widths[0], 7, tasks, stride=2)
        self.pool = nn.Sequential(nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2, padding=1))
        self.stages = nn.ModuleList()
        self.out_channels, self.reductions = [], []
        cin, reduction, dilation = widths[0], 4, 1
        for i, (depth, width) in enumerate(zip(layers, widths, strict=True)):
            stride = 1 if i == 0 else 2
            if reduction * stride > output_stride:
                dilation, stride = dilation * stride, 1
            blocks = [TaskBNBasicBlock(cin, width, tasks, stride, dilation)]
            blocks += [TaskBNBasicBlock(width, width, tasks, 1, dilation) for _ in range(depth - 1)]
            self.stages.append(nn.ModuleList(blocks))
            cin, reduction = width, reduction * stride
            self.out_channels.append(width)
            self.reductions.append(reduction)

    def forward(self, x: Tensor, task: str | None = None) -> list[Tensor]:
        x = self.pool(self.stem(x, task))
        features = []
        for stage in self.stages:
            for block in stage:
                x = block(x, task)
            features.append(x)
        return features


class ConnectionStrengthModel(MultiTaskModel):
    """Task-specific-BN ResNet + per-task heads; exposes connection strengths and top-priority channel groups."""

    def __init__(self, tasks: TaskSpec, layers: Sequence[int] = (2, 2, 2, 2),
                 widths: Sequence[int] = (64, 128, 256, 512), output_stride: int = 8, head: str | None = None,
                 head_width: int | None = None, in_chans: int = 3) -> None:
        super().__init__(tasks, head=head, head_width=head_width, in_chans=in_chans)
        self.encoder = TaskBNResNet(self.task_names, layers, widths, output_stride, in_chans)
        self.build_heads()

    # ---- forward ----------------------------------------------------------------------------
    def encode(self, x: Tensor, task: str | None = None) -> Representation:
        """One task's features (``task=name``), or all tasks' features folded task-major into the batch."""
        self.check_input(x)
        if task is not None:
            self.task(task)
            return Representation(tuple(self.encoder(x, task)), (x.shape[-2], x.shape[-1]))
        folded = x.repeat(len(self.tasks), 1, 1, 1)
        return Representation(tuple(self.encoder(folded)), (x.shape[-2], x.shape[-1]))

    def head_features(self, rep: Representation, task: Task) -> tuple[Tensor, ...]:
        index = self.task_names.index(task.name)
        return tuple(f.chunk(len(self.tasks))[index] for f in rep.features)

    def forward(self, x: Tensor, task: str | None = None) -> dict[str, Tensor]:
        if task is None:
            return self.decode(self.encode(x))
        rep = self.encode(x, task)
        return {task: self.heads[task](rep.features, rep.size)}

    # ---- parameters -------------------------------------------------------------------------
    def priority_layers(self) -> dict[str, ConvTaskBN]:
        """Every shared conv paired with its task-specific BN, by module name."""
        return {name: m for name, m in self.named_modules() if isinstance(m, ConvTaskBN)}

    def connection_strengths(self) -> dict[str, Tensor]:
        """Normalised connection strength (T, C_out) of every paired layer, tasks in model order."""
        return {name: layer.connection_strength() for name, layer in self.priority_layers().items()}

    def priority_groups(self) -> dict[str, Tensor]:
        """Top-priority task index of every output channel (C_out,) of every paired layer."""
        return {name: layer.top_priority() for name, layer in self.priority_layers().items()}

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
        """The task's head and its BN affine parameters in every paired layer."""
        self.task(task)
        norms = (layer.bn.norms[task].parameters() for layer in self.priority_layers().values())
        return chain(self.heads[task].parameters(), *norms)

    def add_task(self, task: Task | Mapping[str, Any]) -> nn.Module:
        head = super().add_task(task)
        name = self.tasks[-1].name
        for layer in self.priority_layers().values():
            layer.bn.add_task(name)
        return head

    def remove_task(self, name: str) -> Task:
        removed = super().remove_task(name)
        for layer in self.priority_layers().values():
            layer.bn.remove_task(name)
        return removed


@register_model
def cs_resnet18(tasks: TaskSpec, **kwargs: Any) -> ConnectionStrengthModel:
    """ResNet-18 (dilated, output stride 8) with task-specific BN after every conv + ASPP heads; from scratch."""
    return ConnectionStrengthModel(tasks, **{"layers": (2, 2, 2, 2), **kwargs})


@register_model
def cs_tiny(tasks: TaskSpec, **kwargs: Any) -> ConnectionStrengthModel:
    """One block per stage, widths 16-128, light heads, output stride 32: for tests and CPU demos."""
    kwargs = {"layers": (1, 1, 1, 1), "widths": (16, 32, 64, 128), "output_stride": 32, "head": "light",
              "head_width": 32, **kwargs}
    return ConnectionStrengthModel(tasks, **kwargs)

"""PAD-Net (Xu et al., "PAD-Net: Multi-Tasks Guided Prediction-and-Distillation Network", CVPR 2018).

    image -> encoder -> F (last stage) -+-> branch_1 -> f_1 -> [aux_1 -> initial prediction 1]   (deep supervision)
                                        +-> branch_2 -> f_2 -> [aux_2 -> initial prediction 2]
                                        ...
    G_k = sigmoid(A_k f_k),  f_k + sum_{l != k} G_k * (W_{l,k} f_l)  -> final head k -> prediction k   (distillation)

The distillation is the paper's attention-guided multi-modal distillation (Sec. 3.3, module (c)): one attention
map G_k per receiving task, computed from its own feature and shared by all its incoming messages; A_k and W_{l,k}
are 3x3 convolutions. ``gate="pair"`` gives each (receiving, source) pair its own attention A_{k,l} on f_k
(mtlzoo's default before 2026-12-06: T(T - 2) more 3x3 convolutions, +4.72 M parameters on ``nyud`` at
256 channels), ``gate="source"`` MTI-Net's per-pair attention on the source feature (see
:mod:`mtlzoo.models.distillation`).

The shared representation is the encoder output F. Each task's branch is shared in the multi-task sense
(every task's distillation reads f_l), so the branches are declared as shared layers after the representation
(``decoder_shared_parameters``): feature-level balancers weigh the task gradients on F and train the branches
with the same weights. A task owns its initial-prediction layer, its distillation unit and its head.
``model.losses`` returns ``final + aux_weight * initial`` per task (initial predictions upsampled to
the target size), so a balancer sees one loss per task.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

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
from mtlzoo.models.encoders import create_encoder
from mtlzoo.models.factory import register_model
from mtlzoo.models.heads import build_head
from mtlzoo.tasks import Task

TaskSpec = str | Iterable[Task | Mapping[str, Any]]


class PadTaskDecoder(nn.Module):
    """One task's own layers: initial prediction (1x1 conv), distillation from the other tasks, final head."""

    def __init__(self, task: Task, width: int, sources: Sequence[str], gate: str, head: str | None,
                 head_width: int | None) -> None:
        super().__init__()
        self.aux = nn.Conv2d(width, task.channels, 1)
        self.distill = Distillation(width, sources, gate)
        self.final = build_head(task, [width], head, head_width)
        self.record = AuxRecord()

    def forward(self, features: Sequence[Tensor], size: tuple[int, int]) -> Tensor:
        """``features`` = (own task feature, other tasks' features in task order)."""
        own, others = features[0], features[1:]
        out = self.final([self.distill(own, others)], size)
        self.record.set(out, [self.aux(own)])
        return out


class PADNet(DeepSupervised, MultiTaskModel):
    """Encoder, per-task branches with deeply supervised initial predictions, distillation, final heads."""

    def __init__(self, tasks: TaskSpec, encoder: str = "resnet18", output_stride: int = 8,
                 encoder_weights: str | None = None, width: int = 256, aux_weight: float = 1.0,
                 gate: str = "receiver", head: str | None = "light", head_width: int | None = None,
                 in_chans: int = 3) -> None:
        super().__init__(tasks, head=head, head_width=head_width or width, in_chans=in_chans)
        check_dense(self.tasks, "PAD-Net")
        self.aux_weights = check_weights([aux_weight], 1, "aux_weight")
        self.width, self.gate = width, gate
        self.encoder = create_encoder(encoder, in_chans=in_chans, output_stride=output_stride,
                                      encoder_weights=encoder_weights)
        self.branches = nn.ModuleDict({t.name: self._new_branch() for t in self.tasks})
        self._branched = PerForward()
        self.build_heads()

    def _new_branch(self) -> nn.Module:
        return task_branch(self.encoder.out_channels[-1], self.width)

    def _new_head(self, task: Task) -> nn.Module:
        sources = [name for name in self.task_names if name != task.name]
        return PadTaskDecoder(task, self.width, sources, self.gate, self.head_type, self.head_width)

    def encode(self, x: Tensor) -> Representation:
        """The last encoder stage F (the shared representation)."""
        self.check_input(x)
        return Representation((self.encoder(x)[-1],), (x.shape[-2], x.shape[-1]))

    def decoder_shared_parameters(self) -> list[nn.Parameter]:
        """The task branches: after the representation, read by every task's distillation."""
        return list(self.branches.parameters())

    def task_features(self, rep: Representation) -> list[Tensor]:
        """Each task's branch output f_t on F, in task order (computed once per representation)."""
        return self._branched.get(rep.features[0], lambda last: [self.branches[t](last) for t in self.task_names])

    def head_features(self, rep: Representation, task: Task) -> tuple[Tensor, ...]:
        """The task's own feature first, then the other tasks' in task order."""
        features, i = self.task_features(rep), self.task_names.index(task.name)
        return (features[i], *features[:i], *features[i + 1:])

    def add_task(self, task: Task | Mapping[str, Any]) -> nn.Module:
        """Add a task: its branch (shared), its decoder, and a message from it into every other task."""
        check_dense([task if isinstance(task, Task) else Task.from_dict(task)], "PAD-Net")
        head = super().add_task(task)
        self._branched = PerForward()
        name = self.tasks[-1].name
        reference = next(self.encoder.parameters())
        self.branches[name] = self._new_branch().to(device=reference.device, dtype=reference.dtype)
        self.branches[name].train(self.training)
        for other in self.task_names[:-1]:
            self.heads[other].distill.add_source(name)
        return head

    def remove_task(self, name: str) -> Task:
        removed = super().remove_task(name)
        self._branched = PerForward()
        del self.branches[name]
        for other in self.task_names:
            self.heads[other].distill.remove_source(name)
        return removed


@register_model
def padnet(tasks: TaskSpec, encoder: str = "resnet18", **kwargs: Any) -> PADNet:
    """PAD-Net on any timm / smp / tiny encoder (dilated to output stride 8 by default); ``gate="receiver"`` (one
    attention map per receiving task, as in the paper), ``"pair"`` or ``"source"``."""
    return PADNet(tasks, encoder=encoder, **kwargs)


@register_model
def padnet_tiny(tasks: TaskSpec, **kwargs: Any) -> PADNet:
    """PAD-Net on the tiny 4-stage conv encoder (output stride 8), 32-channel task features: tests and CPU demos."""
    return PADNet(tasks, encoder="tiny", **{"output_stride": 8, "width": 32, **kwargs})


@register_model
def padnet_resnet18(tasks: TaskSpec, **kwargs: Any) -> PADNet:
    """PAD-Net on ResNet-18 (dilated, output stride 8), 256-channel task features, light heads."""
    return PADNet(tasks, encoder="resnet18", **{"output_stride": 8, **kwargs})

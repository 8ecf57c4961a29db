"""Gated-expert models on images: MMoE, CGC, PLE and DSelect-k with encoder stages as experts.

Experts are copies of encoder stages (the tiny encoder or a timm ResNet, from scratch): with one
extraction level each expert is a whole encoder, with L levels the four stages are split into L
consecutive groups (PLE). Each task's gate reads its level's input (the image, or the task's
mixture from the level below), average-pooled to 4x4 and flattened, the analogue of LibMTL's
linear gate on the flattened image. The task's head reads its mixed feature pyramid.

Shared representation (``encode``; what the feature-level balancers see): every level below the
last and the last level's shared experts, i.e. each task's mixtures from the lower levels and the
shared experts' outputs. For MMoE / DSelect-k that is the experts' outputs; the gates and the
task-specific experts of the last level run in ``decode``, from ``rep.inputs`` when there is one level.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from itertools import chain
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from mtlzoo.models.base import MultiTaskModel
from mtlzoo.models.encoders import TinyEncoder, create_timm_model
from mtlzoo.models.experts import Gate, GatedTrunk
from mtlzoo.models.factory import register_model
from mtlzoo.registry import unknown_name_error
from mtlzoo.tasks import Task

TaskSpec = str | Iterable[Task | Mapping[str, Any]]


class GatedRepresentation(NamedTuple):
    """``encode`` of a gated model: shared features (tasks' lower-level mixtures in task order, then the
    last level's shared expert outputs), the input size, and the input itself (read by last-level gates)."""

    features: tuple[Tensor, ...]
    size: tuple[int, int]
    inputs: Tensor


def gate_options(gate: str, dselect_k: int, dselect_gamma: float, entropy_reg: float) -> dict[str, Any]:
    """Keyword arguments of :class:`~mtlzoo.models.experts.Gate` for a model's gate options."""
    if gate == "dselect":
        return {"kind": gate, "k": dselect_k, "gamma": dselect_gamma, "entropy_reg": entropy_reg}
    return {"kind": gate}


class GatedModel(MultiTaskModel):
    """Common part of the image and vector gated models; subclasses build ``self.encoder`` (a GatedTrunk),
    set ``self.maps_per_level`` (outputs per expert at each level) and call ``build_heads``."""

    encoder: GatedTrunk
    maps_per_level: list[int]

    def encode(self, x: Tensor) -> GatedRepresentation:
        """Run the shared part of the trunk (see the module docstring)."""
        self.check_input(x)
        prefix, shared_last = self.encoder(x)
        features = tuple(m for t in self.task_names for m in prefix[t]) + tuple(m for e in shared_last for m in e)
        return GatedRepresentation(features, self._size(x), x)

    def head_features(self, rep: GatedRepresentation, task: Task) -> tuple[Tensor, ...]:
        """The task's mixed features: its last-level experts and gate run here, on its part of ``rep``."""
        below, per_expert = sum(self.maps_per_level[:-1]), self.maps_per_level[-1]
        index = self.task_names.index(task.name)
        last = rep.features[below * len(self.tasks):]
        shared_last = [list(last[i:i + per_expert]) for i in range(0, len(last), per_expert)]
        prefix = list(rep.features[index * below:(index + 1) * below])
        return tuple(self._head_input(self.encoder.task(task.name, rep.inputs, prefix, shared_last)))

    def _size(self, x: Tensor) -> tuple[int, int]:
        return (x.shape[-2], x.shape[-1])

    def _head_input(self, maps: list[Tensor]) -> list[Tensor]:
        return maps

    def losses(self, outputs: Mapping[str, Tensor], targets: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Each task's loss, plus its DSelect-k gate regulariser after a training forward."""
        losses = super().losses(outputs, targets)
        for name in losses:
            extra = self.encoder.regularization(name)
            if extra is not None:
                losses[name] = losses[name] + extra
        return losses

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
        """The task's head, its last-level experts and gate, and its gate one level below (PLE)."""
        self.task(task)
        return chain(self.heads[task].parameters(), *(m.parameters() for m in self.encoder.private_modules(task)))

    def gate_weights(self) -> dict[str, dict[str, dict[str, float]]]:
        """Expert usage of the last forward: {task or "(shared)": {"level1": {expert: batch-mean weight}}}."""
        return self.encoder.gate_weights()

    def add_task(self, task: Task | Mapping[str, Any]) -> nn.Module:
        """Add a task: a new head and a new gate (MMoE / DSelect-k only; other layouts change the experts)."""
        self._check_editable()
        head = super().add_task(task)
        level, name = self.encoder.levels[0], self.tasks[-1].name
        reference = next(self.parameters())
        level.gates[name] = self._make_gate(0, len(level.shared)).to(device=reference.device, dtype=reference.dtype)
        level.task_experts[name] = nn.ModuleList()
        level.tasks.append(name)
        return head

    def remove_task(self, name: str) -> Task:
        self._check_editable()
        removed = super().remove_task(name)
        level = self.encoder.levels[0]
        del level.gates[name]
        del level.task_experts[name]
        level.tasks.remove(name)
        return removed

    def _check_editable(self) -> None:
        levels = self.encoder.levels
        if len(levels) > 1 or any(len(e) for e in levels[0].task_experts.values()):
            raise ValueError(f"{self.architecture}: adding or removing a task changes the task experts and the shared "
                             "gates; rebuild the model with the new tasks and load the kept weights with strict=False")

    def _make_gate(self, level: int, num_experts: int) -> Gate:  # pragma: no cover - abstract
        raise NotImplementedError


def _stage_groups(num_stages: int, num_levels: int) -> list[list[int]]:
    """Split stage indices into ``num_levels`` consecutive groups, the earlier ones larger."""
    if not 1 <= num_levels <= num_stages:
        raise ValueError(f"num_levels must lie in [1, {num_stages}] (one level needs at least one encoder stage), "
                         f"got {num_levels!r}")
    size, extra = divmod(num_stages, num_levels)
    groups, start = [], 0
    for i in range(num_levels):
        stop = start + size + (i < extra)
        groups.append(list(range(start, stop)))
        start = stop
    return groups


def _encoder_stages(encoder: str, in_chans: int, output_stride: int, width: int) -> nn.ModuleList:
    """The four stages of a fresh encoder: the tiny one or a timm ResNet (stem joined to the first stage)."""
    if output_stride not in (8, 16, 32):
        raise ValueError(f"output_stride must be one of (8, 16, 32), got {output_stride!r}")
    if encoder == "tiny":
        return TinyEncoder(in_chans, width=width, output_stride=output_stride).stages
    import timm

    name = encoder.removeprefix("timm:")
    if not name.startswith("resnet"):
        raise unknown_name_error("gated-experts encoder (tiny or a timm ResNet)", encoder,
                                 ["tiny"] + timm.list_models("resnet*"))
    kwargs = {"output_stride": output_stride} if output_stride != 32 else {}
    m = create_timm_model(name, None, what="gated-experts encoder", in_chans=in_chans, num_classes=0, **kwargs)
    return nn.ModuleList([nn.Sequential(m.conv1, m.bn1, m.act1, m.maxpool, m.layer1), m.layer2, m.layer3, m.layer4])


class StageExpert(nn.Module):
    """Consecutive encoder stages as one expert; returns every stage's output."""

    def __init__(self, stages: Iterable[nn.Module]) -> None:
        super().__init__()
        self.stages = nn.ModuleList(stages)

    def forward(self, x: Tensor) -> list[Tensor]:
        out = []
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return out


class GatedExpertsModel(GatedModel):
    """Image MMoE / CGC / PLE / DSelect-k: experts are encoder stages, one head per task on its mixed pyramid."""

    def __init__(self, tasks: TaskSpec, encoder: str = "tiny", num_levels: int = 1, num_shared_experts: int = 3,
                 num_task_experts: int = 0, gate: str = "softmax", dselect_k: int = 2, dselect_gamma: float = 1.0,
                 entropy_reg: float = 0.0, output_stride: int = 32, width: int = 16, head: str | None = None,
                 head_width: int | None = None, in_chans: int = 3) -> None:
        super().__init__(tasks, head=head, head_width=head_width, in_chans=in_chans)
        self._stage_args = (encoder, in_chans, output_stride, width)
        groups = _stage_groups(4, num_levels)
        with torch.no_grad():
            x = torch.zeros(1, in_chans, 64, 64)
            self.stage_channels = []
            for stage in _encoder_stages(*self._stage_args):
                x = stage.eval()(x)
                self.stage_channels.append(x.shape[1])
        self._level_in = [in_chans] + [self.stage_channels[g[-1]] for g in groups[:-1]]
        self._gate_kwargs = gate_options(gate, dselect_k, dselect_gamma, entropy_reg)
        self.maps_per_level = [len(g) for g in groups]
        self.encoder = GatedTrunk(self.task_names, lambda i: StageExpert(self._stages(groups[i])), self._make_gate,
                                  num_levels, num_shared_experts, num_task_experts)
        self.build_heads()

    def _stages(self, indices: list[int]) -> list[nn.Module]:
        stages = _encoder_stages(*self._stage_args)
        return [stages[i] for i in indices]

    def _make_gate(self, level: int, num_experts: int) -> Gate:
        return Gate(self._level_in[level], num_experts, spatial=True, **self._gate_kwargs)

    def head_in_channels(self, task: Task) -> list[int]:
        return list(self.stage_channels)


def _entry(name: str, doc: str, options: dict[str, Any]) -> None:
    def entry(tasks: TaskSpec, **kwargs: Any) -> GatedExpertsModel:
        return GatedExpertsModel(tasks, **{**options, **kwargs})

    entry.__name__, entry.__doc__ = name, doc
    register_model(entry)


def _register(family: str, doc: str, **layout: Any) -> None:
    """Register ``<family>_tiny`` and ``<family>_resnet18`` with the family's expert layout."""
    _entry(f"{family}_tiny", f"{doc} Experts: tiny 4-stage conv encoder stages (widths 16-128), light heads, "
           "output stride 32.", {**layout, "encoder": "tiny", "output_stride": 32, "head": "light", "head_width": 32})
    _entry(f"{family}_resnet18", f"{doc} Experts: ResNet-18 stages (dilated, output stride 8, from scratch), ASPP "
           "heads.", {**layout, "encoder": "resnet18", "output_stride": 8})


_register("mmoe", "MMoE (Ma et al., KDD 2018): 3 shared experts, a softmax gate per task.", num_shared_experts=3)
_register("cgc", "CGC (Tang et al., RecSys 2020): 1 shared + 1 task-specific expert per task, a gate per task.",
          num_shared_experts=1, num_task_experts=1)
_register("ple", "PLE (Tang et al., RecSys 2020): 2 extraction levels of 1 shared + 1 task expert per task, "
          "shared gate below the top.", num_levels=2, num_shared_experts=1, num_task_experts=1)
_register("dselectk", "DSelect-k (Hazimeh et al., NeurIPS 2021): 4 shared experts, a k=2 DSelect gate per task.",
          num_shared_experts=4, gate="dselect")

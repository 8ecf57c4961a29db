"""Task: one prediction of a multi-task model (frozen, JSON-able), the benchmark presets and task-list helpers."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from mtlzoo.registry import unknown_name_error
from mtlzoo.tasks import kinds as _kinds  # noqa: F401  (registers the shipped kinds the presets use)
from mtlzoo.tasks.kind import TASK_KINDS, TaskKind

_HEADS = ("aspp", "light", "mlp")


def _kind(name: str) -> TaskKind:
    """The registered kind ``name``; an unknown one says how a user kind gets registered."""
    if isinstance(name, str) and name not in TASK_KINDS:
        error = unknown_name_error("task kind", name, TASK_KINDS.names())
        raise ValueError(f"{error} A kind of your own is added by importing the module that calls "
                         "mtlzoo.register_task_kind (before loading a checkpoint that uses it).") from None
    return TASK_KINDS.get(name)


@dataclass(frozen=True)
class Task:
    """One prediction of a multi-task model; JSON-able, so a config rebuilds it.

    ``channels`` defaults from the kind (required for segmentation, parts, classification,
    keypoints and multilabel);
    ``ignore_index`` defaults to 255; ``loss`` picks a variant of the kind's loss
    (normals: "l1" | "cosine", regression: "l1" | "mse"); ``pos_weight`` is the positive-class
    weight of the balanced BCE (edge 0.95, saliency: computed per batch); ``head`` overrides the
    model's head type ("aspp", "light", "mlp").
    """

    name: str
    kind: str
    channels: int | None = None
    ignore_index: int = 255
    loss: str | None = None
    pos_weight: float | None = None
    head: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"task name must be a Python identifier like 'semseg', got {self.name!r}")
        spec = _kind(self.kind)
        channels = self.channels if self.channels is not None else spec.default_channels
        if channels is None:
            raise ValueError(f"task {self.name!r} of kind {self.kind!r} needs channels= (the number of classes)")
        if not isinstance(channels, int) or channels < 1:
            raise ValueError(f"task {self.name!r}: channels must be a positive int, got {channels!r}")
        object.__setattr__(self, "channels", channels)
        loss = self.loss or spec.losses[0]
        if loss not in spec.losses:
            raise ValueError(f"task {self.name!r}: loss {loss!r} is not one of {list(spec.losses)} "
                             f"for kind {self.kind!r}")
        object.__setattr__(self, "loss", loss)
        if self.pos_weight is None and spec.default_pos_weight is not None:
            object.__setattr__(self, "pos_weight", spec.default_pos_weight)
        if self.pos_weight is not None and not 0.0 < float(self.pos_weight) < 1.0:
            raise ValueError(f"task {self.name!r}: pos_weight must lie in (0, 1), got {self.pos_weight!r}")
        if self.head is not None and self.head not in (*_HEADS, spec.default_head):
            raise unknown_name_error("head", self.head, list(_HEADS))

    @property
    def spec(self) -> TaskKind:
        """The TaskKind behind ``self.kind``."""
        return TASK_KINDS.get(self.kind)

    @property
    def dense(self) -> bool:
        return self.spec.dense

    def compute_loss(self, output: Tensor, target: Tensor) -> Tensor:
        """This task's loss for a raw model output and its target (checked once, masked, never NaN).

        Non-finite target pixels count as invalid; a target of the wrong shape, dtype or value range
        raises a ValueError naming this task (see :attr:`TaskKind.check_target`).
        """
        spec = self.spec
        return spec.compute_loss(self, output, spec.check_target(self, output, target))

    def postprocess(self, output: Tensor) -> Tensor:
        """Turn a raw output into the prediction the metrics read (class ids, probabilities, unit normals)."""
        return self.spec.postprocess(self, output)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Task:
        allowed = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise ValueError(f"unknown Task field(s) {unknown}; accepted: {allowed}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Task:
        return cls.from_dict(json.loads(text))


SYNTHSCENES_CLASSES = ("floor", "wall", "ceiling", "sphere", "box", "cylinder", "cone", "figure")
SYNTHSCENES_PARTS = ("background", "head", "torso", "left_arm", "right_arm", "left_leg", "right_leg")

_PRESETS: dict[str, tuple[Task, ...]] = {
    "nyud": (
        Task("semseg", "segmentation", 40), Task("depth", "depth"),
        Task("normals", "normals"), Task("edge", "edge"),
    ),
    "pascal_context": (
        Task("semseg", "segmentation", 21), Task("parts", "parts", 7), Task("saliency", "saliency"),
        Task("normals", "normals"), Task("edge", "edge"),
    ),
    "nyuv2_mtan": (
        Task("semseg", "segmentation", 13, ignore_index=-1), Task("depth", "depth"),
        Task("normals", "normals", loss="cosine"),
    ),
    "cityscapes2": (Task("semseg", "segmentation", 7, ignore_index=-1), Task("depth", "depth")),
    "synthscenes": (
        Task("semseg", "segmentation", len(SYNTHSCENES_CLASSES)), Task("depth", "depth"),
        Task("normals", "normals"), Task("edge", "edge"), Task("saliency", "saliency"),
        Task("parts", "parts", len(SYNTHSCENES_PARTS)),
    ),
    "mmoe_synthetic": (Task("task1", "regression", loss="mse"), Task("task2", "regression", loss="mse")),
}


def list_task_presets() -> list[str]:
    """Names accepted by :func:`task_preset`."""
    return sorted(_PRESETS)


def task_preset(name: str) -> list[Task]:
    """The tasks of a named benchmark: nyud, pascal_context, nyuv2_mtan, cityscapes2, synthscenes, mmoe_synthetic."""
    if name not in _PRESETS:
        raise unknown_name_error("task preset", name, list(_PRESETS))
    return list(_PRESETS[name])


def resolve_tasks(tasks: str | Iterable[Task | Mapping[str, Any]]) -> list[Task]:
    """Accept a preset name or a list of Task / dict and return distinct Tasks."""
    if isinstance(tasks, str):
        return task_preset(tasks)
    if isinstance(tasks, Task) or isinstance(tasks, Mapping):
        raise TypeError("tasks must be a preset name or a list of Task/dict, not a single task; wrap it in a list")
    resolved = [t if isinstance(t, Task) else Task.from_dict(t) for t in tasks]
    names = [t.name for t in resolved]
    if not resolved:
        raise ValueError("a multi-task model needs at least one task")
    if len(set(names)) != len(names):
        raise ValueError(f"task names must be distinct, got {names}")
    return resolved


def stack_losses(task_losses: Mapping[str, Tensor]) -> Tensor:
    """The losses of a {task: scalar} dict as one 1-D tensor, in dict order."""
    return torch.stack([loss.reshape(()) for loss in task_losses.values()])

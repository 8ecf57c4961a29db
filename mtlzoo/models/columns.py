"""Models with one encoder column per task (single-task, cross-stitch, NDDR-CNN): the common contract.

``encode`` returns every task's feature pyramid, task-major (task 0's levels, then task 1's...),
and each head reads its own task's levels. No tensor is read by every task with only
task-specific layers after it, so these models refuse feature-level balancing
(``shared_representation = False``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from mtlzoo.models.base import MultiTaskModel, Representation
from mtlzoo.models.factory import create_model
from mtlzoo.models.staged import StagedEncoder
from mtlzoo.tasks import Task


class TaskColumns(MultiTaskModel):
    """Base of the per-task-column models; subclasses build ``self.encoder`` returning one pyramid per task."""

    shared_representation = False

    def _levels(self) -> int:
        return len(self.encoder.out_channels)

    def encode(self, x: Tensor) -> Representation:
        """Every task's features, task-major, from ``self.encoder(x)`` (one list of levels per task)."""
        self.check_input(x)
        pyramids = self.encoder(x)
        return Representation(tuple(f for pyramid in pyramids for f in pyramid), (x.shape[-2], x.shape[-1]))

    def head_features(self, rep: Representation, task: Task) -> tuple[Tensor, ...]:
        levels = self._levels()
        index = self.task_names.index(task.name)
        return rep.features[index * levels:(index + 1) * levels]


class MixedColumns(nn.Module):
    """T staged encoder columns with a mixing unit after every stage: ``unit_k([x_1..x_T]) -> [x'_1..x'_T]``."""

    def __init__(self, num_tasks: int, make_unit: Callable[[int, int], nn.Module], encoder: str,
                 **encoder_kwargs: Any) -> None:
        super().__init__()
        if num_tasks < 1:
            raise ValueError(f"a column model needs at least one task, got {num_tasks}")
        self.columns = nn.ModuleList([StagedEncoder(encoder, **encoder_kwargs) for _ in range(num_tasks)])
        channels = self.columns[0].out_channels
        self.units = nn.ModuleList([make_unit(num_tasks, c) for c in channels])

    @property
    def out_channels(self) -> list[int]:
        return self.columns[0].out_channels

    def forward(self, x: Tensor) -> list[list[Tensor]]:
        xs: Sequence[Tensor] = [x] * len(self.columns)
        pyramids: list[list[Tensor]] = [[] for _ in self.columns]
        for k, unit in enumerate(self.units):
            xs = unit([column.stage(k, xi) for column, xi in zip(self.columns, xs, strict=True)])
            for pyramid, feature in zip(pyramids, xs, strict=True):
                pyramid.append(feature)
        return pyramids


class MixedColumnModel(TaskColumns):
    """Columns joined by mixing units (cross-stitch, NDDR); the columns and units are shared parameters,
    since every task's loss reaches every column through the units; the heads are the task parameters."""

    def _build(self, make_unit: Callable[[int, int], nn.Module], encoder: str, output_stride: int,
               encoder_weights: str | None, width: int | None = None) -> None:
        """Columns of ``encoder`` joined by ``make_unit(num_tasks, channels)``; ``width`` sets the first-stage
        channels of the ``tiny`` encoder (16 by default; the others have fixed widths)."""
        if width is not None and encoder != "tiny":
            raise ValueError(f"width applies to encoder='tiny' only (its first-stage channels), got encoder={encoder!r}"
                             f" with width={width!r}")
        sized = {} if width is None else {"width": int(width)}
        self.encoder = MixedColumns(len(self.tasks), make_unit, encoder, in_chans=self.in_chans,
                                    output_stride=output_stride, encoder_weights=encoder_weights, **sized)
        self.build_heads()

    def add_task(self, task: Any) -> nn.Module:
        raise ValueError(f"{self.architecture} mixes a fixed set of task columns ({self.task_names}); build a new "
                         "model for the new task list (from_single_task reuses trained columns)")

    def remove_task(self, name: str) -> Task:
        raise ValueError(f"{self.architecture} mixes a fixed set of task columns ({self.task_names}); cannot "
                         f"remove {name!r}, build a new model for the new task list")


class IndependentColumns(nn.Module):
    """One column per task (``columns[task]``: a fresh ``make_column()``, an encoder or any module that returns
    a list of features and says their ``out_channels``); ``forward`` returns each task's list in task order."""

    def __init__(self, tasks: Iterable[str], make_column: Callable[[], nn.Module]) -> None:
        super().__init__()
        self.make_column = make_column
        self.columns = nn.ModuleDict({name: make_column() for name in tasks})

    @property
    def out_channels(self) -> list[int]:
        return list(next(iter(self.columns.values())).out_channels)

    def forward(self, x: Tensor) -> list[list[Tensor]]:
        return [list(column(x)) for column in self.columns.values()]

    def add_column(self, task: str) -> nn.Module:
        """A fresh column for a new task, on the device and dtype of the existing ones."""
        reference = next(self.parameters())
        self.columns[task] = self.make_column().to(device=reference.device, dtype=reference.dtype)
        return self.columns[task]


def from_single_task(arch: str, single: nn.Module, extra: Mapping[str, Any]) -> MultiTaskModel:
    """Build the column model ``arch`` for the tasks of a single-task model (``stl_*``), copying its encoders
    (one per column) and heads; ``extra`` holds the new model's own options (unit initialisation)."""
    if not isinstance(getattr(single, "encoder", None), IndependentColumns) or not hasattr(single, "encoder_name"):
        raise TypeError(f"from_single_task needs a single-task model of image encoders (stl_tiny, stl_resnet18, "
                        f"stl), got {type(single).__name__}; build one with mtlzoo.create_model('stl_<encoder>', "
                        "tasks=...) and train it")
    model = create_model(arch, tasks=[t.to_dict() for t in single.tasks], encoder=single.encoder_name,
                         output_stride=single.output_stride, in_chans=single.in_chans, head=single.head_type,
                         head_width=single.head_width, **extra)
    reference = next(single.parameters())
    model.to(device=reference.device, dtype=reference.dtype)
    for column, name in zip(model.encoder.columns, single.task_names, strict=True):
        column.encoder.load_state_dict(single.encoder.columns[name].state_dict())
        model.heads[name].load_state_dict(single.heads[name].state_dict())
    return model

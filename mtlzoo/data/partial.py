"""Data that labels only some of a model's tasks: the other tasks get targets with no valid entry.

Fine-tuning a checkpoint on new data (``mtlzoo finetune --data folder:PATH --add-task ...``) usually brings
labels for the new tasks only. Every loss masks unlabelled entries (the ignore index of class-id kinds,
non-finite values elsewhere; see :mod:`mtlzoo.losses`), so a task whose target is all unlabelled adds no loss
and no gradient, and every update rule still sees each of the model's tasks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from mtlzoo.tasks import Task


def unlabelled_target(task: Task, size: tuple[int, int]) -> Tensor:
    """A target of ``task`` for an (H, W) image with no labelled entry: all ``ignore_index`` for class-id kinds,
    all NaN otherwise, in the shape the kind's loss reads."""
    spec = task.spec
    if spec.uses_ignore_index:
        return torch.full(tuple(size) if spec.dense else (), task.ignore_index, dtype=torch.int64)
    return torch.full((task.channels, *size) if spec.dense else (task.channels,), float("nan"))


class WithUnlabelled(Dataset):
    """``data`` whose samples also hold an unlabelled target (:func:`unlabelled_target`) for each of ``tasks``."""

    def __init__(self, data: Dataset, tasks: Sequence[Task]) -> None:
        self.data, self.tasks = data, list(tasks)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = dict(self.data[index])
        size = tuple(sample["image"].shape[-2:])
        for task in self.tasks:
            sample[task.name] = unlabelled_target(task, size)
        return sample

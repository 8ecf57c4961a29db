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


def target_like(task: Task, size: tuple[int, int]) -> Tensor | None:
    """One target of ``task`` for an (H, W) image as its kind draws examples (shape and dtype), None when the
    kind draws none."""
    draw = task.spec.example_target
    return None if draw is None else draw(task, 1, tuple(size), torch.Generator().manual_seed(0))[0]


def unlabelled_target(task: Task, size: tuple[int, int]) -> Tensor:
    """A target of ``task`` for an (H, W) image with no labelled entry, in the shape the kind's loss reads:
    all ``ignore_index`` for integer (class id) targets, all NaN for float ones."""
    like = target_like(task, size)
    if like is None:
        return torch.full((task.channels, *size) if task.dense else (task.channels,), float("nan"))
    if like.is_floating_point():
        return torch.full(like.shape, float("nan"))
    return torch.full(like.shape, task.ignore_index, dtype=like.dtype)


class WithUnlabelled(Dataset):
    """``data`` whose samples also hold an unlabelled target (:func:`unlabelled_target`) for each of ``tasks``."""

    def __init__(self, data: Dataset, tasks: Sequence[Task]) -> None:
        self.data, self.tasks = data, list(tasks)
        self._made: dict[tuple[str, tuple[int, ...]], Tensor] = {}

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = dict(self.data[index])
        size = tuple(sample["image"].shape[-2:])
        for task in self.tasks:
            if (task.name, size) not in self._made:
                self._made[task.name, size] = unlabelled_target(task, size)
            sample[task.name] = self._made[task.name, size].clone()
        return sample

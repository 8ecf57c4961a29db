"""Putting weights into a built model: strict loading that explains mismatches, and task adaptation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from mtlzoo.tasks import resolve_tasks

if TYPE_CHECKING:  # annotations only: models.base reaches this module (save_pretrained -> export -> factory)
    from mtlzoo.models.base import MultiTaskModel

_SHOWN_KEYS = 10


def _listed(keys: list[str]) -> str:
    more = f" ... and {len(keys) - _SHOWN_KEYS} more" if len(keys) > _SHOWN_KEYS else ""
    return ", ".join(keys[:_SHOWN_KEYS]) + more


def load_state(model: torch.nn.Module, state: Mapping[str, Tensor], strict: bool = True) -> dict[str, list[str]]:
    """Copy ``state`` into ``model``; strict: every key must match in name and shape, else a ValueError lists them.

    With ``strict=False`` the matching tensors load and the mismatches are returned
    (``{"missing", "unexpected", "mismatched"}``).
    """
    expected = model.state_dict()
    report = {
        "missing": [k for k in expected if k not in state],
        "unexpected": [k for k in state if k not in expected],
        "mismatched": [f"{k} (checkpoint {tuple(state[k].shape)}, model {tuple(expected[k].shape)})"
                       for k in expected if k in state and state[k].shape != expected[k].shape],
    }
    if strict and any(report.values()):
        lines = [f"{what} keys ({len(keys)}): {_listed(keys)}" for what, keys in report.items() if keys]
        raise ValueError(f"checkpoint does not match {getattr(model, 'architecture', type(model).__name__)}: "
                         + "; ".join(lines) + ". Pass strict=False to load only the tensors that match.")
    usable = {k: v for k, v in state.items() if k in expected and v.shape == expected[k].shape}
    model.load_state_dict(usable, strict=False)
    return report


def adapt_tasks(model: MultiTaskModel, tasks: Any) -> MultiTaskModel:
    """Give a loaded model the requested tasks: keep identical ones, add new heads, replace changed, drop others.

    Kept tasks stay in checkpoint order (some architectures index task-owned parts by position); new
    and changed tasks are appended with freshly initialised heads (via ``add_task`` / ``remove_task``).
    """
    wanted = resolve_tasks(tasks)
    names = [t.name for t in wanted]
    current = {t.name: t for t in model.tasks}
    for task in wanted:
        if task.name not in current:
            model.add_task(task)
    for task in wanted:
        if task.name in current and current[task.name] != task:
            model.remove_task(task.name)
            model.add_task(task)
    for name in list(current):
        if name not in names:
            model.remove_task(name)
    return model

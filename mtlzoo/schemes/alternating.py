"""Alternating independent task steps (Pascal et al., arXiv 2109.11678): IUS and IO with random task grouping.

The tasks are split once, by a seeded generator, into groups of ``group_size``; every batch then
takes one step per group, each with a fresh forward through the shared trunk and that group's
summed loss. IUS uses one optimizer for everything; IO keeps one optimizer state per group for the
shared parameters, and each head lives only in its own group's optimizer. The shared parameters
are stepped once per group, so their weight decay is divided by the number of groups.
``group_size = T`` is the ordinary joint step.

Optimizer-state semantics (methods.md 5.5): the release ran on PyTorch 1.x, whose ``zero_grad()``
zeroed gradients instead of deleting them, so under IUS the shared Adam also stepped the other
groups' heads (zero gradient, stale momentum) at every group step. ``release_semantics=True``
reproduces that (gradients zeroed, not set to None); the default ``False`` leaves the other heads
alone, as the released code does on PyTorch >= 2 (added 2026-11-26, issue 12).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from mtlzoo.schemes.base import (
    UPDATE_RULES,
    OptimizerSpec,
    StepInfo,
    UpdateRule,
    as_factory,
    backward,
    build_optimizer,
    forward_tasks,
    optimizer_step,
    split_batch,
    task_weights,
)
from mtlzoo.schemes.work import Work

MODES = ("ius", "io")


class AlternatingSteps(UpdateRule):
    """One optimizer step per task group per batch (``mode="ius"``: one optimizer, ``"io"``: one per group).

    ``release_semantics``: zero the gradients between group steps instead of deleting them (PyTorch 1.x
    ``zero_grad()``, as the authors' runs did), so that under IUS every head that has had a gradient moves on
    its stale momentum (and weight decay) at every group step. Off by default: an independent update step on
    one group's loss then moves only the shared parameters and that group's heads, which is the method as
    described and what the released code does on any current PyTorch; turn it on to reproduce the published
    runs. Under IO it changes nothing (each head lives only in its own group's optimizer).
    """

    def __init__(self, model: nn.Module, optimizer: OptimizerSpec, group_size: int = 1, mode: str = "ius",
                 seed: int = 0, weights: Mapping[str, float] | None = None, release_semantics: bool = False) -> None:
        super().__init__(model, seed)
        if not isinstance(release_semantics, bool):
            raise TypeError(f"release_semantics must be True or False, got {release_semantics!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if getattr(model, "aux_weight", 0):  # InvPT: the joint decoder's preliminary predictions enter each loss
            raise TypeError(f"{mode} runs each task group through the trunk and that group's heads alone, but "
                            f"{type(model).__name__} folds deep-supervision terms of its joint decoder into every "
                            f"loss (aux_weight={model.aux_weight}); build it with aux_weight=0 or use a "
                            "single-step method")
        names = model.task_names
        if not isinstance(group_size, int) or not 1 <= group_size <= len(names):
            raise ValueError(f"group_size must be an int in [1, {len(names)}] (the number of tasks), "
                             f"got {group_size!r}")
        self.mode, self.group_size, self.release_semantics = mode, group_size, release_semantics
        self.method = mode
        self.weights = task_weights(model, weights)
        order = torch.randperm(len(names), generator=self.generator).tolist()
        self.groups = [[names[i] for i in order[s:s + group_size]] for s in range(0, len(names), group_size)]
        self.optimizers = self._build_optimizers(as_factory(optimizer))

    def _build_optimizers(self, factory) -> list[torch.optim.Optimizer]:
        shared = list(self.model.shared_parameters())
        decay_scale = 1.0 / len(self.groups)

        def owned(group: list[str]) -> list[nn.Parameter]:
            return [p for name in group for p in self.model.task_parameters(name)]

        if self.mode == "ius":
            return [build_optimizer(factory, [(shared, decay_scale), (owned(self.model.task_names), 1.0)])]
        return [build_optimizer(factory, [(shared, decay_scale), (owned(group), 1.0)]) for group in self.groups]

    def step(self, batch: Mapping[str, Any], epoch: int = 0, epochs: int = 1, scaler: Any = None,
             clip_grad: float | None = None) -> StepInfo:
        x, targets = split_batch(batch)
        recorded, skipped = {}, 0
        for index, group in enumerate(self.groups):
            optimizer = self.optimizers[index if self.mode == "io" else 0]
            self.model.zero_grad(set_to_none=not self.release_semantics)
            losses = self.model.losses(forward_tasks(self.model, x, group), targets)
            backward(sum(self.weights[name] * losses[name] for name in group), scaler)
            skipped += not optimizer_step(optimizer, scaler, clip_grad, last=index == len(self.groups) - 1)
            recorded.update({name: loss.detach() for name, loss in losses.items()})
        losses = {name: recorded[name] for name in self.model.task_names}
        groups = len(self.groups)
        return StepInfo(losses, {"updates": groups}, skipped=skipped, work=Work(groups, groups, groups - skipped))

    def work_per_step(self) -> Work:
        """One forward, one backward and one update per task group."""
        return Work(len(self.groups), len(self.groups), len(self.groups))

    def _extra_state(self) -> dict[str, Any]:
        return {"groups": self.groups}

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        if [list(group) for group in state["groups"]] != self.groups:
            raise ValueError(f"saved task groups {state['groups']} differ from this rule's {self.groups}; "
                             "use the same seed and group_size as the saved run")


@UPDATE_RULES.register("ius")
def ius(model: nn.Module, optimizer: OptimizerSpec, **kwargs: Any) -> AlternatingSteps:
    """Independent update steps: one optimizer shared by all task groups."""
    return AlternatingSteps(model, optimizer, mode="ius", **kwargs)


@UPDATE_RULES.register("io")
def io(model: nn.Module, optimizer: OptimizerSpec, **kwargs: Any) -> AlternatingSteps:
    """Independent optimizers: one optimizer state per task group for the shared parameters."""
    return AlternatingSteps(model, optimizer, mode="io", **kwargs)

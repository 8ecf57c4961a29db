"""Connection-strength two-phase optimisation (Jeong & Yoon, CVPR 2024, Alg. 1).

Each iteration draws u ~ U(0, 1): if u >= epoch / epochs, phase 1 (learn task priority) takes one
forward / backward / optimizer step per task in turn; otherwise phase 2 (conserve task priority)
computes every task's gradient, and in each conv paired with task-specific BN projects, inside the
channel group CG_i of the channels whose top-priority task is i, every other task's gradient block
D off the reference block R = G_i[CG_i] when they conflict: D <- D - min(<R, D>, 0) / |R|^2 R.
The update is the sum of the (projected) task gradients, then one optimizer step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mtlzoo.schemes.base import (
    UPDATE_RULES,
    OptimizerSpec,
    StepInfo,
    UpdateRule,
    all_reduce_mean,
    backward,
    optimizer_step,
    split_batch,
    task_weights,
)
from mtlzoo.schemes.work import Work

SCHEDULES = ("mixed", "phase1", "phase2")
GRANULARITIES = ("iteration", "epoch")


def conserve_priority(grads: Tensor, top: Tensor, skip_single_group: bool = True, eps: float = 1e-20) -> Tensor:
    """Project conflicting task gradients off each channel group's top-priority task (branch-free, one pass).

    ``grads`` is (T, C_out, ...) (one conv weight's gradient per task), ``top`` (C_out,) the
    top-priority task of every output channel. A projection inside group CG_i only changes rows of
    CG_i and reads the untouched reference rows, so every inner product is taken from the input at
    once. With ``skip_single_group`` a layer whose channels all share one top task is left
    unprojected, as in the released code.
    """
    num_tasks, channels = grads.shape[:2]
    flat = grads.flatten(2)  # (T, C, R)
    reference = flat[top, torch.arange(channels, device=top.device)]  # (C, R): each row's top task's gradient
    groups = F.one_hot(top, num_tasks).to(torch.float64)  # (C, T)
    dots = torch.einsum("jcr,cr->jc", flat, reference).double() @ groups  # (T, T): <G_j[CG_i], R_i>
    norms = reference.double().pow(2).sum(1) @ groups  # (T,): |R_i|^2
    coef = torch.where(dots < 0, dots / norms.clamp_min(eps), 0.0)
    coef = coef * (1.0 - torch.eye(num_tasks, dtype=coef.dtype, device=coef.device))
    per_row = coef[:, top].to(flat.dtype)  # (T, C): coefficient of each task's row on its group's reference
    out = flat - per_row.unsqueeze(-1) * reference
    if skip_single_group:
        out = torch.where((top != top[0]).any(), out, flat)
    return out.view_as(grads)


class ConnectionStrengthTwoPhase(UpdateRule):
    """Phase 1 (sequential per-task steps) with probability 1 - epoch/epochs, else phase 2 (priority projection).

    Needs a model with task-specific BN (``cs_*``): ``model(x, task=name)`` and ``model.priority_layers()``.
    ``schedule`` forces one phase for ablations; ``per="epoch"`` draws the phase once per epoch.
    """

    def __init__(self, model: nn.Module, optimizer: OptimizerSpec, seed: int = 0, schedule: str = "mixed",
                 per: str = "iteration", skip_single_group: bool = True,
                 weights: Mapping[str, float] | None = None) -> None:
        super().__init__(model, seed)
        if not hasattr(model, "priority_layers"):
            raise TypeError(f"cs_two_phase needs a model with task-specific BN (e.g. cs_resnet18); "
                            f"{type(model).__name__} has no priority_layers()")
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
        if per not in GRANULARITIES:
            raise ValueError(f"per must be one of {GRANULARITIES}, got {per!r}")
        self.schedule, self.per, self.skip_single_group = schedule, per, skip_single_group
        self.weights = task_weights(model, weights)
        self.optimizer = optimizer if isinstance(optimizer, torch.optim.Optimizer) else optimizer(model.parameters())
        self.optimizers = [self.optimizer]
        self._epoch_phase: tuple[int, int] | None = None

    def choose_phase(self, epoch: int, epochs: int) -> int:
        """1 or 2 for this iteration: phase 2 with probability epoch / epochs (or as ``schedule`` forces)."""
        if self.schedule != "mixed":
            return 1 if self.schedule == "phase1" else 2
        if self.per == "epoch" and self._epoch_phase is not None and self._epoch_phase[0] == epoch:
            return self._epoch_phase[1]
        draw = float(torch.rand((), generator=self.generator))
        phase = 1 if draw >= epoch / max(epochs, 1) else 2
        self._epoch_phase = (epoch, phase)
        return phase

    def step(self, batch: Mapping[str, Any], epoch: int = 0, epochs: int = 1, scaler: Any = None,
             clip_grad: float | None = None) -> StepInfo:
        x, targets = split_batch(batch)
        phase = self.choose_phase(epoch, epochs)
        run = self._phase1 if phase == 1 else self._phase2
        losses, skipped = run(x, targets, scaler, clip_grad)
        return StepInfo(losses, {"phase": phase}, skipped=skipped, work=self._phase_work(phase, skipped))

    def work_per_step(self) -> Work:
        """One forward and one backward per task in either phase; T updates in phase 1, one in phase 2. The mixed
        schedule draws the phase at every step, so its updates per step are not fixed: it refuses."""
        if self.schedule == "mixed":
            raise ValueError("cs_two_phase(schedule='mixed') draws phase 1 (T updates) or phase 2 (1 update) at "
                             "every step, so its work per step is not fixed (T forward and T backward passes in "
                             "both); use schedule='phase1' or 'phase2' for a fixed one")
        return self._phase_work(1 if self.schedule == "phase1" else 2)

    def backward_per_step(self) -> int:
        """One backward pass per task in either phase, so the mixed schedule has a fixed number too."""
        return len(self.model.task_names)

    def _phase_work(self, phase: int, skipped: int = 0) -> Work:
        tasks = len(self.model.task_names)
        return Work(tasks, tasks, (tasks if phase == 1 else 1) - skipped)

    def _task_loss(self, x: Tensor, targets: Mapping[str, Any], name: str) -> Tensor:
        output = self.model(x, task=name)
        return self.model.losses(output, targets)[name]

    def _phase1(self, x: Tensor, targets: Mapping[str, Any], scaler: Any, clip_grad: float | None
                ) -> tuple[dict, int]:
        losses, skipped = {}, 0
        names = self.model.task_names
        for index, name in enumerate(names):
            self.optimizer.zero_grad(set_to_none=True)
            loss = self._task_loss(x, targets, name)
            backward(self.weights[name] * loss, scaler)
            skipped += not optimizer_step(self.optimizer, scaler, clip_grad, last=index == len(names) - 1)
            losses[name] = loss.detach()
        return losses, skipped

    def _phase2(self, x: Tensor, targets: Mapping[str, Any], scaler: Any, clip_grad: float | None
                ) -> tuple[dict, int]:
        params = [p for p in self.model.parameters() if p.requires_grad]
        layers = list(self.model.priority_layers().values())
        paired = {id(layer.conv.weight) for layer in layers}
        totals: list[Tensor | None] = [None] * len(params)
        per_task: dict[int, list[Tensor]] = {}
        losses = {}
        for name in self.model.task_names:
            loss = self._task_loss(x, targets, name)
            scaled = self.weights[name] * loss
            scaled = scaler.scale(scaled) if scaler is not None else scaled
            grads = torch.autograd.grad(scaled, params, allow_unused=True)
            for index, (param, grad) in enumerate(zip(params, grads, strict=True)):
                grad = torch.zeros_like(param) if grad is None and id(param) in paired else grad
                if id(param) in paired:
                    per_task.setdefault(id(param), []).append(grad)
                elif grad is not None:
                    totals[index] = grad if totals[index] is None else totals[index] + grad
            losses[name] = loss.detach()
        all_reduce_mean([*totals, *(g for grads in per_task.values() for g in grads)])
        layers = [layer for layer in layers if id(layer.conv.weight) in per_task]
        strengths = [layer.connection_strength() for layer in layers]
        all_reduce_mean(strengths)  # BN running statistics differ across ranks; every rank takes the same groups
        projected = {id(layer.conv.weight): conserve_priority(torch.stack(per_task[id(layer.conv.weight)]),
                                                              strength.argmax(dim=0), self.skip_single_group).sum(0)
                     for layer, strength in zip(layers, strengths, strict=True)}
        self.optimizer.zero_grad(set_to_none=True)
        for index, param in enumerate(params):
            param.grad = projected.get(id(param), totals[index])
        taken = optimizer_step(self.optimizer, scaler, clip_grad, sync=False)
        return losses, int(not taken)

    def _extra_state(self) -> dict[str, Any]:
        return {"epoch_phase": self._epoch_phase}

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        self._epoch_phase = tuple(state["epoch_phase"]) if state.get("epoch_phase") is not None else None


@UPDATE_RULES.register("cs_two_phase")
def cs_two_phase(model: nn.Module, optimizer: OptimizerSpec, **kwargs: Any) -> ConnectionStrengthTwoPhase:
    """Connection-strength optimisation: phase 1 sequential task steps, phase 2 priority-conserving projection."""
    return ConnectionStrengthTwoPhase(model, optimizer, **kwargs)

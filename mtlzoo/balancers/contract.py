"""The step contract: what a balancer declares it needs, what a step hands it, what a step returns.

A leaf module (torch only): the gradient engine (:mod:`mtlzoo.balancers.engine`) and the balancer
classes (:mod:`mtlzoo.balancers.base`) both build on it, so neither has to import the other's types.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class Needs:
    """What a balancer needs from the engine (the engine computes nothing else).

    ``post_step_losses``: the losses re-evaluated on the same batch right after the optimizer step
    (no grad), handed to :meth:`Balancer.after_step`; the update rule makes that extra forward (FAMO).
    """

    losses: bool = True
    jacobian: bool = False
    gramian: bool = False
    features: bool = False
    post_step_losses: bool = False


@dataclass
class BalanceInfo:
    """What one balanced backward produced; tensors stay on the device (no host sync).

    ``weights`` are the effective per-task weights on the shared update (T,), in the order of
    ``tasks``; ``grad_norms``, ``cosines`` and ``condition_number`` are filled when the method
    computed the Gramian anyway. ``finite`` (0-dim bool) is false when a loss or gradient was NaN
    or inf: the gradients written are then NaN and the optimizer step must be skipped.
    ``backward_passes``: the loss vectors the backward pulled back through the shared trunk (T for per-task
    gradients on the shared parameters, looped or batched; 1 otherwise; see :mod:`mtlzoo.schemes.work`).
    """

    tasks: list[str]
    weights: Tensor
    grad_norms: Tensor | None = None
    cosines: Tensor | None = None
    condition_number: Tensor | None = None
    extras: dict[str, Tensor] = field(default_factory=dict)
    finite: Tensor = field(default_factory=lambda: torch.ones((), dtype=torch.bool))
    backward_passes: int = field(kw_only=True)

    def as_dict(self) -> dict[str, Tensor]:
        """Flat ``{name: tensor}`` view for loggers, e.g. ``weight/semseg``."""
        out = {"finite": self.finite}
        out.update({f"weight/{t}": self.weights[i] for i, t in enumerate(self.tasks)})
        if self.grad_norms is not None:
            out.update({f"grad_norm/{t}": self.grad_norms[i] for i, t in enumerate(self.tasks)})
        if self.condition_number is not None:
            out["condition_number"] = self.condition_number
        out.update(self.extras)
        return out


@dataclass
class StepContext:
    """Everything a balancer hook may read for one step.

    ``losses`` are the stacked (possibly transformed) losses with their graph, ``task_losses``
    the same scalars kept apart (differentiate these per task: a backward through the stack
    visits every task's graph), ``values`` the detached values (all-reduced across ranks under
    DDP so every rank takes the same decision). ``finite`` (0-dim bool, on the device) is false on
    a step with a NaN or inf loss or gradient: a balancer must not update its state from such a
    step (mask with ``torch.where(ctx.finite, new, old)``). ``model`` is the module passed to
    ``backward`` (None for a sequence of parameters).
    """

    tasks: list[str]
    losses: Tensor
    task_losses: list[Tensor]
    values: Tensor
    shared: list[Tensor]
    features: tuple[Tensor, ...] | None
    level: str
    extras: dict[str, Tensor] = field(default_factory=dict)
    finite: Tensor = field(default_factory=lambda: torch.ones((), dtype=torch.bool))
    model: nn.Module | None = None

"""The Balancer contract: what a method declares it needs, and what it returns.

A balancer turns T task losses into one update. It declares its needs (:class:`Needs`) and the
gradient engine (:mod:`mtlzoo.balancers.engine`) computes exactly that: the loss values, the
per-task gradients on the shared parameters (or on the shared features), or only their T x T
Gramian. Three families implement one hook each:

* :class:`LossBalancer`: ``total_loss(ctx) -> (total, weights)``; one ordinary backward.
* :class:`GramianBalancer`: ``weights(gramian, ctx) -> weights``; the update is ``sum_t w_t g_t``.
* :class:`JacobianBalancer`: ``aggregate(jacobian, gramian, ctx) -> (blocks, weights)`` for
  elementwise methods or methods with Jacobian-sized state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor, nn

from mtlzoo.balancers.contract import BalanceInfo, Needs, StepContext
from mtlzoo.balancers.engine import balanced_backward

LEVELS = ("parameters", "features")
JACOBIAN_MODES = ("auto", "batched", "loop")
_CALIBRATION = ("_auto_calls", "_auto_times", "_resolved_mode", "_batched_ok")


class Balancer(nn.Module):
    """Base class: turns a ``{task: loss}`` dict into filled ``.grad`` fields.

    Subclasses set ``needs`` and ``scale_heads`` (whether task-head gradients are multiplied by
    the task weight) and implement their family's hook. Learnable weights (uw, gradnorm) are
    ``nn.Parameter``s: bind the task names first (``create_balancer(name, tasks=...)`` or
    ``model=model``, or :meth:`bind`), then build the optimizer over ``balancer.parameters()`` too;
    the engine raises when they were created too late or sit in no optimizer.
    """

    needs: Needs = Needs()
    scale_heads: bool = True

    def __init__(self, level: str = "parameters", jacobian_mode: str = "auto") -> None:
        super().__init__()
        if level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
        if jacobian_mode not in JACOBIAN_MODES:
            raise ValueError(f"jacobian_mode must be one of {JACOBIAN_MODES}, got {jacobian_mode!r}")
        self.level = level
        self.jacobian_mode = jacobian_mode
        self.needs = replace(type(self).needs, features=level == "features")
        self.tasks: list[str] | None = None

    def bind(self, tasks: Sequence[str]) -> Balancer:
        """Fix the task order and create per-task state; later calls must name the same tasks."""
        names = list(tasks)
        if self.tasks is None:
            if len(set(names)) != len(names) or not names:
                raise ValueError(f"task names must be unique and non-empty, got {names}")
            self.tasks = names
            self._init_state(len(names))
        elif sorted(names) != sorted(self.tasks):
            raise ValueError(f"balancer is bound to tasks {self.tasks}, got losses for {names}")
        return self

    def _init_state(self, num_tasks: int) -> None:
        """Create per-task parameters and buffers; stateless balancers keep the default."""

    def prepare_losses(self, losses: Tensor) -> Tensor:
        """Differentiable transform applied to the stacked losses before anything else."""
        return losses

    def head_weights(self, weights: Tensor) -> Tensor:
        """Per-task factor for the task-head gradients (the weights, or ones)."""
        return weights if self.scale_heads else torch.ones_like(weights)

    def epoch_end(self) -> None:
        """Called by the trainer at the end of every epoch; epoch-level methods (DWA) override it."""

    def after_step(self, losses: Mapping[str, Tensor]) -> None:
        """Receives ``{task: loss}`` (detached) re-evaluated on the step's batch after a taken optimizer step,
        when ``needs.post_step_losses`` is set; methods that declare that need override it."""

    def backward(self, losses: Mapping[str, Tensor], model_or_params: nn.Module | Iterable[Tensor],
                 features: Sequence[Tensor] | None = None, scaler: Any = None) -> BalanceInfo:
        """Fill ``.grad`` of every parameter for this step (accumulating) and return the info.

        ``model_or_params`` is a module with ``shared_parameters()`` / ``task_parameters(task)``
        or a sequence of shared parameters. ``features`` is the shared representation the losses
        were computed from (required at the feature level). ``scaler`` is an optional
        ``torch.amp.GradScaler``; the gradients left in ``.grad`` are then scaled as usual.
        """
        return balanced_backward(self, losses, model_or_params, features, scaler)

    def get_extra_state(self) -> dict[str, Any]:
        # the auto Jacobian path's calibration travels with the state, so a resumed run takes the same path
        calibration = {key: getattr(self, key) for key in _CALIBRATION if hasattr(self, key)}
        return {"tasks": self.tasks, "jacobian_mode": self.jacobian_mode, **calibration}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        if state.get("tasks") is not None:
            self.bind(state["tasks"])
        if state.get("jacobian_mode") in JACOBIAN_MODES:
            self.jacobian_mode = state["jacobian_mode"]
        for key in _CALIBRATION:
            if key in state:
                setattr(self, key, dict(state[key]) if isinstance(state[key], dict) else state[key])

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False):
        """Load state, binding to the saved task names first so lazily created state exists."""
        extra = state_dict.get("_extra_state")
        if isinstance(extra, dict) and extra.get("tasks") is not None:
            self.bind(extra["tasks"])
            self._prepare_load(state_dict)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def _prepare_load(self, state_dict: Mapping[str, Any]) -> None:
        """Create state whose shape is only known from the checkpoint (e.g. Jacobian-sized)."""

    def combine(self, jacobian: Any, gramian: Tensor, ctx: StepContext) -> tuple[list[Tensor], Tensor]:
        """The engine's hook for gradient-level methods: ``(combined blocks, weights)``; families override it."""
        raise TypeError(f"{type(self).__name__} is not a LossBalancer, GramianBalancer or JacobianBalancer")

    def extra_repr(self) -> str:
        return f"level={self.level!r}"


class LossBalancer(Balancer):
    """Loss-level method: weights come from loss values only; one ordinary backward."""

    needs = Needs(losses=True)

    def __init__(self, level: str = "parameters", **kwargs: Any) -> None:
        if level != "parameters":
            raise ValueError(f"{type(self).__name__} weights losses; level must be 'parameters', got {level!r}")
        super().__init__(level=level, **kwargs)

    def total_loss(self, ctx: StepContext) -> tuple[Tensor, Tensor]:
        """Return the scalar to backpropagate and the per-task weights (detached)."""
        raise NotImplementedError


class GramianBalancer(Balancer):
    """Gradient-level method whose weights are a function of the T x T Gramian only."""

    needs = Needs(losses=True, gramian=True)

    def weights(self, gramian: Tensor, ctx: StepContext) -> Tensor:
        """Return per-task weights (T,) in float64 from the float64 Gramian."""
        raise NotImplementedError

    def combine(self, jacobian: Any, gramian: Tensor, ctx: StepContext) -> tuple[list[Tensor], Tensor]:
        """The engine's hook: the weighted sum of the per-task gradients, and the weights."""
        weights = self.weights(gramian, ctx)
        return jacobian.combine(weights), weights


class JacobianBalancer(Balancer):
    """Gradient-level method that needs the per-task gradients themselves."""

    needs = Needs(losses=True, jacobian=True, gramian=True)

    def aggregate(self, jacobian: Any, gramian: Tensor, ctx: StepContext) -> tuple[list[Tensor], Tensor]:
        """Return the combined gradient as flat blocks (one per Jacobian block) and per-task weights."""
        raise NotImplementedError

    def combine(self, jacobian: Any, gramian: Tensor, ctx: StepContext) -> tuple[list[Tensor], Tensor]:
        """The engine's hook: the method's own aggregation of the per-task gradients."""
        return self.aggregate(jacobian, gramian, ctx)


def per_task_values(values: Sequence[float] | Mapping[str, float] | None, tasks: list[str],
                    default: float) -> list[float]:
    """Per-task floats (``default`` for missing ones) from a list (task order) or a ``{task: value}`` mapping."""
    if values is None:
        return [default] * len(tasks)
    if isinstance(values, Mapping):
        unknown = [t for t in values if t not in tasks]
        if unknown:
            raise ValueError(f"weights name unknown tasks {unknown}; tasks are {tasks}")
        return [float(values.get(t, default)) for t in tasks]
    values = [float(v) for v in values]
    if len(values) != len(tasks):
        raise ValueError(f"expected {len(tasks)} weights (one per task {tasks}), got {len(values)}")
    return values

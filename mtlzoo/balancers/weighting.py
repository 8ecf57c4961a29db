"""Loss-level weightings: one ordinary backward of a weighted (or transformed) sum of losses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from mtlzoo.balancers.base import LossBalancer
from mtlzoo.balancers.contract import StepContext
from mtlzoo.balancers.registry import register_balancer
from mtlzoo.registry import close_matches


@register_balancer("ew")
class EqualWeighting(LossBalancer):
    """Equal weighting (linear scalarisation): ``sum_t L_t``; the plain summed-loss step."""

    def total_loss(self, ctx: StepContext) -> tuple[Tensor, Tensor]:
        return ctx.losses.sum(), torch.ones_like(ctx.values)


@register_balancer("fixed")
class FixedWeighting(LossBalancer):
    """Fixed hand-set weights ``sum_t w_t L_t`` (e.g. the MTI-Net / PAD-Net loss weights).

    ``weights`` maps task names to floats; tasks not named get ``default``.
    """

    def __init__(self, weights: Mapping[str, float] | None = None, default: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.task_weights = dict(weights or {})
        self.default = float(default)

    def _init_state(self, num_tasks: int) -> None:
        unknown = [t for t in self.task_weights if t not in self.tasks]
        if unknown:
            near = close_matches(unknown[0], self.tasks)
            raise ValueError(f"fixed weights name unknown tasks {unknown}; tasks are {self.tasks}"
                             + (f" (did you mean {near[0]!r}?)" if near else ""))
        w = [float(self.task_weights.get(t, self.default)) for t in self.tasks]
        self.register_buffer("w", torch.tensor(w, dtype=torch.float32))

    def total_loss(self, ctx: StepContext) -> tuple[Tensor, Tensor]:
        w = self.w.to(ctx.losses.device)
        return (w * ctx.losses).sum(), w


@register_balancer("uw")
class UncertaintyWeighting(LossBalancer):
    """Uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018): ``sum_t 0.5 exp(-s_t) L_t + 0.5 s_t``.

    ``s_t = log sigma_t^2`` are learnable (init 0): add ``balancer.parameters()`` to the optimizer
    after ``balancer.bind(task_names)``.
    """

    def _init_state(self, num_tasks: int) -> None:
        self.log_vars = nn.Parameter(torch.zeros(num_tasks))

    def total_loss(self, ctx: StepContext) -> tuple[Tensor, Tensor]:
        s = self.log_vars.to(ctx.losses.device)
        w = 0.5 * torch.exp(-s)
        return (w * ctx.losses + 0.5 * s).sum(), w.detach()


@register_balancer("rlw")
class RandomLossWeighting(LossBalancer):
    """Random loss weighting (Lin et al., TMLR 2022): weights ``softmax(z)``, ``z ~ N(0, I)`` each step."""

    def total_loss(self, ctx: StepContext) -> tuple[Tensor, Tensor]:
        w = torch.softmax(torch.randn(ctx.losses.shape, device=ctx.losses.device), dim=0)
        return (w * ctx.losses).sum(), w


@register_balancer("gls")
class GeometricLossStrategy(LossBalancer):
    """Geometric mean of the losses (Chennupati et al., CVPRW 2019): ``(prod_t L_t)^(1/T)``."""

    def __init__(self, eps: float = 1e-8, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.eps = eps

    def total_loss(self, ctx: StepContext) -> tuple[Tensor, Tensor]:
        total = torch.log(ctx.losses + self.eps).mean().exp()
        return total, (total / (len(ctx.tasks) * (ctx.losses + self.eps))).detach()


@register_balancer("si")
class ScaleInvariantLoss(LossBalancer):
    """Scale-invariant loss (the SI baseline of Navon et al., ICML 2022): ``sum_t log L_t``."""

    def __init__(self, eps: float = 1e-8, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.eps = eps

    def total_loss(self, ctx: StepContext) -> tuple[Tensor, Tensor]:
        return torch.log(ctx.losses + self.eps).sum(), 1.0 / (ctx.values + self.eps)


@register_balancer("dwa")
class DynamicWeightAverage(LossBalancer):
    """Dynamic weight average (Liu, Johns & Davison, CVPR 2019): ``w = T softmax(r / tau)``.

    ``r_t = Lbar_t(k-1) / Lbar_t(k-2)`` is the ratio of task t's mean loss over the last two
    epochs (weights are 1 for the first two). Epochs end when the trainer calls
    :meth:`epoch_end`, or every ``window`` steps when ``window`` is given.
    """

    def __init__(self, temperature: float = 2.0, window: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if window is not None and window < 1:
            raise ValueError(f"window must be a positive number of steps or None, got {window}")
        self.temperature = temperature
        self.window = window
        self._steps_in_window = 0
        self._weights: tuple[Tensor, tuple[int, int], Tensor] | None = None  # current_weights(), per epoch

    def _init_state(self, num_tasks: int) -> None:
        self.register_buffer("running", torch.zeros(num_tasks, dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("history", torch.ones(2, num_tasks, dtype=torch.float64))
        self.register_buffer("epochs", torch.zeros((), dtype=torch.long))

    def current_weights(self) -> Tensor:
        """The weights used for the coming steps (ones before two epochs are complete)."""
        ratio = self.history[1] / self.history[0].clamp_min(1e-12)
        w = len(self.tasks) * torch.softmax(ratio / self.temperature, dim=0)
        return torch.where(self.epochs >= 2, w, torch.ones_like(w)).float()

    def total_loss(self, ctx: StepContext) -> tuple[Tensor, Tensor]:
        self._to(ctx.values.device)
        # the weights change only when an epoch ends (or the state is loaded): compute them once per epoch
        key = (self.history._version, self.epochs._version)
        cached = self._weights
        if cached is None or cached[0] is not self.history or cached[1] != key:
            cached = self._weights = (self.history, key, self.current_weights())
        w = cached[2]
        self.running.add_(torch.where(ctx.finite, ctx.values, 0.0))
        self.count.add_(ctx.finite)
        self._steps_in_window += 1
        if self.window is not None and self._steps_in_window >= self.window:
            self.epoch_end()
        return (w * ctx.losses).sum(), w

    def _to(self, device: torch.device) -> None:
        if self.running.device != device:
            self.to(device)

    def epoch_end(self) -> None:
        """Close the current epoch: its mean losses become the newest history entry."""
        if self.tasks is None:
            return
        mean = self.running / self.count.clamp_min(1)
        self.history.copy_(torch.stack([self.history[1], mean]))
        self.epochs += 1
        self.running.zero_()
        self.count.zero_()
        self._steps_in_window = 0

    def get_extra_state(self) -> dict[str, Any]:
        return {**super().get_extra_state(), "steps_in_window": self._steps_in_window}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        super().set_extra_state(state)
        self._steps_in_window = int(state.get("steps_in_window", 0))

"""Nash-MTL (Navon et al., ICML 2022): the Nash bargaining solution between tasks."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from mtlzoo.balancers.base import GramianBalancer
from mtlzoo.balancers.contract import StepContext
from mtlzoo.balancers.host import HostState, to_device
from mtlzoo.balancers.registry import register_balancer
from mtlzoo.balancers.solvers import nash_bargaining


@register_balancer("nash_mtl")
class NashMTL(GramianBalancer):
    """Nash-MTL: weights ``alpha > 0`` solving ``G alpha = 1 / alpha``; heads get ``alpha_t`` times theirs.

    Defaults as in the reference code: Gramian normalised by its norm, 20 solver iterations
    warm-started from the previous step, weights recomputed every ``update_every`` steps, the
    shared update clipped to norm ``max_norm`` (0 disables). The bargaining system is solved by
    damped Newton steps instead of cvxpy's sequence of convex programs, on the host, stopping once a
    step only rounds (changed 2026-12-06: off the CPU the 20 steps ran in torch on the device; the
    weights are the same to rounding).
    """

    def __init__(self, update_every: int = 1, iters: int = 20, max_norm: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if update_every < 1 or iters < 1:
            raise ValueError(f"update_every and iters must be >= 1, got {update_every}, {iters}")
        self.update_every = update_every
        self.iters = iters
        self.max_norm = float(max_norm)
        self._steps = 0
        self._head_w: Tensor | None = None
        self._host = HostState(["alpha"])

    def _init_state(self, num_tasks: int) -> None:
        self.register_buffer("alpha", torch.ones(num_tasks, dtype=torch.float64))

    def weights(self, gramian: Tensor, ctx: StepContext) -> Tensor:
        if self.alpha.device != gramian.device:
            self.alpha = self.alpha.to(gramian.device)
        (gram, finite), (alpha,) = self._host.fetch(self, gramian, ctx.finite)
        if self._steps % self.update_every == 0:
            new = nash_bargaining(gram, alpha, self.iters)
            alpha = new if np.isfinite(new).all() and bool(finite) else alpha
        self._steps += 1
        weights = alpha
        if self.max_norm > 0:
            norm = np.sqrt(max(alpha @ gram @ alpha, 0))
            weights = alpha * min(self.max_norm / max(norm, 1e-12), 1.0)
        weights_d, alpha_d = to_device(gramian, weights, alpha)
        self._host.write(self, [alpha], [alpha_d])
        self._head_w = alpha_d
        return weights_d

    def head_weights(self, weights: Tensor) -> Tensor:
        return self._head_w.to(weights) if self._head_w is not None else weights

    def get_extra_state(self) -> dict[str, Any]:
        return {**super().get_extra_state(), "steps": self._steps}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        super().set_extra_state(state)
        self._steps = int(state.get("steps", 0))

"""SingleStep: one forward, one balanced backward, one optimizer step; wraps any single-step balancer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer

from mtlzoo.balancers.base import Balancer
from mtlzoo.balancers.engine import backward_passes
from mtlzoo.schemes.base import OptimizerSpec, StepInfo, UpdateRule, all_reduce_mean, optimizer_step, split_batch
from mtlzoo.schemes.work import Work


class SingleStep(UpdateRule):
    """The update rule of every gradient balancer (``ew``, ``pcgrad``, ``aligned_mtl``...).

    ``balancer.backward(losses, model, features=None)`` fills ``.grad``; the shared representation
    is passed when ``balancer.needs.features`` says so. With an optimizer factory the optimizer
    covers the model and the balancer's own learnable parameters (uncertainty weights...). A balancer
    declaring ``needs.post_step_losses`` (FAMO) gets the losses re-evaluated on the same batch after
    every taken step: one extra forward, without grad.

    Work of a step: one forward (two with the post-step losses), the backward passes the gradient engine reports
    (``BalanceInfo.backward_passes``), one update when taken. A balancer object outside the engine (anything
    with ``backward(losses, model)``) counts as one backward pass unless what its ``backward`` returns has a
    ``backward_passes`` attribute.
    """

    def __init__(self, balancer: Any, model: nn.Module, optimizer: OptimizerSpec, seed: int = 0) -> None:
        super().__init__(model, seed)
        if hasattr(balancer, "bind"):
            balancer.bind(model.task_names)
        self.balancer = balancer
        self.method = type(balancer).__name__
        extra = [p for p in balancer.parameters() if p.requires_grad] if isinstance(balancer, nn.Module) else []
        if not isinstance(optimizer, Optimizer):
            optimizer = optimizer(list(model.parameters()) + extra)
        held = {id(p) for group in optimizer.param_groups for p in group["params"]}
        if any(id(p) not in held for p in extra):
            raise ValueError(f"{type(balancer).__name__} has learnable weights that are not in the optimizer, so they "
                             "would never train: build it over list(model.parameters()) + list(balancer.parameters()) "
                             "or pass an optimizer factory")
        self.optimizer = optimizer
        self.optimizers = [optimizer]

    def step(self, batch: Mapping[str, Any], epoch: int = 0, epochs: int = 1, scaler: Any = None,
             clip_grad: float | None = None) -> StepInfo:
        x, targets = split_batch(batch)
        self.optimizer.zero_grad(set_to_none=True)
        rep = self.model.encode(x)
        losses = self.model.losses(self.model.decode(rep), targets)
        wants_features = getattr(getattr(self.balancer, "needs", None), "features", False)
        kwargs = {"scaler": scaler} if scaler is not None else {}
        info = self.balancer.backward(losses, self.model, features=rep.features if wants_features else None,
                                      **kwargs)
        taken = optimizer_step(self.optimizer, scaler, clip_grad, sync=False)  # the gradient engine reduced already
        post_step = taken and self._wants_post_step_losses()
        if post_step:
            self._post_step_losses(x, targets)
        work = Work(forward=1 + post_step, backward=getattr(info, "backward_passes", 1), updates=int(taken))
        return StepInfo({name: loss.detach() for name, loss in losses.items()}, info, skipped=int(not taken),
                        work=work)

    def work_per_step(self) -> Work:
        backward = backward_passes(self.balancer, self.model) if isinstance(self.balancer, Balancer) else 1
        return Work(forward=1 + self._wants_post_step_losses(), backward=backward, updates=1)

    def _wants_post_step_losses(self) -> bool:
        return bool(getattr(getattr(self.balancer, "needs", None), "post_step_losses", False))

    def _post_step_losses(self, x: Any, targets: Mapping[str, Any]) -> None:
        """Re-run the model on the same batch after the step (no grad, in its current mode, as FAMO's reference
        does) and hand the rank-averaged losses to ``balancer.after_step``."""
        with torch.no_grad():
            losses = self.model.losses(self.model.decode(self.model.encode(x)), targets)
        values = {name: loss.detach().float() for name, loss in losses.items()}
        all_reduce_mean(values.values())
        self.balancer.after_step(values)

    def epoch_end(self) -> None:
        if hasattr(self.balancer, "epoch_end"):
            self.balancer.epoch_end()

    def _extra_state(self) -> dict[str, Any]:
        return {"balancer": self.balancer.state_dict()} if hasattr(self.balancer, "state_dict") else {}

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        if "balancer" in state:
            self.balancer.load_state_dict(state["balancer"])

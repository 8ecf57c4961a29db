"""FAMO (Liu et al., NeurIPS 2023): fast adaptive multitask optimisation, O(1) in the number of tasks.

Changed 2026-11-26 (issue 12): by default the logits now learn from the losses re-evaluated on the
same batch right after the model step, as the reference code does (one extra forward without grad,
made by the update rule); the former next-batch update is ``update="next_batch"``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from mtlzoo.balancers.base import LossBalancer
from mtlzoo.balancers.contract import StepContext
from mtlzoo.balancers.registry import register_balancer
from mtlzoo.balancers.solvers import adam_step

UPDATES = ("same_batch", "next_batch")


@register_balancer("famo")
class FAMO(LossBalancer):
    """FAMO: minimise ``sum_t z_t log(L_t) / c`` with ``z = softmax(xi)``, ``c = sum_t z_t / L_t``.

    The logits ``xi`` take an Adam step (``lr=0.025``, ``weight_decay=0.001``) along
    ``J_softmax^T (log L_before - log L_after)``. ``update="same_batch"`` (default, the reference):
    ``L_after`` is the loss on the same batch after the model step; the balancer declares
    ``needs.post_step_losses`` and the update rule hands those losses to :meth:`after_step` (a
    hand-written loop calls ``balancer.after_step({task: loss})`` after ``optimizer.step()``). That forward
    runs in the model's current (training) mode, as in the reference, so BatchNorm statistics see the batch twice.
    ``update="next_batch"``: ``L_after`` is the next step's loss on the next batch, so no extra
    forward, but the weights lag one step and mix the change of batch into the signal.
    """

    def __init__(self, lr: float = 0.025, weight_decay: float = 0.001, min_losses: float = 0.0,
                 eps: float = 1e-8, update: str = "same_batch", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if update not in UPDATES:
            raise ValueError(f"update must be one of {UPDATES}, got {update!r}")
        self.lr, self.weight_decay, self.min_losses, self.eps, self.update = lr, weight_decay, min_losses, eps, update
        self.needs = replace(self.needs, post_step_losses=update == "same_batch")
        self._awaiting, self._checked = False, False

    def _init_state(self, num_tasks: int) -> None:
        self.register_buffer("logits", torch.zeros(num_tasks))
        self.register_buffer("prev", torch.ones(num_tasks))
        self.register_buffer("has_prev", torch.zeros((), dtype=torch.bool))
        self.register_buffer("adam_m", torch.zeros(num_tasks))
        self.register_buffer("adam_v", torch.zeros(num_tasks))
        self.register_buffer("adam_step", torch.zeros((), dtype=torch.long))

    def total_loss(self, ctx: StepContext) -> tuple[Tensor, Tensor]:
        if self.logits.device != ctx.values.device:
            self.to(ctx.values.device)
        if self.update == "next_batch":
            self._learn(ctx.values, ctx.finite)
            self.has_prev.copy_(self.has_prev | ctx.finite)
        else:
            self._warn_if_no_post_step()
            self.has_prev.copy_(ctx.finite)
        self.prev.copy_(torch.where(ctx.finite, ctx.values, self.prev))
        z = torch.softmax(self.logits, 0)
        d = ctx.losses - self.min_losses + self.eps
        c = (z / d.detach()).sum()
        return (z * torch.log(d) / c).sum(), (z / (c * d.detach()))

    def after_step(self, losses: Mapping[str, Tensor]) -> None:
        """Update the logits from this step's losses before (kept by ``total_loss``) and after the model step."""
        if self.update != "same_batch":
            raise ValueError(f"FAMO(update={self.update!r}) learns from the next step's losses; after_step is for "
                             "update='same_batch'")
        missing = [t for t in self.tasks or [] if t not in losses]
        if self.tasks is None or missing:
            raise ValueError(f"after_step needs a loss for every task {self.tasks}; missing {missing or 'all'}")
        after = torch.stack([losses[t].detach().reshape(()) for t in self.tasks]).to(self.logits)
        self._learn(after, torch.ones((), dtype=torch.bool, device=after.device))
        self.has_prev.fill_(False)
        self._awaiting, self._checked = False, True

    def _learn(self, after: Tensor, finite: Tensor) -> None:
        """One Adam step on the logits along ``J_softmax^T (log L_prev - log L_after)`` (masked on bad steps)."""
        delta = torch.log(self.prev - self.min_losses + self.eps) - torch.log(after - self.min_losses + self.eps)
        z = torch.softmax(self.logits, 0)
        grad = z * (delta - (z * delta).sum())
        active = self.has_prev & torch.isfinite(grad).all() & finite
        state = {"m": self.adam_m, "v": self.adam_v, "step": self.adam_step}
        self.logits.copy_(adam_step(self.logits, torch.nan_to_num(grad), state, self.lr, active,
                                    weight_decay=self.weight_decay))

    def _warn_if_no_post_step(self) -> None:
        """A hand-written loop that never calls ``after_step`` would leave the weights equal forever: say so once."""
        if self._awaiting and not self._checked:
            warnings.warn("FAMO(update='same_batch') has received no post-step losses: call "
                          "balancer.after_step({task: loss}) after optimizer.step() with the losses re-evaluated on "
                          "the same batch (update rules and the Trainer do this), or use update='next_batch'",
                          RuntimeWarning, stacklevel=4)
            self._checked = True  # warn once
        self._awaiting = True

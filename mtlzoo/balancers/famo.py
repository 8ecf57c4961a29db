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

import numpy as np
import torch
from torch import Tensor

from mtlzoo.balancers.base import LossBalancer
from mtlzoo.balancers.contract import StepContext
from mtlzoo.balancers.host import HostState, to_device
from mtlzoo.balancers.registry import register_balancer
from mtlzoo.balancers.solvers import adam_update, softmax

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

    Changed 2026-12-06: the logits' Adam step runs on the host in float64 (one device->host copy of the
    losses, one copy of the new state back; before, about 35 small device ops in float32), in
    :meth:`after_step` (``same_batch``) or in the step's own call (``next_batch``); the buffers store it
    in float32 as before. With ``same_batch``, ``prev`` / ``has_prev`` are written by :meth:`after_step`.
    """

    def __init__(self, lr: float = 0.025, weight_decay: float = 0.001, min_losses: float = 0.0,
                 eps: float = 1e-8, update: str = "same_batch", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if update not in UPDATES:
            raise ValueError(f"update must be one of {UPDATES}, got {update!r}")
        self.lr, self.weight_decay, self.min_losses, self.eps, self.update = lr, weight_decay, min_losses, eps, update
        self.needs = replace(self.needs, post_step_losses=update == "same_batch")
        self._awaiting, self._checked = False, False
        self._host = HostState(["logits", "adam_m", "adam_v", "adam_step", "prev", "has_prev"])
        self._pending: tuple[Tensor, Tensor] | None = None  # same_batch: this step's loss values and finiteness

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
            self._learn(ctx.values, ctx.finite, keep=True)
        else:
            self._warn_if_no_post_step()
            self._pending = (ctx.values, ctx.finite)
        z = torch.softmax(self.logits, 0)
        d = ctx.losses + self.eps if self.min_losses == 0 else ctx.losses - self.min_losses + self.eps
        scale = d.detach()
        k = z / (z / scale).sum()  # z / c
        return torch.dot(k, torch.log(d)), k / scale

    def after_step(self, losses: Mapping[str, Tensor]) -> None:
        """Update the logits from this step's losses before (kept by ``total_loss``) and after the model step."""
        if self.update != "same_batch":
            raise ValueError(f"FAMO(update={self.update!r}) learns from the next step's losses; after_step is for "
                             "update='same_batch'")
        missing = [t for t in self.tasks or [] if t not in losses]
        if self.tasks is None or missing:
            raise ValueError(f"after_step needs a loss for every task {self.tasks}; missing {missing or 'all'}")
        after = torch.stack([_scalar(losses[t]) for t in self.tasks])
        if self._pending is not None:
            self._learn(after, None, keep=False)
        self._pending = None
        self._awaiting, self._checked = False, True

    def _learn(self, values: Tensor, finite: Tensor | None, keep: bool) -> None:
        """One Adam step on the logits along ``J_softmax^T (log L_prev - log L_after)``, on the host (one round
        trip); nothing changes on a bad step. ``keep``: ``values`` become ``prev`` (next_batch); otherwise
        ``values`` are the losses after the step and ``prev`` is the pending step's."""
        sent = [values, finite] if keep else [values, *self._pending]
        arrays, (logits, m, v, step, prev, has_prev) = self._host.fetch(self, *sent)
        if keep:
            (after, finite_now), usable = arrays, bool(has_prev) and bool(arrays[1])
        else:
            after, pending, finite_now = arrays
            prev, has_prev, usable = pending, finite_now, bool(finite_now)
        with np.errstate(all="ignore"):
            delta = np.log(prev - self.min_losses + self.eps) - np.log(after - self.min_losses + self.eps)
            z = softmax(logits)
            grad = z * (delta - (z * delta).sum())
        logits, (m, v, step) = adam_update(logits, grad, (m, v, float(step)), self.lr,
                                           usable and bool(np.isfinite(grad).all()), weight_decay=self.weight_decay)
        if keep:  # next_batch: the step's losses are the next step's "before"
            prev = after if bool(finite_now) else prev
            has_prev = bool(has_prev) or bool(finite_now)
        else:
            has_prev = False
        state = [logits, m, v, step, prev, float(has_prev)]
        self._host.write(self, state, to_device(self.logits, *state))

    def _warn_if_no_post_step(self) -> None:
        """A hand-written loop that never calls ``after_step`` would leave the weights equal forever: say so once."""
        if self._awaiting and not self._checked:
            warnings.warn("FAMO(update='same_batch') has received no post-step losses: call "
                          "balancer.after_step({task: loss}) after optimizer.step() with the losses re-evaluated on "
                          "the same batch (update rules and the Trainer do this), or use update='next_batch'",
                          RuntimeWarning, stacklevel=4)
            self._checked = True  # warn once
        self._awaiting = True


def _scalar(loss: Tensor) -> Tensor:
    """A detached 0-dim loss (no op when it is one already)."""
    loss = loss.detach() if loss.requires_grad else loss
    return loss if loss.dim() == 0 else loss.reshape(())

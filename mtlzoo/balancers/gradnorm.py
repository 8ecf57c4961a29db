"""GradNorm (Chen et al., ICML 2018): learn loss weights that equalise training rates."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from mtlzoo.balancers.base import LossBalancer
from mtlzoo.balancers.contract import StepContext
from mtlzoo.balancers.jacobian import reachable_leaves
from mtlzoo.balancers.registry import register_balancer
from mtlzoo.registry import close_matches


def last_shared_weight(shared: list[Tensor]) -> Tensor:
    """The last shared parameter with at least two dimensions (the last shared layer's weight)."""
    for p in reversed(shared):
        if p.ndim >= 2 and p.requires_grad:
            return p
    raise ValueError("GradNorm needs a shared weight tensor (ndim >= 2) in shared_parameters(); found none")


@register_balancer("gradnorm")
class GradNorm(LossBalancer):
    """GradNorm: loss ``sum_t w_t L_t``; ``w`` descends ``sum_t |w_t ||grad_W L_t|| - mean * r_t^alpha|``.

    ``W`` is the last shared layer's weight, ``r_t = (L_t / L_t(0)) / mean_s (L_s / L_s(0))`` the
    relative inverse training rate, ``alpha = 1.5`` (the paper's NYUv2 value). The weights are
    ``nn.Parameter``s renormalised to sum to T before every step: create the balancer with
    ``tasks=`` or ``model=`` and add ``balancer.parameters()`` to the optimizer. The balance-loss
    gradient is written analytically (the target is a constant), costing one backward per task to
    ``W`` only; it travels through the same (loss-scaled) backward as the model's gradients, so a
    GradScaler unscales it like any other. ``layer`` names ``W`` (a parameter name of the model, or
    the tensor itself); by default it is the last weight (ndim >= 2) of the shared parameters that
    at least two tasks' losses reach.
    """

    def __init__(self, alpha: float = 1.5, layer: str | Tensor | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if layer is not None and not isinstance(layer, (str, Tensor)):
            raise TypeError(f"layer must be a parameter name, a tensor or None, got {type(layer).__name__}")
        self.alpha = float(alpha)
        self.layer = layer if isinstance(layer, str) else None
        # a plain list, so that a given or found model parameter is not registered as the balancer's own
        self._layer: list[Tensor] = [layer] if isinstance(layer, Tensor) else []

    def _init_state(self, num_tasks: int) -> None:
        self.loss_weights = nn.Parameter(torch.ones(num_tasks))
        self.register_buffer("initial", torch.ones(num_tasks))
        self.register_buffer("has_initial", torch.zeros((), dtype=torch.bool))

    def total_loss(self, ctx: StepContext) -> tuple[Tensor, Tensor]:
        T = len(ctx.tasks)
        if self.initial.device != ctx.values.device:
            self.to(ctx.values.device)
        layer = self._resolve_layer(ctx)
        norms = torch.stack([_grad_norm(loss, layer) for loss in ctx.task_losses])
        ctx.finite = ctx.finite & torch.isfinite(norms).all()
        with torch.no_grad():  # renormalise to sum T, unless the step is discarded (then nothing changes)
            w = self.loss_weights.clamp(min=1e-4)
            self.loss_weights.copy_(torch.where(ctx.finite, w * (T / w.sum()), self.loss_weights))
        w = self.loss_weights.detach()
        self.initial.copy_(torch.where(self.has_initial | ~ctx.finite, self.initial, ctx.values))
        self.has_initial.copy_(self.has_initial | ctx.finite)
        ratio = ctx.values / self.initial.clamp_min(1e-12)
        rate = ratio / ratio.mean().clamp_min(1e-12)
        weighted = w * norms
        target = weighted.mean() * rate.pow(self.alpha)
        grad = torch.sign(weighted - target) * norms
        # zero-valued term whose gradient with respect to loss_weights is ``grad``
        surrogate = (self.loss_weights * grad).sum()
        return (w * ctx.losses).sum() + (surrogate - surrogate.detach()), w

    def _resolve_layer(self, ctx: StepContext) -> Tensor:
        """``W``: the named or given tensor, else the last shared weight reached by two tasks (found once)."""
        if self._layer:
            return self._layer[0]
        if self.layer is not None:
            named = dict(ctx.model.named_parameters()) if ctx.model is not None else {}
            if self.layer not in named:
                near = close_matches(self.layer, list(named))
                raise ValueError(f"gradnorm layer {self.layer!r} is not a parameter of the model"
                                 + (f"; did you mean {near[0]!r}?" if near else "")
                                 + ("" if named else " (naming a layer needs a module, not a list of parameters)"))
            self._layer.append(named[self.layer])
            return self._layer[0]
        reach = [{id(p) for p in reachable_leaves(loss)} for loss in ctx.task_losses]
        needed = min(2, len(reach))
        shared = [p for p in ctx.shared if sum(id(p) in r for r in reach) >= needed]
        self._layer.append(last_shared_weight(shared))
        return self._layer[0]


def _grad_norm(loss: Tensor, layer: Tensor) -> Tensor:
    if not loss.requires_grad:
        return torch.zeros((), device=layer.device)
    (g,) = torch.autograd.grad(loss, layer, retain_graph=True, allow_unused=True)
    return g.norm() if g is not None else torch.zeros((), device=layer.device)

"""The one gradient engine: computes what a balancer declared it needs, then fills ``.grad``.

* Loss level: ``total_loss`` gives a scalar; one ordinary backward.
* Parameter level: per-task gradients on the shared parameters. Batched, with ``features`` and a
  model exposing ``task_parameters``, this is done in two stages: T backward passes through the
  heads only (to the features), then one batched (``is_grads_batched``) vector-Jacobian product
  through the encoder; without features, one batched call over the losses. Looped: one call per task.
  ``jacobian_mode="auto"`` measures both in the first steps and keeps the faster of those whose peak
  memory stays within 1.15x the plain step's (the loop is always eligible): see
  :mod:`mtlzoo.balancers.auto_jacobian` for how memory is measured (CUDA) or estimated (CPU).
* Feature level: per-task gradients w.r.t. the features through the heads only, combined, then
  one encoder backward with the combined feature gradient. A model may declare shared layers that
  sit after the features (``decoder_shared_parameters()``, e.g. a decoder where the tasks talk to
  each other): the same per-task backward also gives each task's gradient g_t on them, and they
  receive ``sum_t w_t g_t`` with the balancer's weights w (those of the feature update, whatever
  ``scale_heads`` says); task heads keep their rule (``head_weights``). At the parameter level such
  layers are ordinary shared parameters (the Jacobian is then taken over the whole model at once).

Each call says in ``BalanceInfo.backward_passes`` how many loss vectors it pulled back through the shared trunk
(T at the parameter level, looped or batched; 1 otherwise), and :func:`backward_passes` says the same before a
step; :mod:`mtlzoo.schemes.work` defines the units.

The engine itself never syncs with the host (no ``.item()``, no branch on a tensor value). A balancer's T x T
solve makes the step's one synchronisation: it copies the small inputs (Gramian, losses, ``ctx.finite``) to the
host once, solves in float64 there (``mtlzoo.balancers.host``), and copies the T weights back once, which on a
GPU costs far less than the tens to hundreds of tiny kernels the same algebra launches on the device. With a
``GradScaler`` the per-task gradients are unscaled before the balancer sees them and the result is written back
scaled.

Non-finite steps: a NaN or inf loss, Gramian, head or post-feature shared gradient sets ``ctx.finite`` (and
``BalanceInfo.finite``) to false. Balancers then leave their state unchanged (they mask with
``ctx.finite``), see an identity Gramian instead of the broken one, and every gradient the
engine writes is NaN, so that the optimizer step is skipped for every parameter: by
``scaler.step`` under a GradScaler, by ``mtlzoo.schemes.base.optimizer_step`` without one.

Under ``torch.distributed`` (initialised, world size > 1) the engine averages the loss values and the parameter-level
Jacobian (or sums the feature Gramian) so that every rank computes the same weights, and averages
every gradient it writes; do not wrap the model in DDP for gradient-level balancers (or run them
under ``no_sync``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from mtlzoo.balancers.auto_jacobian import Probe, fall_back, pick_mode
from mtlzoo.balancers.contract import BalanceInfo, StepContext
from mtlzoo.balancers.jacobian import (
    TaskJacobian,
    batched_vjp,
    cut_between,
    jacobian_and_heads,
    per_task_grads,
    reachable_leaves,
)
from mtlzoo.balancers.learnable import check_learnable, record_learnable

if TYPE_CHECKING:  # annotations only: the balancer classes import this engine
    from mtlzoo.balancers.base import Balancer, LossBalancer


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized() and \
        torch.distributed.get_world_size() > 1


def _all_reduce(tensor: Tensor, average: bool = True) -> Tensor:
    """All-reduce in place when running distributed; identity otherwise (the DDP hook)."""
    if _distributed():
        torch.distributed.all_reduce(tensor)
        if average:
            tensor.div_(torch.distributed.get_world_size())
    return tensor


def all_finite(tensors: Iterable[Tensor | None]) -> Tensor:
    """0-dim bool device tensor: every element of every tensor is finite (no host sync).

    One fused max-abs reduction per device (NaN and inf survive it; large finite values do not
    overflow, unlike a sum or a 2-norm).
    """
    by_device: dict[torch.device, list[Tensor]] = {}
    for t in tensors:
        if t is not None and t.numel():
            by_device.setdefault(t.device, []).append(t)
    flags = [torch.stack([n.float() for n in torch._foreach_norm(group, float("inf"))]).isfinite().all()
             for group in by_device.values()]
    if not flags:
        return torch.ones((), dtype=torch.bool)
    return flags[0] if len(flags) == 1 else torch.stack([f.to(flags[0].device) for f in flags]).all()


def _nan_unless(finite: Tensor) -> Tensor:
    """1.0 where the step is finite, NaN otherwise (float32): multiplying by it poisons a bad step."""
    return torch.where(finite, 1.0, float("nan")).to(torch.float32)


def split_parameters(model_or_params: nn.Module | Iterable[Tensor], tasks: Sequence[str],
                     losses: Sequence[Tensor], features: Sequence[Tensor] | None
                     ) -> tuple[list[Tensor], list[list[Tensor]], bool]:
    """Shared parameters, each task's own parameters, and whether the model declared the split.

    For a plain sequence of shared parameters, a task's own parameters are the leaves its loss
    reaches (not past ``features``) that are not shared.
    """
    if isinstance(model_or_params, nn.Module) and hasattr(model_or_params, "shared_parameters"):
        shared = [p for p in model_or_params.shared_parameters() if p.requires_grad]
        own = [[p for p in model_or_params.task_parameters(t) if p.requires_grad] for t in tasks]
        return shared, own, True
    if isinstance(model_or_params, nn.Module):
        raise TypeError(f"{type(model_or_params).__name__} has no shared_parameters(); pass a model with "
                        "shared_parameters()/task_parameters(task) or a sequence of shared parameters")
    shared = [p for p in model_or_params if p.requires_grad]
    if not shared or not all(isinstance(p, Tensor) for p in shared):
        raise TypeError("expected a non-empty sequence of shared parameters requiring grad")
    ids = {id(p) for p in shared}
    stop = tuple(features) if features is not None else ()
    own = [[p for p in reachable_leaves(loss, stop) if id(p) not in ids] for loss in losses]
    return shared, own, False


def _post_representation(model: Any, shared: Sequence[Tensor]) -> list[Tensor]:
    """The shared parameters a model declares after its representation (``decoder_shared_parameters``)."""
    declared = getattr(model, "decoder_shared_parameters", None)
    post = [p for p in declared() if p.requires_grad] if declared is not None else []
    ids = {id(p) for p in shared}
    stray = [tuple(p.shape) for p in post if id(p) not in ids]
    if stray:
        raise ValueError(f"{type(model).__name__}.decoder_shared_parameters() returned {len(stray)} parameter(s) "
                         f"(shapes {stray[:3]}) that shared_parameters() lacks; they must be a subset of it")
    return post


def _accumulate(params: Sequence[Tensor], grads: Sequence[Tensor | None], factor: Tensor | None = None) -> None:
    """Add ``grads`` (times ``factor``) into ``.grad`` as ``loss.backward`` would."""
    for p, g in zip(params, grads, strict=True):
        if g is None:
            continue
        g = g.view_as(p) if factor is None else g.view_as(p) * factor.to(g.dtype)
        if p.grad is None:
            p.grad = g.to(p.dtype)
        else:
            p.grad.add_(g.to(p.grad.dtype))


def _task_losses(balancer: Balancer, losses: Mapping[str, Tensor], tasks: list[str]) -> list[Tensor]:
    """Each task's (transformed) scalar loss, kept separate so a per-task backward never enters the
    other tasks' graphs (backpropagating through a stack would visit them with zero gradients)."""
    missing = [t for t in tasks if t not in losses]
    if missing:
        raise ValueError(f"losses are missing tasks {missing}; got {sorted(losses)}")
    out = []
    for t in tasks:
        v = losses[t]
        if not isinstance(v, Tensor) or v.numel() != 1:
            raise TypeError(f"loss of task {t!r} must be a scalar tensor, got {type(v).__name__}")
        out.append(balancer.prepare_losses(v.reshape(()).float()))
    return out


def _scale_of(scaler: Any, like: Tensor) -> Tensor | None:
    """The GradScaler's current scale as a device tensor (no sync), or None."""
    if scaler is None or not getattr(scaler, "is_enabled", lambda: True)():
        return None
    return scaler.scale(torch.ones((), dtype=torch.float32, device=like.device))


def balanced_backward(balancer: Balancer, losses: Mapping[str, Tensor],
                      model_or_params: nn.Module | Iterable[Tensor], features: Sequence[Tensor] | None = None,
                      scaler: Any = None) -> BalanceInfo:
    """Run one balanced backward for ``balancer``: see the module docstring."""
    if not isinstance(losses, Mapping) or not losses:
        raise TypeError(f"losses must be a non-empty {{task: scalar tensor}} mapping, got {type(losses).__name__}")
    check_learnable(balancer, list(losses))
    tasks = balancer.tasks
    per_task = _task_losses(balancer, losses, tasks)
    if not any(v.requires_grad for v in per_task):
        raise ValueError("none of the losses requires grad; nothing to backpropagate")
    L = torch.stack(per_task)
    # the raw losses decide finiteness (a transform such as DB-MTL's log may turn a negative loss into NaN
    # while its gradient stays finite); one all-reduce carries both under DDP
    raw = torch.stack([losses[t].detach().reshape(()).float() for t in tasks])
    values, raw = _all_reduce(torch.stack([L.detach(), raw])).unbind(0)
    finite = torch.isfinite(raw).all()
    feats = tuple(features) if features is not None else None
    if balancer.needs.features and feats is None:
        raise ValueError(f"{type(balancer).__name__} at level='features' needs the shared features: "
                         "call backward(losses, model, features=rep.features)")
    if balancer.needs.features and not getattr(model_or_params, "shared_representation", True):
        raise ValueError(f"{getattr(model_or_params, 'architecture', type(model_or_params).__name__)} has no shared "
                         "representation followed only by task layers (see its docs), so "
                         f"{type(balancer).__name__} at level='features' does not apply; use level='parameters'")
    scale = _scale_of(scaler, L)
    if isinstance(model_or_params, nn.Module) and hasattr(model_or_params, "shared_parameters") and \
            next(iter(model_or_params.shared_parameters()), None) is None:
        return _nothing_shared(tasks, per_task, model_or_params, scale, finite)
    if not (balancer.needs.gramian or balancer.needs.jacobian):  # a loss-level method
        info = _loss_level(balancer, L, per_task, values, tasks, model_or_params, scale, finite)
        return record_learnable(balancer, model_or_params, info)
    shared, own, declared = split_parameters(model_or_params, tasks, per_task, feats)
    if not shared and balancer.level == "parameters":
        raise ValueError(f"{type(balancer).__name__} balances the shared parameters, but none requires grad "
                         "(frozen encoder?); use level='features' or a loss-level balancer")
    ctx = StepContext(tasks, L, per_task, values, shared, feats, balancer.level, finite=finite,
                      model=model_or_params if isinstance(model_or_params, nn.Module) else None)
    scaled = per_task if scale is None else [v * scale for v in per_task]
    post = _post_representation(model_or_params, shared) if declared else []
    if balancer.level == "features":  # the post-feature shared layers ride along with each task's own
        own = [group + post for group in own]
        jac, head_grads = _feature_jacobian(scaled, feats, own)
    else:  # two stages through the features only when nothing shared sits after them
        two_stage = declared and not post
        jac, head_grads = _parameter_jacobian(balancer, scaled, shared, own, feats if two_stage else None)
        post = []
    info = _combine_and_write(balancer, jac, head_grads, ctx, own, scale, len(post))
    return record_learnable(balancer, model_or_params, info)


def backward_passes(balancer: Balancer, model_or_params: nn.Module | Iterable[Tensor]) -> int:
    """How many backward passes :func:`balanced_backward` makes for ``balancer`` (bound to its tasks) on this
    model, known before it runs: T when it takes per-task gradients on the shared parameters, else 1 (one
    ordinary backward; at the feature level the per-task gradients stop at the features)."""
    if isinstance(model_or_params, nn.Module) and hasattr(model_or_params, "shared_parameters") and \
            next(iter(model_or_params.shared_parameters()), None) is None:
        return 1
    per_task = (balancer.needs.gramian or balancer.needs.jacobian) and balancer.level == "parameters"
    return len(balancer.tasks) if per_task else 1


def _loss_level(balancer: LossBalancer, L: Tensor, per_task: list[Tensor], values: Tensor, tasks: list[str],
                model_or_params: Any, scale: Tensor | None, finite: Tensor) -> BalanceInfo:
    module = model_or_params if isinstance(model_or_params, nn.Module) else None
    if hasattr(model_or_params, "shared_parameters"):
        shared = list(model_or_params.shared_parameters())
    else:
        shared = list(module.parameters() if module is not None else model_or_params)
    ctx = StepContext(tasks, L, per_task, values, shared, None, "parameters", finite=finite, model=module)
    total, weights = balancer.total_loss(ctx)
    factor = _nan_unless(ctx.finite) if scale is None else _nan_unless(ctx.finite) * scale
    (total * factor).backward()
    if _distributed():
        _average_grads(model_or_params)
        _average_grads(balancer)  # learnable weights (uw, gradnorm) see each rank's losses: same step everywhere
    weights = torch.where(ctx.finite, weights.detach(), float("nan"))
    return BalanceInfo(tasks, weights, extras=ctx.extras, finite=ctx.finite, backward_passes=1)


def _nothing_shared(tasks: list[str], per_task: list[Tensor], model: nn.Module, scale: Tensor | None,
                    finite: Tensor) -> BalanceInfo:
    """A model that declares no shared parameters (single-task models): nothing to balance, so every method
    trains each task alone (one backward of the sum, the parameter groups being disjoint); weights are ones."""
    factor = _nan_unless(finite) if scale is None else _nan_unless(finite) * scale
    (torch.stack(per_task).sum() * factor).backward()
    if _distributed():
        _average_grads(model)
    weights = torch.where(finite, torch.ones(len(tasks), device=finite.device), float("nan"))
    return BalanceInfo(tasks, weights, finite=finite, backward_passes=1)


def _average_grads(model_or_params: Any) -> None:
    params = model_or_params.parameters() if isinstance(model_or_params, nn.Module) else model_or_params
    for p in params:
        if p.grad is not None:
            _all_reduce(p.grad)


def _feature_jacobian(L: list[Tensor], feats: tuple[Tensor, ...], own: list[list[Tensor]]
                      ) -> tuple[TaskJacobian, list[list[Tensor | None]]]:
    """Per-task gradients w.r.t. the features through the heads only (the encoder graph is kept)."""
    with cut_between(feats):
        (blocks, index), heads = per_task_grads(L, feats, own, retain_graph=True)
    return TaskJacobian(blocks, feats, index, len(L)), heads


def _parameter_jacobian(balancer: Balancer, L: list[Tensor], shared: list[Tensor], own: list[list[Tensor]],
                        feats: tuple[Tensor, ...] | None) -> tuple[TaskJacobian, list[list[Tensor | None]]]:
    """Per-task gradients on the shared parameters by the batched or the looped path.

    ``jacobian_mode="auto"`` chooses by memory first, then time (:mod:`mtlzoo.balancers.auto_jacobian`):
    a warm-up of each path, one measured call of each (the only host syncs, two in a run), then the faster
    of the paths whose peak memory stays within 1.15x the plain step's. A batched call that fails (an op
    without a batching rule) falls back to the loop for good.
    """
    mode, measured = pick_mode(balancer)
    probe = Probe(L, shared, own, feats) if measured else None
    if feats is not None:  # batched: heads to the features, then one batched VJP through the encoder
        def two_stage(retain: bool) -> tuple[Any, list[list[Tensor | None]]]:
            zjac, heads = _feature_jacobian(L, feats, own)
            outputs = [feats[i] for i in zjac.index]
            grad_outputs = [z.view(-1, *shape) for z, shape in zip(zjac.blocks, zjac.shapes, strict=True)]
            return batched_vjp(outputs, shared, grad_outputs, retain), heads
        # looped, a split through the features would only add T autograd calls: one call per task
        compute = {"batched": two_stage, "loop": lambda retain: jacobian_and_heads(L, shared, own, False, retain)}
    else:
        compute = {m: (lambda retain, m=m: jacobian_and_heads(L, shared, own, m == "batched", retain))
                   for m in ("batched", "loop")}
    if mode == "batched":
        try:
            # keep the graph until batching has worked once, so that the loop can still run
            (blocks, index), heads = compute["batched"](not getattr(balancer, "_batched_ok", False))
            balancer._batched_ok = True
        except RuntimeError as err:
            fall_back(balancer, err)
            mode, probe = "loop", None
    if mode == "loop":
        (blocks, index), heads = compute["loop"](False)
    if probe is not None:
        probe.finish(balancer, mode)
    return TaskJacobian(blocks, shared, index, len(L)), heads


def _diagnostics(gram: Tensor) -> tuple[Tensor, Tensor]:
    norms = gram.diagonal().clamp_min(0).sqrt()
    cosines = gram / (norms[:, None] * norms[None, :]).clamp_min(torch.finfo(gram.dtype).tiny)
    return norms, cosines


def _combine_and_write(balancer: Balancer, jac: TaskJacobian, head_grads: list[list[Tensor | None]],
                       ctx: StepContext, own: list[list[Tensor]], scale: Tensor | None,
                       num_post: int = 0) -> BalanceInfo:
    """Unscale, reduce, ask the balancer, then write shared (or feature) and head gradients; the last
    ``num_post`` entries of each ``own[t]`` are the post-feature shared parameters (feature level)."""
    if scale is not None:
        jac.mul_(1.0 / scale)
    if ctx.level == "parameters":
        for block in jac.blocks:
            _all_reduce(block)
    if _distributed():  # before the finiteness check, so that every rank takes the same decision
        head_grads = [[_all_reduce(g.clone()) if g is not None else None for g in grads_t] for grads_t in head_grads]
    gram = jac.gramian()
    if ctx.level == "features":
        _all_reduce(gram, average=False)
    finite = ctx.finite & torch.isfinite(gram).all() & all_finite(g for grads_t in head_grads for g in grads_t)
    ctx.finite = finite
    # a broken Gramian never reaches a solver (eigh / Cholesky would raise); the step is discarded anyway
    safe = torch.where(finite, gram, torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device))
    combined, weights = balancer.combine(jac, safe, ctx)
    guard = _nan_unless(finite)
    factor = guard if scale is None else guard * scale
    weights = torch.where(finite, weights, float("nan"))
    grads = jac.shaped(combined)
    passes = jac.num_tasks  # parameter level: the T rows of the Jacobian were pulled back through the trunk
    if ctx.level == "features":
        outputs = [ctx.features[i] for i in jac.index]
        passes = int(bool(outputs))  # the per-task gradients stopped at the features: one backward of the trunk
        if outputs:
            torch.autograd.backward(outputs, [(g * factor.to(g.dtype)).to(f.dtype) for g, f in zip(grads, outputs,
                                                                                                     strict=True)])
        if _distributed():
            for p in ctx.shared:
                if p.grad is not None:
                    _all_reduce(p.grad)
    else:
        _accumulate([ctx.shared[i] for i in jac.index], grads, factor)
    head_w = balancer.head_weights(weights).to(torch.float32) * guard
    post_w = weights.to(torch.float32) * guard  # post-feature shared layers: sum_t w_t g_t
    for t, (params, grads_t) in enumerate(zip(own, head_grads, strict=True)):
        k = len(params) - num_post  # own[t] = task t's parameters, then the post-feature shared ones
        _accumulate(params[:k], grads_t[:k], head_w[t])
        _accumulate(params[k:], grads_t[k:], post_w[t])
    norms, cosines = _diagnostics(gram)
    return BalanceInfo(ctx.tasks, weights.detach(), norms, cosines, ctx.extras.pop("condition_number", None),
                       ctx.extras, finite=finite, backward_passes=passes)

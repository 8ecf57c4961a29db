"""The update-rule contract: one object owns a whole training step (forwards, backwards, optimizer steps).

A trainer treats every method alike: ``rule.step(batch, epoch, epochs, scaler=, clip_grad=)``
returns a :class:`StepInfo` (with the step's forward / backward passes and updates, :mod:`mtlzoo.schemes.work`);
``rule.optimizers`` lists the optimizers it owns (for schedulers); ``rule.state_dict()`` holds their state,
the rule's RNG and anything else a resumed run needs.
Under AMP the caller runs ``step`` inside autocast and calls ``scaler.update()`` once afterwards;
a rule taking several optimizer steps updates the scaler between them itself.

A step that skipped an update (``StepInfo.skipped``: a NaN / inf loss or gradient, an fp16 overflow) also
leaves the running statistics of the norm layers as they were: every rule's ``step`` is wrapped (once, by
:class:`UpdateRule` itself) so that they are copied before its forward and put back after a skip. Otherwise
one NaN pixel would poison BatchNorm's running mean for good, and with it evaluation and every checkpoint.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from mtlzoo.balancers.engine import all_finite
from mtlzoo.registry import Registry
from mtlzoo.schemes.work import Work

OptimizerSpec = Optimizer | Callable[..., Optimizer]


@dataclass
class StepInfo:
    """What one step produced: each task's loss (detached, on the device), method-specific info, how many of its
    optimizer steps were skipped because their gradients held NaN or inf, and the work it did (required: every
    rule says what its step cost, see :mod:`mtlzoo.schemes.work`)."""

    losses: dict[str, Tensor]
    info: Any = field(default_factory=dict)
    skipped: int = 0
    work: Work = field(kw_only=True)


def norm_statistics(model: nn.Module) -> list[Tensor]:
    """The running statistics of every norm layer that keeps them (BatchNorm, SyncBatchNorm, InstanceNorm with
    ``track_running_stats``): ``running_mean``, ``running_var`` and ``num_batches_tracked``."""
    return [buffer for module in model.modules()
            if isinstance(module, nn.modules.batchnorm._NormBase) and module.track_running_stats
            for buffer in (module.running_mean, module.running_var, module.num_batches_tracked) if buffer is not None]


def _keeps_norm_statistics(step: Callable[..., StepInfo]) -> Callable[..., StepInfo]:
    """Wrap a rule's ``step``: copy the norm statistics first, put them back when the step skipped an update."""

    @functools.wraps(step)
    def guarded(self: UpdateRule, *args: Any, **kwargs: Any) -> StepInfo:
        if getattr(self, "_guarding_norm_statistics", False):  # a subclass step calling super().step()
            return step(self, *args, **kwargs)
        buffers = norm_statistics(self.model)
        saved = [buffer.clone() for buffer in buffers]
        self._guarding_norm_statistics = True
        try:
            result = step(self, *args, **kwargs)
        finally:
            self._guarding_norm_statistics = False
        if getattr(result, "skipped", 0) and buffers:
            with torch.no_grad():
                torch._foreach_copy_(buffers, saved)
        return result

    guarded.keeps_norm_statistics = True
    return guarded


class UpdateRule:
    """Base of every update rule; subclasses implement :meth:`step` and list their optimizers.

    A subclass's ``step`` is wrapped when the class is created, so that a step reporting a skipped update
    leaves the norm layers' running statistics unchanged (see the module docstring).
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        step = cls.__dict__.get("step")
        if step is not None and not getattr(step, "keeps_norm_statistics", False):
            cls.step = _keeps_norm_statistics(step)

    def __init__(self, model: nn.Module, seed: int = 0) -> None:
        self.model = model
        self.method = type(self).__name__  # the name the recipe of a run records (a registered name when built by one)
        self.optimizers: list[Optimizer] = []
        self.generator = torch.Generator().manual_seed(seed)

    def step(self, batch: Mapping[str, Any], epoch: int = 0, epochs: int = 1, scaler: Any = None,
             clip_grad: float | None = None) -> StepInfo:
        """Run one update on ``batch`` (``{"image": x, task: target, ...}``) at ``epoch`` of ``epochs``."""
        raise NotImplementedError

    def work_per_step(self) -> Work:
        """The work of one step whose updates are all taken, from the rule's structure (before training: a sweep's
        budget in backward passes becomes a number of steps with it). Every rule says it; there is no default."""
        raise NotImplementedError(f"{type(self).__name__} does not say what one step costs: implement "
                                  "work_per_step() (see mtlzoo.schemes.work)")

    def backward_per_step(self) -> int:
        """Backward passes of one step, what a budget in backward passes divides by: those of
        :meth:`work_per_step`, unless a rule's steps differ only in their updates (it then overrides this)."""
        return self.work_per_step().backward

    def epoch_end(self) -> None:
        """Called by the trainer after every epoch; rules with epoch-level state override it."""

    def state_dict(self) -> dict[str, Any]:
        """Optimizer states, the RNG state and the rule's own state."""
        return {"optimizers": [o.state_dict() for o in self.optimizers], "generator": self.generator.get_state(),
                **self._extra_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved; the rule must own as many optimizers as when saved."""
        saved = state["optimizers"]
        if len(saved) != len(self.optimizers):
            raise ValueError(f"state holds {len(saved)} optimizer(s) but this {type(self).__name__} owns "
                             f"{len(self.optimizers)}; build the rule with the same options as the saved run")
        for optimizer, optimizer_state in zip(self.optimizers, saved, strict=True):
            optimizer.load_state_dict(optimizer_state)
        self.generator.set_state(state["generator"])
        self._load_extra_state(state)

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        """Subclasses restore what :meth:`_extra_state` saved."""


UPDATE_RULES: Registry[Callable[..., UpdateRule]] = Registry("update rule")


def split_batch(batch: Mapping[str, Any]) -> tuple[Tensor, dict[str, Any]]:
    """``(images, {task: target})`` from a batch dict."""
    if "image" not in batch:
        raise ValueError(f"a batch needs an 'image' entry; got keys {sorted(batch)}")
    return batch["image"], {k: v for k, v in batch.items() if k != "image"}


def forward_tasks(model: nn.Module, x: Tensor, names: Sequence[str]) -> dict[str, Tensor]:
    """Outputs of only the heads in ``names`` after one pass through the shared trunk."""
    rep = model.encode(x)
    return {name: model.heads[name](model.head_features(rep, model.task(name)), rep.size) for name in names}


def backward(loss: Tensor, scaler: Any = None) -> None:
    """``loss.backward()``, through the AMP grad scaler when there is one."""
    (scaler.scale(loss) if scaler is not None else loss).backward()


def all_reduce_mean(tensors: Iterable[Tensor | None]) -> None:
    """Average tensors over the ranks of a torchrun job, in place (no-op in a single process)."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return
    for tensor in tensors:
        if tensor is not None:
            dist.all_reduce(tensor)
            tensor.div_(dist.get_world_size())


def optimizer_step(optimizer: Optimizer, scaler: Any = None, clip_grad: float | None = None,
                   last: bool = True, sync: bool = True) -> bool:
    """Average gradients over ranks (unless the caller already did: ``sync=False``), clip (optional), then
    step; with a scaler, update it unless this is the step's last optimizer step.

    Returns whether the step was taken. When any gradient holds NaN or inf the step is skipped for
    every parameter of the optimizer (no weight or optimizer state changes) and the gradients are
    cleared; a scaler still lowers its scale. Reading that verdict is the step's one host sync (a
    GradScaler makes the same one in ``scaler.step``).
    """
    if sync:
        all_reduce_mean(p.grad for group in optimizer.param_groups for p in group["params"])
    params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if scaler is not None:
        scaler.unscale_(optimizer)
    taken = bool(all_finite(p.grad for p in params))
    if taken:
        if clip_grad is not None:
            torch.nn.utils.clip_grad_norm_(params, clip_grad)
        scaler.step(optimizer) if scaler is not None else optimizer.step()
    else:
        optimizer.zero_grad(set_to_none=True)
    if scaler is not None and not last:
        scaler.update()
    return taken


def as_factory(optimizer: OptimizerSpec) -> Callable[..., Optimizer]:
    """A ``factory(params) -> Optimizer``; an optimizer instance serves as a template (class and defaults)."""
    if isinstance(optimizer, Optimizer):
        cls = type(optimizer)
        accepted = inspect.signature(cls.__init__).parameters
        defaults = {k: v for k, v in optimizer.defaults.items() if k in accepted}
        return lambda params: cls(params, **defaults)
    if callable(optimizer):
        return optimizer
    raise TypeError(f"optimizer must be a torch.optim.Optimizer or a factory params -> Optimizer, "
                    f"got {type(optimizer).__name__}")


def build_optimizer(factory: Callable[..., Optimizer],
                    groups: Sequence[tuple[Iterable[nn.Parameter], float]]) -> Optimizer:
    """One optimizer over parameter groups ``(params, weight_decay_scale)``; empty groups are left out."""
    kept = [(list(params), scale) for params, scale in groups]
    kept = [(params, scale) for params, scale in kept if params]
    optimizer = factory([{"params": params} for params, _ in kept])
    for group, (_, scale) in zip(optimizer.param_groups, kept, strict=True):
        if "weight_decay" in group:
            group["weight_decay"] = group["weight_decay"] * scale
    return optimizer


def task_weights(model: nn.Module, weights: Mapping[str, float] | None) -> dict[str, float]:
    """Per-task loss weights (default 1), rejecting names the model does not have."""
    weights = dict(weights or {})
    unknown = sorted(set(weights) - set(model.task_names))
    if unknown:
        raise ValueError(f"weights name unknown task(s) {unknown}; the model has tasks {model.task_names}")
    return {name: float(weights.get(name, 1.0)) for name in model.task_names}

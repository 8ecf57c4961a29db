"""What a run's checkpoints say about how they were trained: the ``training`` recipe of config.json and the card.

The recipe names the method, optimizer, learning rate and steps, what was frozen, the parent checkpoint the
weights started from (a fine-tuned model) and the input size the trainer actually fed the model, which for a
fine-tuned model can differ from the size its parent was trained at.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from mtlzoo.config import Config


def config_recipe(config: Config) -> dict[str, Any]:
    """The settings of a config that make a recipe: method, optimizer, lr, schedule, steps, batch size, seed, data."""
    recipe = {"method": config.method.name, "optimizer": config.optim.name, "lr": config.optim.lr,
              "weight_decay": config.optim.weight_decay, "schedule": config.schedule.name,
              "steps": config.train.steps, "batch_size": config.data.batch_size, "seed": config.train.seed,
              "data": config.data.name, "amp": config.train.amp}
    if config.method.kwargs:
        recipe["method_kwargs"] = dict(config.method.kwargs)
    return recipe


def parent_checkpoint(model: nn.Module) -> dict[str, Any]:
    """``parent_checkpoint`` (its pretrained name or folder) and ``parent_sha256`` of a model loaded from a
    checkpoint (``model.checkpoint_info``); empty for a model built from scratch."""
    info = getattr(model, "checkpoint_info", None) or {}
    name = info.get("pretrained") or info.get("source")
    return {"parent_checkpoint": name, "parent_sha256": info.get("sha256")} if name else {}


def frozen_parts(model: nn.Module) -> dict[str, Any]:
    """Whether the shared part was frozen and which tasks' heads were (no parameter of theirs trains)."""
    if not hasattr(model, "shared_parameters"):
        return {}

    def frozen(params: Sequence[nn.Parameter]) -> bool:
        return bool(params) and not any(p.requires_grad for p in params)

    return {"frozen_encoder": frozen(list(model.shared_parameters())),
            "frozen_tasks": [name for name in model.task_names if frozen(list(model.task_parameters(name)))]}


def _lr(rule: Any) -> float | None:
    groups = [group for optimizer in getattr(rule, "optimizers", []) for group in optimizer.param_groups]
    return float(groups[0].get("initial_lr", groups[0]["lr"])) if groups else None


def training_record(model: nn.Module, rule: Any, options: Any, batch_size: int, base: Mapping[str, Any],
                    step: int, input_size: Sequence[int] | None) -> dict[str, Any]:
    """The ``training`` entry of a checkpoint written at ``step``: what the trainer knows of its run (method,
    lr, steps, batch size, seed, frozen parts, parent, input size) under the recipe ``base`` the caller gave
    (a config's, see :func:`config_recipe`; it wins over what the trainer infers, except for the facts of
    this step)."""
    record = {"method": getattr(rule, "method", type(rule).__name__), "lr": _lr(rule), "steps": options.steps,
              "batch_size": batch_size, "seed": options.seed, "amp": options.amp, **parent_checkpoint(model)}
    record.update(base)
    record.update(frozen_parts(model))
    record.update(trained_steps=step, input_size=list(input_size) if input_size else None)
    return record

"""Optimizers from the config: a factory the update rules call for each parameter group they own."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn
from torch.optim import Optimizer

from mtlzoo.config import OptimConfig

OPTIMIZERS = ("adam", "adamw", "sgd")


def optimizer_factory(cfg: OptimConfig) -> Callable[..., Optimizer]:
    """``factory(params, weight_decay=None) -> Optimizer`` following ``cfg`` (weight decay overridable)."""
    if cfg.name not in OPTIMIZERS:
        raise ValueError(f"optim.name must be one of {OPTIMIZERS}, got {cfg.name!r}")

    def build(params: Iterable[nn.Parameter], weight_decay: float | None = None) -> Optimizer:
        decay = cfg.weight_decay if weight_decay is None else weight_decay
        if cfg.name == "sgd":
            return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=decay)
        cls = torch.optim.AdamW if cfg.name == "adamw" else torch.optim.Adam
        return cls(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=decay)

    return build

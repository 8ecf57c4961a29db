"""Learning-rate schedules over training steps (constant, poly, step, cosine) with optional linear warm-up."""

from __future__ import annotations

import math
from collections.abc import Callable

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

SCHEDULES = ("constant", "poly", "step", "cosine")


def lr_factor(name: str, total_steps: int, power: float = 0.9, step_size: int = 1000, gamma: float = 0.5,
              warmup_steps: int = 0) -> Callable[[int], float]:
    """The multiplier of the base learning rate at a given step."""
    if name not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {name!r}")

    def factor(step: int) -> float:
        warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
        progress = min(step / max(total_steps, 1), 1.0)
        if name == "poly":
            return warm * (1.0 - progress) ** power
        if name == "step":
            return warm * gamma ** (step // step_size)
        if name == "cosine":
            return warm * 0.5 * (1.0 + math.cos(math.pi * progress))
        return warm

    return factor


def build_schedulers(optimizers: list[Optimizer], name: str, total_steps: int, **options) -> list[LambdaLR]:
    """One LambdaLR per optimizer, all following the same schedule."""
    factor = lr_factor(name, total_steps, **options)
    return [LambdaLR(optimizer, factor) for optimizer in optimizers]

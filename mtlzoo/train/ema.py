"""Exponential moving average of a model's weights (and a copy of its buffers)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class ModelEMA:
    """Keeps ``ema = decay * ema + (1 - decay) * weights`` after every step; evaluate with ``.module``."""

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must lie in (0, 1), got {decay}")
        self.decay = decay
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Blend the current weights in; buffers (BN statistics) are copied."""
        ema_state = self.module.state_dict()
        for name, value in model.state_dict().items():
            target = ema_state[name]
            if value.dtype.is_floating_point and name in dict(self.module.named_parameters()):
                target.lerp_(value.detach(), 1.0 - self.decay)
            else:
                target.copy_(value)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "weights": self.module.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.decay = state["decay"]
        self.module.load_state_dict(state["weights"])

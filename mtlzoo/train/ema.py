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
        """Blend the current floating-point parameters in (one fused ``_foreach_lerp_``), copy the rest and the
        buffers (BN statistics). Linear in the number of tensors; a tied parameter is blended once."""
        blend, copy_ = [], []
        for ema_value, value in zip(self.module.parameters(), model.parameters(), strict=True):
            (blend if ema_value.dtype.is_floating_point else copy_).append((ema_value, value.detach()))
        copy_ += zip(self.module.buffers(), model.buffers(), strict=True)
        if blend:
            torch._foreach_lerp_([e for e, _ in blend], [v for _, v in blend], 1.0 - self.decay)
        if copy_:
            torch._foreach_copy_([e for e, _ in copy_], [v for _, v in copy_])

    def state_dict(self) -> dict:
        return {"decay": self.decay, "weights": self.module.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.decay = state["decay"]
        self.module.load_state_dict(state["weights"])

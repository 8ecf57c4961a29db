"""Non-finite steps in a run: count and report skipped updates, stop a diverged run, never save NaN weights.

The update rules skip an optimizer step whose gradients hold NaN or inf (``StepInfo.skipped``);
this module turns those skips into warnings, run-log records and, after ``train.max_bad_steps``
consecutive ones, an error, and refuses to write a checkpoint whose weights are not finite.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn


class BadStepGuard:
    """Counts skipped steps (in a row and in total) and raises once ``limit`` consecutive steps were skipped."""

    def __init__(self, limit: int) -> None:
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ValueError(f"train.max_bad_steps must be an integer >= 1, got {limit!r}")
        self.limit = limit
        self.in_a_row = 0
        self.total = 0

    def record(self, result: Any, step: int, log: Any = None, scaler: Any = None) -> None:
        """Account for the result of training step ``step`` (1-based); warn, log or raise on a skip."""
        skipped = int(getattr(result, "skipped", 0) or 0)
        if not skipped:
            self.in_a_row = 0
            return
        self.in_a_row += 1
        self.total += 1
        losses = {name: float(value) for name, value in getattr(result, "losses", {}).items()}
        finite_losses = all(torch.isfinite(torch.tensor(list(losses.values()) or [0.0])))
        overflow = scaler is not None and finite_losses  # an fp16 loss-scale overflow, GradScaler's normal business
        if log is not None:
            log.write("skipped_step", step, in_a_row=self.in_a_row, total=self.total, losses=losses,
                      cause="fp16 loss-scale overflow" if overflow else "non-finite loss or gradient")
        if self.in_a_row >= self.limit:
            raise RuntimeError(f"step {step}: {self.in_a_row} consecutive steps had non-finite losses or gradients "
                               f"and were skipped (train.max_bad_steps={self.limit}); the weights are those of step "
                               f"{step - self.in_a_row}. Last losses: {losses}. Lower the learning rate, set "
                               "train.clip_grad, or check the data for NaN / inf")
        if not overflow:
            warnings.warn(f"step {step}: a loss or gradient is NaN or inf ({losses}); the update was skipped "
                          f"({self.in_a_row} in a row, the run stops at train.max_bad_steps={self.limit})",
                          RuntimeWarning, stacklevel=3)


def check_finite_weights(model: nn.Module, step: int) -> None:
    """Raise instead of letting a checkpoint with NaN or inf weights (or buffers) be written."""
    bad = [name for name, value in model.state_dict().items()
           if torch.is_tensor(value) and value.is_floating_point() and not bool(torch.isfinite(value).all())]
    if bad:
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise RuntimeError(f"step {step}: refusing to write a checkpoint, the model holds NaN or inf in "
                           f"{', '.join(bad[:3])}{more}; the last good checkpoint is kept")

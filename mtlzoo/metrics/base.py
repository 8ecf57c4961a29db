"""The streaming-meter contract shared by every per-task meter."""

from __future__ import annotations

import torch
from torch import Tensor


class Meter:
    """Accumulates one task's statistics over a test set; ``compute`` turns them into ``{metric: float}``.

    ``update(pred, target)`` takes the postprocessed prediction (``task.postprocess(output)``) and the
    target of one batch. Statistics live on the tensors' device and are only read back in ``compute``,
    so a meter never forces a host sync per batch (the optional edge odsF is the one documented exception).
    """

    kind: str = ""

    def reset(self) -> None:
        """Forget everything accumulated so far."""
        raise NotImplementedError

    def update(self, pred: Tensor, target: Tensor) -> None:
        """Add one batch of postprocessed predictions and targets."""
        raise NotImplementedError

    def compute(self) -> dict[str, float]:
        """The metrics of everything seen since the last reset."""
        raise NotImplementedError


def accumulate(total: Tensor | None, value: Tensor) -> Tensor:
    """Add ``value`` to a running total created lazily on ``value``'s device."""
    return value.clone() if total is None else total + value


def safe_div(num: Tensor, den: Tensor, empty: float = 0.0) -> Tensor:
    """``num / den`` elementwise, with ``empty`` where ``den`` is 0 (no host sync)."""
    den_ok = den != 0
    return torch.where(den_ok, num / torch.where(den_ok, den, torch.ones_like(den)), torch.full_like(num, empty))


def counts_by_index(index: Tensor, size: int, weights: Tensor | None = None) -> Tensor:
    """Histogram of ``index`` (values in [0, size)) as float64, without a host sync on CUDA.

    ``torch.bincount`` reads the maximum back to the host on CUDA, so there we scatter-add instead.
    """
    index = index.reshape(-1)
    if index.device.type == "cpu":
        w = None if weights is None else weights.reshape(-1).double()
        return torch.bincount(index, weights=w, minlength=size)[:size].double()
    out = torch.zeros(size, dtype=torch.float64, device=index.device)
    src = torch.ones_like(index, dtype=torch.float64) if weights is None else weights.reshape(-1).double()
    return out.index_add_(0, index, src)


def check_same_numel(kind: str, pred: Tensor, target: Tensor) -> None:
    """Raise a ValueError naming both shapes when a prediction does not match its target."""
    if pred.numel() != target.numel():
        raise ValueError(
            f"{kind} meter: prediction of shape {tuple(pred.shape)} does not match target of shape "
            f"{tuple(target.shape)}; pass task.postprocess(output) at the target's resolution"
        )

"""The streaming-meter contract shared by every per-task meter."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from mtlzoo.tasks import Task


class Meter:
    """Accumulates one task's statistics over a test set; ``compute`` turns them into ``{metric: float}``.

    ``update(pred, target)`` takes the postprocessed prediction (``task.postprocess(output)``) and the
    target of one batch. Statistics live on the tensors' device and are only read back in ``compute``,
    so a meter never forces a host sync per batch (the optional edge odsF is the one documented exception).
    """

    kind: str = ""

    @classmethod
    def for_task(cls, task: Task, **options: Any) -> Meter:
        """The meter of ``task`` with a protocol's ``options``; meters that read the task (classes, ignore
        index) override this. A TaskKind names it as its meter factory."""
        return cls(**options)

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
    """Histogram of ``index`` (values in [0, size)), without a host sync on CUDA.

    On CPU this is ``torch.bincount`` (int64 counts, float64 with weights); on CUDA, where bincount reads
    the maximum back to the host, a float64 scatter-add. Call ``.double()`` on sums of these.
    """
    index = index.reshape(-1)
    if index.device.type == "cpu":
        w = None if weights is None else weights.reshape(-1).double()
        return torch.bincount(index, weights=w, minlength=size)[:size]
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


CPU_CHUNK = 1 << 18  # elements per chunk on CPU: temporaries stay cache-sized instead of fresh page-faulted buffers


def chunked_sum(fn: Callable[..., Tensor | tuple[Tensor, ...]], *tensors: Tensor) -> Tensor | tuple[Tensor, ...]:
    """``fn`` over matching pixel chunks of (B, [C,] ...) tensors, results summed (tuples elementwise).

    Each tensor is viewed as (B, C, N) and cut along N so a chunk holds about ``CPU_CHUNK`` elements; on
    CPU this keeps temporaries in cache and is 2x faster than one pass over a 480x640 batch. On other
    devices ``fn`` runs once on the whole batch (no extra kernel launches).
    """
    b = tensors[0].shape[0]
    views = [t.reshape(b, -1, tensors[0][0].numel() // max(_channels(tensors[0]), 1)) for t in tensors]
    length = views[0].shape[-1]
    step = max(1, CPU_CHUNK // max(v.shape[0] * v.shape[1] for v in views))
    if tensors[0].device.type != "cpu" or step >= length:
        return fn(*views)
    total = None
    for start in range(0, length, step):
        part = fn(*(v[..., start:start + step] for v in views))
        total = part if total is None else (
            tuple(a + p for a, p in zip(total, part, strict=True)) if isinstance(part, tuple) else total + part)
    return total


def _channels(t: Tensor) -> int:
    """Channels of a (B, C, H, W) tensor; 1 for (B, H, W) or flat (B, N) tensors."""
    return t.shape[1] if t.dim() == 4 else 1

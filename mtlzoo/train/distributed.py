"""torchrun integration: set up the process group from the environment, and rank-aware helpers."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from mtlzoo.config import TrainConfig


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


DEFAULT_TIMEOUT_S = TrainConfig.dist_timeout  # how long a collective waits for the other ranks


class DistTimeoutError(RuntimeError):
    """A collective operation waited longer than the process-group timeout: another rank stopped responding."""


def init_distributed(device: torch.device, timeout_s: float = DEFAULT_TIMEOUT_S) -> DistInfo:
    """Join the torchrun job described by the environment (gloo on CPU, NCCL on GPU), if any.

    ``timeout_s`` bounds every collective (and the rendezvous): a rank that stops responding makes the
    others fail after that long instead of waiting for ever (see :func:`explain_timeouts`).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo",
                                timeout=timedelta(seconds=timeout_s))
    return info


@contextlib.contextmanager
def explain_timeouts(timeout_s: float = DEFAULT_TIMEOUT_S) -> Iterator[None]:
    """Turn a collective's timeout error into a :class:`DistTimeoutError` that says what happened and what to do."""
    try:
        yield
    except RuntimeError as error:
        if not (dist.is_available() and dist.is_initialized()) or not _is_timeout(error):
            raise
        raise DistTimeoutError(f"rank {dist.get_rank()} of {dist.get_world_size()}: waited more than {timeout_s:g} s "
                               "(train.dist_timeout) for the other ranks; one stopped responding (crashed, hung or "
                               "far slower). Restart the job with --resume from the last checkpoint, or raise "
                               "train.dist_timeout if a rank is only slow") from error


def _is_timeout(error: RuntimeError) -> bool:
    text = str(error).lower()  # gloo: "Timed out waiting 2000ms ..."; NCCL watchdog: "... collective operation timeout"
    return "timed out" in text or "timeout" in text or "timing out" in text


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` means this rank's GPU when there is one, else the CPU."""
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for but no CUDA GPU is visible; use 'cpu' or 'auto'")
    return device


def barrier() -> None:
    """Wait for every rank (no-op outside a distributed job)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()

"""A shuffling sampler whose order is a pure function of (seed, epoch), sharded by rank, resumable mid-epoch."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class ResumableSampler(Sampler[int]):
    """Like ``DistributedSampler`` (pads to a multiple of the world size, rank r takes every r-th index),
    plus ``skip``: the number of this rank's indices of the current epoch already consumed, so a
    resumed run sees exactly the batches an uninterrupted one would."""

    def __init__(self, length: int, seed: int = 0, shuffle: bool = True, rank: int = 0, world_size: int = 1) -> None:
        if length < 1:
            raise ValueError("cannot sample from an empty data set")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must lie in [0, {world_size}), got {rank}")
        self.length, self.seed, self.shuffle = length, seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.per_rank = math.ceil(length / world_size)
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Select the epoch's order and how many of its indices to skip (for resuming)."""
        self.epoch, self.skip = epoch, skip

    def _order(self) -> list[int]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.length, generator=generator).tolist()
        else:
            order = list(range(self.length))
        padded = order + order[: self.per_rank * self.world_size - self.length]
        return padded[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self._order()[self.skip :])

    def __len__(self) -> int:
        return self.per_rank - self.skip

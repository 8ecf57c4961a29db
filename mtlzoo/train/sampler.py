"""A shuffling sampler whose order is a pure function of (seed, epoch), sharded by rank, resumable mid-epoch;
and a data set wrapper that seeds every sample's randomness (augmentation) from (seed, epoch, index), unless the
data set declares that its items draw none (``draws_randomness = False``)."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler, get_worker_info


class ResumableSampler(Sampler[int]):
    """Like ``DistributedSampler`` (pads to a multiple of the world size, rank r takes every r-th index),
    plus ``skip``: the number of this rank's indices of the current epoch already consumed, so a
    resumed run sees exactly the batches an uninterrupted one would. ``with_epoch`` yields ``(epoch, index)``
    pairs, the keys :class:`EpochSeeded` takes."""

    def __init__(self, length: int, seed: int = 0, shuffle: bool = True, rank: int = 0, world_size: int = 1,
                 with_epoch: bool = False) -> None:
        if length < 1:
            raise ValueError("cannot sample from an empty data set")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must lie in [0, {world_size}), got {rank}")
        self.length, self.seed, self.shuffle = length, seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.per_rank = math.ceil(length / world_size)
        self.epoch, self.skip = 0, 0
        self.with_epoch = with_epoch

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

    def __iter__(self) -> Iterator[Any]:
        order = self._order()[self.skip :]
        return iter([(self.epoch, i) for i in order] if self.with_epoch else order)

    def __len__(self) -> int:
        return self.per_rank - self.skip


class EpochSeeded(Dataset):
    """Wraps a data set: item ``(epoch, index)`` is ``dataset[index]`` drawn with the global torch, NumPy and
    Python RNGs seeded from (seed, epoch, index) and restored afterwards.

    Random augmentation then depends on the sample only, not on which DataLoader worker made it or on
    what that worker made before, so a resumed run (any ``num_workers``) sees exactly the same samples.

    A data set whose ``draws_randomness`` attribute is False (see :func:`draws_randomness`) is read as it is:
    with nothing random to seed, saving, seeding and restoring the three generators (about 100 us a sample,
    NumPy's state copy most of it) would cost more than a small vector model's training step.
    """

    def __init__(self, dataset: Dataset, seed: int = 0) -> None:
        self.dataset, self.seed = dataset, int(seed)
        self.seeded = draws_randomness(dataset)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        if not self.seeded:
            return self.dataset[index]
        seed = _mix(self.seed, epoch, index)
        # in a worker nothing else draws from these generators; in the main process they are put back
        saved = None if get_worker_info() is not None else (torch.get_rng_state(), np.random.get_state(),
                                                             random.getstate())
        torch.default_generator.manual_seed(seed)  # CPU only: torch.manual_seed also seeds every GPU (slow)
        np.random.seed(seed % 2**32)
        random.seed(seed)
        try:
            return self.dataset[index]
        finally:
            if saved is not None:
                torch.set_rng_state(saved[0])
                np.random.set_state(saved[1])
                random.setstate(saved[2])


def draws_randomness(dataset: Dataset) -> bool:
    """Whether reading ``dataset``'s items may draw from the global torch, NumPy or Python RNGs: its
    ``draws_randomness`` attribute (class or instance), True when it has none, so only a data set that declares
    itself free of randomness goes unseeded."""
    return bool(getattr(dataset, "draws_randomness", True))


def _mix(*values: int) -> int:
    """A well-spread 63-bit seed from a few integers (SplitMix64 finaliser over each, chained)."""
    state = 0x9E3779B97F4A7C15
    for value in values:
        state = (state ^ (int(value) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        state = (state ^ (state >> 31)) * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
        state ^= state >> 29
    return state >> 1

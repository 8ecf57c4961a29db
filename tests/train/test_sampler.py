import random

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from mtlzoo.train.sampler import EpochSeeded, ResumableSampler, draws_randomness


class _Draws(Dataset):
    """Items drawn from the global torch, NumPy and Python RNGs (as random augmentation would)."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> dict:
        return {"index": index, "torch": torch.rand(2), "numpy": np.random.rand(), "python": random.random()}


class _Fixed(_Draws):
    """Items that draw nothing, and say so."""

    draws_randomness = False

    def __getitem__(self, index: int) -> dict:
        return {"index": index, "x": torch.arange(3.0) + index}


def _global_states() -> tuple:
    return torch.get_rng_state(), np.random.get_state(), random.getstate()


def _same_states(a: tuple, b: tuple) -> bool:
    numpy_same = a[1][0] == b[1][0] and all(np.array_equal(x, y) for x, y in zip(a[1][1:], b[1][1:], strict=True))
    return torch.equal(a[0], b[0]) and numpy_same and a[2] == b[2]


def test_order_is_a_function_of_seed_and_epoch():
    a, b = ResumableSampler(10, seed=1), ResumableSampler(10, seed=1)
    a.set_epoch(3)
    b.set_epoch(3)
    assert list(a) == list(b) and sorted(a) == list(range(10))
    b.set_epoch(4)
    assert list(a) != list(b)


def test_skip_resumes_mid_epoch():
    sampler = ResumableSampler(12, seed=0)
    sampler.set_epoch(2)
    full = list(sampler)
    sampler.set_epoch(2, skip=5)
    assert list(sampler) == full[5:] and len(sampler) == 7


def test_ranks_partition_the_padded_epoch():
    shards = []
    for rank in range(3):
        sampler = ResumableSampler(10, seed=0, rank=rank, world_size=3)
        sampler.set_epoch(0)
        shards.append(list(sampler))
    assert all(len(s) == 4 for s in shards)
    assert set(sum(shards, [])) == set(range(10))


def test_bad_arguments():
    with pytest.raises(ValueError, match="empty"):
        ResumableSampler(0)
    with pytest.raises(ValueError, match="rank"):
        ResumableSampler(5, rank=2, world_size=2)


def test_with_epoch_tags_each_index_with_its_epoch():
    plain, tagged = ResumableSampler(10, seed=4), ResumableSampler(10, seed=4, with_epoch=True)
    for sampler in (plain, tagged):
        sampler.set_epoch(3, skip=2)
    assert list(tagged) == [(3, i) for i in plain] and len(tagged) == len(plain) == 8


def test_by_default_each_item_is_seeded_from_seed_epoch_and_index_and_the_rngs_are_put_back():
    data = EpochSeeded(_Draws(), seed=3)
    assert data.seeded and draws_randomness(_Draws())
    before = _global_states()
    first, again, other = data[(1, 2)], data[(1, 2)], data[(2, 2)]
    assert _same_states(before, _global_states())
    assert torch.equal(first["torch"], again["torch"]) and first["numpy"] == again["numpy"]
    assert first["python"] == again["python"] and not torch.equal(first["torch"], other["torch"])


def test_a_data_set_that_draws_no_randomness_is_read_as_it_is_without_touching_the_rngs(monkeypatch):
    data = EpochSeeded(_Fixed(), seed=3)
    assert not data.seeded and not draws_randomness(_Fixed())

    def touched(*args):
        raise AssertionError("the global RNG states were read or set")

    for module, name in ((torch, "get_rng_state"), (torch, "set_rng_state"), (np.random, "get_state"),
                         (np.random, "set_state"), (np.random, "seed"), (random, "getstate"), (random, "setstate"),
                         (random, "seed")):
        monkeypatch.setattr(module, name, touched)
    for key in ((0, 1), (5, 3), (2, 0)):
        item = data[key]
        assert item["index"] == key[1] and torch.equal(item["x"], _Fixed()[key[1]]["x"])


def test_the_declaration_is_what_is_trusted():
    """A data set that says it draws nothing but does is not seeded: its items follow the global streams."""
    class Liar(_Draws):
        draws_randomness = False

    data = EpochSeeded(Liar(), seed=3)
    torch.manual_seed(0)
    first = data[(0, 1)]["torch"]
    torch.manual_seed(0)
    assert torch.equal(data[(7, 2)]["torch"], first)  # same global stream, whatever the key
    instance = _Draws()
    instance.draws_randomness = False  # an instance attribute counts too
    assert not draws_randomness(instance)

import pytest

from mtlzoo.train.sampler import ResumableSampler


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

"""Random augmentation is a function of (seed, epoch, index): resuming with DataLoader workers is exact."""

import pytest
import torch
from torch.utils.data import DataLoader

import mtlzoo
from mtlzoo.config import TrainConfig
from mtlzoo.data import SynthScenes
from mtlzoo.data.transforms import Compose, RandomHorizontalFlip, RandomScaleCrop
from mtlzoo.schemes import create_update_rule
from mtlzoo.train import Trainer, seed_everything
from mtlzoo.train.sampler import EpochSeeded, ResumableSampler

TASKS = [{"name": "semseg", "kind": "segmentation", "channels": 13}, {"name": "depth", "kind": "depth"}]


def _augmented():
    augment = Compose([RandomScaleCrop((1.0, 1.5)), RandomHorizontalFlip()])
    return SynthScenes("train", size=(24, 32), length=12, tasks=["semseg", "depth"], transform=augment)


def _trainer(out, workers):
    seed_everything(0)
    model = mtlzoo.create_model("hps_tiny", tasks=TASKS)
    rule = create_update_rule("ew", model, lambda params: torch.optim.Adam(params, lr=3e-3))
    options = TrainConfig(steps=9, eval_every=100, log_every=100, out_dir=str(out), device="cpu", progress=False)
    return Trainer(model, rule, _augmented(), options=options, batch_size=4, num_workers=workers)


def test_a_sample_depends_on_seed_epoch_and_index_only():
    data = EpochSeeded(_augmented(), seed=3)
    torch.manual_seed(1)
    first = data[(2, 5)]
    torch.manual_seed(2)
    torch.rand(7)
    again = data[(2, 5)]
    assert all(torch.equal(first[k], again[k]) for k in first)
    epochs = [data[(epoch, 5)]["image"] for epoch in range(6)]  # other epochs draw other crops and flips
    assert any(not torch.equal(epochs[2], image) for image in epochs)
    state = torch.get_rng_state()
    data[(0, 0)]
    assert torch.equal(state, torch.get_rng_state())  # the global stream is left as it was


def test_workers_make_the_same_samples_as_the_main_process():
    data, sampler = EpochSeeded(_augmented(), seed=0), ResumableSampler(12, with_epoch=True)
    sampler.set_epoch(1)
    in_workers = [b["image"] for b in DataLoader(data, batch_size=4, sampler=sampler, num_workers=2)]
    in_main = [b["image"] for b in DataLoader(data, batch_size=4, sampler=sampler, num_workers=0)]
    assert all(torch.equal(a, b) for a, b in zip(in_workers, in_main, strict=True))


@pytest.mark.slow
def test_resume_with_two_workers_and_augmentation_is_exact(tmp_path):
    full = _trainer(tmp_path / "full", workers=2)
    full.fit()
    _trainer(tmp_path / "part", workers=2).fit(stop_at=4)  # mid-epoch (3 steps per epoch)
    resumed = _trainer(tmp_path / "part", workers=2)
    resumed.fit(resume=True)
    for name, value in full.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], value), name

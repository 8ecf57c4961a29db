"""Checkpoints carry the CUDA generators' states when CUDA is there, and load without them when it is not."""

import torch

from mtlzoo.train.checkpoints import latest


class _FakeCuda:
    """Two GPUs' RNG states, recorded when restored."""

    def __init__(self, monkeypatch, states):
        self.states, self.restored = states, {}
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: len(states))
        monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [s.clone() for s in self.states])
        monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device: self.restored.update({device: state}))


def test_cuda_rng_states_round_trip_through_a_checkpoint(tmp_path, toy_data, make_trainer, monkeypatch):
    trainer = make_trainer(tmp_path / "run", toy_data, steps=3, eval_every=100)
    trainer.fit()
    states = [torch.arange(16, dtype=torch.uint8), torch.arange(16, 32, dtype=torch.uint8)]
    cuda = _FakeCuda(monkeypatch, states)
    trainer.step = 4
    trainer.save_checkpoint()
    make_trainer(tmp_path / "run", toy_data, steps=6).load_checkpoint(latest(tmp_path / "run"))
    assert sorted(cuda.restored) == [0, 1]
    assert all(torch.equal(cuda.restored[i], states[i]) for i in (0, 1))


def test_a_cpu_checkpoint_loads_with_or_without_cuda(tmp_path, toy_data, make_trainer, monkeypatch):
    trainer = make_trainer(tmp_path / "run", toy_data, steps=3, eval_every=100)
    trainer.fit()
    assert trainer.state()["rng"]["cuda"] is None
    cuda = _FakeCuda(monkeypatch, [torch.zeros(16, dtype=torch.uint8)])
    make_trainer(tmp_path / "run", toy_data, steps=6).load_checkpoint(latest(tmp_path / "run"))
    assert cuda.restored == {}  # nothing saved, nothing restored

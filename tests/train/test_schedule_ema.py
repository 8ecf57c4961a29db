import pytest
import torch

from mtlzoo.train.ema import ModelEMA
from mtlzoo.train.schedule import build_schedulers, lr_factor


def test_schedules_start_at_one_and_end_where_they_should():
    assert lr_factor("constant", 100)(99) == 1.0
    assert lr_factor("poly", 100)(0) == 1.0 and lr_factor("poly", 100)(100) == 0.0
    assert lr_factor("cosine", 100)(50) == pytest.approx(0.5)
    assert lr_factor("step", 100, step_size=10, gamma=0.5)(25) == 0.25
    assert lr_factor("constant", 100, warmup_steps=4)(1) == 0.5
    with pytest.raises(ValueError, match="poly"):
        lr_factor("linear", 10)


def test_build_schedulers_drives_every_optimizer():
    params = [torch.nn.Parameter(torch.zeros(1))]
    optimizers = [torch.optim.SGD(params, lr=1.0), torch.optim.SGD(params, lr=2.0)]
    schedulers = build_schedulers(optimizers, "step", 10, step_size=1, gamma=0.5)
    for s in schedulers:
        s.step()
    assert [o.param_groups[0]["lr"] for o in optimizers] == [0.5, 1.0]


def test_ema_blends_parameters_and_copies_buffers():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    ema = ModelEMA(model, decay=0.5)
    before = ema.module[0].weight.clone()
    with torch.no_grad():
        model[0].weight.add_(2.0)
        model[1].running_mean.fill_(3.0)
    ema.update(model)
    assert torch.allclose(ema.module[0].weight, before + 1.0)
    assert torch.equal(ema.module[1].running_mean, torch.full((2,), 3.0))
    state = ema.state_dict()
    other = ModelEMA(model, decay=0.9)
    other.load_state_dict(state)
    assert other.decay == 0.5 and torch.equal(other.module[0].weight, ema.module[0].weight)
    with pytest.raises(ValueError, match="decay"):
        ModelEMA(model, decay=1.5)

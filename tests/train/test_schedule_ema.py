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


class _Tied(torch.nn.Module):
    """Two layers sharing one weight (as a tied embedding / classifier), plus a BN buffer."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(3, 3)
        self.b = torch.nn.Linear(3, 3)
        self.b.weight = self.a.weight
        self.norm = torch.nn.BatchNorm1d(3)


def test_ema_equals_the_per_tensor_formula_with_tied_weights():
    torch.manual_seed(0)
    model = _Tied()
    ema = ModelEMA(model, decay=0.75)
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    for _ in range(3):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
            model.norm.running_var.mul_(2.0)
        ema.update(model)
        for name, value in model.state_dict().items():  # ema = d * ema + (1 - d) * w; buffers copied
            blended = 0.75 * expected[name] + 0.25 * value
            expected[name] = blended if value.is_floating_point() and "running" not in name else value.clone()
    for name, value in ema.module.state_dict().items():
        assert torch.allclose(value, expected[name].to(value.dtype), atol=1e-6), name


def test_ema_update_walks_the_tensors_once(monkeypatch):
    model = torch.nn.Sequential(*[torch.nn.Linear(2, 2) for _ in range(20)])
    ema = ModelEMA(model, decay=0.9)
    calls = []
    for module in (model, ema.module):
        for name in ("named_parameters", "state_dict"):
            original = getattr(module, name)
            monkeypatch.setattr(module, name, lambda *a, _o=original, **k: calls.append(1) or _o(*a, **k))
    ema.update(model)
    assert len(calls) <= 4  # not once per tensor (quadratic in the number of tensors)

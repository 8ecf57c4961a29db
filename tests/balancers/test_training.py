"""Every balancer trains a tiny model without NaN; the Pareto-claiming ones reach Pareto stationarity."""

from __future__ import annotations

import pytest
import torch
from balancer_toys import (
    ToyModel,
    one_thread,  # noqa: F401  (autouse fixture)
    toy_batch,
)

from mtlzoo.balancers import create_balancer, list_balancers
from mtlzoo.balancers.solvers import min_norm_simplex

GRADIENT_LEVEL = ["mgda", "pcgrad", "graddrop", "gradvac", "imtl", "cagrad", "nash_mtl", "aligned_mtl", "upgrad",
                  "db_mtl", "pomsi"]


def _losses(model, x, y):
    if hasattr(model, "task_names"):
        rep = model.encode(x)
        return model.losses(model.decode(rep), y), rep.features
    return model.losses(x, y)


def _train(name, model, batch_fn, steps, **kw):
    balancer = create_balancer(name, **kw).bind(model.task_names if hasattr(model, "task_names") else ["a", "b", "c"])
    opt = torch.optim.Adam(list(model.parameters()) + list(balancer.parameters()), lr=1e-3)
    for step in range(steps):
        x, y = batch_fn(step)
        opt.zero_grad(set_to_none=True)
        losses, feats = _losses(model, x, y)
        info = balancer.backward(losses, model, features=feats)
        opt.step()
        if balancer.needs.post_step_losses:  # FAMO's reference update: the same batch after the step
            with torch.no_grad():
                balancer.after_step(_losses(model, x, y)[0])
        if name == "dwa" and step % 10 == 9:
            balancer.epoch_end()
    return losses, info


@pytest.mark.parametrize("name", list_balancers())
def test_toy_model_trains_without_nan(name):
    model = ToyModel()
    losses, info = _train(name, model, lambda s: toy_batch(seed=s), 60)
    assert all(torch.isfinite(v) for v in losses.values())
    assert torch.isfinite(info.weights).all()
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("name", GRADIENT_LEVEL)
def test_toy_model_trains_at_feature_level(name):
    model = ToyModel()
    losses, info = _train(name, model, lambda s: toy_batch(seed=s), 30, level="features")
    assert all(torch.isfinite(v) for v in losses.values()) and torch.isfinite(info.weights).all()


def _nyud_batch(step: int, size: int = 32):
    g = torch.Generator().manual_seed(step)
    x = torch.randn(2, 3, size, size, generator=g)
    y = {"semseg": torch.randint(0, 40, (2, size, size), generator=g),
         "depth": torch.rand(2, 1, size, size, generator=g) + 0.5,
         "normals": torch.nn.functional.normalize(torch.randn(2, 3, size, size, generator=g), dim=1),
         "edge": (torch.rand(2, 1, size, size, generator=g) > 0.8).float()}
    return x, y


@pytest.mark.slow
@pytest.mark.parametrize("name", list_balancers())
def test_hps_tiny_trains_without_nan(name):
    """100 steps of ``hps_tiny`` on NYUD-shaped random data (32x32, batch 2)."""
    mtlzoo = pytest.importorskip("mtlzoo")
    model = mtlzoo.create_model("hps_tiny", tasks="nyud")
    losses, info = _train(name, model, _nyud_batch, 100)
    assert all(torch.isfinite(v) for v in losses.values()) and torch.isfinite(info.weights).all()
    assert all(torch.isfinite(p).all() for p in model.parameters())


def _toy_objectives(x):
    """Two anisotropic quadratics with different minima: a smooth stand-in for the CAGrad/Nash-MTL toy."""
    a = torch.tensor([1.0, -1.0], dtype=x.dtype)
    b = torch.tensor([-1.0, 1.0], dtype=x.dtype)
    f1 = ((x - a) ** 2 * torch.tensor([1.0, 2.0], dtype=x.dtype)).sum()
    f2 = 0.3 * ((x - b) ** 2 * torch.tensor([2.0, 1.0], dtype=x.dtype)).sum()
    return {"f1": f1, "f2": f2}


@pytest.mark.parametrize("name", ["mgda", "cagrad", "nash_mtl", "upgrad", "imtl", "aligned_mtl"])
@pytest.mark.parametrize("start", [(3.0, 3.0), (-3.0, -2.0)])
def test_two_objective_toy_reaches_pareto_set(name, start):
    """SGD (lr 0.1, decaying as 1 / (1 + k / 50)) ends Pareto-stationary: the min-norm point of the task
    gradients is ~0 (initial gradient norms are 5-10).

    Aligned-MTL is started only where the gradients conflict: from cooperative starts its "min" scale
    shrinks the step to the smaller singular value and it stalls (the step collapse of methods.md 4.1).
    """
    x = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    balancer = create_balancer(name)
    opt = torch.optim.SGD([x], lr=0.1)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1 / (1 + k / 50))
    for _ in range(200):
        opt.zero_grad()
        balancer.backward(_toy_objectives(x), [x])
        opt.step()
        schedule.step()
    losses = _toy_objectives(x)
    jac = torch.stack([torch.autograd.grad(v, x, retain_graph=True)[0] for v in losses.values()])
    w = torch.from_numpy(min_norm_simplex((jac @ jac.T).numpy()))
    assert (w @ jac).norm() < 0.05

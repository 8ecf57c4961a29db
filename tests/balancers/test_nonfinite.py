"""A NaN or inf loss never reaches the weights: the step is skipped for every parameter and reported.

Every registered balancer takes two good steps (so that its state, the optimizer state and
initial losses exist), then one step whose loss of task ``b`` is NaN or inf. That step must
leave the model (heads included), the optimizer state and the balancer state bit-identical,
leave no non-finite value in ``.grad``, and say ``finite=False`` in its ``BalanceInfo``.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from balancer_toys import (
    ToyModel,
    one_thread,  # noqa: F401  (autouse fixture)
    toy_batch,
)

from mtlzoo.balancers import create_balancer, list_balancers
from mtlzoo.balancers.aligned_mtl import balance_matrix
from mtlzoo.schemes.base import optimizer_step


def _snapshot(*modules: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """Parameters, buffers and optimizer state, deep-copied."""
    out = {}
    for index, module in enumerate(modules):
        out.update({f"{index}.{k}": v.detach().clone() for k, v in module.state_dict().items()
                    if isinstance(v, torch.Tensor)})
    out["optimizer"] = copy.deepcopy(optimizer.state_dict()["state"])
    return out


def _assert_same(before: dict, after: dict) -> None:
    assert before.keys() == after.keys()
    for key in before:
        if key == "optimizer":
            assert before[key].keys() == after[key].keys()
            for p in before[key]:
                for name, value in before[key][p].items():
                    assert torch.equal(torch.as_tensor(value), torch.as_tensor(after[key][p][name])), (key, p, name)
        else:
            assert torch.equal(before[key], after[key]), key


def _step(balancer, model, optimizer, x, y, bad=None, scaler=None):
    optimizer.zero_grad(set_to_none=True)
    losses, feats = model.losses(x, y)
    if bad is not None:
        losses["b"] = losses["b"] * bad
    info = balancer.backward(losses, model, features=feats, scaler=scaler)
    taken = optimizer_step(optimizer, scaler, clip_grad=1.0, sync=False)
    if taken and balancer.needs.post_step_losses:  # FAMO learns from the losses after the step, as rules do
        with torch.no_grad():
            balancer.after_step(model.losses(x, y)[0])
    return info, taken


@pytest.mark.parametrize("bad", [float("nan"), float("inf")], ids=["nan", "inf"])
@pytest.mark.parametrize("name", list_balancers())
def test_a_non_finite_loss_leaves_weights_optimizer_and_balancer_state_unchanged(name, bad):
    torch.manual_seed(0)
    model = ToyModel()
    balancer = create_balancer(name, tasks=["a", "b", "c"])
    optimizer = torch.optim.Adam(list(model.parameters()) + list(balancer.parameters()), lr=1e-2)
    x, y = toy_batch()
    for _ in range(2):
        info, taken = _step(balancer, model, optimizer, x, y)
        assert taken and bool(info.finite)
    before = _snapshot(model, balancer, optimizer=optimizer)
    info, taken = _step(balancer, model, optimizer, x, y, bad=bad)
    assert not taken and not bool(info.finite)
    assert info.as_dict()["finite"].item() is False
    _assert_same(before, _snapshot(model, balancer, optimizer=optimizer))
    for p in list(model.parameters()) + list(balancer.parameters()):
        assert p.grad is None or torch.isfinite(p.grad).all()
    info, taken = _step(balancer, model, optimizer, x, y)  # and training goes on
    assert taken and bool(info.finite)
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("name", ["ew", "uw", "gradnorm", "pcgrad", "nash_mtl", "aligned_mtl_ub"])
def test_a_non_finite_step_under_a_grad_scaler_is_skipped_and_lowers_the_scale(name):
    torch.manual_seed(0)
    model = ToyModel()
    balancer = create_balancer(name, tasks=["a", "b", "c"])
    optimizer = torch.optim.SGD(list(model.parameters()) + list(balancer.parameters()), lr=1e-2)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)
    x, y = toy_batch()
    _step(balancer, model, optimizer, x, y, scaler=scaler)
    scaler.update()
    before = _snapshot(model, balancer, optimizer=optimizer)
    info, taken = _step(balancer, model, optimizer, x, y, bad=float("nan"), scaler=scaler)
    scaler.update()
    assert not taken and not bool(info.finite)
    assert scaler.get_scale() == 2.0**7
    _assert_same(before, _snapshot(model, balancer, optimizer=optimizer))


def test_the_good_path_is_unchanged_by_the_check():
    """Two identical runs, one through optimizer_step, one calling optimizer.step() directly: same weights."""
    x, y = toy_batch()
    runs = []
    for direct in (False, True):
        torch.manual_seed(0)
        model = ToyModel()
        balancer = create_balancer("pcgrad", tasks=["a", "b", "c"], jacobian_mode="loop")
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(3):
            optimizer.zero_grad(set_to_none=True)
            losses, feats = model.losses(x, y)
            balancer.backward(losses, model, features=feats)
            optimizer.step() if direct else optimizer_step(optimizer, sync=False)
        runs.append([p.detach().clone() for p in model.parameters()])
    for p, q in zip(*runs, strict=True):
        assert torch.equal(p, q)


def test_a_non_finite_gramian_does_not_raise_in_aligned_mtl():
    gram = np.full((3, 3), np.nan)
    b, cond = balance_matrix(gram)
    assert b.shape == (3, 3) and np.isnan(cond)

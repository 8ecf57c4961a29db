"""State round trip (state_dict / load_state_dict) for every stateful balancer."""

from __future__ import annotations

import pytest
import torch
from balancer_toys import (
    ToyModel,
    one_thread,  # noqa: F401  (autouse fixture)
    toy_batch,
)

from mtlzoo.balancers import create_balancer

STATEFUL = {"uw": {}, "dwa": {"window": 2}, "famo": {}, "gradnorm": {}, "gradvac": {}, "nash_mtl": {},
            "db_mtl": {}, "pomsi": {}, "fixed": {"weights": {"a": 2.0}}, "db_mtl_features": {"level": "features"}}


def _step(balancer, model, x, y, seed):
    torch.manual_seed(seed)
    model.zero_grad()
    losses, feats = model.losses(x, y)
    info = balancer.backward(losses, model, features=feats)
    return info.weights, {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("key", sorted(STATEFUL))
def test_state_round_trip(key):
    name = key.removesuffix("_features")
    x, y = toy_batch()
    a, model = create_balancer(name, **STATEFUL[key]).bind(["a", "b", "c"]), ToyModel()
    opt = torch.optim.SGD(list(model.parameters()) + list(a.parameters()), lr=0.01)
    for seed in range(5):
        _step(a, model, x, y, seed)
        opt.step()
        if a.needs.post_step_losses:  # FAMO learns from the same batch after the step
            with torch.no_grad():
                a.after_step(model.losses(x, y)[0])
    state = a.state_dict()
    assert state, f"{name} saved no state"
    b = create_balancer(name, **STATEFUL[key])
    b.load_state_dict(state)
    assert b.tasks == ["a", "b", "c"]
    w_a, g_a = _step(a, model, x, y, 99)
    w_b, g_b = _step(b, model, x, y, 99)
    torch.testing.assert_close(w_b, w_a)
    for n in g_a:
        torch.testing.assert_close(g_b[n], g_a[n], msg=n)


def test_dwa_follows_the_loss_ratio_of_the_last_two_epochs():
    b = create_balancer("dwa").bind(["a", "b"])
    model = ToyModel(tasks=("a", "b"))
    x, y = toy_batch(tasks=2)
    for epoch in range(2):
        _step(b, model, x, y * (1 + epoch), 0)
        b.epoch_end()
    ratio = b.history[1] / b.history[0]
    assert not torch.allclose(ratio, torch.ones_like(ratio))
    expected = 2 * torch.softmax(ratio / 2.0, 0)
    torch.testing.assert_close(b.current_weights(), expected.float())
    assert b.epochs.item() == 2


def test_the_auto_jacobian_calibration_survives_a_state_round_trip():
    import mtlzoo

    source = mtlzoo.create_balancer("pcgrad")
    source.bind(["a", "b"])
    source._auto_calls, source._auto_times, source._resolved_mode = 3, {"batched": 0.2, "loop": 0.1}, "loop"
    target = mtlzoo.create_balancer("pcgrad")
    target.load_state_dict(source.state_dict())
    assert target._resolved_mode == "loop" and target._auto_calls == 3 and target._auto_times["loop"] == 0.1

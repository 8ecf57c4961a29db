"""Alternating independent task steps (IUS / IO): grouping, optimizer ownership, equivalences, resume."""

import copy

import pytest
import torch
from scheme_toys import EqualWeight, make_batch

from mtlzoo.models import create_model
from mtlzoo.schemes import AlternatingSteps, SingleStep, create_update_rule


def _adam(params):
    return torch.optim.Adam(params, lr=1e-2, weight_decay=1e-2)


@pytest.mark.parametrize("mode", ["ius", "io"])
def test_group_size_t_equals_the_joint_step(mode, batch):
    torch.manual_seed(0)
    model = create_model("hps_tiny", tasks="nyud")
    joint_model = copy.deepcopy(model)
    rule = create_update_rule(mode, model, _adam, group_size=4)
    joint = SingleStep(EqualWeight(), joint_model, _adam)
    for seed in range(2):
        rule.step(make_batch(seed=seed))
        joint.step(make_batch(seed=seed))
    for p, q in zip(model.parameters(), joint_model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_group_size_one_equals_manual_sequential_steps(batch):
    torch.manual_seed(0)
    model = create_model("hps_tiny", tasks="nyud")
    reference = copy.deepcopy(model)
    rule = AlternatingSteps(model, lambda p: torch.optim.SGD(p, lr=0.1), group_size=1, seed=3)
    result = rule.step(batch)
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.1)
    for (name,) in rule.groups:
        optimizer.zero_grad(set_to_none=True)
        loss = reference.losses(reference(batch["image"]), batch)[name]
        loss.backward()
        optimizer.step()
        torch.testing.assert_close(result.losses[name], loss.detach())
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    assert result.info["updates"] == 4


def test_grouping_is_seeded_and_partitions_tasks():
    model = create_model("hps_tiny", tasks="pascal_context")
    groups = AlternatingSteps(model, _adam, group_size=2, seed=7).groups
    assert groups == AlternatingSteps(model, _adam, group_size=2, seed=7).groups
    assert [len(g) for g in groups] == [2, 2, 1]
    assert sorted(t for g in groups for t in g) == sorted(model.task_names)
    others = {tuple(map(tuple, AlternatingSteps(model, _adam, group_size=2, seed=s).groups)) for s in range(10)}
    assert len(others) > 1
    with pytest.raises(ValueError, match="group_size"):
        AlternatingSteps(model, _adam, group_size=6)
    with pytest.raises(ValueError, match="mode"):
        AlternatingSteps(model, _adam, mode="sus")


def test_io_heads_live_only_in_their_groups_optimizer_and_decay_is_scaled():
    model = create_model("hps_tiny", tasks="nyud")
    rule = create_update_rule("io", model, torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=0.1),
                              group_size=2)
    assert len(rule.optimizers) == 2
    shared = {id(p) for p in model.shared_parameters()}
    for group, optimizer in zip(rule.groups, rule.optimizers, strict=True):
        shared_group, head_group = optimizer.param_groups
        assert {id(p) for p in shared_group["params"]} == shared
        assert {id(p) for p in head_group["params"]} == {id(p) for t in group for p in model.task_parameters(t)}
        assert shared_group["weight_decay"] == pytest.approx(0.05) and head_group["weight_decay"] == 0.1
    ius = create_update_rule("ius", model, _adam, group_size=1)
    assert len(ius.optimizers) == 1 and ius.optimizers[0].param_groups[0]["weight_decay"] == pytest.approx(0.0025)


@pytest.mark.parametrize("mode", ["ius", "io"])
def test_state_dict_round_trip(mode):
    torch.manual_seed(0)
    model = create_model("hps_tiny", tasks="nyud")
    rule = AlternatingSteps(model, _adam, group_size=2, mode=mode, seed=5)
    rule.step(make_batch(seed=1))
    state = copy.deepcopy(rule.state_dict())
    twin_model = copy.deepcopy(model)
    twin = AlternatingSteps(twin_model, _adam, group_size=2, mode=mode, seed=5)
    twin.load_state_dict(state)
    rule.step(make_batch(seed=2))
    twin.step(make_batch(seed=2))
    for p, q in zip(model.parameters(), twin_model.parameters(), strict=True):
        torch.testing.assert_close(p, q)
    with pytest.raises(ValueError, match="task groups"):
        AlternatingSteps(copy.deepcopy(model), _adam, group_size=2, mode=mode, seed=6).load_state_dict(state)
    with pytest.raises(ValueError, match="optimizer"):
        AlternatingSteps(copy.deepcopy(model), _adam, group_size=1, mode="io", seed=5).load_state_dict(state)


def _hand_written_ius(model, batches, groups, lr, zero_instead_of_none):
    """IUS with one hand-written Adam (torch.optim.Adam's update, betas 0.9 / 0.999, eps 1e-8).

    Between group steps gradients are deleted (PyTorch >= 2 ``zero_grad``) or zeroed (PyTorch 1.x); Adam steps
    every parameter whose gradient is not None, so zeroed ones move on their momentum.
    """
    params = list(model.parameters())
    state = {id(p): [torch.zeros_like(p), torch.zeros_like(p), 0] for p in params}
    for batch in batches:
        for group in groups:
            for p in params:
                if p.grad is not None and zero_instead_of_none:
                    p.grad.zero_()
                else:
                    p.grad = None
            losses = model.losses(model(batch["image"]), batch)
            sum(losses[name] for name in group).backward()
            with torch.no_grad():
                for p in params:
                    if p.grad is None:
                        continue
                    m, v, step = state[id(p)]
                    m.mul_(0.9).add_(0.1 * p.grad)
                    v.mul_(0.999).add_(0.001 * p.grad.square())
                    step += 1
                    state[id(p)][2] = step
                    p -= lr * (m / (1 - 0.9**step)) / ((v / (1 - 0.999**step)).sqrt() + 1e-8)


def _double(batch):
    return {key: value.double() if value.is_floating_point() else value for key, value in batch.items()}


@pytest.mark.parametrize("release_semantics", [False, True])
def test_ius_matches_a_hand_written_loop_under_both_zero_grad_semantics(release_semantics):
    """Float64 and 4 images of 64 x 64: with 2 images of 32 x 32 the deepest BatchNorm normalises 2 values, and
    that (with Adam's steps on gradients near eps) turns rounding into gaps of 1e-3 within a few steps."""
    torch.manual_seed(0)
    model = create_model("hps_tiny", tasks="nyud").double()
    reference = copy.deepcopy(model)
    batches = [_double(make_batch(b=4, size=64, seed=seed)) for seed in range(3)]
    rule = AlternatingSteps(model, lambda p: torch.optim.Adam(p, lr=1e-2), group_size=1, seed=3,
                            release_semantics=release_semantics)
    for batch in batches:
        rule.step(batch)
    _hand_written_ius(reference, batches, rule.groups, 1e-2, zero_instead_of_none=release_semantics)
    for (name, p), q in zip(model.named_parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-9, atol=1e-10, msg=lambda text, name=name: f"{name}: {text}")


def test_release_semantics_moves_the_other_heads_on_stale_momentum():
    torch.manual_seed(0)
    start = create_model("hps_tiny", tasks="nyud")
    moved = {}
    for release in (False, True):
        model = copy.deepcopy(start)
        rule = AlternatingSteps(model, lambda p: torch.optim.Adam(p, lr=1e-2), group_size=1, seed=3,
                                release_semantics=release)
        for seed in range(3):
            rule.step(make_batch(seed=seed))
        moved[release] = sum(float((p - q).detach().norm()) for name in model.task_names
                             for p, q in zip(model.task_parameters(name), start.task_parameters(name), strict=True))
    assert moved[True] > 1.2 * moved[False]


def test_release_semantics_changes_nothing_under_io():
    torch.manual_seed(0)
    model = create_model("hps_tiny", tasks="nyud")
    twin = copy.deepcopy(model)
    for m, release in ((model, False), (twin, True)):
        rule = AlternatingSteps(m, lambda p: torch.optim.Adam(p, lr=1e-2), group_size=2, mode="io", seed=1,
                                release_semantics=release)
        for seed in range(2):
            rule.step(make_batch(seed=seed))
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(p, q)
    with pytest.raises(TypeError, match="release_semantics"):
        AlternatingSteps(model, _adam, release_semantics="yes")

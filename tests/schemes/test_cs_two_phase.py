"""Connection-strength two-phase rule: the priority projection, phase choice, both phases, resume."""

import copy

import pytest
import torch
from scheme_toys import make_batch

from mtlzoo.models import create_model
from mtlzoo.schemes import ConnectionStrengthTwoPhase, conserve_priority, create_update_rule


def _sgd(params):
    return torch.optim.SGD(params, lr=0.05)


def _group_inner_products(grads, top):
    """<G_i[CG_i], G_j[CG_i]> for every reference i with a non-empty group and every j != i."""
    out = []
    for i in range(grads.shape[0]):
        rows = top == i
        if rows.any():
            ref = grads[i][rows].flatten()
            out += [float(ref @ grads[j][rows].flatten()) for j in range(grads.shape[0]) if j != i]
    return out


@pytest.mark.parametrize("seed", range(5))
def test_projection_leaves_no_conflict_inside_any_channel_group(seed):
    gen = torch.Generator().manual_seed(seed)
    grads = torch.randn(4, 6, 3, 3, 3, generator=gen)
    top = torch.tensor([0, 1, 1, 2, 3, 0])
    assert min(_group_inner_products(grads, top)) < 0  # the draw does conflict
    projected = conserve_priority(grads, top)
    assert min(_group_inner_products(projected, top)) >= -1e-4
    for i in range(4):  # reference blocks are never modified
        torch.testing.assert_close(projected[i][top == i], grads[i][top == i])


def test_projection_keeps_agreeing_blocks_and_single_group_layers():
    grads = torch.ones(3, 4, 2)
    top = torch.tensor([0, 1, 2, 2])
    torch.testing.assert_close(conserve_priority(grads, top), grads)
    conflicting = torch.stack([torch.ones(4, 2), -torch.ones(4, 2)])
    single = torch.zeros(4, dtype=torch.long)
    torch.testing.assert_close(conserve_priority(conflicting, single), conflicting)
    torch.testing.assert_close(conserve_priority(conflicting, single, skip_single_group=False)[1],
                               torch.zeros(4, 2))


def test_projection_of_one_block_by_hand():
    grads = torch.tensor([[[1.0, 0.0], [5.0, 5.0]], [[-1.0, 2.0], [1.0, 1.0]]])  # (T=2, C=2, 2)
    top = torch.tensor([0, 1])
    out = conserve_priority(grads, top)
    # group 0 = channel 0: R = (1, 0), D = (-1, 2), <R, D> = -1 -> D = (0, 2); group 1: <(1,1), (5,5)> > 0
    torch.testing.assert_close(out, torch.tensor([[[1.0, 0.0], [5.0, 5.0]], [[0.0, 2.0], [1.0, 1.0]]]))


def test_phase_probability_follows_epoch_fraction():
    model = create_model("cs_tiny", tasks="nyud")
    rule = ConnectionStrengthTwoPhase(model, _sgd, seed=0)
    assert {rule.choose_phase(0, 10) for _ in range(50)} == {1}
    assert {rule.choose_phase(10, 10) for _ in range(50)} == {2}
    share = sum(rule.choose_phase(7, 10) == 2 for _ in range(2000)) / 2000
    assert abs(share - 0.7) < 0.05
    per_epoch = ConnectionStrengthTwoPhase(model, _sgd, per="epoch")
    assert len({per_epoch.choose_phase(5, 10) for _ in range(50)}) == 1
    assert ConnectionStrengthTwoPhase(model, _sgd, schedule="phase2").choose_phase(0, 10) == 2


def test_phase1_equals_sequential_per_task_steps():
    torch.manual_seed(0)
    model = create_model("cs_tiny", tasks="nyud")
    reference = copy.deepcopy(model)
    batch = make_batch()
    result = create_update_rule("cs_two_phase", model, _sgd, schedule="phase1").step(batch, 0, 10)
    assert result.info == {"phase": 1}
    optimizer = _sgd(reference.parameters())
    for name in reference.task_names:
        optimizer.zero_grad(set_to_none=True)
        reference.losses(reference(batch["image"], task=name), batch)[name].backward()
        optimizer.step()
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_phase2_applies_the_sum_of_projected_task_gradients():
    torch.manual_seed(0)
    model = create_model("cs_tiny", tasks="nyud")
    for layer in model.priority_layers().values():  # spread the top-priority tasks over the channels
        for norm in layer.bn.norms.values():
            torch.nn.init.uniform_(norm.weight, 0.2, 2.0)
    reference = copy.deepcopy(model)
    batch = make_batch()
    rule = ConnectionStrengthTwoPhase(model, lambda p: torch.optim.SGD(p, lr=1.0), schedule="phase2")
    assert rule.step(batch, 0, 10).info == {"phase": 2}

    params = list(reference.parameters())
    per_task = [torch.autograd.grad(reference.losses(reference(batch["image"], task=t), batch)[t], params,
                                    allow_unused=True) for t in reference.task_names]
    layers = reference.priority_layers()
    index = {id(p): i for i, p in enumerate(params)}
    checked_conflict = False
    for name, layer in layers.items():
        i = index[id(layer.conv.weight)]
        stacked = torch.stack([g[i] for g in per_task])
        top = layer.top_priority()
        projected = conserve_priority(stacked, top)
        assert min(_group_inner_products(projected, top), default=0.0) >= -1e-6 * stacked.abs().max() ** 2
        checked_conflict |= min(_group_inner_products(stacked, top), default=0.0) < 0
        moved = dict(reference.named_parameters())[f"{name}.conv.weight"] - dict(model.named_parameters())[
            f"{name}.conv.weight"]
        torch.testing.assert_close(moved, projected.sum(0), rtol=1e-4, atol=1e-6)
    assert checked_conflict
    head = reference.heads["depth"].classifier.bias
    moved = head - model.heads["depth"].classifier.bias
    torch.testing.assert_close(moved, per_task[1][index[id(head)]], rtol=1e-4, atol=1e-6)


def test_state_dict_round_trip():
    torch.manual_seed(0)
    model = create_model("cs_tiny", tasks="nyud")
    rule = ConnectionStrengthTwoPhase(model, lambda p: torch.optim.Adam(p, lr=1e-3), seed=3)
    rule.step(make_batch(seed=1), 5, 10)
    state = copy.deepcopy(rule.state_dict())
    twin_model = copy.deepcopy(model)
    twin = ConnectionStrengthTwoPhase(twin_model, lambda p: torch.optim.Adam(p, lr=1e-3), seed=99)
    twin.load_state_dict(state)
    for seed in (2, 3):
        assert rule.step(make_batch(seed=seed), 5, 10).info == twin.step(make_batch(seed=seed), 5, 10).info
    for p, q in zip(model.parameters(), twin_model.parameters(), strict=True):
        torch.testing.assert_close(p, q)

"""The graph walk that finds each task's own parameters when the caller passes a plain parameter list."""

from __future__ import annotations

import torch
from torch import nn

from mtlzoo.balancers.jacobian import reachable_leaves


def _net() -> tuple[nn.Module, nn.ModuleList, torch.Tensor, list[torch.Tensor]]:
    torch.manual_seed(0)
    trunk = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8))
    heads = nn.ModuleList([nn.Linear(8, 1), nn.Linear(8, 1), nn.Linear(8, 1, bias=False)])
    rep = trunk(torch.randn(5, 4))
    # task 2 reads the representation twice (a diamond in the graph) and task 0 reads task 1's head too
    losses = [(heads[0](rep) + heads[1](rep)).square().mean(), heads[1](rep).mean(),
              (heads[2](rep) * heads[2](rep.relu())).mean()]
    return trunk, heads, rep, losses


def _used(loss: torch.Tensor, params: list[torch.Tensor]) -> set[int]:
    """Independent answer: the parameters autograd gives a gradient to."""
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return {id(p) for p, g in zip(params, grads, strict=True) if g is not None}


def test_reachable_leaves_are_the_parameters_autograd_reaches():
    trunk, heads, _, losses = _net()
    params = list(trunk.parameters()) + list(heads.parameters())
    for loss in losses:
        found = reachable_leaves(loss)
        assert len(found) == len({id(p) for p in found})  # each leaf once, diamonds included
        assert {id(p) for p in found} == _used(loss, params)


def test_reachable_leaves_stop_at_the_features():
    trunk, heads, rep, losses = _net()
    for loss in losses:
        found = {id(p) for p in reachable_leaves(loss, stop=[rep])}
        assert found == _used(loss, list(heads.parameters()))
        assert not found & {id(p) for p in trunk.parameters()}
    assert reachable_leaves(rep, stop=[rep]) == []  # the root itself is a stop tensor


def test_reachable_leaves_of_a_leaf_and_of_a_constant():
    w = torch.zeros(3, requires_grad=True)
    assert reachable_leaves(w) == [w]
    assert reachable_leaves(torch.zeros(3)) == []

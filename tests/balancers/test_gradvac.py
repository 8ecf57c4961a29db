"""GradVac's whole-model and per-tensor (block-wise) targets against a numpy transcription of the paper's Alg. 1."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from balancer_toys import (
    ToyModel,
    one_thread,  # noqa: F401  (autouse fixture)
    toy_batch,
)

from mtlzoo.balancers import create_balancer
from mtlzoo.balancers.pcgrad import random_orders

SHAPES = [(4,), (3, 2), (5,)]  # three shared tensors = three blocks


def _jacobians(num_steps: int, tasks: int, seed: int = 0) -> list[list[np.ndarray]]:
    """Per step, one (T, n_b) gradient block per shared tensor; the blocks differ in how much the tasks agree."""
    rng = np.random.default_rng(seed)
    steps = []
    for _ in range(num_steps):
        common = [rng.normal(size=int(np.prod(s))) for s in SHAPES]
        signs = (-1.0) ** np.arange(tasks)[:, None]  # block 0 aligned, block 1 unrelated, block 2 task 1 opposed
        shared = [1.5 * common[0], 0 * common[1], 1.5 * signs * common[2]]
        steps.append([s + rng.normal(size=(tasks, c.size)) for s, c in zip(shared, common, strict=True)])
    return steps


def _run_package(balancer, blocks: list[np.ndarray], seed: int) -> list[np.ndarray]:
    """One balanced backward on ``L_t = sum_b J_t^b . x_b``: the update of every shared tensor, flattened."""
    torch.manual_seed(seed)
    params = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in SHAPES]
    losses = {f"t{i}": sum((torch.from_numpy(b[i]) * p.reshape(-1)).sum() for b, p in zip(blocks, params,
                                                                                          strict=True))
              for i in range(blocks[0].shape[0])}
    balancer.backward(losses, params)
    return [p.grad.reshape(-1).numpy() for p in params]


def _drawn_orders(seed: int, tasks: int) -> list[list[int]]:
    torch.manual_seed(seed)
    orders = random_orders(tasks, torch.device("cpu"), exclude_self=True)
    return [[j for j in row.tolist() if j != i] for i, row in enumerate(orders)]


def _gradvac_step(blocks: list[np.ndarray], targets: np.ndarray, orders: list[list[int]], beta: float
                  ) -> list[np.ndarray]:
    """Wang et al. (ICLR 2021), Alg. 1, once per parameter block; ``targets[b, i, j]`` updated in place."""
    updates = []
    for b, jac in enumerate(blocks):
        total = np.zeros(jac.shape[1])
        for i in range(jac.shape[0]):
            g = jac[i].copy()
            for j in orders[i]:
                gj = jac[j]
                phi = g @ gj / (np.linalg.norm(g) * np.linalg.norm(gj))
                phi_hat = targets[b, i, j]
                if phi < phi_hat:
                    g = g + np.linalg.norm(g) * (phi_hat * np.sqrt(1 - phi**2) - phi * np.sqrt(1 - phi_hat**2)) / (
                        np.linalg.norm(gj) * np.sqrt(1 - phi_hat**2)) * gj
                targets[b, i, j] = (1 - beta) * phi_hat + beta * phi
            total += g
        updates.append(total)
    return updates


@pytest.mark.parametrize("tasks", [2, 3])
def test_per_tensor_targets_follow_the_papers_algorithm_block_by_block(tasks):
    steps = _jacobians(12, tasks)
    balancer = create_balancer("gradvac", beta=0.3, granularity="tensor")
    targets = np.zeros((len(SHAPES), tasks, tasks))
    for k, blocks in enumerate(steps):
        expected = _gradvac_step(blocks, targets, _drawn_orders(k, tasks), 0.3)
        got = _run_package(balancer, blocks, k)
        for e, g in zip(expected, got, strict=True):
            np.testing.assert_allclose(g, e, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(balancer.targets.numpy(), targets, rtol=1e-9, atol=1e-12)
    off = ~np.eye(tasks, dtype=bool)
    assert (targets[0][off] > 0.2).all() and (targets[2][off] < -0.2).any()  # each block keeps its own targets


def test_whole_model_targets_are_one_block():
    steps = _jacobians(6, 3)
    balancer = create_balancer("gradvac", beta=0.3)
    targets = np.zeros((1, 3, 3))
    for k, blocks in enumerate(steps):
        expected = _gradvac_step([np.concatenate(blocks, axis=1)], targets, _drawn_orders(k, 3), 0.3)[0]
        np.testing.assert_allclose(np.concatenate(_run_package(balancer, blocks, k)), expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(balancer.targets.numpy(), targets[0], rtol=1e-9, atol=1e-12)
    assert not balancer.needs.jacobian and create_balancer("gradvac", granularity="tensor").needs.jacobian


def test_per_tensor_state_round_trip():
    x, y = toy_batch()
    model = ToyModel()
    source = create_balancer("gradvac", granularity="tensor", beta=0.5)
    for seed in range(3):
        torch.manual_seed(seed)
        model.zero_grad()
        source.backward(model.losses(x, y)[0], model)
    assert source.targets.shape == (4, 3, 3)  # trunk: two Linear layers, weight and bias each
    twin = create_balancer("gradvac", granularity="tensor", beta=0.5)
    twin.load_state_dict(source.state_dict())
    torch.testing.assert_close(twin.targets, source.targets)


def test_rejects_an_unknown_granularity_and_per_tensor_targets_at_the_feature_level():
    with pytest.raises(ValueError, match="granularity must be one of"):
        create_balancer("gradvac", granularity="layer")
    with pytest.raises(ValueError, match="level='parameters'"):
        create_balancer("gradvac", granularity="tensor", level="features")

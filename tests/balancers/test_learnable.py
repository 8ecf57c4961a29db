"""Learnable balancer weights (uw, gradnorm) train with the README pattern, and never stay frozen silently."""

from __future__ import annotations

import pytest
import torch
from balancer_toys import (
    ToyModel,
    one_thread,  # noqa: F401  (autouse fixture)
)
from torch import nn

import mtlzoo
from mtlzoo.balancers import create_balancer
from mtlzoo.schemes import create_update_rule

LEARNABLE = ["uw", "gradnorm"]


def _readme_batch():
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(2, 3, 32, 32, generator=gen)
    targets = {
        "semseg": torch.randint(0, 40, (2, 32, 32), generator=gen),
        "depth": torch.rand(2, 1, 32, 32, generator=gen) * 5,
        "normals": nn.functional.normalize(torch.randn(2, 3, 32, 32, generator=gen), dim=1),
        "edge": (torch.rand(2, 1, 32, 32, generator=gen) > 0.9).float(),
    }
    return images, targets


def _weights(balancer):
    return next(balancer.parameters()).detach().clone()


@pytest.mark.parametrize("bind", ["model", "tasks"])
@pytest.mark.parametrize("name", LEARNABLE)
def test_the_readme_pattern_trains_the_balancer_weights(name, bind):
    torch.manual_seed(0)
    model = mtlzoo.create_model("hps_tiny", tasks="nyud")
    balancer = (mtlzoo.create_balancer(name, model=model) if bind == "model"
                else mtlzoo.create_balancer(name, tasks=[t for t in model.tasks]))
    assert balancer.tasks == ["semseg", "depth", "normals", "edge"]
    optimizer = torch.optim.Adam(list(model.parameters()) + list(balancer.parameters()), lr=1e-2)
    start = _weights(balancer)
    images, targets = _readme_batch()
    for _ in range(3):
        optimizer.zero_grad()
        balancer.backward(model.losses(model(images), targets), model)
        optimizer.step()
    assert (_weights(balancer) - start).abs().max() > 1e-3


@pytest.mark.parametrize("name", LEARNABLE)
def test_an_optimizer_built_before_the_weights_exist_is_an_error(name):
    model, x, y = ToyModel(), torch.randn(4, 4), torch.randn(4, 3)
    balancer = create_balancer(name)
    assert list(balancer.parameters()) == []  # the old pattern's optimizer would get nothing from it
    with pytest.raises(ValueError, match="created its learnable weights on this first backward call.*tasks="):
        balancer.backward(model.losses(x, y)[0], model)


@pytest.mark.parametrize("clear", ["optimizer", "model"])
@pytest.mark.parametrize("name", LEARNABLE)
def test_weights_left_out_of_the_optimizer_are_an_error_at_the_next_step(name, clear):
    model, x, y = ToyModel(), torch.randn(4, 4), torch.randn(4, 3)
    balancer = create_balancer(name, tasks=["a", "b", "c"])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, fused=True)  # fused Adam bumps no version counter
    balancer.backward(model.losses(x, y)[0], model)
    optimizer.step()
    optimizer.zero_grad() if clear == "optimizer" else model.zero_grad()
    with pytest.raises(ValueError, match="sit in no optimizer"):
        balancer.backward(model.losses(x, y)[0], model)


@pytest.mark.parametrize("name", LEARNABLE)
def test_gradient_accumulation_and_skipped_steps_are_not_mistaken_for_a_missing_optimizer(name):
    model, x, y = ToyModel(), torch.randn(4, 4), torch.randn(4, 3)
    balancer = create_balancer(name, tasks=["a", "b", "c"])
    optimizer = torch.optim.SGD(list(model.parameters()) + list(balancer.parameters()), lr=1e-2)
    for _ in range(3):
        optimizer.zero_grad()
        for _ in range(2):  # two micro-batches per step
            balancer.backward(model.losses(x, y)[0], model)
        optimizer.step()


def test_a_rule_given_an_optimizer_without_the_balancer_weights_refuses_it():
    model = mtlzoo.create_model("hps_tiny", tasks="nyud")
    balancer = create_balancer("uw", model=model)
    with pytest.raises(ValueError, match="learnable weights that are not in the optimizer"):
        create_update_rule(balancer, model, torch.optim.Adam(model.parameters()))
    create_update_rule(balancer, model, torch.optim.Adam(list(model.parameters()) + list(balancer.parameters())))


def test_create_balancer_checks_tasks_and_model():
    with pytest.raises(ValueError, match="pass tasks= or model=, not both"):
        create_balancer("uw", tasks=["a"], model=ToyModel())
    with pytest.raises(TypeError, match="needs a model with task_names"):
        create_balancer("uw", model=ToyModel())
    with pytest.raises(TypeError, match="expects a list of task names"):
        create_balancer("uw", tasks="semseg")
    with pytest.raises(ValueError, match="unique"):
        create_balancer("uw", tasks=["a", "a"])

"""GradNorm: its weights learn the same under a GradScaler, and W is a shared layer (or the one named)."""

from __future__ import annotations

import pytest
import torch
from balancer_toys import (
    ToyModel,
    one_thread,  # noqa: F401  (autouse fixture)
    toy_batch,
)
from torch import nn

from mtlzoo.balancers import create_balancer
from mtlzoo.schemes.base import optimizer_step


class PlainToy(nn.Module):
    """The same trunk and heads as ToyModel, with no shared_parameters() / task_parameters()."""

    def __init__(self) -> None:
        super().__init__()
        source = ToyModel()
        self.trunk, self.heads = source.trunk, source.heads

    def losses(self, x, y):
        z = self.trunk(x)
        return {t: ((head(z).squeeze(-1) - y[:, i]) ** 2).mean() for i, (t, head) in enumerate(self.heads.items())}


def _train_weights(scaler, steps=6):
    torch.manual_seed(0)
    model = ToyModel()
    balancer = create_balancer("gradnorm", tasks=["a", "b", "c"])
    optimizer = torch.optim.SGD(list(model.parameters()) + list(balancer.parameters()), lr=0.05)
    x, y = toy_batch()
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        losses, _ = model.losses(x, y)
        balancer.backward(losses, model, scaler=scaler)
        assert optimizer_step(optimizer, scaler, sync=False)
        if scaler is not None:
            scaler.update()
    return balancer.loss_weights.detach().clone()


def test_weights_learn_the_same_with_and_without_a_grad_scaler():
    plain = _train_weights(None)
    scaled = _train_weights(torch.amp.GradScaler("cpu", init_scale=2.0**12))
    assert (plain - 1).abs().max() > 1e-2  # they learn
    torch.testing.assert_close(scaled, plain, rtol=1e-4, atol=1e-5)


def _expected_grad(losses: dict, layer: torch.Tensor) -> torch.Tensor:
    """The paper's balance-loss gradient at the first step (w = 1, r = 1): sign(G_t - mean G) G_t."""
    norms = torch.stack([torch.autograd.grad(loss, layer, retain_graph=True)[0].norm() for loss in losses.values()])
    return torch.sign(norms - norms.mean()) * norms


def test_the_last_shared_layer_of_a_plain_module_is_a_shared_one():
    model, (x, y) = PlainToy(), toy_batch()
    balancer = create_balancer("gradnorm", tasks=["a", "b", "c"])
    losses = model.losses(x, y)
    expected = _expected_grad(losses, model.trunk[2].weight)
    balancer.backward(losses, model)
    torch.testing.assert_close(balancer.loss_weights.grad, expected)


def test_the_layer_can_be_named_or_given():
    model, (x, y) = PlainToy(), toy_batch()
    for layer in ("trunk.0.weight", model.trunk[0].weight):
        balancer = create_balancer("gradnorm", tasks=["a", "b", "c"], layer=layer)
        model.zero_grad(set_to_none=True)
        losses = model.losses(x, y)
        expected = _expected_grad(losses, model.trunk[0].weight)
        balancer.backward(losses, model)
        torch.testing.assert_close(balancer.loss_weights.grad, expected)
        assert [n for n, _ in balancer.named_parameters()] == ["loss_weights"]  # the layer is not its own


def test_an_unknown_layer_name_says_what_is_close():
    model, (x, y) = PlainToy(), toy_batch()
    balancer = create_balancer("gradnorm", tasks=["a", "b", "c"], layer="trunk.2.weigth")
    with pytest.raises(ValueError, match="'trunk.2.weigth' is not a parameter of the model; did you mean "
                                         "'trunk.2.weight'"):
        balancer.backward(model.losses(x, y), model)
    with pytest.raises(TypeError, match="layer must be a parameter name, a tensor or None"):
        create_balancer("gradnorm", layer=3)

"""SingleStep wraps a single-step balancer: one forward, its backward, one optimizer step."""

import copy

import pytest
import torch
from scheme_toys import EqualWeight, make_batch

from mtlzoo.models import create_model
from mtlzoo.schemes import SingleStep, StepInfo, create_update_rule, list_update_rules


def _sgd(params):
    return torch.optim.SGD(params, lr=0.1)


def test_single_step_equals_manual_summed_loss_step(batch):
    torch.manual_seed(0)
    model = create_model("hps_tiny", tasks="nyud")
    reference = copy.deepcopy(model)
    rule = create_update_rule(EqualWeight(), model, _sgd)
    result = rule.step(batch, epoch=0, epochs=1)
    assert isinstance(result, StepInfo) and list(result.losses) == model.task_names
    assert all(not loss.requires_grad for loss in result.losses.values())

    optimizer = _sgd(reference.parameters())
    losses = reference.losses(reference(batch["image"]), batch)
    sum(losses.values()).backward()
    optimizer.step()
    for name, loss in losses.items():
        torch.testing.assert_close(result.losses[name], loss.detach())
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p, q)


def test_features_passed_only_when_balancer_needs_them(batch):
    class FeatureBalancer(EqualWeight):
        class needs:  # noqa: N801
            features = True

        def backward(self, losses, model, features=None, scaler=None):
            self.features = features
            return super().backward(losses, model)

    model = create_model("hps_tiny", tasks="nyud")
    balancer = FeatureBalancer()
    SingleStep(balancer, model, _sgd).step(batch)
    assert isinstance(balancer.features, tuple) and balancer.features[-1].requires_grad
    plain = EqualWeight()
    plain.backward = lambda losses, model, features=None: (sum(losses.values()).backward(), {"f": features})[1]
    assert SingleStep(plain, model, _sgd).step(batch).info == {"f": None}


def test_state_dict_round_trip_restores_optimizer_state():
    torch.manual_seed(0)
    model = create_model("hps_tiny", tasks="nyud")
    rule = SingleStep(EqualWeight(), model, lambda p: torch.optim.Adam(p, lr=1e-3))
    rule.step(make_batch(seed=1))
    state = copy.deepcopy(rule.state_dict())
    twin_model = copy.deepcopy(model)
    twin = SingleStep(EqualWeight(), twin_model, lambda p: torch.optim.Adam(p, lr=1e-3))
    twin.load_state_dict(state)
    rule.step(make_batch(seed=2))
    twin.step(make_batch(seed=2))
    for p, q in zip(model.parameters(), twin_model.parameters(), strict=True):
        torch.testing.assert_close(p, q)


def test_create_update_rule_names_and_errors():
    assert list_update_rules() == ["cs_two_phase", "io", "ius"]
    model = create_model("hps_tiny", tasks="nyud")
    with pytest.raises(ValueError, match="Did you mean: ius"):
        create_update_rule("iuss", model, _sgd)
    with pytest.raises(TypeError, match="backward"):
        create_update_rule(object(), model, _sgd)
    with pytest.raises(TypeError, match="names only"):
        create_update_rule(EqualWeight(), model, _sgd, lr=1)
    with pytest.raises(TypeError, match="priority_layers"):
        create_update_rule("cs_two_phase", model, _sgd)
    with pytest.raises(ValueError, match="'image'"):
        create_update_rule(EqualWeight(), model, _sgd).step({"semseg": torch.zeros(1)})


def test_balancer_names_are_wrapped_in_single_step(batch):
    torch.manual_seed(0)
    model = create_model("hps_tiny", tasks="nyud")
    twin = copy.deepcopy(model)
    rule = create_update_rule("ew", model, _sgd)
    assert isinstance(rule, SingleStep)
    rule.step(batch)
    SingleStep(EqualWeight(), twin, _sgd).step(batch)
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="Did you mean"):
        create_update_rule("pcgrd", model, _sgd)

"""padnet_*: PAD-Net (Xu et al. 2018) and the distillation blocks it shares with MTI-Net."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from family_checks import (
    TASKS,
    balancer_steps,
    batch,
    check_feature_level_on_the_encoder,
    check_info,
    check_partition,
    check_private_gradients,
    check_round_trips,
    train_config_losses,
)

import mtlzoo
from mtlzoo.models.distillation import Distillation
from mtlzoo.schemes.base import forward_tasks


@pytest.fixture
def model():
    torch.manual_seed(0)
    return mtlzoo.create_model("padnet_tiny", tasks=TASKS)


def _targets(data):
    return {k: v for k, v in data.items() if k != "image"}


@pytest.mark.parametrize("gate", ["receiver", "pair", "source"])
def test_distillation_follows_the_equation(gate):
    """F^o_k = F_k + sum_l G (W_l * F_l), re-computed with plain F.conv2d from the weights: G = sigmoid(A_k * F_k)
    for every source (receiver, PAD-Net's module (c)), sigmoid(A_{k,l} * F_k) (pair), sigmoid(A_{k,l} * F_l)
    (source)."""
    torch.manual_seed(0)
    unit = Distillation(4, ["a", "b"], gate=gate)
    own, others = torch.randn(2, 4, 5, 5), [torch.randn(2, 4, 5, 5), torch.randn(2, 4, 5, 5)]
    expected = own.clone()
    for name, feature in zip(["a", "b"], others, strict=True):
        g = unit.attention if gate == "receiver" else unit.gates[name]
        m = unit.messages[name]
        gate_input = feature if gate == "source" else own
        attention = torch.sigmoid(F.conv2d(gate_input, g.weight, g.bias, padding=1))
        expected = expected + attention * F.conv2d(feature, m.weight, m.bias, padding=1)
    torch.testing.assert_close(unit(own, others), expected, atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError, match="expects 2 source"):
        unit(own, others[:1])
    with pytest.raises(ValueError, match="distillation gate 'both'"):
        Distillation(4, ["a"], gate="both")


def test_one_attention_map_per_receiving_task():
    """The paper's unit has one attention conv per receiving task (not per pair): T(T - 2) fewer 3x3 convs than
    gate='pair', which is the previous default and keeps its parameter names."""
    receiver = mtlzoo.create_model("padnet_tiny", tasks=TASKS)
    pair = mtlzoo.create_model("padnet_tiny", tasks=TASKS, gate="pair")
    for name in receiver.task_names:
        distill = receiver.heads[name].distill
        assert isinstance(distill.attention, torch.nn.Conv2d) and len(distill.gates) == 0
        assert len(distill.messages) == len(TASKS) - 1
        assert len(pair.heads[name].distill.gates) == len(TASKS) - 1 and pair.heads[name].distill.attention is None
    conv = 32 * 32 * 9 + 32  # one 3x3 conv at the task width 32
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(pair) - count(receiver) == len(TASKS) * (len(TASKS) - 2) * conv
    assert not any(".gates." in k for k in receiver.state_dict())


def test_nyud_parameter_counts():
    """The nyud figures docs/zoo.md quotes (4 tasks at 256 channels: the pair gates held 8 more 3x3 convs)."""
    def count(name, **kwargs):
        with torch.device("meta"):
            return sum(p.numel() for p in mtlzoo.create_model(name, tasks="nyud", **kwargs).parameters())

    assert count("padnet_resnet18") == 30_349_466
    assert count("padnet_resnet18", gate="pair") == 35_070_106 == 30_349_466 + 8 * (256 * 256 * 9 + 256)
    assert count("padnet", encoder="resnet50") == 56_836_762


def test_losses_fold_the_initial_predictions_into_each_task(model):
    """loss_t = final_t + w * loss(upsampled initial_t), for the outputs of the last forward only."""
    model = mtlzoo.create_model("padnet_tiny", tasks=TASKS, aux_weight=0.5)
    data = batch()
    targets = _targets(data)
    outputs = model(data["image"])
    aux = model.aux_predictions()
    losses = model.losses(outputs, targets)
    for task in model.tasks:
        assert aux[task.name][0].shape[-2:] == (4, 4)  # output stride 8 on 32 x 32
        initial = F.interpolate(aux[task.name][0], size=(32, 32), mode="bilinear", align_corners=False)
        final = task.compute_loss(outputs[task.name], targets[task.name])
        expected = final + 0.5 * task.compute_loss(initial, targets[task.name])
        assert torch.allclose(losses[task.name], expected), task.name
        assert losses[task.name] > final
    stale = {k: v.detach().clone() for k, v in outputs.items()}  # not the tensors of the last forward
    plain = model.losses(stale, targets)
    assert all(torch.allclose(plain[t.name], t.compute_loss(stale[t.name], targets[t.name])) for t in model.tasks)
    with pytest.raises(ValueError, match="targets lack task"):
        model.losses(outputs, {"semseg": targets["semseg"]})


def test_forward_tasks_keeps_the_deep_supervision(model):
    """ius / io run only some heads through forward_tasks; their losses still carry the initial terms."""
    data = batch()
    outputs = forward_tasks(model, data["image"], ["depth"])
    loss = model.losses(outputs, _targets(data))["depth"]
    initial = F.interpolate(model.aux_predictions()["depth"][0], size=(32, 32), mode="bilinear", align_corners=False)
    task = model.task("depth")
    expected = task.compute_loss(outputs["depth"], data["depth"]) + task.compute_loss(initial, data["depth"])
    assert torch.allclose(loss, expected)


def test_the_representation_is_the_encoder_output_and_the_branches_are_shared(model):
    rep = model.encode(batch()["image"])
    assert len(rep.features) == 1 and rep.features[0].shape == (2, 128, 4, 4)
    assert [tuple(f.shape) for f in model.task_features(rep)] == [(2, 32, 4, 4)] * 3
    assert model.task_features(rep)[0] is model.task_features(rep)[0]  # the branches run once per forward
    shared = {id(p) for p in model.shared_parameters()}
    expected = {id(p) for p in [*model.encoder.parameters(), *model.branches.parameters()]}
    assert shared == expected
    assert {id(p) for p in model.decoder_shared_parameters()} == {id(p) for p in model.branches.parameters()}


def test_feature_level_balances_the_encoder_output_and_trains_the_branches(model):
    check_feature_level_on_the_encoder(model)


def test_groups_and_private_gradients(model):
    check_partition(model)
    check_private_gradients(model)


def test_info_gives_parameters_and_flops():
    check_info("padnet_tiny")


def test_round_trips_and_deepcopy(model, tmp_path):
    model(batch()["image"])  # a recorded forward must not break copies
    copied = copy.deepcopy(model)
    assert copied.aux_predictions()["depth"] == []
    check_round_trips(model, tmp_path)


def test_add_and_remove_task(model):
    model.add_task({"name": "edge", "kind": "edge"})
    assert list(model.branches) == model.task_names
    assert list(model.heads["semseg"].distill.messages) == ["depth", "normals", "edge"]
    assert len(model.heads["semseg"].distill.gates) == 0  # still one attention map per receiving task
    check_partition(model)
    assert model(batch()["image"])["edge"].shape == (2, 1, 32, 32)
    model.remove_task("depth")
    assert list(model.heads["edge"].distill.messages) == ["semseg", "normals"]
    assert model(batch()["image"])["normals"].shape == (2, 3, 32, 32)


@pytest.mark.parametrize("gate", ["receiver", "pair"])
def test_added_task_follows_the_model_dtype(gate):
    model = mtlzoo.create_model("padnet_tiny", tasks=TASKS, gate=gate).to(torch.float64)
    model.add_task({"name": "edge", "kind": "edge"})
    assert {p.dtype for p in model.parameters()} == {torch.float64}
    assert model(batch()["image"].double())["edge"].dtype == torch.float64


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="task 'scene' of kind 'classification' is not dense"):
        mtlzoo.create_model("padnet_tiny", tasks=[*TASKS, {"name": "scene", "kind": "classification", "channels": 3}])
    with pytest.raises(ValueError, match="aux_weight must be 1 non-negative"):
        mtlzoo.create_model("padnet_tiny", tasks=TASKS, aux_weight=-1.0)
    with pytest.raises(ValueError, match="expects images"):
        mtlzoo.create_model("padnet_tiny", tasks=TASKS)(torch.randn(2, 1, 32, 32))


def test_bf16_autocast(model):
    data = batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outputs = model(data["image"])
        losses = model.losses(outputs, _targets(data))
    assert outputs["depth"].dtype == torch.bfloat16
    sum(losses.values()).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("balancer", mtlzoo.list_balancers())
def test_every_balancer_at_both_levels(balancer):
    balancer_steps("padnet_tiny", balancer)


@pytest.mark.parametrize("rule", ["ius", "io"])
def test_alternating_update_rules(rule):
    """ius / io run the heads through forward_tasks (not decode)."""
    balancer_steps("padnet_tiny", rule)


def test_config_trains_and_the_loss_falls(tmp_path):
    totals = train_config_losses("synthscenes_padnet", tmp_path)
    assert np.mean(totals[-6:]) < 0.9 * np.mean(totals[:6])


@pytest.mark.parametrize("balancer", ["pcgrad", "mgda_ub"])
def test_gradient_balancers_reach_every_parameter(balancer):
    """The branches sit after the representation (shared decoder): both levels must train them too."""
    torch.manual_seed(0)
    model = mtlzoo.create_model("padnet_tiny", tasks=TASKS)
    rule = mtlzoo.create_update_rule(balancer, model, lambda params: torch.optim.SGD(params, lr=0.1))
    rule.step(batch())
    untouched = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert untouched == []


@pytest.mark.parametrize("balancer", ["pcgrad", "mgda_ub"])
def test_gradient_balancers_under_bf16_autocast(balancer):
    """The engine's per-task gradients through the deep-supervised losses under autocast, as the trainer runs it."""
    torch.manual_seed(0)
    model = mtlzoo.create_model("padnet_tiny", tasks=TASKS)
    rule = mtlzoo.create_update_rule(balancer, model, lambda params: torch.optim.SGD(params, lr=0.1))
    before = [p.detach().clone() for p in model.parameters()]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        result = rule.step(batch())
    assert all(torch.isfinite(v) for v in result.losses.values())
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert sum(not torch.equal(p, b) for p, b in zip(model.parameters(), before, strict=True)) > len(before) // 2

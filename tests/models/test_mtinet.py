"""mtinet_*: MTI-Net (Vandenhende et al. 2020), multi-scale task interaction with deep supervision at every scale."""

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
from mtlzoo.models.mtinet import FeaturePropagation
from mtlzoo.schemes.base import forward_tasks


@pytest.fixture
def model():
    torch.manual_seed(0)
    return mtlzoo.create_model("mtinet_tiny", tasks=TASKS)


def _targets(data):
    return {k: v for k, v in data.items() if k != "image"}


def _upsampled(prediction, size=(32, 32)):
    return F.interpolate(prediction, size=size, mode="bilinear", align_corners=False)


def test_losses_add_every_scale_with_its_weight():
    """loss_t = final_t + sum_k w_k loss(upsampled initial_t^k), finest scale first."""
    torch.manual_seed(0)
    weights = [1.0, 0.5, 0.25, 2.0]
    model = mtlzoo.create_model("mtinet_tiny", tasks=TASKS, aux_weights=weights)
    data = batch()
    targets = _targets(data)
    outputs = model(data["image"])
    losses = model.losses(outputs, targets)
    for task in model.tasks:
        aux = model.aux_predictions()[task.name]
        assert [a.shape[-1] for a in aux] == [8, 4, 2, 1]  # 1/4 .. 1/32 of 32 x 32
        expected = task.compute_loss(outputs[task.name], targets[task.name])
        for w, prediction in zip(weights, aux, strict=True):
            expected = expected + w * task.compute_loss(_upsampled(prediction), targets[task.name])
        assert torch.allclose(losses[task.name], expected), task.name


def test_forward_tasks_keeps_the_deep_supervision(model):
    data = batch()
    outputs = forward_tasks(model, data["image"], ["semseg"])
    task = model.task("semseg")
    expected = task.compute_loss(outputs["semseg"], data["semseg"])
    for prediction in model.aux_predictions()["semseg"]:
        expected = expected + task.compute_loss(_upsampled(prediction), data["semseg"])
    assert torch.allclose(model.losses(outputs, _targets(data))["semseg"], expected)


def test_feature_propagation_follows_its_definition():
    """FPM: SE_t(conv[up(f_1); ...; up(f_T)]), SE re-computed by hand from its weights."""
    torch.manual_seed(0)
    fpm = FeaturePropagation(["a", "b"], 6, 4, reduction=2).eval()
    features = [torch.randn(1, 6, 2, 2), torch.randn(1, 6, 2, 2)]
    out = fpm(features, (4, 4))
    shared = fpm.shared(torch.cat([_upsampled(f, (4, 4)) for f in features], dim=1))
    for name, got in zip(["a", "b"], out, strict=True):
        _, down, _, up, _ = fpm.select[name].fc
        squeeze = shared.mean(dim=(-2, -1), keepdim=True)
        scale = torch.sigmoid(F.conv2d(torch.relu(F.conv2d(squeeze, down.weight, down.bias)), up.weight, up.bias))
        assert torch.allclose(got, shared * scale, atol=1e-6)


def test_the_representation_is_the_four_encoder_scales(model):
    rep = model.encode(batch()["image"])
    assert [tuple(f.shape[1:]) for f in rep.features] == [(16, 8, 8), (32, 4, 4), (64, 2, 2), (128, 1, 1)]
    assert [tuple(f.shape[1:]) for f in model.task_features(rep)] == [(8, 8, 8)] * 3 + [(16, 4, 4)] * 3 + [
        (32, 2, 2)] * 3 + [(64, 1, 1)] * 3
    shared = {id(p) for p in model.shared_parameters()}
    decoder = {id(p) for m in (model.branches, model.propagation) for p in m.parameters()}
    assert shared == {id(p) for p in model.encoder.parameters()} | decoder
    assert {id(p) for p in model.decoder_shared_parameters()} == decoder


def test_feature_level_balances_the_encoder_scales_and_trains_the_decoder(model):
    check_feature_level_on_the_encoder(model)


def test_groups_and_private_gradients(model):
    check_partition(model)
    check_private_gradients(model)


def test_info_gives_parameters_and_flops():
    check_info("mtinet_tiny")


def test_round_trips(model, tmp_path):
    check_round_trips(model, tmp_path)


def test_hrnet18_reads_the_four_raw_branches_without_downloading():
    with torch.device("meta"):
        model = mtlzoo.create_model("mtinet_hrnet18", tasks="nyud")
    assert model.encoder.out_channels == [18, 36, 72, 144] and model.encoder.reductions == [4, 8, 16, 32]
    assert model.channels == [18, 36, 72, 144]
    with torch.device("meta"):
        resnet = mtlzoo.create_model("mtinet_resnet18", tasks="nyud")
    assert resnet.encoder.out_channels[-4:] == [64, 128, 256, 512] and resnet.channels == [18, 36, 72, 144]


def test_bad_input_is_refused(model):
    with pytest.raises(ValueError, match="aux_weights must be 4 non-negative"):
        mtlzoo.create_model("mtinet_tiny", tasks=TASKS, aux_weights=[1.0, 1.0])
    with pytest.raises(ValueError, match="task_channels must be 4 positive ints"):
        mtlzoo.create_model("mtinet_tiny", tasks=TASKS, task_channels=[8, 8, 8, 0])
    with pytest.raises(ValueError, match="is not dense"):
        mtlzoo.create_model("mtinet_tiny", tasks=[{"name": "scene", "kind": "classification", "channels": 3}])
    with pytest.raises(ValueError, match="adding a task changes shared layers"):
        model.add_task({"name": "edge", "kind": "edge"})
    with pytest.raises(ValueError, match="removing a task changes shared layers"):
        model.remove_task("depth")


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
    balancer_steps("mtinet_tiny", balancer)


@pytest.mark.parametrize("balancer", ["pcgrad", "mgda_ub", "ius"])
def test_gradient_balancers_reach_every_parameter(balancer):
    """Branches and propagation sit after the representation (shared decoder): both levels must train them."""
    torch.manual_seed(0)
    model = mtlzoo.create_model("mtinet_tiny", tasks=TASKS)
    rule = mtlzoo.create_update_rule(balancer, model, lambda params: torch.optim.SGD(params, lr=0.1))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    rule.step(batch())
    if balancer != "ius":  # ius clears the gradients between its per-group steps
        assert [n for n, p in model.named_parameters() if p.grad is None] == []
    # every weight moves (conv biases in front of a batch norm get an exactly-zero gradient, and may not)
    unchanged = [n for n, p in model.named_parameters() if torch.equal(p, before[n]) and not n.endswith("0.bias")]
    assert unchanged == []


def test_config_trains_and_the_loss_falls(tmp_path):
    totals = train_config_losses("synthscenes_mtinet", tmp_path)
    assert np.mean(totals[-6:]) < 0.9 * np.mean(totals[:6])


def _documented_parameter_count(outputs, channels=(18, 36, 72, 144), head_width=64, reduction=4):
    """MTI-Net's decoder counted by hand from the diagram in docs/zoo.md: conv-BN-ReLU blocks (3x3 conv with bias),
    SE(c) = c -> c/r -> c 1x1 convs, one 3x3 message and one 3x3 gate conv per task pair and scale, 1x1 initial
    predictions, and a light head (1x1 lateral, 3x3 conv-BN without bias, 1x1 classifier) on the 4 scales."""
    T = len(outputs)

    def block(cin, cout):
        return 9 * cin * cout + cout + 2 * cout

    total = 0
    for k, c in enumerate(channels):
        cin = c if k == len(channels) - 1 else 2 * c
        total += T * (block(cin, c) + block(c, c))  # two-block branch per task
    for k in range(len(channels) - 1):
        c, mid = channels[k], channels[k] // reduction
        total += block(T * channels[k + 1], c) + T * (c * mid + mid + mid * c + c)  # FPM: shared conv + SE per task
    for o in outputs:
        total += sum(c * o + o for c in channels)  # initial predictions
        total += sum((T - 1) * 2 * (9 * c * c + c) for c in channels)  # messages and gates
        total += sum(channels) * head_width + head_width + 9 * head_width**2 + 2 * head_width + head_width * o + o
    return total


def test_hrnet18_parameter_count_matches_the_documented_structure():
    import timm

    with torch.device("meta"):
        model = mtlzoo.create_model("mtinet_hrnet18", tasks="nyud")
        backbone = timm.create_model("hrnet_w18", features_only=True, feature_location="", out_indices=(1, 2, 3, 4))
    encoder = sum(p.numel() for p in backbone.parameters())
    expected = encoder + _documented_parameter_count([t.channels for t in model.tasks])
    assert sum(p.numel() for p in model.parameters()) == expected
    assert expected == 18_488_713 and encoder == 9_562_260  # the figures mtinet_hrnet18's docstring and the docs quote


@pytest.mark.parametrize("balancer", ["pcgrad", "mgda_ub"])
def test_gradient_balancers_under_bf16_autocast(balancer):
    """The engine's per-task gradients through the deep-supervised losses under autocast, as the trainer runs it."""
    torch.manual_seed(0)
    model = mtlzoo.create_model("mtinet_tiny", tasks=TASKS)
    rule = mtlzoo.create_update_rule(balancer, model, lambda params: torch.optim.SGD(params, lr=0.1))
    before = [p.detach().clone() for p in model.parameters()]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        result = rule.step(batch())
    assert all(torch.isfinite(v) for v in result.losses.values())
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert sum(not torch.equal(p, b) for p, b in zip(model.parameters(), before, strict=True)) > len(before) // 2

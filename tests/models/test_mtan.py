"""mtan_*: shared encoder with per-task attention (Liu et al. 2019); mtan_segnet: the released SegNet MTAN."""

import numpy as np
import pytest
import torch
from family_checks import (
    TASKS,
    balancer_steps,
    batch,
    check_info,
    check_partition,
    check_private_gradients,
    check_round_trips,
    train_config_losses,
)

import mtlzoo
from mtlzoo.models.mtan import TaskAttention


@pytest.fixture
def model():
    torch.manual_seed(0)
    return mtlzoo.create_model("mtan_tiny", tasks=TASKS)


def _saturate(mask, value):
    with torch.no_grad():
        mask[-2].bias.fill_(value)  # the last BN before the sigmoid


def test_attention_masks_scale_the_shared_features():
    """a_j = sigmoid(g_j(.)) * p_j: a saturated-open mask passes p_j through, a closed one zeroes it."""
    torch.manual_seed(0)
    attention = TaskAttention([4, 8, 16]).eval()
    features = [torch.randn(1, 4, 8, 8), torch.randn(1, 8, 4, 4), torch.randn(1, 16, 2, 2)]
    for mask in attention.masks:
        _saturate(mask, 50.0)
    out = attention(features)
    for a, p in zip(out, features, strict=True):
        assert torch.allclose(a, p)
    _saturate(attention.masks[1], -50.0)
    assert torch.allclose(attention(features)[1], torch.zeros_like(features[1]), atol=1e-12)


def test_each_stage_reads_the_previous_attended_features():
    torch.manual_seed(0)
    attention = TaskAttention([4, 8]).eval()
    features = [torch.randn(1, 4, 8, 8), torch.randn(1, 8, 4, 4)]
    before = attention(features)[1]
    with torch.no_grad():
        attention.masks[0][-2].bias.add_(1.0)
    assert not torch.allclose(attention(features)[1], before)


def test_groups_and_private_gradients(model):
    check_partition(model)
    assert {id(p) for p in model.shared_parameters()} == {id(p) for p in model.encoder.parameters()}
    check_private_gradients(model)


def test_info_gives_parameters_and_flops():
    check_info("mtan_tiny")
    check_info("mtan_segnet")

def test_round_trips(model, tmp_path):
    check_round_trips(model, tmp_path)


def test_add_and_remove_task(model):
    model.add_task({"name": "edge", "kind": "edge"})
    assert list(model.attention) == model.task_names
    check_partition(model)
    assert model(batch()["image"])["edge"].shape == (2, 1, 32, 32)
    model.remove_task("semseg")
    assert list(model.attention) == ["depth", "normals", "edge"]


def test_frozen_task_keeps_its_attention_in_eval_mode(model):
    model.freeze_encoder()
    model.freeze_tasks(["depth"])
    model.train()
    assert not model.attention["depth"].training and model.attention["semseg"].training
    assert not model.encoder.training


@pytest.mark.parametrize("balancer", mtlzoo.list_balancers())
def test_every_balancer_at_both_levels(balancer):
    balancer_steps("mtan_tiny", balancer)


def test_config_trains_and_the_loss_falls(tmp_path):
    totals = train_config_losses("synthscenes_mtan", tmp_path)
    assert np.mean(totals[-6:]) < 0.9 * np.mean(totals[:6])


# ---- mtan_segnet ------------------------------------------------------------------------------------------------
NYUV2 = [13, 1, 3]  # semseg, depth, normals output channels of the released model
FILTERS = [64, 128, 256, 512, 512]


def _released_parameter_count(outputs=NYUV2, in_chans=3):
    """Parameters of lorenmt/mtan im2im_pred/model_segnet_mtan.py, counted from its layer list by hand:
    conv_layer(a, b) = 3x3 conv with bias + BN; att_layer(a, b, c) = 1x1 conv + BN + 1x1 conv + BN;
    pred layer = 3x3 conv (a -> a) + 1x1 conv (a -> n), both with bias; plus the 3 logsigma scalars."""
    f = FILTERS

    def conv(a, b):
        return 9 * a * b + b + 2 * b

    def att(a, b, c):
        return a * b + b + 2 * b + b * c + c + 2 * c

    total = conv(in_chans, f[0]) + conv(f[0], f[0]) + sum(conv(f[i], f[i + 1]) + conv(f[i + 1], f[i]) for i in range(4))
    total += conv(f[0], f[0]) * 2 + conv(f[1], f[1]) + conv(f[0], f[0])  # conv_block_enc / _dec, i = 0 and 1
    total += sum(2 * conv(f[i + 1], f[i + 1]) + 2 * conv(f[i], f[i]) for i in range(1, 4))
    tasks = len(outputs)
    total += tasks * (att(f[0], f[0], f[0]) + att(2 * f[0], f[0], f[0]))
    total += tasks * sum(att(2 * f[i + 1], f[i + 1], f[i + 1]) + att(f[i + 1] + f[i], f[i], f[i]) for i in range(4))
    total += conv(f[0], f[1]) + conv(f[0], f[0])
    total += sum(conv(f[i + 1], f[i + 2]) + conv(f[i + 1], f[i]) for i in range(3)) + 2 * conv(f[4], f[4])
    total += sum(9 * f[0] * f[0] + f[0] + f[0] * n + n for n in outputs)
    return total + 3


def test_segnet_parameter_count_matches_the_release():
    with torch.device("meta"):
        model = mtlzoo.create_model("mtan_segnet", tasks="nyuv2_mtan")
    assert [t.channels for t in model.tasks] == NYUV2
    released = _released_parameter_count()
    assert released == 44_229_076  # the "~44.2 M" the NYUv2 papers cite
    assert sum(p.numel() for p in model.parameters()) == released - 3  # logsigma lives in the uw balancer
    check_partition(model)


def test_segnet_forward_and_input_check():
    torch.manual_seed(0)
    model = mtlzoo.create_model("mtan_segnet", tasks=TASKS)
    out = model(batch(size=64)["image"])
    assert {k: tuple(v.shape) for k, v in out.items()} == {"semseg": (2, 5, 64, 64), "depth": (2, 1, 64, 64),
                                                            "normals": (2, 3, 64, 64)}
    with pytest.raises(ValueError, match="divisible by 32"):
        model(torch.randn(1, 3, 48, 64))
    with pytest.raises(ValueError, match="dense"):
        model.add_task({"name": "scene", "kind": "classification", "channels": 4})


@pytest.mark.slow
def test_segnet_private_gradients_round_trip_and_levels(tmp_path):
    torch.manual_seed(0)
    model = mtlzoo.create_model("mtan_segnet", tasks=TASKS)
    check_private_gradients(model)
    check_round_trips(model, tmp_path)
    balancer_steps("mtan_segnet", "pcgrad", steps=1)
    with pytest.raises(ValueError, match="no shared representation"):
        balancer_steps("mtan_segnet", "mgda_ub", steps=1)


def test_generic_entry_takes_any_encoder():
    model = mtlzoo.create_model("mtan", tasks=TASKS, encoder="resnet18", output_stride=16, head="light", head_width=16)
    assert model.config["encoder"] == "resnet18"
    assert model(batch()["image"])["normals"].shape == (2, 3, 32, 32)
    smp = mtlzoo.create_model("mtan", tasks=TASKS, encoder="smp:resnet18", output_stride=32, head="light")
    assert smp(batch()["image"])["depth"].shape == (2, 1, 32, 32)

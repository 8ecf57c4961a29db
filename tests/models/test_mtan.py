"""mtan_*: shared encoder with per-task attention (Liu et al. 2019), the released ResNet MTAN by default (checked
against a transcription of LibMTL's forward in test_mtan_libmtl_reference.py); mtan_segnet: the released SegNet MTAN."""

import numpy as np
import pytest
import torch
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
from mtlzoo.models.mtan import BasicBlock, Bottleneck, TaskAttention


@pytest.fixture
def model():
    torch.manual_seed(0)
    return mtlzoo.create_model("mtan_tiny", tasks=TASKS)


def _saturate(mask, value):
    with torch.no_grad():
        mask[-2].bias.fill_(value)  # the last BN before the sigmoid


def _count(name, tasks="nyud", **kwargs):
    with torch.device("meta"):
        return sum(p.numel() for p in mtlzoo.create_model(name, tasks=tasks, **kwargs).parameters())


def test_attention_masks_scale_the_shared_features():
    """structure='stages': a_j = sigmoid(g_j(.)) * p_j: a saturated-open mask passes p_j through, a closed one
    zeroes it."""
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
    """The carry blocks h_j are shared by the tasks (after the representation); masks and head are the task's."""
    check_partition(model)
    carry = {id(p) for p in model.carry.parameters()}
    assert {id(p) for p in model.shared_parameters()} == {id(p) for p in model.encoder.parameters()} | carry
    assert {id(p) for p in model.decoder_shared_parameters()} == carry
    assert {id(p) for p in model.task_parameters("depth")} == {
        id(p) for p in [*model.attention["depth"].parameters(), *model.heads["depth"].parameters()]}
    check_private_gradients(model)


def test_released_structure_on_the_tiny_encoder(model):
    """Four levels (no stem), masks from each stage's first conv block gating its second, basic carry blocks
    16 -> 32 -> 64 -> 128, hidden width C (reduction 1), and the head reads a_4 only."""
    assert model.structure == "resnet" and model.reduction == 1 and model.channels == [16, 32, 64, 128]
    assert [type(b) for b in model.carry] == [BasicBlock] * 3
    masks = model.attention["semseg"].masks
    assert [(m[0].in_channels, m[0].out_channels) for m in masks] == [(16, 16), (64, 32), (128, 64), (256, 128)]
    assert len(model.attention["semseg"].projections) == 0
    rep = model.encode(batch()["image"])
    assert [tuple(f.shape[1:]) for f in rep.features] == [(16, 8, 8)] * 2 + [(32, 4, 4)] * 2 + [(64, 2, 2)] * 2 + [
        (128, 1, 1)] * 2
    assert [tuple(f.shape) for f in model.head_features(rep, model.task("depth"))] == [(2, 128, 1, 1)]


def test_feature_level_balances_the_encoder_tensors_and_trains_the_carry_blocks(model):
    check_feature_level_on_the_encoder(model, size=64)  # at 32 px MGDA-UB happens to give one task weight 0


def test_stages_structure_keeps_the_previous_model():
    """structure='stages' (the default before 2026-12-06): per-task carry bottlenecks, every stage attended, the
    encoder alone is shared; the nyud parameter count it had."""
    model = mtlzoo.create_model("mtan_tiny", tasks=TASKS, structure="stages")
    assert model.reduction == 4 and model.decoder_shared_parameters() == []
    assert [type(b) for b in model.attention["depth"].projections] == [Bottleneck] * 3
    assert {id(p) for p in model.shared_parameters()} == {id(p) for p in model.encoder.parameters()}
    assert len(model.head_features(model.encode(batch()["image"]), model.task("depth"))) == 4
    check_partition(model)
    assert _count("mtan_tiny", structure="stages") == 560_589
    assert _count("mtan", structure="stages") == 136_824_365
    with pytest.raises(ValueError, match="mtan structure 'segnet': accepted"):
        mtlzoo.create_model("mtan_tiny", tasks=TASKS, structure="segnet")


def test_parameter_counts_on_nyud():
    """The figures docs/zoo.md quotes. On ResNet-50 the released structure holds one carry block per level for all
    tasks where 'stages' held one per task (8.03 M fewer per task, and no stem attention)."""
    assert _count("mtan") == 112_655_469
    assert _count("mtan_resnet18") == 39_082_605  # LibMTL's ResNet-18 MTAN: masks at full width (reduction 1)
    assert _count("mtan_tiny") == 917_373
    one, two = ([{"name": n, "kind": "depth"} for n in names] for names in (["a"], ["a", "b"]))
    per_task = _count("mtan", two) - _count("mtan", one)
    per_task_stages = _count("mtan", two, structure="stages") - _count("mtan", one, structure="stages")
    assert per_task_stages - per_task == 8_025_072


def test_info_gives_parameters_and_flops():
    check_info("mtan_tiny")
    check_info("mtan_segnet")

def test_round_trips(model, tmp_path):
    check_round_trips(model, tmp_path)
    check_round_trips(mtlzoo.create_model("mtan_tiny", tasks=TASKS, structure="stages"), tmp_path / "stages")


def test_add_and_remove_task(model):
    model.add_task({"name": "edge", "kind": "edge"})
    assert list(model.attention) == model.task_names
    check_partition(model)
    assert model(batch()["image"])["edge"].shape == (2, 1, 32, 32)
    model.remove_task("semseg")
    assert list(model.attention) == ["depth", "normals", "edge"]
    assert model(batch()["image"])["edge"].shape == (2, 1, 32, 32)


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


def test_generic_entry_takes_resnets_and_any_encoder_with_stages():
    model = mtlzoo.create_model("mtan", tasks=TASKS, encoder="resnet18", output_stride=16, head="light", head_width=16)
    assert model.config["encoder"] == "resnet18" and model.structure == "resnet"
    assert model(batch()["image"])["normals"].shape == (2, 3, 32, 32)
    smp = mtlzoo.create_model("mtan", tasks=TASKS, encoder="smp:resnet18", output_stride=32, head="light")
    assert smp(batch()["image"])["depth"].shape == (2, 1, 32, 32)
    assert len(smp.head_features(smp.encode(batch()["image"]), smp.task("depth"))) == 1
    with pytest.raises(ValueError, match="needs a ResNet encoder .* got 'efficientnet_b0'; use structure='stages'"):
        mtlzoo.create_model("mtan", tasks=TASKS, encoder="efficientnet_b0", output_stride=32)
    other = mtlzoo.create_model("mtan", tasks=TASKS, encoder="efficientnet_b0", output_stride=32, head="light",
                                structure="stages")
    assert other(batch()["image"])["semseg"].shape == (2, 5, 32, 32)

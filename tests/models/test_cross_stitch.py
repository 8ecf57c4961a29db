"""cross_stitch_*: columns joined by cross-stitch units (Misra et al. 2016); the staged encoder they run on."""

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
from mtlzoo.models.cross_stitch import CrossStitchNetwork, CrossStitchUnit
from mtlzoo.models.encoders import create_encoder
from mtlzoo.models.staged import StagedEncoder


@pytest.fixture
def model():
    torch.manual_seed(0)
    return mtlzoo.create_model("cross_stitch_tiny", tasks=TASKS)


def test_unit_initialisation_is_near_identity():
    unit = CrossStitchUnit(3, channels=4)
    expected = np.array([[0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.05, 0.05, 0.9]])
    for c in range(4):
        np.testing.assert_allclose(unit.alpha[c].detach().numpy(), expected, rtol=1e-6)
    assert torch.equal(CrossStitchUnit(1, 2).alpha, torch.ones(2, 1, 1))
    with pytest.raises(ValueError, match="self_weight"):
        CrossStitchUnit(2, 2, self_weight=1.5)


def test_unit_mixes_each_channel_as_the_paper_equation():
    """x'_t[c] = sum_s alpha[c, t, s] x_s[c], transcribed as loops in numpy."""
    torch.manual_seed(1)
    unit = CrossStitchUnit(3, channels=2)
    with torch.no_grad():
        unit.alpha.copy_(torch.randn(2, 3, 3))
    xs = [torch.randn(2, 2, 3, 3) for _ in range(3)]
    out = [o.detach().numpy() for o in unit(xs)]
    alpha, arrays = unit.alpha.detach().numpy(), [x.numpy() for x in xs]
    for t in range(3):
        for c in range(2):
            expected = sum(alpha[c, t, s] * arrays[s][:, c] for s in range(3))
            np.testing.assert_allclose(out[t][:, c], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("encoder, kwargs", [("tiny", {}), ("resnet18", {"output_stride": 8})])
def test_staged_encoder_reproduces_the_encoder(encoder, kwargs):
    torch.manual_seed(0)
    staged = StagedEncoder(encoder, **kwargs).eval()
    reference = create_encoder(encoder, **kwargs).eval()
    reference.load_state_dict(staged.encoder.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(staged(x), reference(x), strict=True):
            assert torch.equal(a, b)
    assert list(staged.state_dict()) == ["encoder." + k for k in reference.state_dict()]


def test_smp_encoders_are_refused_with_a_clear_error():
    with pytest.raises(ValueError, match="stage by stage"):
        mtlzoo.create_model("cross_stitch", tasks=TASKS, encoder="smp:resnet18")


def test_groups_and_private_gradients(model):
    check_partition(model)
    assert {id(p) for p in model.shared_parameters()} == {id(p) for p in model.encoder.parameters()}
    check_private_gradients(model)


def test_info_gives_parameters_and_flops():
    check_info("cross_stitch_tiny")

def test_round_trips(model, tmp_path):
    check_round_trips(model, tmp_path)


def test_from_single_task_copies_the_trained_columns_and_heads():
    """With identity units (self_weight=1) the cross-stitch network computes exactly what the stl model does."""
    torch.manual_seed(0)
    single = mtlzoo.create_model("stl_tiny", tasks=TASKS).eval()
    stitched = CrossStitchNetwork.from_single_task(single, self_weight=1.0).eval()
    x = batch()["image"]
    with torch.no_grad():
        expected, got = single(x), stitched(x)
    for task in single.task_names:
        assert torch.allclose(expected[task], got[task], atol=1e-5)
    assert stitched.config["architecture"] == "cross_stitch" and stitched.config["encoder"] == "tiny"
    assert mtlzoo.models.create_model_from_config(stitched.config).config == stitched.config
    with pytest.raises(TypeError, match="single-task model"):
        CrossStitchNetwork.from_single_task(mtlzoo.create_model("hps_tiny", tasks=TASKS))


def test_task_list_is_fixed(model):
    with pytest.raises(ValueError, match="fixed set of task columns"):
        model.add_task({"name": "edge", "kind": "edge"})
    with pytest.raises(ValueError, match="fixed set of task columns"):
        model.remove_task("depth")


@pytest.mark.parametrize("balancer", mtlzoo.list_balancers())
def test_every_balancer_at_the_parameter_level_and_feature_level_refused(balancer):
    if mtlzoo.create_balancer(balancer).level == "features":
        with pytest.raises(ValueError, match="no shared representation"):
            balancer_steps("cross_stitch_tiny", balancer)
    else:
        balancer_steps("cross_stitch_tiny", balancer)


def test_config_trains_and_the_loss_falls(tmp_path):
    totals = train_config_losses("synthscenes_cross_stitch", tmp_path)
    assert np.mean(totals[-6:]) < 0.9 * np.mean(totals[:6])


def test_staged_encoder_uses_modules_replaced_after_construction():
    """SyncBatchNorm conversion (train.sync_bn) replaces modules; the stages must run the replacements."""
    torch.manual_seed(0)
    staged = StagedEncoder("resnet18", output_stride=8)
    staged.encoder.model.bn1 = torch.nn.Identity()
    calls = []
    staged.encoder.model.bn1.register_forward_hook(lambda *args: calls.append(1))
    staged(torch.randn(1, 3, 32, 32))
    assert calls == [1]


def test_units_on_a_resnet_sit_after_the_stem_and_the_four_layers():
    """As the module docstring says: five units on a timm ResNet (the stem one is mtlzoo's extra), four on tiny."""
    with torch.device("meta"):
        model = mtlzoo.create_model("cross_stitch_resnet18", tasks=TASKS)
    column = model.encoder.columns[0]
    assert [stage[-1] for stage in column._stages] == ["act1", "layer1", "layer2", "layer3", "layer4"]
    assert [unit.alpha.shape[0] for unit in model.encoder.units] == [64, 64, 128, 256, 512]
    assert len(mtlzoo.create_model("cross_stitch_tiny", tasks=TASKS).encoder.units) == 4


def test_generic_entry_takes_any_encoder():
    model = mtlzoo.create_model("cross_stitch", tasks=TASKS, encoder="resnet18", output_stride=16, head="light",
                                head_width=16)
    assert model.config["encoder"] == "resnet18"
    assert model(batch()["image"])["normals"].shape == (2, 3, 32, 32)


@pytest.mark.parametrize("arch", ["cross_stitch_tiny", "nddr_tiny"])
def test_the_tiny_columns_take_a_width(arch):
    """width sets the first-stage channels of each tiny column (16 by default); other encoders refuse it."""
    import mtlzoo

    narrow = mtlzoo.create_model(arch, tasks="synthscenes", width=8)
    default = mtlzoo.create_model(arch, tasks="synthscenes")
    assert [c.out_channels for c in narrow.encoder.columns][0] == [8, 16, 32, 64]
    assert [c.out_channels for c in default.encoder.columns][0] == [16, 32, 64, 128]
    assert narrow.config["width"] == 8  # what config.json keeps, so that the weights rebuild narrow
    with pytest.raises(ValueError, match=r"width applies to encoder='tiny' only.*encoder='resnet18'"):
        mtlzoo.create_model(arch.replace("_tiny", ""), tasks="synthscenes", encoder="resnet18", width=8)

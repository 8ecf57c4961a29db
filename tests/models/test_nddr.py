"""nddr_*: columns fused by NDDR layers (Gao et al. 2019): 1x1 conv over the concatenation + BN + ReLU."""

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
from mtlzoo.models.nddr import NDDRLayer, NDDRNetwork


@pytest.fixture
def model():
    torch.manual_seed(0)
    return mtlzoo.create_model("nddr_tiny", tasks=TASKS)


def test_diagonal_initialisation():
    layer = NDDRLayer(3, channels=4, alpha=0.9, beta=0.1)
    for t, conv in enumerate(layer.convs):
        w = conv.weight.detach()[:, :, 0, 0].numpy()
        assert w.shape == (4, 12)
        for s in range(3):
            np.testing.assert_allclose(w[:, 4 * s:4 * (s + 1)], np.eye(4) * (0.9 if s == t else 0.05), rtol=1e-6)


def test_layer_is_conv_bn_relu_of_the_concatenation():
    """x'_t = ReLU(BN_t(W_t [x_1; ...; x_T])), transcribed with numpy (BN in eval with its running statistics)."""
    torch.manual_seed(2)
    layer = NDDRLayer(2, channels=3).eval()
    with torch.no_grad():
        for conv, norm in zip(layer.convs, layer.norms, strict=True):
            conv.weight.normal_()
            norm.running_mean.normal_()
            norm.running_var.uniform_(0.5, 2.0)
            norm.weight.normal_()
            norm.bias.normal_()
    xs = [torch.randn(2, 3, 4, 4) for _ in range(2)]
    out = layer(xs)
    cat = np.concatenate([x.numpy() for x in xs], axis=1)
    for t, (conv, norm) in enumerate(zip(layer.convs, layer.norms, strict=True)):
        w = conv.weight.detach().numpy()[:, :, 0, 0]
        y = np.einsum("oc,bchw->bohw", w, cat)
        mean, var = norm.running_mean.numpy()[:, None, None], norm.running_var.numpy()[:, None, None]
        gamma, beta = norm.weight.detach().numpy()[:, None, None], norm.bias.detach().numpy()[:, None, None]
        expected = np.maximum((y - mean) / np.sqrt(var + norm.eps) * gamma + beta, 0)
        np.testing.assert_allclose(out[t].detach().numpy(), expected, rtol=1e-4, atol=1e-5)


def test_groups_and_private_gradients(model):
    check_partition(model)
    assert {id(p) for p in model.shared_parameters()} == {id(p) for p in model.encoder.parameters()}
    check_private_gradients(model)


def test_info_gives_parameters_and_flops():
    check_info("nddr_tiny")

def test_round_trips(model, tmp_path):
    check_round_trips(model, tmp_path)


def test_from_single_task_copies_columns_and_heads():
    torch.manual_seed(0)
    single = mtlzoo.create_model("stl_tiny", tasks=TASKS)
    fused = NDDRNetwork.from_single_task(single, alpha=0.8, beta=0.2)
    for column, task in zip(fused.encoder.columns, single.task_names, strict=True):
        for a, b in zip(column.encoder.parameters(), single.encoder.columns[task].parameters(), strict=True):
            assert torch.equal(a, b)
    assert fused.config["alpha"] == 0.8 and fused.config["architecture"] == "nddr"
    assert torch.allclose(fused.encoder.units[0].convs[0].weight[0, 0], torch.tensor(0.8))
    assert fused(batch()["image"])["depth"].shape == (2, 1, 32, 32)


@pytest.mark.parametrize("balancer", mtlzoo.list_balancers())
def test_every_balancer_at_the_parameter_level_and_feature_level_refused(balancer):
    if mtlzoo.create_balancer(balancer).level == "features":
        with pytest.raises(ValueError, match="no shared representation"):
            balancer_steps("nddr_tiny", balancer)
    else:
        balancer_steps("nddr_tiny", balancer)


def test_config_trains_and_the_loss_falls(tmp_path):
    totals = train_config_losses("synthscenes_nddr", tmp_path)
    assert np.mean(totals[-6:]) < 0.9 * np.mean(totals[:6])


def test_generic_entry_takes_any_encoder():
    model = mtlzoo.create_model("nddr", tasks=TASKS, encoder="resnet18", output_stride=16, head="light", head_width=16)
    assert model.config["encoder"] == "resnet18"
    assert model(batch()["image"])["normals"].shape == (2, 3, 32, 32)

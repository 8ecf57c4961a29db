"""model_info: parameter counts partition the model; FLOPs match a hand count and split into encoder + heads."""

import pytest
import torch
from torch import nn

from mtlzoo.models import create_model
from mtlzoo.models.info import count_flops, format_info, model_info


def test_parameters_partition_the_model():
    info = model_info("cs_tiny", tasks="nyud", input_size=(32, 32))
    assert info["params"] == info["params_shared"] + sum(info["params_per_task"].values())
    assert info["tasks"] == ["semseg", "depth", "normals", "edge"] and info["input_size"] == [32, 32]
    model = create_model("cs_tiny", tasks="nyud")
    assert info["params"] == sum(p.numel() for p in model.parameters())


def test_flops_split_into_encoder_and_heads_and_scale_with_area():
    small = model_info("squadnet_tiny", tasks="nyud", input_size=(32, 32), width=8, head="light")
    large = model_info("squadnet_tiny", tasks="nyud", input_size=(64, 64), width=8, head="light")
    assert small["flops"] == small["flops_encoder"] + sum(small["flops_per_task_head"].values())
    assert large["flops"] == 4 * small["flops"]
    assert large["gflops"] == pytest.approx(large["flops"] / 1e9)
    assert "squadnet_tiny" in format_info(small) and "GFLOPs" in format_info(small)


def test_flops_equal_hand_count_for_one_conv():
    class OneConv(nn.Module):
        in_chans = 3

        def __init__(self):
            super().__init__()
            self.encoder = nn.Conv2d(3, 8, 3, padding=1, bias=False)

        def forward(self, x):
            return self.encoder(x)

    flops = count_flops(OneConv(), (10, 12), batch_size=2)
    assert flops["flops"] == 2 * 8 * 3 * 9 * 10 * 12 == flops["flops_encoder"]


def test_built_model_and_errors():
    model = create_model("hps_tiny", tasks="nyud")
    assert model_info(model, input_size=(32, 32))["model"] == "hps_tiny"
    assert model.training  # info leaves the mode as it was
    with pytest.raises(TypeError, match="model name"):
        model_info(model, width=8)
    with pytest.raises(ValueError, match="input_size"):
        count_flops(model, (32,))
    with pytest.raises(ValueError, match="Did you mean"):
        model_info("squadnet_tinny")
    assert torch.is_grad_enabled()

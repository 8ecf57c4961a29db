"""Head builder: the ASPP options (rates, pooling BN, dropout) and their checks; the default ASPP is unchanged."""

import pytest
import torch
from torch import nn

import mtlzoo
from mtlzoo.models.heads import ASPPHead, build_head

SEMSEG = mtlzoo.Task("semseg", "segmentation", channels=5)


def _kinds(module):
    return [type(m).__name__ for m in module]


def test_default_aspp_keeps_the_light_variant():
    """hps_* and cs_* build ASPP without options: rates 6/12/18, pooling conv with bias and no BN, no dropout."""
    head = build_head(SEMSEG, [16], "aspp", 32)
    assert [branch[0].dilation for branch in head.branches[1:]] == [(6, 6), (12, 12), (18, 18)]
    assert _kinds(head.pool) == ["AdaptiveAvgPool2d", "Conv2d", "ReLU"] and head.pool[1].bias is not None
    assert not any(isinstance(m, nn.Dropout) for m in head.modules())


def test_release_options_build_the_deeplab_v3_head():
    head = build_head(SEMSEG, [16], "aspp", 32, {"rates": [12, 24, 36], "pool_norm": True, "dropout": 0.5})
    assert [branch[0].dilation for branch in head.branches[1:]] == [(12, 12), (24, 24), (36, 36)]
    assert _kinds(head.pool) == ["AdaptiveAvgPool2d", "Conv2d", "BatchNorm2d", "ReLU"] and head.pool[1].bias is None
    assert _kinds(head.project) == ["Conv2d", "BatchNorm2d", "ReLU", "Dropout"] and head.project[3].p == 0.5
    out = head.eval()([torch.randn(2, 16, 6, 8)], (24, 32))
    assert out.shape == (2, 5, 24, 32)


def test_options_apply_to_the_default_head_only():
    light = mtlzoo.Task("parts", "parts", channels=3, head="light")
    head = build_head(light, [16], "aspp", None, {"rates": [12, 24, 36]})
    assert type(head).__name__ == "LightHead"
    model = mtlzoo.create_model("squadnet_tiny", tasks=[SEMSEG, light], width=8)
    assert type(model.heads["parts"]).__name__ == "LightHead" and model.heads["semseg"].project[3].p == 0.5
    lighter = mtlzoo.create_model("squadnet_tiny", tasks=[SEMSEG], width=8, head_options={})
    assert _kinds(lighter.heads["semseg"].pool) == ["AdaptiveAvgPool2d", "Conv2d", "ReLU"]


def test_bad_options_are_rejected():
    with pytest.raises(TypeError, match=r"\['dilations'\].*'aspp' head"):
        build_head(SEMSEG, [16], "aspp", None, {"dilations": [12, 24, 36]})
    with pytest.raises(TypeError, match="'light' head"):
        mtlzoo.create_model("squadnet_tiny", tasks=[SEMSEG], width=8, head="light", head_options={"rates": [6]})
    with pytest.raises(ValueError, match="rates must be positive ints"):
        ASPPHead([16], 5, rates=[12, 0])
    with pytest.raises(ValueError, match="rates must be positive ints"):
        ASPPHead([16], 5, rates=[])
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\)"):
        ASPPHead([16], 5, dropout=1.0)

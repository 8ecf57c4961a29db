import pytest
import torch

from mtlzoo.models.encoders import create_encoder, probe_shapes


@pytest.mark.parametrize("output_stride", [8, 16, 32])
def test_tiny_encoder_output_stride(output_stride):
    encoder = create_encoder("tiny", output_stride=output_stride)
    shapes = probe_shapes(encoder, size=64)
    assert [s[1] for s in shapes] == encoder.out_channels
    assert shapes[-1][-1] == 64 // output_stride
    assert encoder.reductions[-1] == output_stride


@pytest.mark.parametrize("name", ["resnet18", "timm:resnet18"])
def test_timm_encoder_dilates_to_the_requested_stride(name):
    encoder = create_encoder(name, output_stride=8)
    shapes = probe_shapes(encoder, size=64)
    assert [s[1] for s in shapes] == encoder.out_channels == [64, 64, 128, 256, 512]
    assert shapes[-1][-1] == 8


def test_smp_encoder_drops_the_identity_stage():
    encoder = create_encoder("smp:resnet18", output_stride=16)
    shapes = probe_shapes(encoder, size=64)
    assert [s[1] for s in shapes] == encoder.out_channels == [64, 64, 128, 256, 512]
    assert shapes[-1][-1] == 4


def test_encoders_take_other_input_channels():
    encoder = create_encoder("resnet18", in_chans=1)
    assert encoder(torch.randn(2, 1, 32, 32))[-1].shape[1] == 512


@pytest.mark.parametrize("name, match", [
    ("resnet19", "resnet18"), ("smp:resnet19", "resnet18"),
])
def test_unknown_encoders_list_close_names(name, match):
    with pytest.raises(ValueError, match=match):
        create_encoder(name)


def test_bad_output_stride_and_weights_are_explained():
    with pytest.raises(ValueError, match="8, 16, 32"):
        create_encoder("tiny", output_stride=4)
    with pytest.raises(ValueError, match="no pretrained"):
        create_encoder("tiny", encoder_weights="imagenet")

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


def test_tagged_timm_names_are_encoders():
    encoder = create_encoder("resnet18.a1_in1k", output_stride=16)
    assert encoder.out_channels == [64, 64, 128, 256, 512] and probe_shapes(encoder, size=64)[-1][-1] == 4
    with pytest.raises(ValueError, match="resnet18.a1_in1k"):
        create_encoder("resnet18.a1_in1kk")


@pytest.mark.parametrize("name", ["resnet18", "smp:resnet18"])
def test_unknown_encoder_weights_are_refused(name):
    with pytest.raises(ValueError, match=r"encoder_weights.*'imagenett'.*imagenet"):
        create_encoder(name, encoder_weights="imagenett")


@pytest.mark.parametrize("name, match", [
    ("resnet18", r"timm/resnet18\.a1_in1k.*offline.*`hf download timm/resnet18\.a1_in1k`"),
    ("resnet18.tv_in1k", r"timm/resnet18\.tv_in1k.*offline.*`hf download timm/resnet18\.tv_in1k`"),
    ("smp:resnet18", r"smp-hub/resnet18\.imagenet.*offline.*`hf download smp-hub/resnet18\.imagenet --revision \w+`"),
])
def test_offline_imagenet_weights_say_what_to_prefetch(monkeypatch, tmp_path, name, match):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("torch.hub._hub_dir", str(tmp_path / "torch"))
    with pytest.raises(FileNotFoundError, match=match) as info:
        create_encoder(name, encoder_weights="imagenet")
    assert "\n" not in str(info.value)

"""Encoders that return a feature pyramid: timm ``features_only`` models, smp encoders, a tiny test encoder."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mtlzoo.registry import unknown_name_error

_OUTPUT_STRIDES = (8, 16, 32)


class Encoder(nn.Module):
    """A backbone returning a list of feature maps, finest first, with their channels and reductions."""

    out_channels: list[int]
    reductions: list[int]

    def forward(self, x: Tensor) -> list[Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError


class TinyEncoder(Encoder):
    """A four-stage conv encoder (16-32-64-128 channels) for tests and the CPU demo; no pretrained weights."""

    def __init__(self, in_chans: int = 3, width: int = 16, output_stride: int = 32) -> None:
        super().__init__()
        widths = [width, width * 2, width * 4, width * 8]
        self.stages = nn.ModuleList()
        channels, reduction, dilation = in_chans, 1, 1
        self.out_channels, self.reductions = [], []
        for i, out in enumerate(widths):
            stride = 4 if i == 0 else 2
            if reduction * stride > output_stride:
                dilation, stride = dilation * stride, 1
            self.stages.append(nn.Sequential(
                nn.Conv2d(channels, out, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
                nn.BatchNorm2d(out), nn.ReLU(inplace=True),
                nn.Conv2d(out, out, 3, padding=dilation, dilation=dilation, bias=False),
                nn.BatchNorm2d(out), nn.ReLU(inplace=True),
            ))
            channels, reduction = out, reduction * stride
            self.out_channels.append(out)
            self.reductions.append(reduction)

    def forward(self, x: Tensor) -> list[Tensor]:
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


class TimmEncoder(Encoder):
    """Any timm model with ``features_only=True``; ``output_stride`` dilates the last stages."""

    def __init__(self, name: str, in_chans: int = 3, output_stride: int = 32,
                 encoder_weights: str | None = None) -> None:
        super().__init__()
        import timm

        if name not in timm.list_models():
            raise unknown_name_error("timm encoder", name, timm.list_models())
        kwargs = {"output_stride": output_stride} if output_stride != 32 else {}
        try:
            self.model = timm.create_model(name, features_only=True, pretrained=encoder_weights is not None,
                                           in_chans=in_chans, **kwargs)
        except TypeError as error:
            raise ValueError(f"timm encoder {name!r} does not support output_stride={output_stride}; use 32") from error
        info = self.model.feature_info
        self.out_channels = list(info.channels())
        self.reductions = [min(r, output_stride) for r in info.reduction()]

    def forward(self, x: Tensor) -> list[Tensor]:
        return list(self.model(x))


class SmpEncoder(Encoder):
    """A segmentation-models-pytorch encoder (``smp:<name>``); the identity stage 0 is dropped."""

    def __init__(self, name: str, in_chans: int = 3, output_stride: int = 32,
                 encoder_weights: str | None = None) -> None:
        super().__init__()
        import segmentation_models_pytorch as smp

        available = smp.encoders.get_encoder_names()
        if name not in available:
            raise unknown_name_error("smp encoder", name, available)
        self.model = smp.encoders.get_encoder(name, in_channels=in_chans, depth=5, weights=encoder_weights,
                                              output_stride=output_stride)
        channels = list(self.model.out_channels)
        self.out_channels = channels[1:]
        self.reductions = [min(2**i, output_stride) for i in range(1, len(channels))]

    def forward(self, x: Tensor) -> list[Tensor]:
        return list(self.model(x))[1:]


def create_encoder(name: str, in_chans: int = 3, output_stride: int = 32,
                   encoder_weights: str | None = None, **kwargs) -> Encoder:
    """Build an encoder from ``tiny``, a timm name (optionally ``timm:``-prefixed) or ``smp:<name>``.

    Weights are loaded only when ``encoder_weights`` is given ("imagenet" etc.), so nothing
    touches the network by default.
    """
    if output_stride not in _OUTPUT_STRIDES:
        raise ValueError(f"output_stride must be one of {_OUTPUT_STRIDES}, got {output_stride!r}")
    if name == "tiny":
        if encoder_weights is not None:
            raise ValueError("the 'tiny' encoder has no pretrained weights; pass encoder_weights=None")
        return TinyEncoder(in_chans, output_stride=output_stride, **kwargs)
    if name.startswith("smp:"):
        return SmpEncoder(name[4:], in_chans, output_stride, encoder_weights)
    return TimmEncoder(name.removeprefix("timm:"), in_chans, output_stride, encoder_weights)


@torch.no_grad()
def probe_shapes(encoder: Encoder, in_chans: int = 3, size: int = 64) -> list[tuple[int, ...]]:
    """Feature shapes for a dummy input; used in tests and ``info``."""
    was_training = encoder.training
    encoder.eval()
    shapes = [tuple(f.shape) for f in encoder(torch.zeros(1, in_chans, size, size))]
    encoder.train(was_training)
    return shapes

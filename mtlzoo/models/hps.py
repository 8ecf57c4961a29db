"""Hard parameter sharing: one shared encoder, one head per task."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from mtlzoo.models.base import MultiTaskModel
from mtlzoo.models.encoders import create_encoder
from mtlzoo.models.factory import register_model
from mtlzoo.tasks import Task

TaskSpec = str | Iterable[Task | Mapping[str, Any]]


class HardParameterSharing(MultiTaskModel):
    """Any timm / smp / tiny encoder shared by all tasks, with per-task heads (ASPP by default)."""

    def __init__(self, tasks: TaskSpec, encoder: str = "resnet50", output_stride: int = 8,
                 encoder_weights: str | None = None, head: str | None = None, head_width: int | None = None,
                 in_chans: int = 3) -> None:
        super().__init__(tasks, head=head, head_width=head_width, in_chans=in_chans)
        self.encoder = create_encoder(encoder, in_chans=in_chans, output_stride=output_stride,
                                      encoder_weights=encoder_weights)
        self.build_heads()


@register_model
def hps(tasks: TaskSpec, encoder: str = "resnet50", **kwargs: Any) -> HardParameterSharing:
    """Hard parameter sharing on any encoder: ``encoder="convnext_small"``, ``"smp:mit_b0"``..."""
    return HardParameterSharing(tasks, encoder=encoder, **kwargs)


@register_model
def hps_tiny(tasks: TaskSpec, **kwargs: Any) -> HardParameterSharing:
    """Tiny 4-stage conv encoder + light heads: for tests and CPU demos (~0.5 M parameters)."""
    kwargs = {"output_stride": 32, "head": "light", "head_width": 32, **kwargs}
    return HardParameterSharing(tasks, encoder="tiny", **kwargs)


def _register_timm_hps(encoder: str, output_stride: int, doc: str) -> None:
    def entry(tasks: TaskSpec, **kwargs: Any) -> HardParameterSharing:
        kwargs = {"output_stride": output_stride, **kwargs}
        return HardParameterSharing(tasks, encoder=encoder, **kwargs)

    entry.__name__ = f"hps_{encoder}"
    entry.__doc__ = doc
    register_model(entry)


_register_timm_hps("resnet18", 8, "ResNet-18 (dilated, output stride 8) + DeepLab ASPP heads.")
_register_timm_hps("resnet50", 8, "ResNet-50 (dilated, output stride 8) + DeepLab ASPP heads (LibMTL NYUv2 setup).")
_register_timm_hps("mobilenetv3_large_100", 16, "MobileNetV3-Large (output stride 16) + ASPP heads.")
_register_timm_hps("efficientnet_b0", 16, "EfficientNet-B0 (output stride 16) + ASPP heads.")
_register_timm_hps("convnext_tiny", 32, "ConvNeXt-T (output stride 32; no dilation support) + ASPP heads.")

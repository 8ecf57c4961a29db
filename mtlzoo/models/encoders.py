"""Encoders that return a feature pyramid: timm ``features_only`` models, smp encoders, a tiny test encoder."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from mtlzoo.extras import require
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


def _fetch_error(what: str, source: str, prefetch: str, error: Exception) -> FileNotFoundError:
    """Say which weights could not be fetched and how to get them onto an offline machine."""
    from huggingface_hub import constants

    why = "offline: HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else "offline or not in the local cache"
    return FileNotFoundError(f"could not fetch the {what} from {source} ({why}; {type(error).__name__}); pre-fetch "
                             f"them where there is network access with `{prefetch}` (into the cache HF_HOME points "
                             "at), or pass encoder_weights=None for random initialisation")


def _timm_weights_source(name: str) -> tuple[str, str]:
    """Where timm gets ``name``'s pretrained weights, and a command that pre-fetches them."""
    import timm

    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None or not (cfg.hf_hub_id or cfg.url):
        raise ValueError(f"timm encoder {name!r} has no pretrained weights; pass encoder_weights=None")
    if cfg.hf_hub_id:
        return f"hf-hub:{cfg.hf_hub_id}", f"hf download {cfg.hf_hub_id}"
    return cfg.url, f"python -c \"import timm; timm.create_model('{name}', pretrained=True)\""


def _check_timm_name(name: str) -> None:
    """Accept what timm accepts: an architecture (``resnet50``) or one with a pretrained tag (``resnet50.a1_in1k``)."""
    import timm

    arch, _, tag = name.partition(".")
    if not timm.is_model(arch):
        raise unknown_name_error("timm encoder", name, timm.list_models())
    if tag and name not in timm.list_pretrained(f"{arch}.*"):
        raise unknown_name_error("timm pretrained tag", name, timm.list_pretrained(f"{arch}.*"))


def create_timm_model(name: str, encoder_weights: str | None, what: str = "timm encoder", **kwargs: Any) -> nn.Module:
    """``timm.create_model`` behind mtlzoo's checks: a known (optionally tagged) name, ``encoder_weights`` None or
    'imagenet', and a fetch that fails offline saying which weights and how to pre-fetch them."""
    import timm

    _check_timm_name(name)
    if encoder_weights not in (None, "imagenet"):
        raise ValueError(f"encoder_weights {encoder_weights!r} for {what} {name!r}: accepted None or 'imagenet' (the "
                         "weights of the name's pretrained tag; pick others with a tagged name such as "
                         "'resnet50.a1_in1k')")
    source = _timm_weights_source(name) if encoder_weights else None
    try:
        return timm.create_model(name, pretrained=encoder_weights is not None, **kwargs)
    except OSError as error:
        raise _fetch_error(f"ImageNet weights of {what} {name!r}", *source, error) from error


class TimmEncoder(Encoder):
    """Any timm model with ``features_only=True`` (tagged names such as ``resnet50.a1_in1k`` pick the weights);
    ``output_stride`` dilates the last stages; ``encoder_weights="imagenet"`` loads the name's pretrained weights."""

    def __init__(self, name: str, in_chans: int = 3, output_stride: int = 32,
                 encoder_weights: str | None = None) -> None:
        super().__init__()
        kwargs = {"output_stride": output_stride} if output_stride != 32 else {}
        try:
            self.model = create_timm_model(name, encoder_weights, features_only=True, in_chans=in_chans, **kwargs)
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
        smp = require("segmentation_models_pytorch", f"encoder 'smp:{name}'")
        available = smp.encoders.get_encoder_names()
        if name not in available:
            raise unknown_name_error("smp encoder", name, available)
        settings = smp.encoders.encoders.get(name, {}).get("pretrained_settings", {})
        if encoder_weights is not None and name in smp.encoders.encoders and encoder_weights not in settings:
            raise ValueError(f"encoder_weights {encoder_weights!r} for smp encoder {name!r}: accepted None or one "
                             f"of {sorted(settings)}")
        try:
            self.model = smp.encoders.get_encoder(name, in_channels=in_chans, depth=5, weights=encoder_weights,
                                                  output_stride=output_stride)
        except OSError as error:
            where = settings.get(encoder_weights, {})
            repo, revision = where.get("repo_id", f"smp-hub/{name}.{encoder_weights}"), where.get("revision")
            command = f"hf download {repo}" + (f" --revision {revision}" if revision else "")
            raise _fetch_error(f"{encoder_weights} weights of smp encoder {name!r}", f"hf-hub:{repo}", command,
                               error) from error
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

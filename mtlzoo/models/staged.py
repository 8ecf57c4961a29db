"""Run an encoder one stage at a time, for architectures that act between stages (cross-stitch, NDDR-CNN).

Stage k takes the output of stage k-1 (the image for k = 0) and returns feature k of the
encoder's pyramid. The stages run the encoder's own modules, looked up by name at every call (so
the state dict keeps the encoder's names and holds every tensor once, and modules replaced later,
such as SyncBatchNorm conversions, are the ones used).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from mtlzoo.models.encoders import Encoder, TimmEncoder, TinyEncoder, create_encoder


def _split_stages(encoder: Encoder) -> tuple[str, list[list[str]]]:
    """The encoder attribute holding its modules, and their names grouped into consecutive stages, each stage
    ending where a feature is taken (names, not modules, so that replaced modules, e.g. SyncBatchNorm, are used)."""
    if isinstance(encoder, TinyEncoder):
        return "stages", [[str(i)] for i in range(len(encoder.stages))]
    from timm.models._features import FeatureListNet

    if isinstance(encoder, TimmEncoder) and type(encoder.model) is FeatureListNet:
        stages, current = [], []
        for name, _ in encoder.model.items():
            current.append(name)
            if name in encoder.model.return_layers:
                stages.append(current)
                current = []
        return "model", stages
    raise ValueError(f"this architecture runs its encoder stage by stage, which {type(encoder).__name__} "
                     f"({type(getattr(encoder, 'model', encoder)).__name__}) does not support; use 'tiny' or a timm "
                     "CNN (resnet*, efficientnet*, mobilenet*, convnext*...), or the stl / mtan families")


class StagedEncoder(nn.Module):
    """An encoder built by :func:`create_encoder`, callable stage by stage with :meth:`stage`."""

    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__()
        self.encoder = create_encoder(name, **kwargs)
        self._container, self._stages = _split_stages(self.encoder)  # names only: nothing registered twice
        self.out_channels: list[int] = list(self.encoder.out_channels)

    @property
    def num_stages(self) -> int:
        return len(self._stages)

    def stage(self, index: int, x: Tensor) -> Tensor:
        """Apply stage ``index`` to the previous stage's output (the image for stage 0)."""
        container = getattr(self.encoder, self._container)
        for name in self._stages[index]:
            x = getattr(container, name)(x)
        return x

    def forward(self, x: Tensor) -> list[Tensor]:
        features = []
        for index in range(self.num_stages):
            x = self.stage(index, x)
            features.append(x)
        return features


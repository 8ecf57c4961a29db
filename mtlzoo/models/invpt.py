"""InvPT: inverted pyramid multi-task transformer (Ye & Xu, "Inverted Pyramid Multi-task Transformer for Dense
Scene Understanding", ECCV 2022), a compact version.

    ViT (timm) -> layers l1 < l2 < l3 -> per-task preliminary decoder on l3: task map P_t, prediction A_t
    [P_t; A_t] -> 1x1 conv -> joint InvPT decoder (all tasks' tokens attend to each other; stride p -> p/4,
    skips from l2, l1) -> task map F_t -> task head -> output at input size

Deep supervision: ``model.losses`` returns, per task, ``loss(final) + aux_weight * loss(preliminary)``, so a
balancer sees one loss per task. The shared representation is the ViT output (layers l1, l2, l3). The decoder
mixes the tasks, so the preliminary decoders and the joint decoder are shared (a task's preliminary decoder
also receives the other tasks' gradients) and declared as shared layers after the representation
(``decoder_shared_parameters``): feature-level balancers weigh the task gradients on the ViT layers and train
the decoder with the same weights. Each task's own parameters are its head.
Simplifications: see :mod:`mtlzoo.models.invpt_decoder`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mtlzoo.models.base import MultiTaskModel, Representation
from mtlzoo.models.distillation import PerForward
from mtlzoo.models.encoders import Encoder, create_timm_model
from mtlzoo.models.factory import register_model
from mtlzoo.models.heads import _conv_bn_relu
from mtlzoo.models.invpt_decoder import InvertedPyramidDecoder
from mtlzoo.tasks import Task

TaskSpec = str | Iterable[Task | Mapping[str, Any]]
TINY_VIT = {"img_size": 64, "patch_size": 16, "embed_dim": 64, "depth": 4, "num_heads": 2}


class ViTEncoder(Encoder):
    """A timm VisionTransformer returning ``layers`` intermediate block outputs as (B, C, H/p, W/p) maps.

    Any input size works (``dynamic_img_size``: the position embedding is interpolated; the input is
    padded to a multiple of the patch size). ``name="tiny"`` builds a 4-block, 64-wide ViT with 16-pixel
    patches for tests."""

    def __init__(self, name: str, in_chans: int = 3, encoder_weights: str | None = None, layers: int = 3) -> None:
        super().__init__()
        from timm.models.vision_transformer import VisionTransformer

        options = {"num_classes": 0, "dynamic_img_size": True, "dynamic_img_pad": True, "in_chans": in_chans}
        if name == "tiny":
            if encoder_weights is not None:
                raise ValueError("the 'tiny' ViT has no pretrained weights; pass encoder_weights=None")
            self.model = VisionTransformer(**TINY_VIT, **options)
        else:
            try:
                self.model = create_timm_model(name, encoder_weights, what="timm ViT", **options)
            except TypeError as error:
                raise ValueError(f"invpt needs a plain timm ViT (vit_*), got {name!r}") from error
            if not isinstance(self.model, VisionTransformer):
                raise ValueError(f"invpt needs a plain timm ViT (vit_*), got {name!r} ({type(self.model).__name__})")
        depth = len(self.model.blocks)
        if not 1 <= layers <= depth:
            raise ValueError(f"layers must be in [1, {depth}] for {name!r}, got {layers!r}")
        self.indices = [depth - 1 - i * (depth // layers) for i in reversed(range(layers))]
        self.model.prune_intermediate_layers(self.indices, prune_norm=True, prune_head=True)  # unused final norm
        self.out_channels = [self.model.embed_dim] * layers
        self.reductions = [self.model.patch_embed.patch_size[0]] * layers

    def forward(self, x: Tensor) -> list[Tensor]:
        return list(self.model.forward_intermediates(x, indices=self.indices, output_fmt="NCHW",
                                                     intermediates_only=True))


class DeepSupervisedOutputs(dict):
    """``{task: final output}`` as every model returns, plus ``.auxiliary``: ``{task: preliminary prediction}``."""

    auxiliary: dict[str, Tensor]


class InvPT(MultiTaskModel):
    """ViT encoder, per-task preliminary decoders, the joint inverted-pyramid decoder, per-task heads."""

    def __init__(self, tasks: TaskSpec, encoder: str = "vit_small_patch16_224", encoder_weights: str | None = None,
                 dims: Sequence[int] = (384, 192, 96), num_heads: Sequence[int] = (6, 6, 3),
                 depths: Sequence[int] = (2, 2, 2), kv_strides: Sequence[int] = (1, 2, 4), aux_weight: float = 1.0,
                 head: str | None = "light", head_width: int | None = None, in_chans: int = 3) -> None:
        super().__init__(tasks, head=head, head_width=head_width, in_chans=in_chans)
        not_dense = [t.name for t in self.tasks if not t.dense]
        if not_dense:
            raise ValueError(f"invpt decodes dense maps; task(s) {not_dense} are not dense (use hps / mtan for them)")
        if isinstance(aux_weight, bool) or not (isinstance(aux_weight, int | float) and 0 <= aux_weight < float("inf")):
            raise ValueError(f"aux_weight must be a finite number >= 0, got {aux_weight!r}")
        self.aux_weight = float(aux_weight)
        self.encoder = ViTEncoder(encoder, in_chans, encoder_weights, layers=len(dims))
        width = self.encoder.out_channels[-1]
        self.preliminary = nn.ModuleDict({t.name: nn.Sequential(_conv_bn_relu(width, dims[0]),
                                                                _conv_bn_relu(dims[0], dims[0])) for t in self.tasks})
        self.preliminary_pred = nn.ModuleDict({t.name: nn.Conv2d(dims[0], t.channels, 1) for t in self.tasks})
        self.fuse = nn.ModuleDict({t.name: nn.Conv2d(dims[0] + t.channels, dims[0], 1) for t in self.tasks})
        self.decoder = InvertedPyramidDecoder(len(self.tasks), dims, num_heads, depths, kv_strides,
                                              self.encoder.out_channels[:-1])
        self._decoded = PerForward()
        self.build_heads()

    def head_in_channels(self, task: Task) -> list[int]:
        return [self.decoder.out_channels]

    def encode(self, x: Tensor) -> Representation:
        """The ViT layers l1, l2, l3 as maps (the shared representation)."""
        self.check_input(x)
        return Representation(tuple(self.encoder(x)), (x.shape[-2], x.shape[-1]))

    def decoder_shared_parameters(self) -> list[nn.Parameter]:
        """The preliminary decoders and the joint decoder: after the representation, they mix the tasks."""
        return [p for module in (self.preliminary, self.preliminary_pred, self.fuse, self.decoder)
                for p in module.parameters()]

    def task_features(self, rep: Representation) -> tuple[Tensor, ...]:
        """``(F_1..F_T, A_1..A_T)``: decoded task maps and preliminary predictions (once per forward)."""
        return self._decoded.get(rep.features[0], lambda _: self._decode_jointly(rep.features))

    def _decode_jointly(self, layers: Sequence[Tensor]) -> tuple[Tensor, ...]:
        maps, preliminary = [], []
        for t in self.task_names:
            task_map = self.preliminary[t](layers[-1])
            prediction = self.preliminary_pred[t](task_map)
            maps.append(self.fuse[t](torch.cat([task_map, prediction], dim=1)))
            preliminary.append(prediction)
        decoded = self.decoder(torch.stack(maps, dim=1), layers[-2::-1])
        return tuple(decoded.unbind(1)) + tuple(preliminary)

    def head_features(self, rep: Representation, task: Task) -> tuple[Tensor, ...]:
        return (self.task_features(rep)[self.task_names.index(task.name)],)

    def decode(self, rep: Representation) -> DeepSupervisedOutputs:
        """Final outputs of every task; the preliminary predictions (at input size) ride along as ``.auxiliary``."""
        outputs = DeepSupervisedOutputs(super().decode(rep))
        count = len(self.tasks)
        outputs.auxiliary = {t: F.interpolate(a, size=rep.size, mode="bilinear", align_corners=False)
                             for t, a in zip(self.task_names, self.task_features(rep)[count:], strict=True)}
        return outputs

    def losses(self, outputs: Mapping[str, Tensor], targets: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Per task: ``loss(final) + aux_weight * loss(preliminary)`` (the deep-supervision term folded in)."""
        losses = super().losses(outputs, targets)
        if self.aux_weight == 0:
            return losses
        auxiliary = getattr(outputs, "auxiliary", None)
        if auxiliary is None:
            raise ValueError("invpt losses add the deep-supervision terms, which need the outputs of model(x) or "
                             f"model.decode(rep) (a {type(outputs).__name__} without .auxiliary was given, e.g. by "
                             "ius / io's forward_tasks); use a single-step method or aux_weight=0")
        return {t: loss + self.aux_weight * self.task(t).compute_loss(auxiliary[t], targets[t])
                for t, loss in losses.items()}

    def add_task(self, task: Task | Mapping[str, Any]) -> nn.Module:
        raise ValueError("invpt decodes all tasks jointly (the decoder's task embeddings and attention are shared); "
                         "build a new model with the full task list instead of add_task")

    def remove_task(self, name: str) -> Task:
        raise ValueError(f"invpt decodes all tasks jointly; build a new model without {name!r} instead of remove_task")


@register_model
def invpt(tasks: TaskSpec, encoder: str = "vit_small_patch16_224", **kwargs: Any) -> InvPT:
    """Compact InvPT (a reduced version of the paper's decoder, see :mod:`mtlzoo.models.invpt_decoder`) on any plain
    timm ViT (``encoder="vit_large_patch16_384"``...); set ``dims`` / ``num_heads`` to match."""
    return InvPT(tasks, encoder=encoder, **kwargs)


@register_model
def invpt_tiny(tasks: TaskSpec, **kwargs: Any) -> InvPT:
    """Compact InvPT on a tiny ViT (4 blocks, width 64, 16-pixel patches), decoder 64-32-16: for tests and CPU."""
    kwargs = {"dims": (64, 32, 16), "num_heads": (2, 2, 1), "depths": (1, 1, 1), "head_width": 16, **kwargs}
    return InvPT(tasks, encoder="tiny", **kwargs)


@register_model
def invpt_vit_small(tasks: TaskSpec, **kwargs: Any) -> InvPT:
    """Compact InvPT (a reduced version of the paper's, which uses ViT-L/16 and cross-scale attention message
    passing) on ViT-S/16 (timm vit_small_patch16_224), decoder 384-192-96 at strides 16-8-4; 39.98 M parameters on
    ``pascal_context``."""
    return InvPT(tasks, encoder="vit_small_patch16_224", **kwargs)


@register_model
def invpt_vit_base(tasks: TaskSpec, **kwargs: Any) -> InvPT:
    """Compact InvPT (a reduced version of the paper's, which uses ViT-L/16 and cross-scale attention message
    passing) on ViT-B/16 (timm vit_base_patch16_224), decoder 768-384-192 at strides 16-8-4; 158.34 M parameters
    on ``pascal_context``."""
    kwargs = {"dims": (768, 384, 192), "num_heads": (12, 12, 6), **kwargs}
    return InvPT(tasks, encoder="vit_base_patch16_224", **kwargs)

"""Multi-task attention network (Liu et al., "End-to-End Multi-Task Learning with Attention", CVPR 2019).

Default, ``structure="resnet"``: the released ResNet MTAN (lorenmt/mtan ``im2im_pred/model_resnet_mtan``, and
LibMTL's ``architecture/MTAN.py`` on its ResNet encoders). ResNet layer j (j = 1..4) is split into its blocks but
the last, b_j, and its last block t_j: u_j = b_j(x), p_j = t_j(u_j). Each task has one attention module per layer;
the mask is computed from u_j and gates p_j:

    a_1 = sigmoid(g_1(u_1)) * p_1,
    a_j = sigmoid(g_j([u_j; pool(h_{j-1}(a_{j-1}))])) * p_j    (j = 2, 3, 4),

with g_j = 1x1 conv-BN-ReLU-1x1 conv-BN (hidden width C_j / e, e = 4 on bottleneck ResNets and 1 on basic-block
ones, as released), h_j one residual block from C_j to C_{j+1} of the ResNet's kind (bottleneck or basic, 1x1
projection shortcut) *shared by the tasks* (the release's ``encoder_block_att``), and pool a 2x2 max pooling where
the resolution halves. The stem has no attention, and the task's head reads a_4 only. The shared representation
is the eight encoder tensors (u_j, p_j); the h_j are shared layers after it (``decoder_shared_parameters``, trained
with the balanced task gradients at the feature level) and the g_j belong to the task. It runs on timm and smp
ResNets (``resnet*``, ``resnext*``, ``seresnet*``...: four ``layer`` stages of at least two blocks) and on the tiny
encoder, whose stages' two conv blocks play b_j and t_j (basic h_j). ``tests/models/test_mtan.py`` checks it
against a transcription of LibMTL's forward. One difference: LibMTL builds each level's attention as
``[att_layer] * task_num``, one module shared by all tasks, so that its tasks get identical features; here, as in
lorenmt's release and the paper, each task has its own g_j.

``structure="stages"``: the generic MTAN that was mtlzoo's default before 2026-12-06, for any timm / smp / tiny
encoder (only stage outputs p_j are known; timm's first one is the stride-2 stem): a_j = sigmoid(g_j([p_j;
f_j(a_{j-1})])) * p_j, the mask reading p_j itself, with f_j a per-task residual bottleneck (max pooled to p_j's
size), and the head reading (a_1, ..., a_L). Per task it holds a carry-over block per stage (about +8 M
parameters per task on ResNet-50) where the release shares one. Checkpoints of the earlier default load with
``structure="stages"`` (and the ``reduction=4`` it used).

``mtan_segnet`` (in :mod:`mtlzoo.models.mtan_segnet`) is the released SegNet version of the NYUv2 benchmark.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import chain
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mtlzoo.models.base import MultiTaskModel, Representation
from mtlzoo.models.encoders import Encoder, SmpEncoder, TimmEncoder, TinyEncoder, create_encoder
from mtlzoo.models.factory import register_model
from mtlzoo.tasks import Task

TaskSpec = str | Iterable[Task | Mapping[str, Any]]
STRUCTURES = ("resnet", "stages")
LAYERS = 4


def attention_mask(cin: int, mid: int, cout: int) -> nn.Sequential:
    """g: 1x1 conv-BN-ReLU-1x1 conv-BN-sigmoid, the attention mask block of the paper."""
    return nn.Sequential(nn.Conv2d(cin, mid, 1), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
                         nn.Conv2d(mid, cout, 1), nn.BatchNorm2d(cout), nn.Sigmoid())


def conv_block(cin: int, cout: int) -> nn.Sequential:
    """3x3 conv (with bias) - BN - ReLU, the conv layer of the released MTAN code."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Bottleneck(nn.Module):
    """Residual bottleneck (1x1 to C_out/4, 3x3, 1x1 to C_out; 1x1 projection shortcut): the block that carries the
    attended features to the next layer in the released ResNet-50 MTAN (cheaper than a full 3x3 conv)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        mid = max(cout // 4, 1)
        self.body = nn.Sequential(nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
                                  nn.Conv2d(mid, mid, 3, padding=1, bias=False), nn.BatchNorm2d(mid),
                                  nn.ReLU(inplace=True), nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class BasicBlock(nn.Module):
    """Residual basic block (3x3 conv-BN-ReLU, 3x3 conv-BN; 1x1 projection shortcut): the carry block of the
    ResNet MTAN on basic-block ResNets (ResNet-18 / 34, LibMTL) and on the tiny encoder."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                                  nn.ReLU(inplace=True), nn.Conv2d(cout, cout, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(cout))
        self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


def attend(masks: Sequence[nn.Module], firsts: Sequence[Tensor], lasts: Sequence[Tensor],
           carries: Sequence[nn.Module]) -> list[Tensor]:
    """a_j = mask_j(first_j, or [first_j; pool(carry_{j-1}(a_{j-1}))]) * last_j for every level j (finest first);
    ``pool`` max pools to first_j's size where the carried feature is larger (a 2x2 max pool when it halves)."""
    attended: list[Tensor] = []
    for j, (mask, first, last) in enumerate(zip(masks, firsts, lasts, strict=True)):
        inputs = first
        if j > 0:
            carried = carries[j - 1](attended[-1])
            if carried.shape[-2:] != first.shape[-2:]:
                carried = F.adaptive_max_pool2d(carried, first.shape[-2:])
            inputs = torch.cat([first, carried], dim=1)
        attended.append(mask(inputs) * last)
    return attended


class TaskAttention(nn.Module):
    """One task's attention masks over levels with ``channels`` (finest first); with ``carry`` also its own residual
    bottlenecks that bring a level's attended feature to the next (``structure="stages"``)."""

    def __init__(self, channels: Sequence[int], reduction: int = 4, carry: bool = True) -> None:
        super().__init__()
        self.masks = nn.ModuleList([attention_mask(c if j == 0 else 2 * c, max(c // reduction, 1), c)
                                    for j, c in enumerate(channels)])
        pairs = zip(channels[:-1], channels[1:], strict=True)
        self.projections = nn.ModuleList([Bottleneck(cin, cout) for cin, cout in pairs] if carry else [])

    def forward(self, features: Sequence[Tensor]) -> tuple[Tensor, ...]:
        """``structure="stages"``: every level's mask reads and gates the shared feature p_j itself."""
        return tuple(attend(self.masks, features, features, self.projections))


class TaskAttentionModel(MultiTaskModel):
    """Base of the MTAN models: ``self.attention`` holds one attention module per task, owned by that task."""

    attention: nn.ModuleDict

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
        """The task's attention modules and head."""
        self.task(task)
        return chain(self.attention[task].parameters(), self.heads[task].parameters())

    def remove_task(self, name: str) -> Task:
        removed = super().remove_task(name)
        del self.attention[name]
        return removed

    def train(self, mode: bool = True) -> TaskAttentionModel:
        """As the base class; attention modules follow their task (eval when the task is frozen), not the encoder."""
        super().train(mode)
        for name, attention in self.attention.items():
            attention.train(mode and name not in self._frozen_tasks)
        return self


def _resnet_layout(encoder: Encoder, name: str) -> tuple[str, list[str], list[str], list[int], bool]:
    """Where a ResNet encoder's modules are: (container attribute, stem names, layer names, index of each layer's
    last block, whether its blocks are bottlenecks); the tiny encoder's stages split between their two conv blocks."""
    if isinstance(encoder, TinyEncoder):
        return "stages", [], [str(i) for i in range(LAYERS)], [3] * LAYERS, False
    model = getattr(encoder, "model", None)
    children = [n for n, _ in model.named_children()] if isinstance(encoder, TimmEncoder | SmpEncoder) else []
    layers = [f"layer{i}" for i in range(1, LAYERS + 1)]
    if children[-LAYERS:] != layers or not all(isinstance(getattr(model, n), nn.Sequential) and
                                                len(getattr(model, n)) >= 2 for n in layers):
        raise ValueError(f"mtan structure='resnet' (the released ResNet MTAN) needs a ResNet encoder with four "
                         "'layer' stages of two or more blocks (timm / smp resnet*, resnext*, seresnet*... or "
                         f"'tiny'); got {name!r}; use structure='stages' for any encoder")
    splits = [len(getattr(model, n)) - 1 for n in layers]
    return "model", children[:-LAYERS], layers, splits, hasattr(model.layer1[-1], "conv3")


class ResNetLevels(Encoder):
    """A ResNet encoder (timm / smp, or the tiny one) returning (u_1, p_1, ..., u_4, p_4): each layer's output before
    and after its last block. It holds the encoder's module container under the same attribute (``model`` or
    ``stages``), so parameter names are the encoder's; modules are looked up by name at every call."""

    def __init__(self, encoder: Encoder, name: str) -> None:
        super().__init__()
        self._container, self._stem, self._layers, self._splits, self.bottleneck = _resnet_layout(encoder, name)
        setattr(self, self._container, getattr(encoder, self._container))
        self.layer_channels = list(encoder.out_channels[-LAYERS:])
        self.out_channels = [c for c in self.layer_channels for _ in range(2)]
        self.reductions = [r for r in encoder.reductions[-LAYERS:] for _ in range(2)]

    def forward(self, x: Tensor) -> list[Tensor]:
        modules = getattr(self, self._container)
        for name in self._stem:
            x = getattr(modules, name)(x)
        features: list[Tensor] = []
        for name, split in zip(self._layers, self._splits, strict=True):
            layer = getattr(modules, name)
            first = layer[:split](x)
            x = layer[split:](first)
            features += [first, x]
        return features


class MTAN(TaskAttentionModel):
    """A shared encoder with per-task attention (module docstring): the released ResNet MTAN by default
    (``structure="resnet"``), or per-task attention over any encoder's stage outputs (``structure="stages"``).

    ``reduction`` (hidden width C / reduction in the masks) defaults to the release's: 4 on bottleneck ResNets, 1 on
    basic-block ResNets and the tiny encoder; 4 with ``structure="stages"``."""

    def __init__(self, tasks: TaskSpec, encoder: str = "resnet50", output_stride: int = 8,
                 encoder_weights: str | None = None, reduction: int | None = None, structure: str = "resnet",
                 head: str | None = None, head_width: int | None = None, in_chans: int = 3) -> None:
        super().__init__(tasks, head=head, head_width=head_width, in_chans=in_chans)
        if structure not in STRUCTURES:
            raise ValueError(f"mtan structure {structure!r}: accepted {list(STRUCTURES)}")
        self.structure = structure
        backbone = create_encoder(encoder, in_chans=in_chans, output_stride=output_stride,
                                  encoder_weights=encoder_weights)
        if structure == "resnet":
            self.encoder = ResNetLevels(backbone, encoder)
            self.channels = self.encoder.layer_channels
            self.reduction = reduction or (4 if self.encoder.bottleneck else 1)
            block = Bottleneck if self.encoder.bottleneck else BasicBlock
            pairs = zip(self.channels[:-1], self.channels[1:], strict=True)
            self.carry = nn.ModuleList([block(cin, cout) for cin, cout in pairs])
        else:
            self.encoder = backbone
            self.channels = list(self.encoder.out_channels)
            self.reduction = reduction or 4
        self.attention = nn.ModuleDict({t.name: self._new_attention() for t in self.tasks})
        self.build_heads()

    def _new_attention(self) -> TaskAttention:
        return TaskAttention(self.channels, self.reduction, carry=self.structure == "stages")

    def head_in_channels(self, task: Task) -> list[int]:
        return [self.channels[-1]] if self.structure == "resnet" else list(self.channels)

    def head_features(self, rep: Representation, task: Task) -> tuple[Tensor, ...]:
        """The shared features attended by the task's masks: a_4 (``resnet``), or every a_j (``stages``)."""
        attention = self.attention[task.name]
        if self.structure == "stages":
            return attention(rep.features)
        return (attend(attention.masks, rep.features[0::2], rep.features[1::2], self.carry)[-1],)

    def decoder_shared_parameters(self) -> list[nn.Parameter]:
        """The carry blocks h_j shared by the tasks (``resnet``): after the representation, on each task's path."""
        return list(self.carry.parameters()) if self.structure == "resnet" else []

    def add_task(self, task: Task | Mapping[str, Any]) -> nn.Module:
        """Add a task with fresh attention modules and head."""
        head = super().add_task(task)
        reference = next(self.parameters())
        attention = self._new_attention().to(device=reference.device, dtype=reference.dtype)
        self.attention[self.tasks[-1].name] = attention.train(self.training)
        return head


@register_model
def mtan(tasks: TaskSpec, encoder: str = "resnet50", **kwargs: Any) -> MTAN:
    """MTAN as released on ResNets (dilated ResNet-50, output stride 8, by default): per-task attention after each
    of the four layers, shared carry blocks, DeepLab ASPP heads on the last attended feature; ``structure="stages"``
    takes any timm / smp encoder."""
    return MTAN(tasks, encoder=encoder, **kwargs)


@register_model
def mtan_tiny(tasks: TaskSpec, **kwargs: Any) -> MTAN:
    """MTAN with the released ResNet structure on the tiny 4-stage conv encoder + light heads: tests and CPU demos."""
    kwargs = {"output_stride": 32, "head": "light", "head_width": 32, **kwargs}
    return MTAN(tasks, encoder="tiny", **kwargs)


@register_model
def mtan_resnet18(tasks: TaskSpec, **kwargs: Any) -> MTAN:
    """MTAN as released on ResNet-18 (dilated, output stride 8; basic carry blocks, LibMTL's ResNet-18 MTAN) with
    DeepLab ASPP heads on the last attended feature."""
    return MTAN(tasks, encoder="resnet18", **{"output_stride": 8, **kwargs})

"""``mtan_segnet``: the SegNet-based MTAN of the NYUv2 3-task benchmark (Liu et al., CVPR 2019).

The model of the released MTAN code (lorenmt/mtan, ``im2im_pred/model_segnet_mtan.py``), on which
MTAN, CAGrad, Nash-MTL, FAMO and Aligned-MTL report NYUv2 and Cityscapes: a shared SegNet
(filters 64-128-256-512-512, max-pool indices reused by max-unpooling; one 3x3 conv block per
encoder / decoder stage then one or two more), per task 5 encoder and 5 decoder attention masks
(1x1 conv-BN-ReLU-1x1 conv-BN-sigmoid), conv blocks that carry the attended features from stage
to stage, shared by the tasks as in the release, and per task a 3x3 conv + 1x1 conv head. Xavier
normal initialisation as released. The release also holds three uncertainty-weighting scalars
(``logsigma``); in mtlzoo they belong to the ``uw`` balancer, so this model has 3 parameters fewer.

Feature-level balancing is refused: the shared attention conv blocks act on each task's attended
features, after any tensor every task shares, so no cut leaves only task parameters after it.
Inputs must have sides divisible by 32 (five 2x2 poolings undone by unpooling).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mtlzoo.models.base import Representation
from mtlzoo.models.factory import register_model
from mtlzoo.models.mtan import TaskAttentionModel, attention_mask, conv_block
from mtlzoo.tasks import Task

TaskSpec = str | Iterable[Task | Mapping[str, Any]]
FILTERS = (64, 128, 256, 512, 512)
_LEVELS = len(FILTERS)


class SegNetTrunk(nn.Module):
    """The shared SegNet; returns, per stage, the encoder's first and last block outputs and the decoder's
    unpooled input and last block output (the tensors the attention modules read), 4 x 5 tensors."""

    def __init__(self, in_chans: int = 3, filters: Sequence[int] = FILTERS) -> None:
        super().__init__()
        f = list(filters)
        self.enc_first = nn.ModuleList([conv_block(in_chans, f[0])] + [conv_block(f[i], f[i + 1]) for i in range(4)])
        self.dec_first = nn.ModuleList([conv_block(f[0], f[0])] + [conv_block(f[i + 1], f[i]) for i in range(4)])
        self.enc_rest = nn.ModuleList([conv_block(f[0], f[0]), conv_block(f[1], f[1])] +
                                      [nn.Sequential(conv_block(c, c), conv_block(c, c)) for c in f[2:]])
        self.dec_rest = nn.ModuleList([conv_block(f[0], f[0]), conv_block(f[0], f[0])] +
                                      [nn.Sequential(conv_block(c, c), conv_block(c, c)) for c in f[1:4]])
        self.out_channels = f

    def forward(self, x: Tensor) -> list[Tensor]:
        first, last, indices = [], [], []
        for i in range(_LEVELS):
            first.append(self.enc_first[i](x))
            last.append(self.enc_rest[i](first[-1]))
            x, index = F.max_pool2d(last[-1], 2, 2, return_indices=True)
            indices.append(index)
        unpooled, decoded = [], []
        for i in range(_LEVELS):
            unpooled.append(F.max_unpool2d(x, indices[-i - 1], 2, 2))
            x = self.dec_rest[-i - 1](self.dec_first[-i - 1](unpooled[-1]))
            decoded.append(x)
        return first + last + unpooled + decoded


class SegNetTaskAttention(nn.Module):
    """One task's 5 encoder and 5 decoder attention masks (channels as in the release)."""

    def __init__(self, filters: Sequence[int] = FILTERS) -> None:
        super().__init__()
        f = list(filters)
        self.encoder_masks = nn.ModuleList([attention_mask(f[0], f[0], f[0])] +
                                           [attention_mask(2 * c, c, c) for c in f[1:]])
        self.decoder_masks = nn.ModuleList([attention_mask(2 * f[0], f[0], f[0])] +
                                           [attention_mask(f[i + 1] + f[i], f[i], f[i]) for i in range(4)])


class SegNetHead(nn.Module):
    """The release's prediction layer: 3x3 conv (C -> C) then 1x1 conv to the task's channels."""

    def __init__(self, in_channels: Sequence[int], out_channels: int) -> None:
        super().__init__()
        cin = in_channels[-1]
        self.conv = nn.Conv2d(cin, cin, 3, padding=1)
        self.classifier = nn.Conv2d(cin, out_channels, 1)

    def forward(self, features: Sequence[Tensor], size: tuple[int, int]) -> Tensor:
        out = self.classifier(self.conv(features[-1]))
        return out if tuple(out.shape[-2:]) == tuple(size) else F.interpolate(out, size=size, mode="bilinear",
                                                                             align_corners=False)


class MTANSegNet(TaskAttentionModel):
    """MTAN on SegNet with the released layer sizes, for any list of dense tasks."""

    shared_representation = False

    def __init__(self, tasks: TaskSpec, in_chans: int = 3) -> None:
        super().__init__(tasks, head="segnet", in_chans=in_chans)
        f = FILTERS
        self.encoder = SegNetTrunk(in_chans, f)
        self.encoder_blocks = nn.ModuleList([conv_block(f[i], f[min(i + 1, 4)]) for i in range(_LEVELS)])
        self.decoder_blocks = nn.ModuleList([conv_block(f[0], f[0])] + [conv_block(f[i + 1], f[i]) for i in range(3)] +
                                            [conv_block(f[4], f[4])])
        self.attention = nn.ModuleDict({t.name: SegNetTaskAttention(f) for t in self.tasks})
        self.build_heads()
        _xavier_init(self)

    def _new_head(self, task: Task) -> nn.Module:
        if not task.dense:
            raise ValueError(f"mtan_segnet predicts dense maps; task {task.name!r} of kind {task.kind!r} is not dense")
        return SegNetHead([FILTERS[0]], task.channels)

    def check_input(self, x: Tensor) -> None:
        super().check_input(x)
        if x.shape[-2] % 32 or x.shape[-1] % 32:
            raise ValueError(f"mtan_segnet needs image sides divisible by 32 (five poolings), got {tuple(x.shape)}")

    def head_features(self, rep: Representation, task: Task) -> tuple[Tensor, ...]:
        """The task's attended decoder output, through its encoder and decoder attention masks."""
        first, last, unpooled, decoded = (rep.features[i * _LEVELS:(i + 1) * _LEVELS] for i in range(4))
        att = self.attention[task.name]
        carried = None
        for j in range(_LEVELS):
            inputs = first[j] if j == 0 else torch.cat([first[j], carried], dim=1)
            attended = att.encoder_masks[j](inputs) * last[j]
            carried = F.max_pool2d(self.encoder_blocks[j](attended), 2, 2)
        for j in range(_LEVELS):
            up = F.interpolate(carried, scale_factor=2, mode="bilinear", align_corners=True)
            up = self.decoder_blocks[-j - 1](up)
            carried = att.decoder_masks[-j - 1](torch.cat([unpooled[j], up], dim=1)) * decoded[j]
        return (carried,)

    def add_task(self, task: Task | Mapping[str, Any]) -> nn.Module:
        """Add a dense task with fresh attention masks and head."""
        head = super().add_task(task)
        reference = next(self.parameters())
        attention = SegNetTaskAttention(FILTERS)
        _xavier_init(attention)
        self.attention[self.tasks[-1].name] = attention.to(device=reference.device, dtype=reference.dtype)
        _xavier_init(head)
        return head



def _xavier_init(module: nn.Module) -> None:
    """The release's initialisation: Xavier-normal conv weights, zero biases (BN keeps weight 1, bias 0)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.xavier_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


@register_model
def mtan_segnet(tasks: TaskSpec, **kwargs: Any) -> MTANSegNet:
    """MTAN on SegNet as released for the NYUv2 3-task benchmark (CAGrad / Nash-MTL / FAMO setup; ~44.2 M params)."""
    return MTANSegNet(tasks, **kwargs)

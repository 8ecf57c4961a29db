"""SquadNet (Chen & Er, Neurocomputing 2025): channel-partitioned expert squads with point-wise aggregation.

The feature tensor of stage i holds (T + S) chunks of ``width * 2**i`` channels: one chunk per task
and S shared chunks. Each block runs one expert per task on its chunk (fused into grouped
convolutions: the T experts are one block-diagonal operator), passes the shared chunks through,
optionally shuffles channels, and aggregates everything point-wise with a residual. Between stages a
dense layer halves the resolution and doubles the width (two branches, a shuffle when the stage it
follows shuffles, an aggregation; no residual, as released). Task t's head reads chunk t plus the
shared chunks: by default the release's DeepLab-v3 head (ASPP rates 12/24/36, BN in the pooling
branch, dropout 0.5). Trained from scratch; the width depends on the task set.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from contextlib import nullcontext
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from mtlzoo.models.base import MultiTaskModel, Representation
from mtlzoo.models.encoders import Encoder
from mtlzoo.models.factory import register_model
from mtlzoo.models.heads import build_head
from mtlzoo.registry import unknown_name_error
from mtlzoo.tasks import Task

TaskSpec = str | Iterable[Task | Mapping[str, Any]]
NORMS = ("bn", "gn", "syncbn")
EXPERT_IMPLEMENTATIONS = ("fused", "loop")
# The DeepLab-v3 head of the SquadNet release (output stride 8): ASPP rates, BN in the pooling branch, dropout.
RELEASE_ASPP_OPTIONS: dict[str, Any] = {"rates": (12, 24, 36), "pool_norm": True, "dropout": 0.5}


def make_norm(kind: str, channels: int, parts: int = 1) -> nn.Module:
    """A norm layer by name ("bn" | "gn" | "syncbn"); GroupNorm groups never straddle two of ``parts`` chunks."""
    if kind == "bn":
        return nn.BatchNorm2d(channels)
    if kind == "syncbn":
        return nn.SyncBatchNorm(channels)
    if kind == "gn":
        return nn.GroupNorm(parts * math.gcd(channels // parts, 8), channels)
    raise unknown_name_error("norm layer", kind, list(NORMS))


def _conv_norm(cin: int, cout: int, kernel: int, norm: str, groups: int = 1, stride: int = 1,
               parts: int = 1, act: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
              make_norm(norm, cout, parts)]
    if act:
        layers.append(nn.GELU())
    return nn.Sequential(*layers)


def _pw_dw_pw(channels: int, norm: str, groups: int = 1) -> nn.Sequential:
    """1x1 (norm, GELU) -> depthwise 3x3 (norm) -> 1x1 (norm, GELU); ``groups`` splits the 1x1s block-diagonally."""
    return nn.Sequential(_conv_norm(channels, channels, 1, norm, groups=groups, parts=groups),
                         _conv_norm(channels, channels, 3, norm, groups=channels, parts=groups, act=False),
                         _conv_norm(channels, channels, 1, norm, groups=groups, parts=groups))


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """ShuffleNet channel shuffle: view the channels as (groups, C / groups), transpose, flatten.

    One copy in the input's memory format: a channels-last input gives a channels-last output.
    """
    b, c, h, w = x.shape
    if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        nhwc = x.permute(0, 2, 3, 1).reshape(b, h, w, groups, c // groups).transpose(3, 4)
        return nhwc.reshape(b, h, w, c).permute(0, 3, 1, 2)
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class FusedExperts(nn.Module):
    """T width-preserving experts (1x1 -> dw 3x3 -> 1x1) run as one set of grouped convolutions."""

    def __init__(self, num_experts: int, width: int, norm: str = "bn") -> None:
        super().__init__()
        self.num_experts, self.width = num_experts, width
        self.body = _pw_dw_pw(num_experts * width, norm, groups=num_experts)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class LoopExperts(nn.Module):
    """The same experts as :class:`FusedExperts`, one module per task in a Python loop (reference, benchmarks)."""

    def __init__(self, num_experts: int, width: int, norm: str = "bn") -> None:
        super().__init__()
        self.num_experts, self.width = num_experts, width
        self.experts = nn.ModuleList([_pw_dw_pw(width, norm) for _ in range(num_experts)])

    def forward(self, x: Tensor) -> Tensor:
        chunks = x.split(self.width, dim=1)
        return torch.cat([expert(chunk) for expert, chunk in zip(self.experts, chunks, strict=True)], dim=1)

    @classmethod
    def from_fused(cls, fused: FusedExperts, norm: str = "bn") -> LoopExperts:
        """Per-task experts holding exactly the weights and norm statistics of ``fused``."""
        loop = cls(fused.num_experts, fused.width, norm).to(next(fused.parameters()))
        for t, expert in enumerate(loop.experts):
            state = {key: value.chunk(fused.num_experts)[t] if value.dim() > 0 else value
                     for key, value in fused.body.state_dict().items()}
            expert.load_state_dict(state)
        return loop


def _experts(kind: str, num_experts: int, width: int, norm: str) -> nn.Module:
    if kind == "fused":
        return FusedExperts(num_experts, width, norm)
    if kind == "loop":
        return LoopExperts(num_experts, width, norm)
    raise unknown_name_error("expert implementation", kind, list(EXPERT_IMPLEMENTATIONS))


class SquadBlock(nn.Module):
    """Experts on the task chunks, shared chunks passed through, optional shuffle, point-wise aggregation + residual."""

    def __init__(self, num_tasks: int, num_shared: int, width: int, norm: str = "bn", shuffle: bool = True,
                 experts: str = "fused") -> None:
        super().__init__()
        self.num_tasks, self.num_shared, self.width, self.shuffle = num_tasks, num_shared, width, shuffle
        self.experts = _experts(experts, num_tasks, width, norm)
        self.aggregate = _pw_dw_pw((num_tasks + num_shared) * width, norm)

    def forward(self, x: Tensor) -> Tensor:
        split = self.num_tasks * self.width
        y = torch.cat([self.experts(x[:, :split]), x[:, split:]], dim=1)
        if self.shuffle:
            y = channel_shuffle(y, self.num_tasks + self.num_shared)
        return x + self.aggregate(y)


class Downsample(nn.Module):
    """Partition-unaware stride-2 downsampling that doubles the width: two branches, optional shuffle, aggregation.

    As released, the output is the aggregation alone; ``residual=True`` returns ``y + aggregate(y)``
    instead (what mtlzoo built before 2026-11-26, with ``shuffle=True``), kept to rebuild models trained that way.
    """

    def __init__(self, channels: int, groups: int, norm: str = "bn", shuffle: bool = True,
                 residual: bool = False) -> None:
        super().__init__()
        self.groups, self.shuffle, self.residual = groups, shuffle, residual
        self.direct = nn.Sequential(_conv_norm(channels, channels, 3, norm, groups=channels, stride=2, act=False),
                                    _conv_norm(channels, channels, 1, norm))
        self.expand = nn.Sequential(_conv_norm(channels, channels, 1, norm),
                                    _conv_norm(channels, channels, 3, norm, groups=channels, stride=2, act=False),
                                    _conv_norm(channels, channels, 1, norm))
        self.aggregate = _pw_dw_pw(2 * channels, norm)

    def forward(self, x: Tensor) -> Tensor:
        y = torch.cat([self.direct(x), self.expand(x)], dim=1)
        if self.shuffle:
            y = channel_shuffle(y, self.groups)
        return y + self.aggregate(y) if self.residual else self.aggregate(y)


class _NormStatsKept:
    """Context that restores the running statistics of ``module``'s batch norms on exit, so that a recomputation
    does not update them again; re-entrant, as a retained graph recomputes once per backward."""

    def __init__(self, module: nn.Module) -> None:
        self.buffers = [b for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
                        for b in m.buffers()]
        self.saved: list[list[Tensor]] = []

    def __enter__(self) -> None:
        self.saved.append([b.clone() for b in self.buffers])

    def __exit__(self, *exc: object) -> None:
        with torch.no_grad():
            for buffer, value in zip(self.buffers, self.saved.pop(), strict=True):
                buffer.copy_(value)


def _checkpointed(block: nn.Module, x: Tensor) -> Tensor:
    """``block(x)`` keeping only ``x`` for backward; the block runs again in backward, its norm statistics kept."""
    return checkpoint(block, x, use_reentrant=False, context_fn=lambda: (nullcontext(), _NormStatsKept(block)))


class SquadNetEncoder(Encoder):
    """Stem (stride 2) and three stages of expert-squad blocks; returns every stage's output (strides 2, 4, 8).

    The downsampling layer after stage i shuffles when stage i does (``shuffle[i]``), as in the release.
    ``checkpoint_experts=True`` checkpoints each expert-squad block while gradients are on: its
    activations are recomputed in backward instead of kept (see :class:`SquadNet`).
    """

    def __init__(self, num_tasks: int, num_shared: int = 2, width: int = 32, depths: Sequence[int] = (4, 4, 4),
                 shuffle: Sequence[bool] = (True, True, False), norm: str = "bn", experts: str = "fused",
                 in_chans: int = 3, downsample_residual: bool = False, checkpoint_experts: bool = False) -> None:
        super().__init__()
        self.checkpoint_experts = bool(checkpoint_experts)
        parts = num_tasks + num_shared
        channels = parts * width
        self.stem = nn.Sequential(_conv_norm(in_chans, channels, 3, norm, stride=2),
                                  _conv_norm(channels, channels, 3, norm, groups=channels),
                                  _conv_norm(channels, channels, 1, norm))
        self.stages, self.downsamples = nn.ModuleList(), nn.ModuleList()
        self.out_channels, self.reductions = [], []
        for i, (depth, shuffled) in enumerate(zip(depths, shuffle, strict=True)):
            if i > 0:
                self.downsamples.append(Downsample(channels, 2 * parts, norm, shuffle[i - 1], downsample_residual))
                channels, width = 2 * channels, 2 * width
            self.stages.append(nn.Sequential(*[SquadBlock(num_tasks, num_shared, width, norm, shuffled, experts)
                                               for _ in range(depth)]))
            self.out_channels.append(channels)
            self.reductions.append(2 ** (i + 1))

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.stem(x)
        features = []
        for i, stage in enumerate(self.stages):
            if i > 0:
                x = self.downsamples[i - 1](x)
            if self.checkpoint_experts and torch.is_grad_enabled():
                for block in stage:
                    x = _checkpointed(block, x)
            else:
                x = stage(x)
            features.append(x)
        return features


class SquadNet(MultiTaskModel):
    """Expert-squad backbone + one head per task reading its own chunk and the shared chunks.

    The backbone width is (T + S) * ``width``, so a SquadNet is tied to its task set: tasks cannot be
    added or removed after construction. ``head_options`` are keyword arguments of the ``head``
    (see :class:`mtlzoo.models.heads.ASPPHead`); left ``None`` with ``head="aspp"`` they are
    :data:`RELEASE_ASPP_OPTIONS` (the release's DeepLab-v3 head); ``{}`` gives mtlzoo's lighter ASPP
    (rates 6/12/18, no pooling BN, no dropout). ``downsample_residual=True`` adds a residual around the
    downsampling aggregation (not in the release; off by default).

    ``checkpoint_experts=True`` trades compute for memory: each expert-squad block keeps only its input for
    backward and runs again there (``torch.utils.checkpoint``, non-reentrant), so a training step holds one
    tensor per block instead of every activation inside the blocks, for about one more forward of the
    blocks. Outputs, gradients and batch-norm running statistics are those of the default (the running
    statistics are restored after each recomputation). Off by default; it changes no parameter, so
    checkpoints load either way.
    """

    def __init__(self, tasks: TaskSpec, depths: Sequence[int] = (4, 4, 4), width: int = 32, num_shared: int = 2,
                 shuffle: bool | Sequence[bool] = (True, True, False), norm: str = "bn", experts: str = "fused",
                 head: str | None = "aspp", head_width: int | None = None, in_chans: int = 3,
                 head_options: Mapping[str, Any] | None = None, downsample_residual: bool = False,
                 checkpoint_experts: bool = False) -> None:
        super().__init__(tasks, head=head, head_width=head_width, in_chans=in_chans)
        if head_options is None:
            head_options = RELEASE_ASPP_OPTIONS if head == "aspp" else {}
        self.head_options = dict(head_options)
        if len(depths) != 3 or any(int(d) < 1 for d in depths):
            raise ValueError(f"depths must be three positive ints (one per stage), got {depths!r}")
        if num_shared < 0 or width < 1:
            raise ValueError(f"need num_shared >= 0 and width >= 1, got num_shared={num_shared}, width={width}")
        shuffle = [bool(shuffle)] * 3 if isinstance(shuffle, bool) else [bool(s) for s in shuffle]
        if len(shuffle) != 3:
            raise ValueError(f"shuffle must be a bool or three bools (one per stage), got {shuffle!r}")
        self.num_shared = num_shared
        self.encoder = SquadNetEncoder(len(self.tasks), num_shared, width, depths, shuffle, norm, experts, in_chans,
                                       downsample_residual, checkpoint_experts)
        self.build_heads()

    def _new_head(self, task: Task) -> nn.Module:
        return build_head(task, self.head_in_channels(task), self.head_type, self.head_width, self.head_options)

    @property
    def num_parts(self) -> int:
        """Number of channel chunks per stage: one per task plus the shared ones."""
        return len(self.tasks) + self.num_shared

    def head_in_channels(self, task: Task) -> list[int]:
        return [c // self.num_parts * (1 + self.num_shared) for c in self.encoder.out_channels]

    def head_features(self, rep: Representation, task: Task) -> tuple[Tensor, ...]:
        index = self.task_names.index(task.name)
        num_tasks = len(self.tasks)
        out = []
        for feature in rep.features:
            c = feature.shape[1] // self.num_parts
            out.append(torch.cat([feature[:, index * c:(index + 1) * c], feature[:, num_tasks * c:]], dim=1))
        return tuple(out)

    def add_task(self, task: Task | Mapping[str, Any]) -> nn.Module:
        raise ValueError(f"{self.architecture} partitions its channels per task; build a new model with the task "
                         f"list {self.task_names} + [{task!r}] instead of adding one")

    def remove_task(self, name: str) -> Task:
        raise ValueError(f"{self.architecture} partitions its channels per task; build a new model without "
                         f"{name!r} instead of removing it")


@register_model
def squadnet_tiny(tasks: TaskSpec, **kwargs: Any) -> SquadNet:
    """SquadNet with 2 expert-squad blocks per stage and one shared chunk (the release's tiny ablation configs)."""
    return SquadNet(tasks, **{"depths": (2, 2, 2), "num_shared": 1, **kwargs})


@register_model
def squadnet_small(tasks: TaskSpec, **kwargs: Any) -> SquadNet:
    """SquadNet with 4 expert-squad blocks per stage and two shared chunks."""
    return SquadNet(tasks, **{"depths": (4, 4, 4), **kwargs})


@register_model
def squadnet_base(tasks: TaskSpec, **kwargs: Any) -> SquadNet:
    """SquadNet with 8 expert-squad blocks per stage and two shared chunks (the released main configuration)."""
    return SquadNet(tasks, **{"depths": (8, 8, 8), **kwargs})

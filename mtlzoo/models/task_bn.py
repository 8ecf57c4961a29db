"""Shared convolutions followed by task-specific BatchNorm: the unit connection strength is measured on.

Jeong & Yoon (CVPR 2024) follow every shared conv with one BN per task. The connection strength of
task t on output channel p of conv W (Eq. 4-7) is

    S_p^t = gamma_{t,p}^2 / (Var_t[y]_p + eps) * (1/K^2) sum_{q,m,n} W[p,q,m,n]^2,
    S^t_p <- S_p^t / sum_p' S_p'^t                                 (normalised over the layer's channels),

and the top-priority task of channel p is argmax_t S_p^t. :class:`ConvTaskBN` keeps the conv and
its per-task BNs in one module, so the pairing is explicit (no name matching).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class TaskSpecificBN(nn.Module):
    """One ``BatchNorm2d`` per task; with ``task=None`` the batch holds T task-major chunks (task folded into batch)."""

    def __init__(self, channels: int, tasks: Sequence[str]) -> None:
        super().__init__()
        self.channels = channels
        self.norms = nn.ModuleDict({name: nn.BatchNorm2d(channels) for name in tasks})

    @property
    def tasks(self) -> list[str]:
        """Task names in the order the folded batch stacks them."""
        return list(self.norms.keys())

    def forward(self, x: Tensor, task: str | None = None) -> Tensor:
        if task is not None:
            return self.norms[task](x)
        chunks = x.chunk(len(self.norms))
        return torch.cat([norm(chunk) for norm, chunk in zip(self.norms.values(), chunks, strict=True)])

    def add_task(self, name: str) -> None:
        """Add a fresh BN for a new task, on the device and dtype of the existing ones."""
        reference = next(iter(self.norms.values())).weight
        self.norms[name] = nn.BatchNorm2d(self.channels).to(reference)

    def remove_task(self, name: str) -> None:
        """Drop the BN of a removed task."""
        del self.norms[name]


class ConvTaskBN(nn.Module):
    """A shared ``Conv2d`` (no bias) explicitly paired with its :class:`TaskSpecificBN`."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, tasks: Sequence[str],
                 stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        padding = dilation * (kernel_size - 1) // 2
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, bias=False)
        self.bn = TaskSpecificBN(out_channels, tasks)

    def forward(self, x: Tensor, task: str | None = None) -> Tensor:
        return self.bn(self.conv(x), task)

    @torch.no_grad()
    def connection_strength(self, eps: float = 1e-12) -> Tensor:
        """Normalised connection strength (T, C_out), tasks in ``self.bn.tasks`` order (Eq. 4, 6, 7)."""
        weight = self.conv.weight.float()
        kernel_area = weight[0, 0].numel()
        row = weight.pow(2).flatten(1).sum(1) / kernel_area
        norms = list(self.bn.norms.values())
        gamma = torch.stack([n.weight.float() for n in norms])
        var = torch.stack([n.running_var.float() for n in norms])
        bn_eps = torch.tensor([n.eps for n in norms], device=var.device).unsqueeze(1)
        strength = gamma.pow(2) / (var + bn_eps) * row
        return strength / (strength.sum(dim=1, keepdim=True) + eps)

    @torch.no_grad()
    def top_priority(self) -> Tensor:
        """Index (into ``self.bn.tasks``) of the top-priority task of every output channel (Eq. 10), shape (C_out,)."""
        return self.connection_strength().argmax(dim=0)

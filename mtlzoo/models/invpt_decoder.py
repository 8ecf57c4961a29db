"""The inverted-pyramid transformer decoder of InvPT (Ye & Xu, ECCV 2022), in a compact form.

All tasks' feature maps are flattened into one token sequence (a learned embedding per task and a
2-D sine-cosine position code tell the tokens apart) and processed jointly: every token attends to
the tokens of every task. Stage by stage the maps are upsampled x2 with fewer channels (the
inverted pyramid: patch stride p -> p/2 -> p/4) and an earlier ViT layer is added as a skip
connection. At the finer stages keys and values come from each task's map average-pooled by
``kv_stride`` (efficient attention), so the cost stays linear in the number of query tokens.

Simplified with respect to the paper: no cross-scale attention message passing between stages and
a plain bilinear + conv upsampling instead of the UP-Transformer block's reshaping convolutions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mtlzoo.models.heads import _conv_bn_relu


def sincos_position(h: int, w: int, dim: int, like: Tensor) -> Tensor:
    """Fixed 2-D sine-cosine position code ``(h * w, dim)``: half the channels encode rows, half columns."""
    quarter = max(dim // 4, 1)
    freq = torch.exp(-math.log(10000.0) * torch.arange(quarter, device=like.device, dtype=torch.float32) / quarter)
    rows = torch.arange(h, device=like.device, dtype=torch.float32)[:, None] * freq
    cols = torch.arange(w, device=like.device, dtype=torch.float32)[:, None] * freq
    row_code = torch.cat([rows.sin(), rows.cos()], dim=1)[:, None, :].expand(h, w, -1)
    col_code = torch.cat([cols.sin(), cols.cos()], dim=1)[None, :, :].expand(h, w, -1)
    code = torch.cat([row_code, col_code], dim=2).reshape(h * w, -1)
    return F.pad(code, (0, dim - code.shape[1])).to(like.dtype)


class JointAttention(nn.Module):
    """Multi-head self-attention over the tokens of all tasks; keys / values from each task's map pooled by
    ``kv_stride`` (1 = full attention)."""

    def __init__(self, dim: int, heads: int, kv_stride: int = 1) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"decoder width {dim} is not divisible by its {heads} attention heads")
        self.heads, self.kv_stride = heads, kv_stride
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.kv_norm = nn.LayerNorm(dim) if kv_stride > 1 else nn.Identity()
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, tasks: int, hw: tuple[int, int]) -> Tensor:
        batch, n, dim = x.shape
        source = x
        if self.kv_stride > 1:
            h, w = hw
            maps = x.reshape(batch * tasks, h, w, dim).permute(0, 3, 1, 2)
            pooled = F.adaptive_avg_pool2d(maps, (math.ceil(h / self.kv_stride), math.ceil(w / self.kv_stride)))
            source = self.kv_norm(pooled.flatten(2).transpose(1, 2).reshape(batch, -1, dim))
        q = self.q(x).reshape(batch, n, self.heads, -1).transpose(1, 2)
        k, v = self.kv(source).reshape(batch, source.shape[1], 2, self.heads, -1).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(batch, n, dim))


class JointBlock(nn.Module):
    """Pre-norm transformer block on the joint token sequence: attention across tasks, then an MLP."""

    def __init__(self, dim: int, heads: int, kv_stride: int, mlp_ratio: float = 2.0) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = JointAttention(dim, heads, kv_stride)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: Tensor, tasks: int, hw: tuple[int, int]) -> Tensor:
        x = x + self.attn(self.norm1(x), tasks, hw)
        return x + self.mlp(self.norm2(x))


class InvertedPyramidDecoder(nn.Module):
    """Joint transformer stages at growing resolution over ``tasks`` task maps of ``dims[0]`` channels.

    ``skip_channels[k]`` is the width of the encoder feature added before stage ``k + 1``.
    """

    def __init__(self, tasks: int, dims: Sequence[int], num_heads: Sequence[int], depths: Sequence[int],
                 kv_strides: Sequence[int], skip_channels: Sequence[int]) -> None:
        super().__init__()
        stages = len(dims)
        if not (len(num_heads) == len(depths) == len(kv_strides) == stages and len(skip_channels) == stages - 1):
            raise ValueError(f"decoder stages disagree: dims {list(dims)}, num_heads {list(num_heads)}, depths "
                             f"{list(depths)}, kv_strides {list(kv_strides)} need one entry per stage and "
                             f"skip_channels {list(skip_channels)} one fewer")
        self.task_embed = nn.Parameter(torch.zeros(tasks, dims[0]))
        nn.init.trunc_normal_(self.task_embed, std=0.02)
        self.stages = nn.ModuleList(nn.ModuleList(JointBlock(d, h, s) for _ in range(n))
                                    for d, h, n, s in zip(dims, num_heads, depths, kv_strides, strict=True))
        self.norms = nn.ModuleList(nn.LayerNorm(d) for d in dims)
        self.upsample = nn.ModuleList(_conv_bn_relu(dims[k], dims[k + 1]) for k in range(stages - 1))
        self.skips = nn.ModuleList(nn.Conv2d(c, dims[k + 1], 1) for k, c in enumerate(skip_channels))
        self.out_channels = dims[-1]

    def forward(self, maps: Tensor, skips: Sequence[Tensor]) -> Tensor:
        """``maps`` (B, T, C0, h, w) -> (B, T, C_last, h * 2^(S-1), w * 2^(S-1)); ``skips`` coarsest first."""
        batch, tasks = maps.shape[:2]
        x = maps.flatten(0, 1)
        for k, (blocks, norm) in enumerate(zip(self.stages, self.norms, strict=True)):
            if k > 0:
                x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
                x = self.upsample[k - 1](x)
                skip = F.interpolate(self.skips[k - 1](skips[k - 1]), size=x.shape[-2:], mode="bilinear",
                                     align_corners=False)
                x = x + skip.repeat_interleave(tasks, dim=0)
            dim, h, w = x.shape[1:]
            tokens = x.flatten(2).transpose(1, 2) + sincos_position(h, w, dim, x)
            if k == 0:
                tokens = tokens + self.task_embed.repeat(batch, 1)[:, None, :].to(tokens.dtype)
            tokens = tokens.reshape(batch, tasks * h * w, dim)
            for block in blocks:
                tokens = block(tokens, tasks, (h, w))
            x = norm(tokens).reshape(batch * tasks, h * w, dim).transpose(1, 2).reshape(batch * tasks, dim, h, w)
        return x.reshape(batch, tasks, *x.shape[1:])

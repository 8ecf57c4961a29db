"""Joint transforms for dense multi-task samples: every target moves with the image, by its kind's rule.

Samples are dicts ``{"image": (3, H, W) float, <task>: target}`` with the target conventions of
:mod:`mtlzoo.losses`. Images are resampled bilinearly; labels, depth and normals with nearest
neighbour (so void / invalid markers survive). Zooming by ``s`` divides depth by ``s`` (multiplies
inverse depth); a horizontal flip negates the normals' x component and can swap left / right labels.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mtlzoo.registry import unknown_name_error

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# kind of the task names the presets use; other keys need an explicit kinds= mapping
DEFAULT_KINDS = {"semseg": "segmentation", "parts": "parts", "depth": "depth", "normals": "normals",
                 "edge": "edge", "saliency": "saliency"}
_LABEL_KINDS = ("segmentation", "parts", "edge", "saliency")


def image_to_tensor(rgb: np.ndarray) -> Tensor:
    """An (H, W, 3) uint8 or [0, 1] float image as a (3, H, W) float tensor normalised with ImageNet mean / std."""
    image = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float()
    if rgb.dtype == np.uint8:
        image = image / 255.0
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (image - mean) / std


def targets_to_tensors(arrays: Mapping[str, np.ndarray], kinds: Mapping[str, str]) -> dict[str, Tensor]:
    """Convert (H, W[, C]) numpy targets to the tensor conventions of :mod:`mtlzoo.losses`, by kind."""
    out = {}
    for name, kind in kinds.items():
        value = np.asarray(arrays[name])
        if kind in ("segmentation", "parts"):
            out[name] = torch.from_numpy(value.astype(np.int64))
        elif kind == "normals":
            out[name] = torch.from_numpy(np.ascontiguousarray(value, np.float32)).permute(2, 0, 1).contiguous()
        elif kind in ("depth", "edge", "saliency"):
            out[name] = torch.from_numpy(np.ascontiguousarray(value, np.float32).reshape(1, *value.shape[:2]))
        else:
            raise unknown_name_error("dense target kind", kind, ["segmentation", "parts", "depth", "normals",
                                                                  "edge", "saliency"])
    return out


def _kinds(sample: Mapping[str, Tensor], kinds: Mapping[str, str] | None) -> dict[str, str]:
    table = {**DEFAULT_KINDS, **(kinds or {})}
    unknown = [k for k in sample if k != "image" and k not in table]
    if unknown:
        raise ValueError(f"cannot tell the kind of target(s) {unknown}; pass kinds={{name: kind}} "
                         f"(known names: {sorted(table)})")
    return {k: table[k] for k in sample if k != "image"}


def _resample(value: Tensor, kind: str | None, size: tuple[int, int]) -> Tensor:
    """Resize one (C, H, W) or (H, W) tensor: bilinear for the image (kind None), nearest otherwise."""
    flat = value.dim() == 2
    x = value[None, None] if flat else value[None]
    if kind is None:
        out = F.interpolate(x.float(), size=size, mode="bilinear", align_corners=False)
    else:
        out = F.interpolate(x.float(), size=size, mode="nearest").to(value.dtype)
    return out[0, 0] if flat else out[0]


class Resize:
    """Resize the image bilinearly and every target with nearest neighbour to ``size`` (H, W)."""

    def __init__(self, size: tuple[int, int], kinds: Mapping[str, str] | None = None) -> None:
        self.size, self.kinds = (int(size[0]), int(size[1])), kinds

    def __call__(self, sample: dict[str, Tensor]) -> dict[str, Tensor]:
        kinds = _kinds(sample, self.kinds)
        return {k: _resample(v, kinds.get(k), self.size) for k, v in sample.items()}


class RandomScaleCrop:
    """Zoom in by a random factor from ``scales``: crop (H/s, W/s) at a random place and resize back.

    Depth is divided by s (the scene looks s times closer); with ``inverse_depth=True`` (MTAN
    Cityscapes) it is multiplied instead. Invalid depth (0) stays 0.
    """

    def __init__(self, scales: Sequence[float] = (1.0, 1.2, 1.5), kinds: Mapping[str, str] | None = None,
                 inverse_depth: bool = False) -> None:
        if not scales or min(scales) < 1.0:
            raise ValueError(f"scales must be a non-empty list of factors >= 1, got {scales!r}")
        self.scales, self.kinds, self.inverse_depth = tuple(float(s) for s in scales), kinds, inverse_depth

    def __call__(self, sample: dict[str, Tensor]) -> dict[str, Tensor]:
        kinds = _kinds(sample, self.kinds)
        h, w = sample["image"].shape[-2:]
        scale = self.scales[int(torch.randint(len(self.scales), ()))]
        ch, cw = int(round(h / scale)), int(round(w / scale))
        top, left = int(torch.randint(h - ch + 1, ())), int(torch.randint(w - cw + 1, ()))
        out = {}
        for key, value in sample.items():
            crop = value[..., top:top + ch, left:left + cw]
            resized = _resample(crop, kinds.get(key), (h, w))
            if kinds.get(key) == "depth":
                resized = resized * scale if self.inverse_depth else resized / scale
            out[key] = resized
        return out


class RandomHorizontalFlip:
    """Mirror the sample with probability ``p``; normals' x is negated and ``swaps`` exchange label ids.

    ``swaps`` maps a task name to (a, b) label pairs to exchange, e.g. synthscenes parts
    ``{"parts": [(3, 4), (5, 6)]}`` (left / right arms and legs).
    """

    def __init__(self, p: float = 0.5, kinds: Mapping[str, str] | None = None,
                 swaps: Mapping[str, Sequence[tuple[int, int]]] | None = None) -> None:
        self.p, self.kinds, self.swaps = float(p), kinds, dict(swaps or {})

    def __call__(self, sample: dict[str, Tensor]) -> dict[str, Tensor]:
        if float(torch.rand(())) >= self.p:
            return sample
        kinds = _kinds(sample, self.kinds)
        out = {}
        for key, value in sample.items():
            flipped = value.flip(-1)
            if kinds.get(key) == "normals":
                flipped = flipped.clone()
                flipped[0] = -flipped[0]
            for a, b in self.swaps.get(key, ()):
                flipped = torch.where(flipped == a, b, torch.where(flipped == b, a, flipped))
            out[key] = flipped
        return out


class Compose:
    """Apply joint transforms in order."""

    def __init__(self, transforms: Sequence[Callable[[dict], dict]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, sample: dict[str, Tensor]) -> dict[str, Tensor]:
        for transform in self.transforms:
            sample = transform(sample)
        return sample

"""Joint transforms for dense multi-task samples: every target moves with the image, by its kind's rule.

Samples are dicts ``{"image": (3, H, W) float, <task>: target}`` with the target conventions of
:mod:`mtlzoo.losses`. Images are resampled bilinearly; each target as its TaskKind says (``resample``,
``zoom_exponent``, ``on_flip``): labels, depth and normals with nearest neighbour (so void / invalid markers
survive), keypoint heatmaps bilinearly; zooming by ``s`` divides depth by ``s`` (multiplies inverse depth);
a horizontal flip negates the normals' x component and can swap left / right labels or keypoints.
Image-level targets (classification, regression, multilabel) pass unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mtlzoo.tasks import TASK_KINDS

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# kind of the task names the presets use; other keys need an explicit kinds= mapping
DEFAULT_KINDS = {"semseg": "segmentation", "parts": "parts", "depth": "depth", "normals": "normals",
                 "edge": "edge", "saliency": "saliency"}


def image_to_tensor(rgb: np.ndarray) -> Tensor:
    """An (H, W, 3) uint8 or [0, 1] float image as a (3, H, W) float tensor normalised with ImageNet mean / std."""
    image = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float()
    if rgb.dtype == np.uint8:
        image = image / 255.0
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (image - mean) / std


def targets_to_tensors(arrays: Mapping[str, np.ndarray], kinds: Mapping[str, str]) -> dict[str, Tensor]:
    """Convert (H, W[, C]) numpy targets to the tensor conventions of :mod:`mtlzoo.losses` (each kind's
    ``to_tensor``)."""
    return {name: TASK_KINDS.get(kind).to_tensor(np.asarray(arrays[name])) for name, kind in kinds.items()}


def _kinds(sample: Mapping[str, Tensor], kinds: Mapping[str, str] | None) -> dict[str, str]:
    table = {**DEFAULT_KINDS, **(kinds or {})}
    unknown = [k for k in sample if k != "image" and k not in table]
    if unknown:
        raise ValueError(f"cannot tell the kind of target(s) {unknown}; pass kinds={{name: kind}} "
                         f"(known names: {sorted(table)})")
    return {k: table[k] for k in sample if k != "image"}


def _spatial(kind: str | None) -> bool:
    """Whether joint transforms move this entry with the image: the image (kind None) and dense targets."""
    return kind is None or TASK_KINDS.get(kind).resample is not None


def _resample(value: Tensor, kind: str | None, size: tuple[int, int]) -> Tensor:
    """Resize one (C, H, W) or (H, W) tensor: bilinear for the image (kind None), else by the kind's
    ``resample`` rule (nearest keeps the dtype, label ids and invalid markers); image-level targets pass."""
    if not _spatial(kind):
        return value
    flat = value.dim() == 2
    x = value[None, None] if flat else value[None]
    mode = "bilinear" if kind is None else TASK_KINDS.get(kind).resample
    if mode == "bilinear":
        out = F.interpolate(x.float(), size=size, mode="bilinear", align_corners=False)
    else:
        out = F.interpolate(x.float(), size=size, mode="nearest").to(value.dtype)
    return out[0, 0] if flat else out[0]


class Resize:
    """Resize the image bilinearly and every dense target by its kind's ``resample`` rule to ``size`` (H, W)."""

    def __init__(self, size: tuple[int, int], kinds: Mapping[str, str] | None = None) -> None:
        self.size, self.kinds = (int(size[0]), int(size[1])), kinds

    def __call__(self, sample: dict[str, Tensor]) -> dict[str, Tensor]:
        kinds = _kinds(sample, self.kinds)
        return {k: _resample(v, kinds.get(k), self.size) for k, v in sample.items()}


class RandomScaleCrop:
    """Zoom in by a random factor from ``scales``: crop (H/s, W/s) at a random place and resize back.

    A target is multiplied by ``s ** kind.zoom_exponent``: depth is divided by s (the scene looks s times
    closer); with ``inverse_depth=True`` (MTAN Cityscapes) the exponent is negated, so inverse depth is
    multiplied instead. Invalid depth (0) stays 0; image-level targets pass unchanged.
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
            kind = kinds.get(key)
            if not _spatial(kind):
                out[key] = value
                continue
            resized = _resample(value[..., top:top + ch, left:left + cw], kind, (h, w))
            exponent = 0.0 if kind is None else TASK_KINDS.get(kind).zoom_exponent
            if exponent:
                resized = resized * scale ** (-exponent if self.inverse_depth else exponent)
            out[key] = resized
        return out


class RandomHorizontalFlip:
    """Mirror the sample with probability ``p``; each target is then fixed by its kind's ``on_flip``.

    ``swaps`` maps a task name to (a, b) pairs its kind exchanges, e.g. synthscenes parts label ids
    ``{"parts": [(3, 4), (5, 6)]}`` (left / right arms and legs) or keypoint channels; normals' x is
    negated; image-level targets pass unchanged.
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
            kind = kinds.get(key)
            if kind is None:
                out[key] = value.flip(-1)
            else:
                spec = TASK_KINDS.get(kind)
                out[key] = value if spec.resample is None else spec.on_flip(value.flip(-1), self.swaps.get(key, ()))
        return out


class Compose:
    """Apply joint transforms in order."""

    def __init__(self, transforms: Sequence[Callable[[dict], dict]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, sample: dict[str, Tensor]) -> dict[str, Tensor]:
        for transform in self.transforms:
            sample = transform(sample)
        return sample

"""Target conversions shared by the shipped kinds: loaded numpy arrays to the tensors their losses read."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def labels_to_tensor(array: np.ndarray) -> Tensor:
    """Class ids: an (H, W) map or a (B,) vector as an int64 tensor of the same shape."""
    return torch.from_numpy(np.asarray(array).astype(np.int64))


def map_to_tensor(array: np.ndarray) -> Tensor:
    """A one-channel map (depth, edge, saliency): (H, W[, 1]) as a float32 (1, H, W) tensor."""
    value = np.ascontiguousarray(array, np.float32)
    return torch.from_numpy(value.reshape(1, *value.shape[:2]))


def channels_last_to_tensor(array: np.ndarray) -> Tensor:
    """A multi-channel map (normals, heatmaps): (H, W, C) as a float32 (C, H, W) tensor."""
    return torch.from_numpy(np.ascontiguousarray(array, np.float32)).permute(2, 0, 1).contiguous()


def values_to_tensor(array: np.ndarray) -> Tensor:
    """Image-level values (regression, multilabel): the array as a float32 tensor of its own shape."""
    return torch.as_tensor(np.asarray(array, np.float32))

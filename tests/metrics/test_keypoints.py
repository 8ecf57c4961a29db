"""PCKMeter against an independent numpy re-computation from keypoint coordinates."""

import math

import numpy as np
import pytest
import torch

from mtlzoo.metrics import PCKMeter
from mtlzoo.tasks.kinds.keypoints import render_heatmaps


def _pck_numpy(pred: np.ndarray, true: np.ndarray, visible: np.ndarray, threshold: float, size: int) -> float:
    """Fraction of visible keypoints whose (x, y) lies within threshold * size pixels of the truth."""
    distance = np.sqrt(((pred - true) ** 2).sum(-1))
    return float(((distance <= threshold * size) & visible).sum() / visible.sum())


@pytest.mark.parametrize("threshold", [0.05, 0.1, 0.2])
def test_pck_matches_numpy_on_integer_keypoints(threshold):
    rng = np.random.default_rng(0)
    b, k, h, w = 6, 5, 24, 32
    true = np.stack([rng.integers(0, w, (b, k)), rng.integers(0, h, (b, k))], -1).astype(np.float32)
    pred = np.clip(true + rng.integers(-8, 9, (b, k, 2)), 0, [w - 1, h - 1]).astype(np.float32)
    visible = rng.random((b, k)) < 0.8
    target = render_heatmaps(torch.from_numpy(np.concatenate([true, visible[..., None]], -1)), (h, w))
    output = render_heatmaps(torch.from_numpy(np.concatenate([pred, np.ones((b, k, 1))], -1)), (h, w), sigma=3.0)
    meter = PCKMeter(threshold=threshold)
    meter.update(output[:3], target[:3])
    meter.update(output[3:], target[3:])
    assert meter.compute()["pck"] == pytest.approx(_pck_numpy(pred, true, visible, threshold, max(h, w)))


def test_invisible_keypoints_do_not_count():
    target = torch.zeros(1, 2, 8, 8)
    target[0, 0, 2, 3] = 1.0                                  # keypoint 0 visible at (y 2, x 3); keypoint 1 absent
    output = torch.zeros(1, 2, 8, 8)
    output[0, 0, 2, 3] = output[0, 1, 7, 7] = 1.0
    meter = PCKMeter()
    meter.update(output, target)
    assert meter.compute() == {"pck": 1.0}
    meter.reset()
    meter.update(output, torch.zeros(1, 2, 8, 8))
    assert math.isnan(meter.compute()["pck"])


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="threshold"):
        PCKMeter(threshold=0)
    with pytest.raises(ValueError, match="heatmaps"):
        PCKMeter().update(torch.rand(1, 2, 4, 4), torch.rand(1, 3, 4, 4))

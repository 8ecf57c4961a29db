import math

import numpy as np
import pytest
import torch

from mtlzoo.metrics import EdgeMeter
from mtlzoo.metrics.edge import boundary_counts, ods_f


def test_balanced_bce_by_hand():
    meter = EdgeMeter(pos_weight=0.95)
    meter.update(torch.tensor([0.8, 0.3, 0.5]).view(1, 1, 1, 3), torch.tensor([1.0, 0.0, 255.0]).view(1, 1, 1, 3))
    expected = (-0.95 * math.log(0.8) - 0.05 * math.log(0.7)) / 2
    assert meter.compute() == {"bce": pytest.approx(expected)}


def _square_edges(size=40, shift=0):
    gt = np.zeros((size, size), np.float32)
    gt[10, 10:30] = gt[29, 10:30] = gt[10:30, 10] = gt[10:30, 29] = 1
    return np.roll(gt, shift, axis=1)


def test_odsf_tolerance_rule():
    gt = _square_edges()
    thresholds = np.array([0.5])
    assert ods_f(boundary_counts(gt, gt, thresholds, max_dist=0.011)) == 1.0
    shifted = _square_edges(shift=1)  # radius = 0.011 * 56.6 = 0.62 px: one pixel off is missed
    assert ods_f(boundary_counts(shifted, gt, thresholds, max_dist=0.011)) < 0.6
    assert ods_f(boundary_counts(shifted, gt, thresholds, max_dist=0.03)) == 1.0  # radius 1.7 px


def test_odsf_in_the_meter_and_ignore():
    gt = torch.from_numpy(_square_edges())[None, None]
    noisy = gt.clone()
    noisy[0, 0, 0, :] = 1.0  # a false edge on the top row ...
    meter = EdgeMeter(odsf=True, thresholds=(0.5,))
    meter.update(noisy, gt)
    fp = meter.compute()["odsf"]
    ignored = gt.clone()
    ignored[0, 0, 0, :] = 255.0  # ... that disappears when that row is ignored
    clean = EdgeMeter(odsf=True, thresholds=(0.5,))
    clean.update(noisy, ignored)
    assert fp < 1.0 and clean.compute()["odsf"] == 1.0
    plain = EdgeMeter()
    plain.update(noisy, gt)
    assert set(plain.compute()) == {"bce"}  # odsF only when asked for
    with pytest.raises(ValueError, match="pos_weight"):
        EdgeMeter(pos_weight=1.5)


def test_non_finite_target_pixels_are_ignored_like_255():
    prob = torch.tensor([0.8, 0.3, 0.5, 0.6]).view(1, 1, 1, 4)
    nan, void = EdgeMeter(odsf=True), EdgeMeter(odsf=True)
    nan.update(prob, torch.tensor([1.0, 0.0, float("nan"), float("inf")]).view(1, 1, 1, 4))
    void.update(prob, torch.tensor([1.0, 0.0, 255.0, 255.0]).view(1, 1, 1, 4))
    assert nan.compute() == void.compute()

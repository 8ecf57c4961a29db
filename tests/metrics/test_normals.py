import math

import numpy as np
import pytest
import torch

from mtlzoo.metrics import NormalsMeter, angular_error


def _tilted(degrees):
    """Unit normals tilted by the given angles from +z, shape (1, 3, 1, N)."""
    rad = torch.tensor(degrees, dtype=torch.float64).deg2rad()
    return torch.stack([rad.sin(), torch.zeros_like(rad), rad.cos()])[None, :, None, :]


def _up(n):
    return _tilted([0.0] * n)


def test_rotation_by_theta_gives_theta():
    meter = NormalsMeter()
    meter.update(_tilted([7.0] * 10), _up(10))
    out = meter.compute()
    assert out["mean"] == pytest.approx(7.0) and out["rmse"] == pytest.approx(7.0)
    assert out["median"] == pytest.approx(7.0, abs=2e-3)
    assert (out["within_11_25"], out["within_22_5"], out["within_30"]) == (1.0, 1.0, 1.0)


def test_hand_computed_fractions_and_rmse():
    meter = NormalsMeter()
    meter.update(_tilted([5.0, 15.0, 25.0, 40.0]), _up(4))
    out = meter.compute()
    assert out["mean"] == pytest.approx(21.25)
    assert out["rmse"] == pytest.approx(math.sqrt((25 + 225 + 625 + 1600) / 4))
    assert (out["within_11_25"], out["within_22_5"], out["within_30"]) == (0.25, 0.5, 0.75)
    assert out["median"] == pytest.approx(20.0, abs=2e-3)


def test_perfect_prediction_and_stable_small_angles():
    target = torch.nn.functional.normalize(torch.randn(2, 3, 4, 5), dim=1)
    meter = NormalsMeter()
    meter.update(target.clone(), target)
    out = meter.compute()
    assert out["mean"] == pytest.approx(0.0, abs=1e-6) and out["median"] < 2e-3
    assert angular_error(_tilted([1e-4]), _up(1)).item() == pytest.approx(1e-4, rel=1e-6)


def test_validity_rules():
    odd = torch.tensor([1.0, -1.0, 0.0]) / math.sqrt(2.0)  # components sum to 0: MTAN drops it
    target = torch.stack([odd, torch.zeros(3), torch.tensor([0.0, 0.0, 1.0])], dim=1)[None, :, None, :]
    pred = torch.tensor([0.0, 0.0, 1.0]).expand(3, 3).T[None, :, None, :]
    by_norm, by_sum = NormalsMeter("norm"), NormalsMeter("channel_sum")
    by_norm.update(pred, target)
    by_sum.update(pred, target)
    assert by_norm.compute()["mean"] == pytest.approx(45.0)  # (90 + 0) / 2, the zero vector dropped
    assert by_sum.compute()["mean"] == pytest.approx(0.0, abs=1e-9)


def test_per_batch_median_and_batch_mean():
    pooled = NormalsMeter(reduce="pixel", median="global")
    mtan = NormalsMeter(validity="channel_sum", reduce="batch_mean", median="per_batch")
    for pred, gt in ((_tilted([10.0, 10.0, 10.0]), _up(3)), (_tilted([20.0]), _up(1))):
        pooled.update(pred, gt)
        mtan.update(pred, gt)
    assert pooled.compute()["median"] == pytest.approx(10.0, abs=2e-3)
    assert pooled.compute()["mean"] == pytest.approx(12.5)
    assert mtan.compute()["median"] == pytest.approx(15.0, abs=2e-3)  # read from a 1/1024-degree histogram
    assert mtan.compute()["mean"] == pytest.approx(15.0)
    with pytest.raises(ValueError, match="median"):
        NormalsMeter(median="exact")


@pytest.mark.parametrize("validity", ["norm", "channel_sum"])
def test_non_finite_target_pixels_are_invalid(validity):
    pred, target = _tilted([5.0, 15.0, 25.0, 40.0]), _up(4)
    broken = target.clone()
    broken[0, :, 0, 3] = float("nan")
    broken[0, 0, 0, 2] = float("inf")
    clean, meter = NormalsMeter(validity), NormalsMeter(validity)
    clean.update(pred[..., :2], target[..., :2])
    meter.update(pred, broken)
    assert meter.compute() == pytest.approx(clean.compute())


def _numpy_mtan_normals(batches):
    """MTAN / Nash-MTL ``normal_error`` per batch (acos of the clamped dot product of unit normals on pixels whose
    target channels do not sum to 0, numpy median), averaged over batches; written from their description."""
    medians, means = [], []
    for pred, gt in batches:
        p = pred.double().numpy()
        p = p / np.linalg.norm(p, axis=1, keepdims=True)
        g = gt.double().numpy()
        mask = g.sum(axis=1) != 0
        error = np.degrees(np.arccos(np.clip((p * g).sum(axis=1)[mask], -1, 1)))
        medians.append(np.median(error))
        means.append(np.mean(error))
    return float(np.mean(means)), float(np.mean(medians))


def test_per_batch_median_is_numpy_median_per_batch():
    g = torch.Generator().manual_seed(3)
    batches = []
    for n in (6, 7, 10):  # even and odd valid counts
        gt = torch.nn.functional.normalize(torch.randn(2, 3, 1, n, generator=g), dim=1)
        gt[:, :, :, 0] = 0.0  # invalid pixels
        batches.append((gt + 0.6 * torch.randn(2, 3, 1, n, generator=g), gt))
    meter = NormalsMeter(validity="channel_sum", reduce="batch_mean", median="per_batch")
    for pred, gt in batches:
        meter.update(pred, gt)
    mean, median = _numpy_mtan_normals(batches)
    out = meter.compute()
    assert out["mean"] == pytest.approx(mean, abs=1e-4)
    assert out["median"] == pytest.approx(median, abs=1e-4)

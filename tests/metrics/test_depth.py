import math

import pytest
import torch

from mtlzoo.metrics import DepthMeter


def test_hand_computed_pixel_metrics():
    meter = DepthMeter()
    meter.update(torch.tensor([[[[1.0, 2.0, 4.0]]]]), torch.tensor([[[[1.0, 4.0, 0.0]]]]))  # last pixel invalid
    out = meter.compute()
    assert out["rmse"] == pytest.approx(math.sqrt(2.0))
    assert out["abs_err"] == pytest.approx(1.0)
    assert out["abs_rel"] == pytest.approx(0.25)
    assert out["sq_rel"] == pytest.approx(0.5)
    assert out["log_rmse"] == pytest.approx(math.log(2.0) / math.sqrt(2.0))
    assert (out["delta1"], out["delta2"], out["delta3"]) == pytest.approx((0.5, 0.5, 0.5))


def test_perfect_and_scaled_predictions():
    gt = torch.rand(2, 1, 6, 8) * 9.5 + 0.5
    meter = DepthMeter()
    meter.update(gt.clone(), gt)
    out = meter.compute()
    assert out["rmse"] == pytest.approx(0.0, abs=1e-9) and out["delta1"] == 1.0
    scaled = DepthMeter()
    scaled.update(gt * 1.1, gt)
    assert scaled.compute()["abs_rel"] == pytest.approx(0.1)


def test_batch_mean_differs_from_pixel_pooling():
    batches = [(torch.tensor([[2.0]]), torch.tensor([[1.0]])),
               (torch.tensor([[1.0, 1.0, 1.0]]), torch.tensor([[1.0, 1.0, 1.0]])),
               (torch.tensor([[5.0]]), torch.tensor([[0.0]]))]  # no valid pixel: left out of the batch mean
    pixel, batch = DepthMeter("pixel"), DepthMeter("batch_mean")
    for pred, gt in batches:
        pixel.update(pred, gt)
        batch.update(pred, gt)
    assert pixel.compute()["abs_err"] == pytest.approx(0.25)
    assert batch.compute()["abs_err"] == pytest.approx(0.5)


def test_nothing_valid_gives_nan_and_bad_reduce_raises():
    meter = DepthMeter()
    meter.update(torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2))
    assert math.isnan(meter.compute()["rmse"])
    with pytest.raises(ValueError, match="reduce"):
        DepthMeter("image")


def test_non_finite_target_pixels_are_invalid():
    pred = torch.tensor([[[[1.0, 2.0, 4.0, 3.0]]]])
    clean, broken = DepthMeter(), DepthMeter()
    clean.update(pred[..., :2], torch.tensor([[[[1.0, 4.0]]]]))
    broken.update(pred, torch.tensor([[[[1.0, 4.0, float("nan"), float("inf")]]]]))
    assert broken.compute() == pytest.approx(clean.compute())

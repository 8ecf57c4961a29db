import math

import pytest
import torch

from mtlzoo.metrics import AccuracyMeter, RegressionMeter


def test_accuracy_with_ignore():
    meter = AccuracyMeter(ignore_index=-1)
    meter.update(torch.tensor([0, 1, 2, 2]), torch.tensor([0, 2, 2, -1]))
    assert meter.compute() == {"accuracy": pytest.approx(2 / 3)}


def test_regression_mae_rmse_with_missing_targets():
    meter = RegressionMeter()
    meter.update(torch.tensor([[1.0, 2.0], [0.0, 5.0]]), torch.tensor([[2.0, 2.0], [3.0, math.nan]]))
    out = meter.compute()
    assert out["mae"] == pytest.approx(4 / 3)
    assert out["rmse"] == pytest.approx(math.sqrt(10 / 3))

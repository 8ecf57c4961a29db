import pytest
import torch

from mtlzoo.metrics import SaliencyMeter


def _batch():
    prob = torch.tensor([[0.9, 0.1, 0.9, 0.1], [0.9, 0.1, 0.1, 0.1]]).view(2, 1, 1, 4)
    target = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]]).view(2, 1, 1, 4)
    return prob, target


def test_image_averaged_f1_and_jaccard():
    meter = SaliencyMeter("image", thresholds=(0.5,))
    meter.update(*_batch())
    out = meter.compute()
    # image 1: P = R = 1/2, J = 1/3; image 2: P = R = J = 1
    assert out["maxf"] == pytest.approx(0.75)
    assert out["miou"] == pytest.approx(2 / 3)


def test_pooled_fbeta():
    meter = SaliencyMeter("pixel", thresholds=(0.5,))
    assert meter.beta2 == pytest.approx(0.3)
    meter.update(*_batch())
    out = meter.compute()
    assert out["maxf"] == pytest.approx(2 / 3)  # TP 2, predicted 3, actual 3
    assert out["miou"] == pytest.approx(0.5)


def test_beta_matters_when_precision_and_recall_differ():
    prob = torch.tensor([0.9, 0.9, 0.9, 0.1]).view(1, 1, 1, 4)
    target = torch.tensor([1.0, 0.0, 0.0, 0.0]).view(1, 1, 1, 4)
    meter = SaliencyMeter("pixel", thresholds=(0.5,))
    meter.update(prob, target)
    p, r = 1 / 3, 1.0
    assert meter.compute()["maxf"] == pytest.approx(1.3 * p * r / (0.3 * p + r))


def test_threshold_is_strict_ignore_and_empty_images():
    meter = SaliencyMeter("image", thresholds=(0.5,))
    prob = torch.tensor([[0.5, 0.7, 0.2], [0.1, 0.2, 0.3]]).view(2, 1, 1, 3)
    target = torch.tensor([[0.0, 1.0, 255.0], [0.0, 0.0, 0.0]]).view(2, 1, 1, 3)
    meter.update(prob, target)  # image 1 perfect (0.5 is not > 0.5, the 255 pixel is ignored); image 2 empty
    assert meter.compute() == {"maxf": 1.0, "miou": 1.0}


@pytest.mark.parametrize("reduce", ["image", "pixel"])
def test_perfect_and_default_thresholds(reduce):
    target = (torch.rand(3, 1, 8, 8) > 0.5).float()
    meter = SaliencyMeter(reduce)
    meter.update(target.clone(), target)
    assert meter.compute() == {"maxf": 1.0, "miou": 1.0}
    assert len(meter.thresholds) == (15 if reduce == "image" else 19)


@pytest.mark.parametrize("reduce", ["image", "pixel"])
def test_non_finite_target_pixels_are_ignored_like_255(reduce):
    prob, target = _batch()
    nan, void = target.clone(), target.clone()
    nan[0, 0, 0, 2] = float("nan")
    void[0, 0, 0, 2] = 255.0
    a, b = SaliencyMeter(reduce), SaliencyMeter(reduce)
    a.update(prob, nan)
    b.update(prob, void)
    assert a.compute() == b.compute()

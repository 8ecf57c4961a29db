import math
import warnings

import pytest
import torch

from mtlzoo.metrics import PartsMeter, SegmentationMeter


def _meter(pred, target, classes=3, absent="zero"):
    meter = SegmentationMeter(classes, absent=absent)
    meter.update(torch.tensor(pred), torch.tensor(target))
    return meter.compute()


def test_hand_computed_confusion():
    # target: 0 0 1 1 2 2 ; pred: 0 1 1 1 2 0
    out = _meter([[0, 1, 1, 1, 2, 0]], [[0, 0, 1, 1, 2, 2]])
    iou = [1 / 3, 2 / 3, 1 / 2]  # class0: tp1 fp1 fn1; class1: tp2 fp1; class2: tp1 fn1
    assert out["miou"] == pytest.approx(sum(iou) / 3)
    assert out["pixel_acc"] == pytest.approx(4 / 6)
    assert out["mean_acc"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)


def test_perfect_prediction_scores_one():
    target = torch.randint(0, 5, (2, 7, 9))
    meter = SegmentationMeter(5)
    meter.update(target.clone(), target)
    assert meter.compute() == {"miou": 1.0, "pixel_acc": 1.0, "mean_acc": 1.0}


@pytest.mark.parametrize("absent, expected", [("zero", 2 / 3), ("skip", 1.0), ("nan", math.nan)])
def test_absent_class_rules(absent, expected):
    out = _meter([[0, 1, 1]], [[0, 1, 1]], classes=3, absent=absent)
    if math.isnan(expected):
        assert math.isnan(out["miou"]) and math.isnan(out["mean_acc"])
    else:
        assert out["miou"] == pytest.approx(expected)
        assert out["mean_acc"] == pytest.approx(expected)
    assert out["pixel_acc"] == 1.0


def test_ignore_values_are_dropped():
    # 255 (MTI-Net void) and -1 (MTAN ignore) never count, whatever is predicted there
    out = _meter([[0, 1, 2, 2]], [[0, 1, 255, -1]], classes=2)
    assert out == {"miou": 1.0, "pixel_acc": 1.0, "mean_acc": 1.0}


def test_streaming_equals_one_batch():
    g = torch.Generator().manual_seed(0)
    pred, target = torch.randint(0, 4, (4, 5, 6), generator=g), torch.randint(0, 4, (4, 5, 6), generator=g)
    whole, parts = SegmentationMeter(4), PartsMeter(4)
    whole.update(pred, target)
    for i in range(4):
        parts.update(pred[i:i + 1], target[i:i + 1, None])  # (B, 1, H, W) targets are accepted too
    assert whole.compute() == pytest.approx(parts.compute())


def test_shape_mismatch_and_bad_options():
    with pytest.raises(ValueError, match="does not match"):
        SegmentationMeter(3).update(torch.zeros(1, 4, 4), torch.zeros(1, 4, 5))
    with pytest.raises(ValueError, match="absent"):
        SegmentationMeter(3, absent="ignore")
    with pytest.raises(ValueError, match="before any update"):
        SegmentationMeter(3).compute()


def test_non_finite_float_targets_are_ignored():
    meter = SegmentationMeter(2)
    meter.update(torch.tensor([[0, 1, 1, 0]]), torch.tensor([[0.0, 1.0, float("nan"), float("inf")]]))
    assert meter.compute() == {"miou": 1.0, "pixel_acc": 1.0, "mean_acc": 1.0}


def test_labels_outside_the_class_range_warn_once_naming_the_task():
    meter = SegmentationMeter(13, absent="nan", ignore_index=-1, name="semseg")
    meter.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.tensor([[[0, 40], [-1, 13]]]))
    meter.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.tensor([[[0, 40], [-1, 13]]]))
    with pytest.warns(UserWarning, match=r"task 'semseg': 4 target label\(s\) outside \[0, 12\]") as caught:
        meter.compute()
    assert len(caught) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _meter([[0, 1, 2, 2]], [[0, 1, 255, -1]], classes=2)  # the two usual void values never warn by default

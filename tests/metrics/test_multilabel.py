"""MultilabelMeter against an independent numpy re-computation of average precision and micro F1."""

import math

import numpy as np
import pytest
import torch

from mtlzoo.metrics import MultilabelMeter
from mtlzoo.metrics.multilabel import average_precision


def _ap_numpy(scores: np.ndarray, labels: np.ndarray) -> float:
    """AP without ties: the mean over the positives of the precision among the items ranked at or above them."""
    order = np.argsort(-scores)
    hits = labels[order] == 1
    precision_at_hits = np.cumsum(hits)[hits] / (np.flatnonzero(hits) + 1)
    return float(precision_at_hits.mean())


def _reference(scores: np.ndarray, target: np.ndarray) -> dict[str, float]:
    aps = []
    for c in range(scores.shape[1]):
        keep = target[:, c] != -1
        if (target[keep, c] == 1).any():
            aps.append(_ap_numpy(scores[keep, c], target[keep, c]))
    valid = target != -1
    pred, true = (scores >= 0.5) & valid, (target == 1) & valid
    tp, fp, fn = (pred & true).sum(), (pred & ~true).sum(), (~pred & true).sum()
    return {"map": float(np.mean(aps)), "f1": 2 * tp / (2 * tp + fp + fn)}


@pytest.mark.parametrize("seed", range(5))
def test_map_and_f1_match_numpy_over_batches_with_ignored_entries(seed):
    rng = np.random.default_rng(seed)
    scores = rng.random((37, 6))                         # continuous: no ties
    target = (rng.random((37, 6)) < 0.3).astype(np.float32)
    target[rng.random((37, 6)) < 0.1] = -1
    target[:, 5] = np.where(target[:, 5] == 1, 0, target[:, 5])   # a class without positives is skipped
    meter = MultilabelMeter()
    for part in np.array_split(np.arange(37), 4):
        meter.update(torch.from_numpy(scores[part]), torch.from_numpy(target[part]))
    out, ref = meter.compute(), _reference(scores, target)
    assert out["map"] == pytest.approx(ref["map"], abs=1e-12)
    assert out["f1"] == pytest.approx(ref["f1"], abs=1e-12)


def test_average_precision_hand_checked_cases():
    # ranks 1 and 3 positive: (1/1 + 2/3) / 2
    assert float(average_precision(torch.tensor([0.9, 0.8, 0.7]), torch.tensor([True, False, True]))) == \
        pytest.approx(5 / 6)
    # all three tied: one threshold, precision 2/3 at recall 1
    assert float(average_precision(torch.tensor([0.5, 0.5, 0.5]), torch.tensor([True, False, True]))) == \
        pytest.approx(2 / 3)
    assert float(average_precision(torch.tensor([0.1, 0.9]), torch.tensor([True, False]))) == pytest.approx(0.5)


def test_perfect_and_empty_cases():
    meter = MultilabelMeter()
    meter.update(torch.tensor([[0.9, 0.1], [0.2, 0.8]]), torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    assert meter.compute() == {"map": 1.0, "f1": 1.0}
    meter.reset()
    meter.update(torch.tensor([[0.1, 0.2]]), torch.tensor([[0.0, -1.0]]))
    out = meter.compute()
    assert math.isnan(out["map"]) and math.isnan(out["f1"])


def test_bad_input_is_named():
    meter = MultilabelMeter()
    with pytest.raises(ValueError, match="compute"):
        meter.compute()
    with pytest.raises(ValueError, match=r"\(B, C\)"):
        meter.update(torch.rand(2, 3), torch.rand(2, 4))

"""Surface normals: angular error in degrees (mean, median, rmse, fractions within 11.25 / 22.5 / 30 degrees)."""

from __future__ import annotations

import torch
from torch import Tensor

from mtlzoo.metrics.base import Meter, accumulate, check_same_numel, chunked_sum, counts_by_index, safe_div

VALIDITY = ("norm", "channel_sum")
REDUCTIONS = ("pixel", "batch_mean")
MEDIANS = ("global", "per_batch")
NORMALS_KEYS = ("mean", "median", "rmse", "within_11_25", "within_22_5", "within_30")
BINS_PER_DEGREE = 1024  # a power of two: angle * 1024 is exact, so the threshold fractions are exact too
MEDIAN_BINS = 180 * BINS_PER_DEGREE
_THRESHOLD_BINS = tuple(int(t * BINS_PER_DEGREE) for t in (11.25, 22.5, 30.0))


def _channel_sum(x: Tensor) -> Tensor:
    """Sum over dim 1 as a sum of channel planes (torch's strided reduction over a 3-wide dim is slow)."""
    total = x[:, 0]
    for c in range(1, x.shape[1]):
        total = total + x[:, c]
    return total


def angular_error(pred: Tensor, target: Tensor) -> Tensor:
    """Angle in degrees between normals along dim 1, as atan2(|p x g|, p . g): exact for any lengths, stable."""
    (px, py, pz), (gx, gy, gz) = pred.float().unbind(1), target.float().unbind(1)
    cross = (py * gz - pz * gy).square() + (pz * gx - px * gz).square() + (px * gy - py * gx).square()
    return torch.rad2deg(torch.atan2(cross.sqrt(), px * gx + py * gy + pz * gz))


def _valid_mask(target: Tensor, validity: str) -> Tensor:
    """Pixels whose target is finite and valid under ``validity`` (non-zero norm, or non-zero channel sum)."""
    target = target.float()
    finite = _channel_sum(target).isfinite() & _channel_sum(target.square()).isfinite()
    if validity == "norm":
        return finite & (_channel_sum(target.square()) > 0)
    return finite & (_channel_sum(target) != 0)


def _kth_smallest(bits: Tensor, valid: Tensor, rank: Tensor) -> Tensor:
    """The exact ``rank``-th smallest (0-based) valid value, by radix selection on the int32 bit patterns.

    Non-negative float32 values sort like their bit patterns, so two 16-bit histogram passes find the value
    exactly, on the device and without a host sync (``rank`` is a device tensor).
    """
    high, low = bits >> 16, bits & 0xFFFF
    hist = counts_by_index(torch.where(valid, high, 1 << 15), (1 << 15) + 1)[: 1 << 15].double()
    cum = hist.cumsum(0)
    prefix = torch.searchsorted(cum, rank.reshape(1), right=True).clamp_max((1 << 15) - 1)
    before = torch.where(prefix > 0, cum[(prefix - 1).clamp_min(0)], torch.zeros_like(cum[:1]))
    inner = counts_by_index(torch.where(valid & (high == prefix), low, 1 << 16), (1 << 16) + 1)[: 1 << 16]
    suffix = torch.searchsorted(inner.double().cumsum(0), (rank - before).reshape(1), right=True)
    return ((prefix << 16) | suffix.clamp_max(0xFFFF)).to(torch.int32).view(torch.float32)[0].double()


def _exact_median(angle: Tensor, valid: Tensor, n: Tensor) -> Tensor:
    """numpy's median of the valid angles (the mean of the two middle ones for an even count); 0 when none."""
    bits = angle.float().abs().contiguous().view(torch.int32).reshape(-1).long()  # abs: -0.0 sorts as +0.0
    valid = valid.reshape(-1)
    half = ((n - 1) / 2).clamp_min(0)
    return (_kth_smallest(bits, valid, half.floor()) + _kth_smallest(bits, valid, half.ceil())) / 2


def _value_at_rank(hist: Tensor, cum: Tensor, rank: Tensor) -> Tensor:
    """The ``rank``-th smallest (0-based) histogrammed angle, interpolated linearly inside its bin."""
    index = torch.searchsorted(cum, rank.reshape(1), right=True).clamp_max(MEDIAN_BINS - 1)
    before = torch.where(index > 0, cum[(index - 1).clamp_min(0)], torch.zeros_like(cum[:1]))
    inside = safe_div(rank - before + 0.5, hist[index], 0.0)
    return ((index.double() + inside) / BINS_PER_DEGREE)[0]


def _median_from_histogram(hist: Tensor) -> Tensor:
    """Median of the histogrammed angles (the mean of the two middle ones for an even count; NaN when empty)."""
    cum = hist.cumsum(0)
    n = cum[-1]
    low = _value_at_rank(hist, cum, ((n - 1) / 2).floor())
    high = _value_at_rank(hist, cum, ((n - 1) / 2).ceil())
    return torch.where(n > 0, (low + high) / 2, torch.full_like(low, float("nan")))


def _finish(means: Tensor) -> Tensor:
    """[mean, mean square, fractions...] -> [mean, rmse, fractions...]."""
    return torch.cat([means[:1], means[1:2].sqrt(), means[2:]])


class NormalsMeter(Meter):
    """Angular error of normals over valid pixels; vector lengths do not matter (as if both were re-normalised).

    ``validity="norm"``: the target is valid where its norm is > 0 (MTI-Net offline, mtlzoo);
    ``"channel_sum"``: where its components do not sum to 0 (MTAN family; drops a genuine normal whose
    components sum to 0). ``reduce="pixel"`` pools all pixels; ``"batch_mean"`` averages per-batch values
    (MTAN / Nash-MTL / FAMO). ``median="global"`` is the median over all pixels of the set, from a
    histogram of 1/1024-degree bins (within 0.001 degrees; the mean of the two middle values for an even
    count, as numpy); ``"per_batch"`` is the mean of exact per-batch medians (``np.median`` per batch, as
    MTAN's and Nash-MTL's ``normal_error``). Non-finite target pixels are invalid.
    Fractions are in [0, 1] with a strict ``<``.
    """

    kind = "normals"

    def __init__(self, validity: str = "norm", reduce: str = "pixel", median: str = "global") -> None:
        for name, value, allowed in (("validity", validity, VALIDITY), ("reduce", reduce, REDUCTIONS),
                                     ("median", median, MEDIANS)):
            if value not in allowed:
                raise ValueError(f"normals {name} must be one of {list(allowed)}, got {value!r}")
        self.validity, self.reduce, self.median = validity, reduce, median
        self.reset()

    def reset(self) -> None:
        self.sums: Tensor | None = None
        self.count: Tensor | None = None
        self.batches: Tensor | None = None
        self.median_sum: Tensor | None = None
        self.histogram: Tensor | None = None

    def update(self, pred: Tensor, target: Tensor) -> None:
        """Add a batch of normals (B, 3, H, W) and targets (B, 3, H, W); a zero target vector is invalid."""
        check_same_numel(self.kind, pred, target)
        target = target.to(pred.device)
        moments, n, hist = chunked_sum(self._pixel_stats, pred, target)
        hist = hist.double()
        below = [hist[:edge].sum() for edge in _THRESHOLD_BINS]
        terms = torch.cat([moments, torch.stack(below)])
        has = (n > 0).double()
        self.batches = accumulate(self.batches, has)
        if self.reduce == "pixel":
            self.sums, self.count = accumulate(self.sums, terms), accumulate(self.count, n)
        else:
            self.sums = accumulate(self.sums, _finish(safe_div(terms, n)))
        if self.median == "per_batch":
            median = _exact_median(angular_error(pred, target), _valid_mask(target, self.validity), n)
            self.median_sum = accumulate(self.median_sum, median * has)
        else:
            self.histogram = accumulate(self.histogram, hist)

    def _pixel_stats(self, pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(sum of angles, sum of squares), valid count and the angle histogram of some pixels."""
        angle = angular_error(pred, target).reshape(-1)
        valid = _valid_mask(target, self.validity).reshape(-1)
        bins = (angle * BINS_PER_DEGREE).long().clamp(0, MEDIAN_BINS - 1)  # NaN predictions: bin 0, NaN mean
        hist = counts_by_index(torch.where(valid, bins, MEDIAN_BINS), MEDIAN_BINS + 1)[:MEDIAN_BINS]
        a = torch.where(valid, angle, 0.0)
        return torch.stack([a.sum().double(), a.square().sum().double()]), torch.count_nonzero(valid).double(), hist

    def compute(self) -> dict[str, float]:
        """Mean / median / rmse angle in degrees and the three within-threshold fractions."""
        if self.sums is None:
            raise ValueError("normals meter: compute() called before any update()")
        nan = float("nan")
        if self.reduce == "pixel":
            values = _finish(safe_div(self.sums, self.count, nan))
        else:
            values = safe_div(self.sums, self.batches, nan)
        if self.median == "global":
            median = _median_from_histogram(self.histogram)
        else:
            median = safe_div(self.median_sum, self.batches, nan)
        values = [values[0], median, *values[1:]]
        return {k: float(v) for k, v in zip(NORMALS_KEYS, values, strict=True)}

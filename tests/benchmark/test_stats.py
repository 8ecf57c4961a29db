"""Intervals, paired differences, tie ranks and seed counts, checked against scipy and by simulation (numpy)."""

import numpy as np
import pytest
from scipy import stats

from mtlzoo.benchmark.stats import Interval, paired_difference, ranks_with_ties, seeds_needed, t_interval


@pytest.mark.parametrize("values", [[1.0, 2.0], [3.2, 2.9, 4.1], [-5.0, 1.0, 2.5, 0.2, 7.5], list(range(20))])
@pytest.mark.parametrize("level", [0.9, 0.95, 0.99])
def test_t_interval_equals_scipys(values, level):
    interval = t_interval(values, level)
    low, high = stats.t.interval(level, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert interval.n == len(values) and interval.mean == pytest.approx(np.mean(values), rel=1e-12)
    assert (interval.low, interval.high) == pytest.approx((low, high), rel=1e-10, abs=1e-12)


def test_the_interval_covers_the_true_mean_at_its_level():
    rng = np.random.default_rng(0)
    covered = [t_interval(rng.normal(2.0, 3.0, size=4)).excludes(2.0) is False for _ in range(4000)]
    assert np.mean(covered) == pytest.approx(0.95, abs=0.012)


def test_too_few_values_give_no_interval_and_bad_levels_are_refused():
    assert t_interval([1.0]) is None and t_interval([None, 2.0, None]) is None
    with pytest.raises(ValueError, match="confidence level must lie in"):
        t_interval([1.0, 2.0], level=95)


@pytest.mark.parametrize("seed", range(12))
def test_a_paired_difference_is_significant_exactly_when_scipys_paired_t_test_says_so(seed):
    rng = np.random.default_rng(seed)
    shared = rng.normal(0, 5, size=5)  # what a seed does to every method (cancels in the pairing)
    reference = shared + rng.normal(0, 1, size=5)
    values = shared + rng.normal(rng.choice([0.0, 1.5]), 1, size=5)
    seeds = [10, 11, 12, 13, 14]
    diff = paired_difference(dict(zip(seeds, values, strict=True)), dict(zip(seeds, reference, strict=True)))
    assert diff.mean == pytest.approx(np.mean(values - reference))
    assert diff.excludes(0.0) == (stats.ttest_rel(values, reference).pvalue < 0.05)


def test_pairing_uses_the_common_seeds_only():
    diff = paired_difference({0: 3.0, 1: 4.0, 2: 9.0, 5: None}, {0: 1.0, 1: 1.0, 3: 0.0, 5: 2.0})
    assert diff.n == 2 and diff.mean == pytest.approx(2.5)
    assert paired_difference({0: 1.0}, {0: 2.0}) is None


def test_overlapping_intervals_share_a_rank():
    intervals = {"a": Interval(10, 8, 12, 3), "b": Interval(9, 7, 11, 3), "c": Interval(2, 1, 3, 3),
                 "d": Interval(1.5, 0, 2.5, 3)}
    means = {k: v.mean for k, v in intervals.items()}
    assert ranks_with_ties(intervals, means) == {"a": 1, "b": 1, "c": 3, "d": 3}
    assert ranks_with_ties(intervals, means, higher_is_better=False) == {"a": 3, "b": 3, "c": 1, "d": 1}
    assert ranks_with_ties({"a": None, "b": None}, {"a": 2.0, "b": 1.0}) == {"a": 1, "b": 2}


def test_seeds_needed_is_the_first_n_whose_half_width_is_below_the_effect():
    for std in (0.3, 1.0, 2.5):
        n = seeds_needed(std, effect=1.0)
        half = [stats.t.ppf(0.975, k - 1) * std / np.sqrt(k) for k in (n - 1, n)]
        assert half[1] < 1.0 and (n == 2 or half[0] >= 1.0)
    assert seeds_needed(0.0) == 2 and seeds_needed(100.0, most=10) is None
    with pytest.raises(ValueError, match="effect > 0"):
        seeds_needed(1.0, effect=0.0)


def _row(method, values, seeds=(0, 1, 2)):
    return {"method": method, "status": "ok", "seeds": list(seeds),
            "delta_m": {"mean": float(np.mean([v for v in values if v is not None])), "values": list(values)}}


def test_method_significance_pairs_each_method_with_ew_by_seed():
    from mtlzoo.benchmark.stats import method_significance, spread_of_differences

    rows = [_row("ew", [1.0, 5.0, 9.0]), _row("good", [3.0, 7.2, 10.9]), _row("same", [0.0, 6.0, 9.5]),
            {"method": "na", "status": "not applicable", "delta_m": {}}]
    found = method_significance(rows)
    assert set(found) == {"ew", "good", "same"} and found["ew"]["vs_reference"] is None
    good = stats.ttest_rel([3.0, 7.2, 10.9], [1.0, 5.0, 9.0])
    assert found["good"]["significant"] == (good.pvalue < 0.05) and found["good"]["significant"]
    assert not found["same"]["significant"]
    assert found["good"]["rank"] == found["ew"]["rank"] == 1  # unpaired intervals overlap: a shared rank
    assert spread_of_differences(rows) == pytest.approx(sorted([np.std([2.0, 2.2, 1.9], ddof=1),
                                                                np.std([-1.0, 1.0, 0.5], ddof=1)])[1])
    assert method_significance([_row("a", [1.0, 2.0], seeds=(0, 1))])["a"]["vs_reference"] is None  # no ew row

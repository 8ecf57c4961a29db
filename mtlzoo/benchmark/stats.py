"""Which differences over seeds are real: t intervals, differences paired by seed, ranks with ties.

A sweep trains every (architecture, method) pair over a few seeds. A mean alone ranks methods whose runs
overlap; these helpers give each mean its 95 % Student-t interval, each method its difference to a reference
method (EW) paired by seed, and ranks that only separate methods whose intervals do not overlap.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scipy import stats

LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A mean over ``n`` values and its two-sided confidence interval [low, high]."""

    mean: float
    low: float
    high: float
    n: int

    def excludes(self, value: float = 0.0) -> bool:
        """True when ``value`` lies outside the interval (a difference to it is significant at the level)."""
        return value < self.low or value > self.high

    def to_dict(self) -> dict[str, float | int]:
        return {"mean": self.mean, "low": self.low, "high": self.high, "n": self.n}


def t_quantile(level: float, n: int) -> float:
    """The two-sided Student-t critical value for ``n`` values (n - 1 degrees of freedom)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"a confidence level must lie in (0, 1), got {level!r}")
    return float(stats.t.ppf(0.5 + level / 2.0, n - 1))


def t_interval(values: Sequence[float | None], level: float = LEVEL) -> Interval | None:
    """Mean +- t * s / sqrt(n) of the values that are not None; None below two values (no spread to measure)."""
    kept = [float(v) for v in values if v is not None]
    n = len(kept)
    if n < 2:
        return None
    mean = math.fsum(kept) / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in kept) / (n - 1))
    half = t_quantile(level, n) * std / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


def paired_difference(values: Mapping[int, float | None], reference: Mapping[int, float | None],
                      level: float = LEVEL) -> Interval | None:
    """The interval of ``values - reference`` over the seeds both have (paired by seed: the seed's shared
    data order and initialisation cancel); None below two common seeds."""
    seeds = [s for s in values if s in reference and values[s] is not None and reference[s] is not None]
    return t_interval([values[s] - reference[s] for s in seeds], level)


def ranks_with_ties(intervals: Mapping[str, Interval | None], means: Mapping[str, float],
                    higher_is_better: bool = True) -> dict[str, int]:
    """Rank = 1 + the number of entries whose interval lies wholly on the better side of this one's.

    Entries whose intervals overlap share a rank; an entry without an interval counts as the point at its mean.
    """
    def bounds(name: str) -> tuple[float, float]:
        found = intervals.get(name)
        return (found.low, found.high) if found is not None else (means[name], means[name])

    ranks = {}
    for name in means:
        low, high = bounds(name)
        better = [o for o in means if o != name and (bounds(o)[0] > high if higher_is_better else bounds(o)[1] < low)]
        ranks[name] = 1 + len(better)
    return ranks


def seeds_needed(std: float, effect: float = 1.0, level: float = LEVEL, most: int = 1000) -> int | None:
    """The fewest seeds whose interval half-width t * std / sqrt(n) falls below ``effect`` (None past ``most``).

    With ``std`` the spread of per-seed differences between two methods, that many seeds resolve a true
    difference of ``effect`` from zero at the level (about half the time; twice the effect almost always).
    """
    if std < 0 or effect <= 0:
        raise ValueError(f"seeds_needed takes std >= 0 and effect > 0, got std={std!r}, effect={effect!r}")
    for n in range(2, most + 1):
        if t_quantile(level, n) * std / math.sqrt(n) < effect:
            return n
    return None


def _per_seed(row: Mapping) -> dict[int, float | None]:
    return dict(zip(row["seeds"], row["delta_m"]["values"], strict=True))


def method_significance(rows: Sequence[Mapping], higher_is_better: bool = True, reference: str = "ew",
                        level: float = LEVEL) -> dict[str, dict]:
    """Per method of one architecture's rows (results rows with per-seed delta_m): its delta_m interval
    (``ci``), its difference to ``reference`` paired by seed (``vs_reference``; None for the reference itself or
    when the sweep has no such row), whether that difference is significant, and its rank with ties."""
    ok = [r for r in rows if r.get("status") == "ok" and r["delta_m"].get("mean") is not None]
    ref = next((r for r in ok if r["method"] == reference), None)
    intervals = {r["method"]: t_interval(r["delta_m"]["values"], level) for r in ok}
    ranks = ranks_with_ties(intervals, {r["method"]: r["delta_m"]["mean"] for r in ok}, higher_is_better)
    found = {}
    for row in ok:
        versus = None if ref is None or row is ref else paired_difference(_per_seed(row), _per_seed(ref), level)
        found[row["method"]] = {"ci": intervals[row["method"]], "vs_reference": versus, "rank": ranks[row["method"]],
                                "significant": versus is not None and versus.excludes(0.0)}
    return found


def spread_of_differences(rows: Sequence[Mapping], reference: str = "ew") -> float | None:
    """The median, over methods, of the sample std of their per-seed delta_m differences to ``reference``."""
    ok = [r for r in rows if r.get("status") == "ok"]
    ref = next((r for r in ok if r["method"] == reference), None)
    if ref is None:
        return None
    spreads = []
    for row in ok:
        if row is ref:
            continue
        a, b = _per_seed(row), _per_seed(ref)
        diffs = [a[s] - b[s] for s in a if s in b and a[s] is not None and b[s] is not None]
        if len(diffs) > 1:
            mean = math.fsum(diffs) / len(diffs)
            spreads.append(math.sqrt(math.fsum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1)))
    return sorted(spreads)[len(spreads) // 2] if spreads else None

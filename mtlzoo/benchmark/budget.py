"""Scoring a sweep's runs at an equal budget of backward passes or training time, not only at equal steps.

Rules differ in what one step costs (IUS / IO take one update per task group, a parameter-level balancer pulls T
loss vectors back through the trunk; :mod:`mtlzoo.schemes.work`), so equal steps is not equal compute. Every
completion record carries a ``curve``: at each evaluation, the cumulative forward passes, backward passes,
optimizer updates and training seconds, with the metrics. Per architecture the budget B is the smallest final
total of the measure among its runs (or a given value); each run is scored by its last evaluation whose
cumulative measure is at most B. delta_m, its interval, the paired difference to EW and the ranks then follow
from those scores exactly as at equal steps, against the same baseline vector (the single-task runs' final
metrics). Runs without a curve (recorded before work was counted) or without an evaluation within B are left
out, each named in a note.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mtlzoo.benchmark.cells import FAILED
from mtlzoo.benchmark.plan import NOT_APPLICABLE
from mtlzoo.benchmark.results import mean_std, method_row, ranked

BUDGETS = ("steps", "backward", "time")
MEASURES = {"backward": "backward_passes", "time": "train_s"}  # budget -> the curve's cumulative field


@dataclass(frozen=True)
class BudgetTable:
    """One architecture's rows at budget ``limit`` (B) of ``measure``; ``given``: B was given, not the fewest.
    Each ok row has ``reached``: mean ± std over seeds of the step and the measure of the evaluations scored."""

    architecture: str
    measure: str
    limit: float | None
    given: bool
    rows: list[dict[str, Any]]
    notes: list[str]


def check_budgets(budgets: Sequence[str], value: float | None) -> tuple[str, ...]:
    """The budgets to render, in order, once each (``steps`` when none); ``value`` needs exactly one budget other
    than steps. A bad one is a one-line ValueError naming what is accepted."""
    chosen = tuple(dict.fromkeys(budgets)) or ("steps",)
    unknown = [b for b in chosen if b not in BUDGETS]
    if unknown:
        raise ValueError(f"--budget {unknown[0]!r}: expects one of {list(BUDGETS)}")
    others = [b for b in chosen if b != "steps"]
    if value is not None and len(others) != 1:
        raise ValueError(f"--budget-value {value:g} sets B of one budget other than steps; got --budget "
                         f"{' --budget '.join(chosen)}")
    if value is not None and value <= 0:
        raise ValueError(f"--budget-value {value:g}: expects a number > 0")
    return chosen


def at_budget(results: Mapping[str, Any], measure: str, value: float | None = None) -> list[BudgetTable]:
    """Per architecture of the results (in page order), its rows scored at an equal budget of ``measure``
    (``backward`` or ``time``): B is ``value``, else the smallest final total among the architecture's runs."""
    if measure not in MEASURES:
        raise ValueError(f"budget {measure!r}: expects one of {list(MEASURES)} (steps is the results as they are)")
    architectures = dict.fromkeys(r["architecture"] for r in results["aggregates"]["rows"])
    return [_architecture(results, arch, measure, value) for arch in architectures]


def last_within(curve: Sequence[Mapping[str, Any]], field: str, limit: float) -> Mapping[str, Any] | None:
    """The last curve point whose cumulative ``field`` is at most ``limit`` (None when even the first exceeds it)."""
    within = [point for point in curve if point[field] <= limit]
    return within[-1] if within else None


def _architecture(results: Mapping[str, Any], arch: str, measure: str, value: float | None) -> BudgetTable:
    field = MEASURES[measure]
    runs = [r for r in results["cells"] if r["architecture"] == arch and r.get("status") != NOT_APPLICABLE]
    ran = [r for r in runs if r.get("status") != FAILED]
    counted = [r for r in ran if r.get("curve")]
    notes = [f"- `{r['key']}`: its record has no curve (written before work was counted): left out"
             for r in ran if not r.get("curve")]
    limit = value if value is not None else min((r["curve"][-1][field] for r in counted), default=None)
    scored = {}
    for run in counted:
        point = last_within(run["curve"], field, limit)
        if point is None:
            first = _point_text(run["curve"][0], field)
            notes.append(f"- `{run['key']}`: no evaluation within B (its first is at {first}): left out")
        else:
            scored[run["key"]] = {**run, "metrics": point["metrics"], "at_budget": point}
    rows = []
    for method in dict.fromkeys(r["method"] for r in runs):
        pair = [r for r in runs if r["method"] == method]
        kept = [scored.get(r["key"], r) for r in pair if r["key"] in scored or r.get("status") == FAILED]
        if kept:
            rows.append(_row(arch, method, kept, len(pair), field, results))
    return BudgetTable(arch, measure, limit, value is not None, ranked(rows, results["higher_is_better"]), notes)


def _row(arch: str, method: str, kept: list[Mapping[str, Any]], planned: int, field: str,
         results: Mapping[str, Any]) -> dict[str, Any]:
    row = method_row(arch, method, kept, results["aggregates"]["baseline_vector"], results["protocol"])
    row["seeds_planned"] = planned  # the seeds left out count as planned: the row says it averages fewer
    points = [r["at_budget"] for r in kept if "at_budget" in r]
    if row["status"] == "ok":
        row["reached"] = {"step": mean_std([p["step"] for p in points]), field: mean_std([p[field] for p in points])}
    return row


def _point_text(point: Mapping[str, Any], field: str) -> str:
    """``1200 backward passes`` / ``12.5 s``: where a curve point stands on the budget's measure."""
    return f"{point[field]:.1f} s" if field == "train_s" else f"{point[field]} backward passes"

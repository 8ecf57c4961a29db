"""A user's result beside a published table: every row's delta_m recomputed under the table's protocol."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mtlzoo.metrics.delta_m import delta_m_breakdown, result_parts
from mtlzoo.metrics.protocols import get_protocol
from mtlzoo.metrics.provenance import MeasuredOn, result_measured_on
from mtlzoo.metrics.references import ReferenceTable, get_reference

Metrics = Mapping[str, Mapping[str, float]]
STL_LABEL = "STL"


@dataclass(frozen=True)
class Comparison:
    """The rows of ``reference`` (its single-task row first, then its methods, then ``label``'s result) with
    their metrics restricted to the table's columns (None where the result lacks one), delta_m recomputed for
    every row against the table's baseline, and delta_m as published (None where not printed, or for ``label``);
    ``dominated_by`` names, per row, the task whose relative change dominates its delta_m (None: no task does)."""

    reference: ReferenceTable
    label: str
    rows: dict[str, dict[str, dict[str, float | None]]]
    delta_m: dict[str, float]
    published_delta_m: dict[str, float | None]
    dominated_by: dict[str, str | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form: the table's name, protocol, baseline and source, then rows and both delta_m."""
        ref = self.reference
        return {"reference": ref.name, "protocol": ref.protocol, "baseline": ref.baseline, "source": ref.source,
                "label": self.label, "rows": self.rows, "delta_m": self.delta_m,
                "published_delta_m": self.published_delta_m, "dominated_by": self.dominated_by,
                "notes": dict(ref.notes)}

    def to_markdown(self) -> str:
        """A markdown table (mtlzoo units: fractions, degrees, metres) with the source and the notes below it."""
        ref = self.reference
        style = get_protocol(ref.protocol).delta_style
        better = "lower" if style == "nash" else "higher"
        columns = [(t, m) for t, metrics in ref.baseline_metrics.items() for m in metrics]
        head = [*(f"{t}.{m}" for t, m in columns), f"delta_m % ({style}, {better} is better)", "published"]
        lines = ["| method | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
        for label, row in self.rows.items():
            cells = [_cell(row[t][m], "{:.4g}") for t, m in columns]
            cells += [_cell(self.delta_m[label], "{:+.2f}"), _cell(self.published_delta_m[label], "{:+.2f}")]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        notes = [f"- {label}: {note}" for label, note in ref.notes.items()]
        dominated: dict[str, list[str]] = {}
        for label, task in self.dominated_by.items():
            if task:
                dominated.setdefault(task, []).append(label)
        notes += [f"- delta_m dominated by {task} (its share outweighs the other tasks' together; read the "
                  f"per-task columns): {', '.join(labels)}" for task, labels in dominated.items()]
        caveat = [f"Caveat: {ref.caveat}"] if ref.caveat else []
        return "\n".join([f"{ref.name} ({ref.protocol}, baseline {ref.baseline}): {ref.source}", "", *lines, "",
                          *caveat, *notes]).rstrip() + "\n"


def _cell(value: float | None, spec: str) -> str:
    return "-" if value is None else spec.format(value + 0.0)  # + 0.0: no "-0.00"


def check_comparable(reference: str | ReferenceTable, protocol: str | None,
                     data: MeasuredOn | None = None) -> ReferenceTable:
    """The table ``reference``, if a result under ``protocol`` (None: not known) measured on ``data`` can stand
    beside it: the same protocol and the same data set (a data set the result does not name is not checked)."""
    ref = get_reference(reference)
    if protocol is not None and protocol != ref.protocol:
        raise ValueError(f"the result was measured under protocol {protocol!r} but reference {ref.name!r} is under "
                         f"{ref.protocol!r}; evaluate with protocol={ref.protocol!r} to compare.")
    table_data = get_protocol(ref.protocol).dataset
    if data is not None and data.dataset is not None and table_data is not None and data.dataset != table_data:
        raise ValueError(f"data set {data.dataset!r} is not the data of reference {ref.name!r}, which is on "
                         f"{table_data!r}; only a result on {table_data!r} compares with it.")
    return ref


def _check_metrics(metrics: Metrics, ref: ReferenceTable) -> None:
    """The result must hold every metric the table's protocol's delta_m uses."""
    wanted = get_protocol(ref.protocol).delta_metrics or {t: () for t in ref.baseline_metrics}
    missing = [f"{t}.{m}" if m else t for t, ms in wanted.items() if t in ref.baseline_metrics
               for m in (ms or ("",)) if t not in metrics or (m and m not in metrics[t])]
    if missing:
        raise ValueError(f"the result lacks {missing}, which delta_m under protocol {ref.protocol!r} uses, so it "
                         f"cannot be compared with reference {ref.name!r}.")


def compare_with_reference(result: Mapping, reference: str | ReferenceTable, label: str = "yours") -> Comparison:
    """``result`` (``{task: {metric: value}}``, an ``EvalResult`` or its saved ``to_dict()`` form) beside the
    published table ``reference``; a result that carries another protocol, or names another data set than the
    table's, is refused; a plain dict is taken to be under the table's protocol, on its data. delta_m of every
    row is recomputed against the table's baseline."""
    ref = get_reference(reference)
    metrics, carried = result_parts(result)
    if label == STL_LABEL or label in ref.rows:
        raise ValueError(f"label {label!r} is already a row of reference {ref.name!r}; pick another label.")
    data = result_measured_on(result.to_dict() if hasattr(result, "to_dict") else result)
    check_comparable(ref, carried, data)
    _check_metrics(metrics, ref)
    stl = ref.baseline_metrics
    table = {STL_LABEL: stl, **ref.rows, label: metrics}
    rows = {name: {t: {m: (float(row[t][m]) if t in row and m in row[t] else None) for m in stl[t]} for t in stl}
            for name, row in table.items()}
    parts = {name: delta_m_breakdown(row, ref.baseline, protocol=ref.protocol) for name, row in table.items()}
    published = {STL_LABEL: 0.0, **ref.published_delta_m, label: None}
    return Comparison(ref, label, rows, {name: p.value for name, p in parts.items()}, published,
                      {name: p.dominated_by for name, p in parts.items()})

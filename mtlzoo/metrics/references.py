"""Published result tables as data: per-method metrics of a paper's table, its protocol and single-task row.

Each table is ``mtlzoo/metrics/data/references/<name>.json``: ``name``, ``protocol``, ``source`` (paper and
table), ``baseline`` (the shipped :class:`Baseline` that is the table's single-task row), ``rows`` (method label
-> ``{task: {metric: value}}`` in mtlzoo units), ``published_delta_m`` (label -> the printed delta_m, or null)
and optionally ``notes`` (label -> caveat) and ``caveat`` (for the whole table).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtlzoo.metrics.baselines import BASELINES, Baseline
from mtlzoo.metrics.datafiles import DATA_DIR, check_protocol, data_files, metric_table, read_record
from mtlzoo.registry import Registry

_REQUIRED = {"name": str, "protocol": str, "source": str, "baseline": str, "rows": dict, "published_delta_m": dict}
_OPTIONAL = {"notes": dict, "caveat": str}


@dataclass(frozen=True)
class ReferenceTable:
    """One published table: ``rows[label][task][metric]`` measured under ``protocol``, against ``baseline``.

    ``published_delta_m`` holds delta_m as the paper printed it (None where it printed none), in the sign
    convention of the protocol's delta_m style; ``notes`` the caveats of single rows.
    """

    name: str
    protocol: str
    source: str
    baseline: str
    rows: Mapping[str, Mapping[str, Mapping[str, float]]] = field(repr=False)
    published_delta_m: Mapping[str, float | None] = field(repr=False)
    notes: Mapping[str, str] = field(default_factory=dict, repr=False)
    caveat: str | None = field(default=None, repr=False)

    @property
    def baseline_metrics(self) -> Mapping[str, Mapping[str, float]]:
        """The single-task row: the metrics of the shipped baseline ``baseline``."""
        return BASELINES.get(self.baseline).metrics


REFERENCES: Registry[ReferenceTable] = Registry("reference")


def _baseline(path: Path, name: str, protocol: str) -> Baseline:
    if name not in BASELINES:
        raise ValueError(f"{path}: 'baseline' {name!r} is not a shipped baseline; one of {BASELINES.names()}")
    baseline = BASELINES.get(name)
    if baseline.protocol != protocol:
        raise ValueError(f"{path}: baseline {name!r} is under protocol {baseline.protocol!r}, the table under "
                         f"{protocol!r}; they must agree")
    return baseline


def _per_row(path: Path, key: str, values: dict[str, Any], rows: Mapping[str, Any], every: bool,
             kinds: tuple[type, ...], accepted: str) -> dict[str, Any]:
    """``values`` checked as label -> value: labels among the rows (all of them if ``every``), values of ``kinds``."""
    stray = [label for label in values if label not in rows]
    missing = [label for label in rows if label not in values] if every else []
    if stray or missing:
        raise ValueError(f"{path}: {key!r} must have one entry per row of 'rows' ({list(rows)}); "
                         f"missing {missing}, not a row {stray}")
    for label, value in values.items():
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise ValueError(f"{path}: {key}[{label!r}] must be {accepted}, got {value!r}")
    return dict(values)


def _read_reference(path: Path) -> ReferenceTable:
    data = read_record(path, _REQUIRED, _OPTIONAL)
    protocol = check_protocol(path, data["protocol"])
    baseline = _baseline(path, data["baseline"], protocol)
    if not data["rows"]:
        raise ValueError(f"{path}: 'rows' is empty; give at least one method row")
    rows = {label: metric_table(path, f"rows.{label}", row, within=baseline.metrics)
            for label, row in data["rows"].items()}
    published = _per_row(path, "published_delta_m", data["published_delta_m"], rows, True, (int, float, type(None)),
                         "a number or null")
    notes = _per_row(path, "notes", data.get("notes", {}), rows, False, (str,), "a string")
    return ReferenceTable(data["name"], protocol, data["source"], baseline.name, rows,
                          {k: None if v is None else float(v) for k, v in published.items()}, notes,
                          data.get("caveat"))


def _load(folder: Path) -> list[ReferenceTable]:
    """Every reference table file of ``folder``, checked."""
    return [_read_reference(path) for path in data_files(folder)]


for _table in _load(DATA_DIR / "references"):
    REFERENCES.register(_table.name)(_table)


def get_reference(name: str | ReferenceTable) -> ReferenceTable:
    """The shipped reference table called ``name`` (see :func:`list_references`); a table passes through."""
    return name if isinstance(name, ReferenceTable) else REFERENCES.get(name)


def list_references(pattern: str = "*") -> list[str]:
    """Names of the shipped reference tables (published results as data)."""
    return REFERENCES.names(pattern)

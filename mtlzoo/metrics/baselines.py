"""Single-task baselines, in mtlzoo units (fractions in [0, 1], degrees, metres), for delta_m.

Each is a data file ``mtlzoo/metrics/data/baselines/<name>.json``: ``name``, ``protocol``, ``source`` and
``metrics`` (``{task: {metric: value}}``), optionally ``command`` (what measured it), ``seeds`` (the seeds
averaged, or their number), ``std`` (over those seeds, shaped like ``metrics``) and ``data_version``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mtlzoo.metrics.datafiles import DATA_DIR, check_protocol, data_files, metric_table, read_record
from mtlzoo.registry import Registry

_REQUIRED = {"name": str, "protocol": str, "source": str, "metrics": dict}
_OPTIONAL = {"command": str, "seeds": (list, int), "std": dict, "data_version": (int, str)}


@dataclass(frozen=True)
class Baseline:
    """A single-task reference vector: ``metrics`` is ``{task: {metric: value}}`` under ``protocol``."""

    name: str
    protocol: str
    source: str
    metrics: Mapping[str, Mapping[str, float]] = field(repr=False)
    command: str | None = None
    seeds: tuple[int, ...] | int | None = None
    std: Mapping[str, Mapping[str, float]] | None = field(default=None, repr=False)
    data_version: int | str | None = None


BASELINES: Registry[Baseline] = Registry("baseline")


def _seeds(path: Path, seeds: list | int | None) -> tuple[int, ...] | int | None:
    if isinstance(seeds, int) and seeds < 1 or isinstance(seeds, list) and (
            not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)):
        raise ValueError(f"{path}: 'seeds' must be a non-empty list of ints (the seeds averaged) or their number "
                         f"(>= 1), got {seeds!r}")
    return tuple(seeds) if isinstance(seeds, list) else seeds


def _read_baseline(path: Path) -> Baseline:
    data = read_record(path, _REQUIRED, _OPTIONAL)
    metrics = metric_table(path, "metrics", data["metrics"])
    std = data.get("std")
    if std is not None:
        std = metric_table(path, "std", std, within=metrics, check=lambda v: v >= 0, accepted="a number >= 0")
    return Baseline(data["name"], check_protocol(path, data["protocol"]), data["source"], metrics,
                    data.get("command"), _seeds(path, data.get("seeds")), std, data.get("data_version"))


def _load(folder: Path) -> list[Baseline]:
    """Every baseline file of ``folder``, checked."""
    return [_read_baseline(path) for path in data_files(folder)]


for _baseline in _load(DATA_DIR / "baselines"):
    BASELINES.register(_baseline.name)(_baseline)


def get_baseline(name: str) -> Baseline:
    """The shipped baseline called ``name`` (see :func:`list_baselines`)."""
    return BASELINES.get(name)


def list_baselines(pattern: str = "*") -> list[str]:
    """Names of the shipped single-task baselines."""
    return BASELINES.names(pattern)

"""From cell records to the sweep's results: per (architecture, method) each metric's mean and sample std over
seeds, and delta_m against the sweep's own single-task baselines.

delta_m: each seed's run against the seed-mean baseline vector (every metric averaged over the baseline seeds),
in the protocol's style, then mean and sample std (ddof=1) over seeds. The baseline row is scored the same way,
so its delta_m spread shows the seed noise of the baselines themselves.
"""

from __future__ import annotations

import ctypes
import datetime
import platform
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from mtlzoo.benchmark.cells import FAILED
from mtlzoo.benchmark.plan import NOT_APPLICABLE, Plan
from mtlzoo.metrics import delta_m, get_protocol
from mtlzoo.tasks import TASK_KINDS
from mtlzoo.version import __version__

FORMAT = 1
Metrics = Mapping[str, Mapping[str, float]]


def mean_std(values: Sequence[float | None]) -> dict[str, Any]:
    """``{mean, std, n}`` of the values that are not None; std is the sample std (ddof=1), None below two values."""
    kept = [float(v) for v in values if v is not None]
    if not kept:
        return {"mean": None, "std": None, "n": 0}
    std = float(np.std(kept, ddof=1)) if len(kept) > 1 else None
    return {"mean": float(np.mean(kept)), "std": std, "n": len(kept)}


def seed_mean_std(tables: Sequence[Metrics]) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """Per task and metric, the mean and sample std (ddof=1; 0.0 for one table) over per-seed ``{task: {metric:
    value}}`` tables, as a model card or a shipped baseline records them."""
    import statistics

    keys = {task: list(metrics) for task, metrics in tables[0].items()}
    mean = {t: {m: statistics.fmean(x[t][m] for x in tables) for m in ms} for t, ms in keys.items()}
    std = {t: {m: statistics.stdev([x[t][m] for x in tables]) if len(tables) > 1 else 0.0 for m in ms}
           for t, ms in keys.items()}
    return mean, std


def baseline_vector(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]] | None:
    """Every metric of the baseline runs averaged over their seeds (None without baseline runs)."""
    if not records:
        return None
    tasks = records[0]["metrics"]
    return {task: {m: float(np.mean([r["metrics"][task][m] for r in records])) for m in tasks[task]} for task in tasks}


def _delta(metrics: Metrics, base: Metrics | None, protocol: str) -> float | None:
    if base is None:
        return None
    try:
        return float(delta_m(metrics, base, protocol=protocol))
    except ValueError:  # e.g. a baseline metric of 0: no relative change exists
        return None


def task_changes(metrics: Metrics, base: Metrics | None, protocol: str) -> dict[str, float]:
    """Per task that enters delta_m, its relative change against ``base`` in percent over the protocol's metrics,
    positive = better (auxiliary tasks, such as synthscenes edges, and zero baselines give none)."""
    if base is None:
        return {}
    sign = -1.0 if get_protocol(protocol).delta_style == "nash" else 1.0
    changes = {task: _delta({task: metrics[task]}, {task: base[task]}, protocol) for task in metrics if task in base}
    return {task: sign * value for task, value in changes.items() if value is not None}


def headline_columns(protocol: str, tasks: Mapping[str, str], recorded: Metrics) -> list[list[str]]:
    """The ``[task, metric]`` pairs a table shows: per task the protocol's delta_m metrics, else its kind's
    headline, else the first metric the runs recorded (e.g. an auxiliary edge task's proxy)."""
    chosen = get_protocol(protocol).delta_metrics or {}
    columns = []
    for task, kind in tasks.items():
        have = list(recorded.get(task, {}))
        wanted = [m for m in chosen.get(task, (TASK_KINDS.get(kind).vandenhende_metric,)) if m in have]
        columns += [[task, metric] for metric in (wanted or have[:1])]
    return columns


def method_row(architecture: str, method: str, records: Sequence[Mapping[str, Any]], base: Metrics | None,
               protocol: str) -> dict[str, Any]:
    """One row: its stats over the seeds that ran (``n`` of them, of the ``seeds_planned`` the spec asked for)."""
    failed = [{"seed": r["seed"], "error": r["reason"]} for r in records if r.get("status") == FAILED]
    planned = len(records)
    records = [r for r in records if r.get("status") != FAILED]
    if not records:
        return {"architecture": architecture, "method": method, "status": FAILED, "reason": failed[0]["error"],
                "failed": failed, "n": 0, "seeds_planned": planned}
    metrics = {task: {m: mean_std([r["metrics"][task][m] for r in records]) for m in values}
               for task, values in records[0]["metrics"].items()}
    deltas = [_delta(r["metrics"], base, protocol) for r in records]
    changes = [task_changes(r["metrics"], base, protocol) for r in records]
    return {"architecture": architecture, "method": method, "status": "ok", "reason": None, "failed": failed,
            "seeds": [r["seed"] for r in records], "n": len(records), "seeds_planned": planned, "metrics": metrics,
            "delta_m": {**mean_std(deltas), "values": deltas},
            "task_change": {task: mean_std([c.get(task) for c in changes])
                            for task in dict.fromkeys(t for c in changes for t in c)},
            "steps_per_s": mean_std([r["steps_per_s"] for r in records]),
            "peak_memory_mib": mean_std([r["peak_memory_mib"] for r in records])}


def ranked(rows: list[dict[str, Any]], higher: bool) -> list[dict[str, Any]]:
    """Best delta_m first, then rows without one, then the pairs that do not apply (stable otherwise)."""
    def key(row: dict[str, Any]) -> tuple:
        value = row["delta_m"]["mean"] if row["status"] == "ok" else None
        rank = 2 if row["status"] != "ok" else (1 if value is None else 0)
        return rank, 0.0 if value is None else (-value if higher else value)

    return sorted(rows, key=key)


def aggregate(plan: Plan, records: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The baseline row, and per architecture its method rows sorted by delta_m."""
    protocol = plan.protocol
    base_records = [records[c.key] for c in plan.baselines]
    base = baseline_vector([r for r in base_records if r.get("status") != FAILED])
    higher = get_protocol(protocol).delta_style != "nash"
    baseline = method_row(plan.baselines[0].architecture, "single-task", base_records, base, protocol) \
        if base_records else None
    by_arch: dict[str, list[dict[str, Any]]] = {}
    for cell in plan.cells:
        rows = by_arch.setdefault(cell.architecture, [])
        if any(r["method"] == cell.method for r in rows):
            continue
        same = [c for c in plan.cells if c.architecture == cell.architecture and c.method == cell.method]
        if cell.config is None:
            rows.append({"architecture": cell.architecture, "method": cell.method, "status": NOT_APPLICABLE,
                         "reason": cell.reason})
        else:
            rows.append(method_row(cell.architecture, cell.method, [records[c.key] for c in same], base, protocol))
    return {"baseline_vector": base, "baseline": baseline,
            "rows": [row for rows in by_arch.values() for row in ranked(rows, higher)]}


def machine_name(device: torch.device | str | None = None) -> str:
    """The GPU's name for a CUDA device, else ``cpu (<processor model>; torch <ISA>; numpy BLAS <kernel>)``.

    Both kernel choices are named because CPU results are bit-identical only where they agree (docs/benchmark.md).
    """
    device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            model = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"cpu ({model}; torch {torch.backends.cpu.get_cpu_capability()}; numpy BLAS {numpy_blas_kernel()})"


_CORENAME_SYMBOLS = ("openblas_get_corename", "openblas_get_corename64_", "scipy_openblas_get_corename64_",
                     "scipy_openblas_get_corename")


def numpy_blas_kernel() -> str:
    """The OpenBLAS core type numpy's BLAS runs (``Haswell``, ``SkylakeX``...), or ``unknown`` if not OpenBLAS."""
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower() and "/" in line}
    except OSError:
        return "unknown"
    for path in sorted(paths):
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for symbol in _CORENAME_SYMBOLS:
            corename = getattr(library, symbol, None)
            if corename is not None:
                corename.restype = ctypes.c_char_p
                return corename().decode()
    return "unknown"


def environment() -> dict[str, Any]:
    """Where the sweep ran: versions, device, threads and the date (UTC)."""
    return {"mtlzoo": __version__, "torch": torch.__version__, "python": platform.python_version(),
            "device": machine_name(),
            "torch_threads": torch.get_num_threads(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def build_results(spec: Mapping[str, Any], plan: Plan, records: Mapping[str, Mapping[str, Any]],
                  command: str) -> dict[str, Any]:
    """The machine-readable results: spec, command, environment, every run's raw record and the aggregates."""
    not_applicable = [{"kind": "cell", "architecture": c.architecture, "method": c.method, "seed": c.seed,
                       "key": c.key, "status": NOT_APPLICABLE, "reason": c.reason} for c in plan.cells
                      if c.config is None]
    protocol = get_protocol(plan.protocol)
    recorded = next((records[c.key]["metrics"] for c in plan.cells if c.config is not None), {})
    return {"format": FORMAT, "command": command, "spec": dict(spec), "protocol": plan.protocol,
            "delta_style": protocol.delta_style, "higher_is_better": protocol.delta_style != "nash",
            "tasks": dict(plan.tasks), "columns": headline_columns(plan.protocol, plan.tasks, recorded),
            "environment": environment(),
            "baselines": [dict(records[c.key]) for c in plan.baselines],
            "cells": [dict(records[c.key]) for c in plan.cells if c.config is not None] + not_applicable,
            "aggregates": aggregate(plan, records)}

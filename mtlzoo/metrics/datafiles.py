"""The shipped result tables (``mtlzoo/metrics/data/<kind>/<name>.json``): reading one, checking its fields.

Each file holds one JSON object named after the file; every problem is a one-line ``ValueError`` that names the
file and says what is accepted, so a bad edit to the data fails at import with a message, not a traceback.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mtlzoo.checkpoint import read_json

DATA_DIR = Path(__file__).resolve().parent / "data"
Metrics = dict[str, dict[str, float]]


def data_files(folder: Path) -> list[Path]:
    """The ``*.json`` files of ``folder``, sorted (none when the folder does not exist)."""
    return sorted(Path(folder).glob("*.json"))


def read_record(path: Path, required: Mapping[str, type | tuple[type, ...]],
                optional: Mapping[str, type | tuple[type, ...]]) -> dict[str, Any]:
    """The JSON object in ``path``, checked: all ``required`` keys, no key outside ``required`` and ``optional``,
    each value of its JSON type, and ``name`` equal to the file's stem."""
    data = read_json(path)
    missing = [k for k in required if k not in data]
    if missing:
        raise ValueError(f"{path}: missing key(s) {missing}; required: {list(required)}")
    unknown = [k for k in data if k not in required and k not in optional]
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}; accepted: {list(required) + list(optional)}")
    for key, kinds in {**required, **optional}.items():
        value = data.get(key)
        if key in data and (not isinstance(value, kinds) or isinstance(value, bool)):
            names = [k.__name__ for k in (kinds if isinstance(kinds, tuple) else (kinds,))]
            raise ValueError(f"{path}: {key!r} must be a JSON {' or '.join(names)}, got {value!r}")
    if data["name"] != path.stem:
        raise ValueError(f"{path}: 'name' is {data['name']!r} but the file is {path.name}; they must agree")
    return data


def _number(path: Path, where: str, value: Any, check: Callable[[float], bool], accepted: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not check(value):
        raise ValueError(f"{path}: {where} must be {accepted}, got {value!r}")
    return float(value)


def metric_table(path: Path, key: str, table: Any, within: Mapping[str, Mapping[str, float]] | None = None,
                 check: Callable[[float], bool] = lambda v: True, accepted: str = "a finite number") -> Metrics:
    """``table`` checked as ``{task: {metric: number}}`` (a subset of ``within``'s tasks and metrics if given)."""
    if not isinstance(table, Mapping) or not table:
        raise ValueError(f"{path}: {key!r} must be a non-empty object {{task: {{metric: number}}}}, got {table!r}")
    out: Metrics = {}
    for task, metrics in table.items():
        if not isinstance(metrics, Mapping) or not metrics:
            raise ValueError(f"{path}: {key}.{task} must be a non-empty object {{metric: number}}, got {metrics!r}")
        if within is not None and task not in within:
            raise ValueError(f"{path}: {key}.{task} is not a task of 'metrics' ({sorted(within)})")
        for metric in metrics:
            if within is not None and metric not in within[task]:
                raise ValueError(f"{path}: {key}.{task}.{metric} is not a metric of metrics.{task} "
                                 f"({sorted(within[task])})")
        out[task] = {m: _number(path, f"{key}.{task}.{m}", v, check, accepted) for m, v in metrics.items()}
    return out


def check_protocol(path: Path, protocol: str) -> str:
    """``protocol`` if it names a registered protocol, else a one-line error naming ``path``."""
    from mtlzoo.metrics.protocols import PROTOCOLS

    if protocol not in PROTOCOLS:
        raise ValueError(f"{path}: 'protocol' {protocol!r} is not a registered protocol; one of {PROTOCOLS.names()}")
    return protocol

"""The sweep spec of ``mtlzoo benchmark run``: a base config x architectures x methods x seeds, read from YAML.

Every key is checked when the spec is read; a bad one raises a one-line ValueError naming its path
(``methods[2].kwargs``), before anything trains.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mtlzoo.config import parse_yaml
from mtlzoo.registry import close_matches

BASELINE_MODES = ("auto", "none", "config")
BUDGET_MEASURES = ("steps", "backward")


@dataclass(frozen=True)
class Architecture:
    """One model of the sweep: its registered ``name``, the ``label`` of its rows and folders, an optional config
    of its own (shipped name or path) and overrides applied after the sweep's."""

    name: str
    label: str
    config: str | None = None
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class Method:
    """One update rule of the sweep: a balancer or multi-step rule ``name`` with its options."""

    name: str
    label: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Baselines:
    """Which single-task run each seed trains: ``auto`` (the base config's single-task form), ``none``, or
    ``config`` (the named config as it is, with ``overrides``)."""

    mode: str = "auto"
    config: str | None = None
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class Budget:
    """What every run trains for: ``steps`` (``train.steps = value``) or ``backward`` passes (``train.steps =
    value // the backward passes one step of its update rule makes``, at least 1; :mod:`mtlzoo.schemes.work`)."""

    measure: str
    value: int


@dataclass(frozen=True)
class SweepSpec:
    """A whole sweep; ``config`` is a shipped config name, a path or an inline mapping."""

    config: str | dict
    architectures: tuple[Architecture, ...]
    methods: tuple[Method, ...]
    seeds: tuple[int, ...]
    out_dir: str
    overrides: tuple[str, ...] = ()
    baselines: Baselines = Baselines()
    protocol: str | None = None
    budget: Budget | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (what ``spec.json`` in the sweep folder holds)."""
        return asdict(self)


_KEYS = ("config", "overrides", "architectures", "methods", "seeds", "baselines", "protocol", "budget", "out_dir")


def _error(path: str, message: str) -> ValueError:
    return ValueError(f"{path}: {message}")


def _check_keys(data: Mapping, accepted: tuple[str, ...], where: str) -> None:
    for key in data:
        if key not in accepted:
            near = close_matches(str(key), list(accepted))
            hint = f" Did you mean {near[0]!r}?" if near else ""
            path = f"{where}.{key}" if where else str(key)
            raise _error(path, f"unknown key.{hint} Accepted keys here: {list(accepted)}")


def _string(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _error(path, f"got {value!r}; expects a non-empty string")
    return value


def _overrides(value: Any, path: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise _error(path, f"got {value!r}; expects a list of section.key=value strings")
    for i, item in enumerate(value):
        if not isinstance(item, str) or "=" not in item:
            raise _error(f"{path}[{i}]", f"got {item!r}; expects section.key=value, e.g. train.steps=100")
    return tuple(value)


def _label(value: Any, path: str) -> str:
    label = _string(value, path)
    if "/" in label or "\\" in label or label.startswith("."):
        raise _error(path, f"got {label!r}; a label names a folder: no slashes, no leading dot")
    return label


def _architecture(item: Any, path: str) -> Architecture:
    if isinstance(item, str):
        return Architecture(_string(item, path), _label(item, path))
    if not isinstance(item, Mapping):
        raise _error(path, f"got {item!r}; expects a model name or {{name, label, config, overrides}}")
    _check_keys(item, ("name", "label", "config", "overrides"), path)
    if "name" not in item:
        raise _error(f"{path}.name", "missing; expects a registered model name, e.g. hps_tiny")
    name = _string(item["name"], f"{path}.name")
    config = _string(item["config"], f"{path}.config") if item.get("config") is not None else None
    return Architecture(name, _label(item.get("label", name), f"{path}.label"), config,
                        _overrides(item.get("overrides"), f"{path}.overrides"))


def _method(item: Any, path: str) -> Method:
    if isinstance(item, str):
        return Method(_string(item, path), _label(item, path))
    if not isinstance(item, Mapping):
        raise _error(path, f"got {item!r}; expects a balancer / update rule name or {{name, label, kwargs}}")
    _check_keys(item, ("name", "label", "kwargs"), path)
    if "name" not in item:
        raise _error(f"{path}.name", "missing; expects a balancer or update rule name, e.g. pcgrad")
    name = _string(item["name"], f"{path}.name")
    kwargs = item.get("kwargs") or {}
    if not isinstance(kwargs, Mapping):
        raise _error(f"{path}.kwargs", f"got {kwargs!r}; expects a mapping of the method's options")
    return Method(name, _label(item.get("label", name), f"{path}.label"), dict(kwargs))


def _items(data: Mapping, key: str, parse: Any) -> tuple:
    value = data.get(key)
    if not isinstance(value, list) or not value:
        raise _error(key, f"got {value!r}; expects a non-empty list")
    items = tuple(parse(item, f"{key}[{i}]") for i, item in enumerate(value))
    labels = [item.label for item in items]
    for i, label in enumerate(labels):
        if label in labels[:i]:
            raise _error(f"{key}[{i}]", f"label {label!r} is used twice; give one of them another label")
    return items


def _seeds(value: Any) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return tuple(range(value))
    if isinstance(value, list) and value and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                                 for s in value):
        if len(set(value)) != len(value):
            raise _error("seeds", f"got {value!r}; each seed once")
        return tuple(value)
    raise _error("seeds", f"got {value!r}; expects a list of distinct integers >= 0 or a count >= 1")


def _baselines(value: Any) -> Baselines:
    if value is None or value == "none":
        return Baselines("none")
    if value == "auto":
        return Baselines("auto")
    if not isinstance(value, Mapping):
        raise _error("baselines", f"got {value!r}; expects 'auto' (the base config's single-task form), 'none' "
                                  "or {config: NAME_OR_PATH, overrides: [...]}")
    _check_keys(value, ("config", "overrides"), "baselines")
    if value.get("config") is None:
        raise _error("baselines.config", "missing; expects the single-task config to train, e.g. synthscenes_stl")
    return Baselines("config", _string(value["config"], "baselines.config"),
                     _overrides(value.get("overrides"), "baselines.overrides"))


def _budget(value: Any) -> Budget | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or len(value) != 1:
        raise _error("budget", f"got {value!r}; expects one of {list(BUDGET_MEASURES)} with a count, e.g. "
                               "{backward: 1200}")
    _check_keys(value, BUDGET_MEASURES, "budget")
    (measure, count), = value.items()
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise _error(f"budget.{measure}", f"got {count!r}; expects an integer >= 1")
    return Budget(measure, count)


def spec_from_dict(data: Any) -> SweepSpec:
    """Validate a plain mapping (a parsed spec YAML) and build the :class:`SweepSpec`."""
    if not isinstance(data, Mapping):
        raise ValueError(f"spec: the top level must be a mapping of {list(_KEYS)}, got {type(data).__name__}")
    _check_keys(data, _KEYS, "")
    config = data.get("config")
    if not isinstance(config, (str, dict)) or not config:
        raise _error("config", f"got {config!r}; expects a shipped config name, a path or an inline mapping")
    protocol = data.get("protocol")
    if protocol is not None:
        from mtlzoo.metrics import list_protocols

        if protocol not in list_protocols():
            raise _error("protocol", f"got {protocol!r}; expects one of {list_protocols()}")
    return SweepSpec(config=config, architectures=_items(data, "architectures", _architecture),
                     methods=_items(data, "methods", _method), seeds=_seeds(data.get("seeds")),
                     out_dir=_string(data.get("out_dir"), "out_dir"),
                     overrides=_overrides(data.get("overrides"), "overrides"),
                     baselines=_baselines(data.get("baselines", "auto")), protocol=protocol,
                     budget=_budget(data.get("budget")))


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a spec YAML file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sweep spec {str(path)!r} does not exist")
    return spec_from_dict(parse_yaml(path.read_text(encoding="utf-8"), str(path)))

"""Training configuration: a typed schema for the YAML files, strict about unknown keys, with CLI overrides."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mtlzoo.registry import close_matches


@dataclass
class ModelConfig:
    """Which architecture, on which tasks (a preset name or a list of task dicts)."""

    name: str = "hps_tiny"
    tasks: str | list = "synthscenes"
    kwargs: dict = field(default_factory=dict)


@dataclass
class DataConfig:
    """Which data set (a registered name), its options, training augmentation, and the loaders' batch sizes.

    ``augment`` (training split only): ``scales`` for a random scale-crop (depth divided by the scale) and
    ``flip`` for a horizontal flip that negates the normals' x, e.g. ``{scales: [1.0, 1.2, 1.5], flip: true}``.
    """

    name: str = "synthscenes"
    kwargs: dict = field(default_factory=dict)
    augment: dict = field(default_factory=dict)
    train_split: str = "train"
    eval_split: str = "val"
    batch_size: int = 8
    eval_batch_size: int = 16
    num_workers: int = 0


@dataclass
class MethodConfig:
    """The update rule: a balancer (``ew``, ``aligned_mtl``...) or a multi-step scheme."""

    name: str = "ew"
    kwargs: dict = field(default_factory=dict)


@dataclass
class OptimConfig:
    """Optimizer: adam, adamw or sgd."""

    name: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    betas: list = field(default_factory=lambda: [0.9, 0.999])


@dataclass
class ScheduleConfig:
    """Learning-rate schedule over the training steps: constant, poly, step or cosine (+ linear warm-up)."""

    name: str = "constant"
    power: float = 0.9
    step_size: int = 1000
    gamma: float = 0.5
    warmup_steps: int = 0


@dataclass
class TrainConfig:
    """Loop length, evaluation and logging cadence, precision, regularisation and outputs."""

    steps: int = 200
    eval_every: int = 100
    log_every: int = 10
    amp: str = "none"
    clip_grad: float | None = None
    ema: float | None = None
    seed: int = 0
    device: str = "auto"
    channels_last: bool = False
    sync_bn: bool = False
    freeze_norm: bool = False
    out_dir: str = "runs/mtlzoo"
    keep_last: int = 2
    best_metric: str | None = None
    tensorboard: bool = False
    progress: bool = True


@dataclass
class EvalConfig:
    """How results are measured: the protocol preset and an optional single-task baseline for delta_m
    ("auto": the protocol's published baseline, a shipped baseline name, or a {task: {metric: value}} dict)."""

    protocol: str | None = None
    baseline: str | dict | None = None


@dataclass
class Config:
    """A whole training run, as read from YAML."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_AMP_MODES = ("none", "bf16", "fp16")


def _accepts(annotation: Any, value: Any) -> bool:
    if annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(arg, value) for arg in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, origin or annotation)


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"{where or 'config'} must be a mapping, got {type(data).__name__}: {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        if key not in fields:
            near = close_matches(str(key), list(fields))
            hint = f" Did you mean {near[0]!r}?" if near else ""
            raise ValueError(f"unknown config key {path!r}.{hint} Accepted keys here: {sorted(fields)}")
        annotation = hints[key]
        if dataclasses.is_dataclass(annotation):
            values[key] = _build(annotation, value, path)
        elif not _accepts(annotation, value):
            raise ValueError(f"config key {path!r} expects {annotation}, got {value!r}")
        else:
            values[key] = value
    return cls(**values)


def _validate(config: Config) -> Config:
    if config.train.amp not in _AMP_MODES:
        raise ValueError(f"train.amp must be one of {_AMP_MODES}, got {config.train.amp!r}")
    for key in ("steps", "eval_every", "log_every"):
        if getattr(config.train, key) < 1:
            raise ValueError(f"train.{key} must be >= 1, got {getattr(config.train, key)}")
    if config.data.batch_size < 1:
        raise ValueError(f"data.batch_size must be >= 1, got {config.data.batch_size}")
    return config


def config_from_dict(data: dict[str, Any]) -> Config:
    """Validate a plain dict against the schema; unknown keys raise a ValueError naming the accepted ones."""
    return _validate(_build(Config, data or {}, ""))


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` overrides (values parsed as YAML) to a config dict."""
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in (data or {}).items()}
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like section.key=value, e.g. train.steps=100")
        path, raw = item.split("=", 1)
        *parents, leaf = path.strip().split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {item!r}: {part!r} is not a section")
        node[leaf] = yaml.safe_load(raw)
    return data


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read a YAML config (or the defaults when ``path`` is None) and apply overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"config file {path} does not exist; shipped configs: {shipped_configs()}")
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return config_from_dict(apply_overrides(data, list(overrides)))


def configs_dir() -> Path:
    """Folder of the YAML configs shipped with mtlzoo."""
    return Path(__file__).parent / "configs"


def shipped_configs() -> list[str]:
    """Names of the shipped configs (usable as ``--config NAME``)."""
    return sorted(p.stem for p in configs_dir().glob("*.yaml"))


def resolve_config_path(name_or_path: str) -> Path:
    """A path as given, or the shipped config of that name."""
    path = Path(name_or_path)
    if path.exists():
        return path
    shipped = configs_dir() / f"{name_or_path}.yaml"
    if shipped.exists():
        return shipped
    near = close_matches(name_or_path, shipped_configs())
    raise FileNotFoundError(f"no config file {name_or_path!r}; shipped configs: {shipped_configs()}"
                            + (f"; did you mean {near[0]!r}?" if near else ""))

"""Training configuration: a typed schema for the YAML files, strict about unknown keys, with CLI overrides."""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mtlzoo.plugins import import_modules
from mtlzoo.registry import close_matches
from mtlzoo.tasks import Task, resolve_tasks


@dataclass
class ModelConfig:
    """Which architecture, on which tasks (a preset name, a list of task dicts, or ``data``: the tasks the data
    set declares, for ``folder:`` and ``hf:`` data)."""

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

    def __post_init__(self) -> None:
        _check_section("data", self)


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

    def __post_init__(self) -> None:
        _check_section("optim", self)


@dataclass
class ScheduleConfig:
    """Learning-rate schedule over the training steps: constant, poly, step or cosine (+ linear warm-up)."""

    name: str = "constant"
    power: float = 0.9
    step_size: int = 1000
    gamma: float = 0.5
    warmup_steps: int = 0

    def __post_init__(self) -> None:
        _check_section("schedule", self)


@dataclass
class TrainConfig:
    """Loop length, evaluation and logging cadence, precision, regularisation and outputs."""

    steps: int = 200
    eval_every: int = 100
    log_every: int = 10
    amp: str = "none"
    clip_grad: float | None = None
    max_bad_steps: int = 20  # consecutive skipped (NaN / inf) updates after which the run stops with an error
    ema: float | None = None
    seed: int = 0
    device: str = "auto"
    channels_last: bool = False
    sync_bn: bool = False
    dist_timeout: float = 1800.0  # seconds a collective waits for the other ranks before the run fails (DDP)
    freeze_norm: bool = False
    out_dir: str = "runs/mtlzoo"
    keep_last: int = 2
    best_metric: str | None = None
    tensorboard: bool = False
    progress: bool = True
    overwrite: bool = False  # start clean in an out_dir that holds an earlier run (deletes its checkpoints, log)

    def __post_init__(self) -> None:
        _check_section("train", self)


@dataclass
class EvalConfig:
    """How results are measured: the protocol preset and an optional single-task baseline for delta_m
    ("auto": the protocol's published baseline, a shipped baseline name, or a {task: {metric: value}} dict)."""

    protocol: str | None = None
    baseline: str | dict | None = None


@dataclass
class Config:
    """A whole training run, as read from YAML; ``imports`` names user modules (plugins) imported first."""

    imports: list = field(default_factory=list)
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
DATA_TASKS = "data"  # model.tasks: the tasks the data set declares


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 floats: ``1e-3`` and ``5E-4`` are numbers, not strings."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|\.[0-9_]+(?:[eE][-+]?[0-9]+)?"
               r"|[0-9][0-9_]*[eE][-+]?[0-9]+|\.(?:inf|Inf|INF)|[-+]\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."),
)


def parse_yaml(text: str, where: str) -> Any:
    """Parse YAML (1.2-style floats) and turn a syntax error into a one-line ValueError naming ``where``."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ValueError(f"{where}: malformed YAML{at}: {problem}") from None


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


def _type_name(annotation: Any) -> str:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in typing.get_args(annotation))
    return "null" if annotation is type(None) else getattr(annotation, "__name__", str(annotation))


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"{where or 'config'}: must be a mapping of keys to values, got {type(data).__name__} "
                         f"{data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in fields:
            near = close_matches(str(key), list(fields))
            hint = f" Did you mean {near[0]!r}?" if near else ""
            raise ValueError(f"unknown config key {path!r}.{hint} Accepted keys here: {sorted(fields)}")
        annotation = hints[key]
        if dataclasses.is_dataclass(annotation):
            values[key] = _build(annotation, value, path)
        elif not _accepts(annotation, value):
            raise ValueError(f"{path}: got {value!r} ({type(value).__name__}); expects {_type_name(annotation)}")
        else:
            values[key] = value
    return cls(**values)


# (key path, test, what is accepted): a config value failing its test is refused when the config is loaded
_RULES: tuple[tuple[str, typing.Callable[[Any], bool], str], ...] = (
    ("train.amp", lambda v: v in _AMP_MODES, f"one of {list(_AMP_MODES)}"),
    ("train.steps", lambda v: v >= 1, "an integer >= 1"),
    ("train.eval_every", lambda v: v >= 1, "an integer >= 1"),
    ("train.log_every", lambda v: v >= 1, "an integer >= 1"),
    ("train.keep_last", lambda v: v >= 1, "an integer >= 1"),
    ("train.max_bad_steps", lambda v: v >= 1, "an integer >= 1 (skipped NaN / inf steps in a row before a run stops)"),
    ("train.clip_grad", lambda v: v is None or 0 < v < float("inf"), "null (no clipping) or a positive norm"),
    ("train.ema", lambda v: v is None or 0 < v < 1, "null (no EMA) or a decay in (0, 1), e.g. 0.999"),
    ("train.dist_timeout", lambda v: 0 < v < float("inf"), "a positive number of seconds"),
    ("data.batch_size", lambda v: v >= 1, "an integer >= 1"),
    ("data.eval_batch_size", lambda v: v >= 1, "an integer >= 1"),
    ("data.num_workers", lambda v: v >= 0, "an integer >= 0"),
    ("optim.lr", lambda v: 0 < v < float("inf"), "a positive number, e.g. 1e-3"),
    ("optim.weight_decay", lambda v: 0 <= v < float("inf"), "a number >= 0"),
    ("optim.momentum", lambda v: 0 <= v < 1, "a number in [0, 1)"),
    ("optim.betas", lambda v: len(v) == 2 and all(_accepts(float, b) and 0 <= b < 1 for b in v),
     "two numbers in [0, 1), e.g. [0.9, 0.999]"),
    ("schedule.step_size", lambda v: v >= 1, "an integer >= 1"),
    ("schedule.gamma", lambda v: v > 0, "a positive number"),
    ("schedule.warmup_steps", lambda v: v >= 0, "an integer >= 0"),
)


def _check_section(section: str, values: Any) -> None:
    """Apply the rules of one config section (run when the section is built, from YAML or in Python)."""
    for path, test, accepted in _RULES:
        if path.startswith(f"{section}."):
            value = getattr(values, path.partition(".")[2])
            if not test(value):
                raise ValueError(f"{path}: got {value!r}; expects {accepted}")


def config_tasks(config: Config) -> list[Task]:
    """The model's tasks of ``config``: ``model.tasks`` resolved; ``data`` reads the tasks its data set declares."""
    if config.model.tasks != DATA_TASKS:
        return resolve_tasks(config.model.tasks)
    from mtlzoo.data import dataset_tasks

    declared = dataset_tasks(config.data.name, config.data.kwargs)
    if declared is None:
        raise ValueError(f"{DATA_TASKS!r} takes the tasks a data set declares (folder:PATH, hf:NAME); data set "
                         f"{config.data.name!r} declares none: name a task preset or list the tasks")
    return declared


def _validate(config: Config, model_tasks: bool = True) -> Config:
    try:
        tasks = config_tasks(config)
    except (TypeError, ValueError) as error:
        raise ValueError(f"model.tasks: {error}") from None
    if model_tasks:
        check_best_metric(config.train.best_metric, tasks)
    return config


def check_best_metric(key: str | None, tasks: Sequence[Task]) -> None:
    """Refuse a ``train.best_metric`` that is not ``delta_m`` or ``task.metric`` of one of ``tasks``."""
    if key is None or key == "delta_m":
        return
    names = [t.name for t in tasks]
    task_name, _, metric = key.partition(".")
    if not metric:
        raise ValueError(f"train.best_metric: got {key!r}; expects 'delta_m' or 'task.metric', e.g. "
                         f"'{names[0]}.{next(iter(tasks[0].spec.metrics))}'")
    if task_name not in names:
        near = close_matches(task_name, names)
        hint = f" Did you mean {near[0]!r}?" if near else ""
        raise ValueError(f"train.best_metric: task {task_name!r} is not one of the model's tasks {names}.{hint}")
    task = tasks[names.index(task_name)]
    try:
        task.spec.direction(metric)
    except ValueError as error:
        raise ValueError(f"train.best_metric: {error}") from None


def config_from_dict(data: dict[str, Any], model_tasks: bool = True) -> Config:
    """Validate a plain dict against the schema; a bad key or value raises a one-line ValueError naming its path.

    ``model_tasks=False`` skips the checks of keys that depend on ``model.tasks`` (``train.best_metric``), for
    fine-tuning, where the model comes from a checkpoint and is checked when it is loaded.
    """
    config = _build(Config, {} if data is None else data, "")
    try:
        import_modules(config.imports)  # user task kinds, models, balancers... must exist before names are checked
    except ValueError as error:
        raise ValueError(f"imports: {error}") from None
    return _validate(config, model_tasks)


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` overrides (values parsed as YAML) to a config dict."""
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in (data or {}).items()}
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like section.key=value, e.g. train.steps=100")
        path, raw = item.split("=", 1)
        *parents, leaf = path.strip().split(".")
        node = data
        for depth, part in enumerate(parents):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {item!r}: {'.'.join(parents[:depth + 1])} is not a section; "
                                 "expects section.key=value, e.g. train.steps=100")
        node[leaf] = parse_yaml(raw, f"{path.strip()} (override value {raw!r})")
    return data


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (),
                model_tasks: bool = True) -> Config:
    """Read a YAML config (or the defaults when ``path`` is None) and apply overrides; see :func:`config_from_dict`."""
    data: Any = {}
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"config file {path} does not exist; shipped configs: {shipped_configs()}")
        data = parse_yaml(path.read_text(encoding="utf-8"), str(path))
        data = {} if data is None else data
        if not isinstance(data, dict):
            raise ValueError(f"{path}: the top level must be a mapping of sections (model:, data:, train:...), "
                             f"got a {type(data).__name__}")
    return config_from_dict(apply_overrides(data, list(overrides)), model_tasks)


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

"""Planning a sweep: one training config per (architecture, method, seed) cell and per baseline seed, and which
pairs cannot run (found by building the model and the update rule once, before anything trains). Under a
``budget`` every run's ``train.steps`` comes from it (with the update rule's backward passes per step)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtlzoo.benchmark.spec import Architecture, Budget, Method, SweepSpec
from mtlzoo.config import Config, apply_overrides, config_from_dict, config_tasks, parse_yaml, resolve_config_path

NOT_APPLICABLE = "not applicable"


@dataclass(frozen=True)
class Cell:
    """One training run of the sweep (``kind``: ``cell`` or ``baseline``); ``config`` is None when the pair does
    not apply, and ``reason`` then says why."""

    kind: str
    architecture: str
    method: str
    seed: int
    key: str  # the run folder relative to the sweep's out_dir, e.g. cells/hps_tiny/pcgrad/seed0
    config: Config | None
    reason: str | None = None


@dataclass(frozen=True)
class Plan:
    """Every cell and baseline run of a sweep, its protocol and tasks (``{name: kind}``, in model order)."""

    cells: tuple[Cell, ...]
    baselines: tuple[Cell, ...]
    protocol: str
    tasks: dict[str, str]


def _config_data(config: str | dict, where: str, spec_dir: Path | None) -> dict[str, Any]:
    """The mapping of a config named in the spec: inline, a path (also relative to the spec file), or shipped."""
    if isinstance(config, dict):
        return json.loads(json.dumps(config))  # a deep copy
    path = Path(config)
    if spec_dir is not None and not path.is_absolute() and not path.exists() and (spec_dir / path).is_file():
        path = spec_dir / path
    try:
        path = resolve_config_path(str(path))
    except FileNotFoundError as error:
        raise ValueError(f"{where}: {error}") from None
    data = parse_yaml(path.read_text(encoding="utf-8"), str(path)) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{where}: {path} must hold a mapping of config sections")
    return data


def _finish(data: dict[str, Any], seed: int, folder: Path, protocol: str, where: str) -> Config:
    """Seed, out_dir and protocol of a run; the sweep computes delta_m itself, so runs get no eval.baseline."""
    data = apply_overrides(data, [f"train.seed={seed}", f"train.out_dir={json.dumps(str(folder))}",
                                  "train.overwrite=false", "eval.baseline=null", f"eval.protocol={protocol}"])
    try:
        return config_from_dict(data)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}: {error}") from None


def cell_config(spec: SweepSpec, arch: Architecture, method: Method, seed: int, folder: Path, protocol: str,
                spec_dir: Path | None = None, where: str = "architectures") -> Config:
    """The config of one cell: the architecture's config (else the base one), the sweep's overrides, the model
    name (its model.kwargs are kept only if it is the base config's model), its overrides, then the method."""
    source = arch.config if arch.config is not None else spec.config
    data = _config_data(source, f"{where}.config" if arch.config else "config", spec_dir)
    try:
        data = apply_overrides(data, list(spec.overrides))
        model = dict(data.get("model") or {})
        if arch.config is None and model.get("name", "hps_tiny") != arch.name:
            model["kwargs"] = {}
        data["model"] = {**model, "name": arch.name}
        data = apply_overrides(data, list(arch.overrides))
        data["method"] = {"name": method.name, "kwargs": dict(method.kwargs)}
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None
    return _finish(data, seed, folder, protocol, where)


def sweep_protocol(spec: SweepSpec, spec_dir: Path | None = None) -> str:
    """The protocol every run of the sweep is scored under: the spec's, else the base config's (or its data
    set's default, else ``generic``)."""
    from mtlzoo.train.run import default_protocol

    if spec.protocol is not None:
        return spec.protocol
    data = apply_overrides(_config_data(spec.config, "config", spec_dir), list(spec.overrides))
    return (data.get("eval") or {}).get("protocol") or default_protocol((data.get("data") or {}).get(
        "name", "synthscenes")) or "generic"


def baseline_config(spec: SweepSpec, seed: int, out_dir: Path, protocol: str,
                    spec_dir: Path | None = None) -> Config | None:
    """The single-task run of ``seed`` (None with ``baselines: none``), in ``baselines/<model>/seed<k>``."""
    from mtlzoo.train.single_task import single_task_config

    mode = spec.baselines.mode
    if mode == "none":
        return None
    where = "baselines" if mode == "config" else "config"
    source = spec.baselines.config if mode == "config" else spec.config
    data = _config_data(source, where if mode == "auto" else "baselines.config", spec_dir)
    try:
        data = apply_overrides(data, list(spec.overrides))
        data = apply_overrides(data, list(spec.baselines.overrides))
        if mode == "auto":
            data = single_task_config(config_from_dict(data)).to_dict()
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}: {error}") from None
    name = data["model"]["name"]
    return _finish(data, seed, out_dir / "baselines" / name / f"seed{seed}", protocol, where)


def _rule_or_reason(config: Config, cache: dict[str, Any], where: str) -> tuple[Any, str | None]:
    """``config``'s update rule built on its model, or why its method cannot train that model: an update rule
    refusing the model (a TypeError, e.g. cs_two_phase without task-specific BN) or feature-level balancing on
    a model without one shared representation. ``(rule, None)`` or ``(None, reason)``."""
    import mtlzoo
    from mtlzoo.train.run import build_rule

    model = cache.get(config.model.name)
    if model is None:
        try:
            model = mtlzoo.create_model(config.model.name, tasks=config_tasks(config), **config.model.kwargs)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{where}: model {config.model.name!r}: {error}") from None
        cache[config.model.name] = model
    try:
        rule = build_rule(config, model)  # checks method.kwargs against the method's signature first
    except ValueError as error:
        if isinstance(error.__cause__, TypeError):  # the rule refuses this model (its family lacks what it needs)
            return None, str(error.__cause__)
        raise ValueError(f"{where}: method {config.method.name!r}: {error}") from None
    balancer = getattr(rule, "balancer", None)
    if balancer is not None and balancer.needs.features and not getattr(model, "shared_representation", True):
        return None, (f"{config.model.name} has no shared representation followed only by task layers, so "
                      f"{config.method.name} at level='features' does not apply")
    return rule, None


def budget_steps(budget: Budget, rule: Any) -> int:
    """``train.steps`` of a run under ``budget``: the count itself for ``steps``; for ``backward``, the count
    divided by the backward passes of one step of ``rule`` (``rule.backward_per_step()``), rounded down, at
    least 1."""
    if budget.measure == "steps":
        return budget.value
    return max(1, budget.value // rule.backward_per_step())


def _apply_budget(budget: Budget | None, configs: list[Config], rule: Any) -> None:
    """Set ``train.steps`` of every config of one (architecture, method) pair (or of the baselines) from the budget."""
    if budget is None:
        return
    steps = budget_steps(budget, rule)
    for config in configs:
        config.train.steps = steps


def _check_names(spec: SweepSpec) -> None:
    import mtlzoo
    from mtlzoo.models.factory import MODELS, split_model_name
    from mtlzoo.registry import unknown_name_error

    for i, arch in enumerate(spec.architectures):
        if split_model_name(arch.name)[0] not in MODELS:
            raise ValueError(f"architectures[{i}].name: {unknown_name_error('model', arch.name, MODELS.names())}")
    methods = mtlzoo.list_balancers() + mtlzoo.list_update_rules()
    for i, method in enumerate(spec.methods):
        if method.name not in methods:
            error = unknown_name_error("balancer or update rule", method.name, methods)
            raise ValueError(f"methods[{i}].name: {error}")


def plan_sweep(spec: SweepSpec, spec_dir: Path | None = None) -> Plan:
    """Every cell's config (or why it does not apply) and the baselines; the configs are validated and every
    (architecture, method) pair is built once, so nothing is found wrong after hours of training."""
    _check_names(spec)
    out_dir, protocol = Path(spec.out_dir), sweep_protocol(spec, spec_dir)
    cells: list[Cell] = []
    for i, arch in enumerate(spec.architectures):
        cache: dict[str, Any] = {}
        for j, method in enumerate(spec.methods):
            where = f"architectures[{i}]"
            configs = {seed: cell_config(spec, arch, method, seed, out_dir / _cell_key(arch, method, seed), protocol,
                                         spec_dir, where) for seed in spec.seeds}
            rule, reason = _rule_or_reason(configs[spec.seeds[0]], cache, f"{where} x methods[{j}]")
            if rule is not None:
                _apply_budget(spec.budget, list(configs.values()), rule)
            cells += [Cell("cell", arch.label, method.label, seed, _cell_key(arch, method, seed),
                           None if reason else configs[seed], reason) for seed in spec.seeds]
    baselines = []
    for seed in spec.seeds:
        config = baseline_config(spec, seed, out_dir, protocol, spec_dir)
        if config is not None:
            key = f"baselines/{config.model.name}/seed{seed}"
            baselines.append(Cell("baseline", config.model.name, "single-task", seed, key, config))
    _budget_baselines(spec.budget, [c.config for c in baselines])
    runnable = [c.config for c in cells if c.config is not None]
    if not runnable:
        raise ValueError("no (architecture, method) pair of the sweep applies: " + "; ".join(
            sorted({f"{c.architecture} x {c.method}: {c.reason}" for c in cells})))
    _check_same_evaluation(spec, cells, baselines)
    return Plan(tuple(cells), tuple(baselines), protocol, {t.name: t.kind for t in config_tasks(runnable[0])})


def _budget_baselines(budget: Budget | None, configs: list[Config]) -> None:
    """The baselines' ``train.steps`` under the budget (their update rule built once, for ``backward``)."""
    if budget is None or not configs:
        return
    rule = None
    if budget.measure != "steps":
        rule, reason = _rule_or_reason(configs[0], {}, "baselines")
        if rule is None:
            raise ValueError(f"baselines: {reason}")
    _apply_budget(budget, configs, rule)


def _evaluation(config: Config) -> dict[str, Any]:
    """What a run is scored on: its tasks and its evaluation data."""
    return {"model.tasks": [t.to_dict() for t in config_tasks(config)], "data.name": config.data.name,
            "data.kwargs": config.data.kwargs, "data.eval_split": config.data.eval_split}


def _check_same_evaluation(spec: SweepSpec, cells: list[Cell], baselines: list[Cell]) -> None:
    """Every run must be scored on the same tasks and data, or its row and delta_m compare nothing."""
    reference = baselines[0] if baselines else next(c for c in cells if c.config is not None)
    wanted = _evaluation(reference.config)
    for cell in cells:
        if cell.config is None:
            continue
        found = _evaluation(cell.config)
        for key, value in found.items():
            if value != wanted[key]:
                index = [a.label for a in spec.architectures].index(cell.architecture)
                raise ValueError(f"architectures[{index}]: {key} {value!r} differs from {wanted[key]!r} of "
                                 f"{reference.key}; every run of a sweep is scored on the same tasks and data "
                                 f"(align them with overrides)")


def _cell_key(arch: Architecture, method: Method, seed: int) -> str:
    return f"cells/{arch.label}/{method.label}/seed{seed}"

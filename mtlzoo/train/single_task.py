"""Single-task baselines of a config: the same tasks, data, optimiser and loop, with one network per task.

``mtlzoo train --config X --single-task`` trains them; the run folder it writes is then a baseline:
``mtlzoo train --config X eval.baseline=<that run folder>`` reports delta_m against it.
"""

from __future__ import annotations

import inspect
from typing import Any

from mtlzoo.config import Config, config_from_dict
from mtlzoo.metrics.baselines import BASELINES

SUFFIX = "_stl"


def _stl_model(name: str, kwargs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The stl architecture matching ``name``'s variant (hps_tiny -> stl_tiny), or ``stl`` on its ``encoder``."""
    import mtlzoo
    from mtlzoo.models.stl import SingleTaskModels

    variants = sorted((n.removeprefix("stl_") for n in mtlzoo.list_models("stl_*")), key=len, reverse=True)
    accepted = set(inspect.signature(SingleTaskModels.__init__).parameters) - {"self", "tasks"}
    kept = {k: v for k, v in kwargs.items() if k in accepted}
    for variant in variants:
        if name.endswith(f"_{variant}"):
            return f"stl_{variant}", {k: v for k, v in kept.items() if k != "encoder"}
    if "encoder" in kwargs:
        return "stl", kept
    raise ValueError(f"no single-task counterpart of model {name!r}: name one of {mtlzoo.list_models('stl*')} "
                     "with model.name (and model.kwargs.encoder for 'stl'), and train it without --single-task")


def single_task_config(config: Config) -> Config:
    """``config`` changed to train its single-task baselines: model ``stl_<variant>`` (the model options an stl
    network takes are kept), equal weighting (each network sees only its task's loss), ``train.out_dir`` + "_stl"."""
    data = config.to_dict()
    model = data["model"]
    if model["name"].startswith("stl"):
        raise ValueError(f"model {model['name']!r} is already single-task; drop --single-task")
    model["name"], model["kwargs"] = _stl_model(model["name"], dict(model.get("kwargs") or {}))
    data["method"] = {"name": "ew", "kwargs": {}}
    data["train"]["out_dir"] = str(data["train"]["out_dir"]).rstrip("/") + SUFFIX
    baseline = data["eval"].get("baseline")
    if isinstance(baseline, str) and baseline != "auto" and baseline not in BASELINES:
        data["eval"]["baseline"] = None  # a saved run or file: the baselines are what this run makes
    return config_from_dict(data)

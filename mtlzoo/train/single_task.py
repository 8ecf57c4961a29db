"""Single-task baselines of a config: the same tasks, data, optimiser and loop, with one network per task
(``stl_tiny`` for the ``*_tiny`` image models, ``stl_mlp`` for the ``*_mlp`` vector models: see their modules).

``mtlzoo train --config X --single-task`` trains them; the run folder it writes is then a baseline:
``mtlzoo train --config X eval.baseline=<that run folder>`` reports delta_m against it.
"""

from __future__ import annotations

import inspect
from typing import Any

from mtlzoo.config import Config, config_from_dict
from mtlzoo.metrics.baselines import BASELINES

SUFFIX = "_stl"


def _stl_options(stl_name: str) -> set[str]:
    """The model options the stl network ``stl_name`` takes: those its factory names, or, for a factory that
    passes ``**kwargs`` on, those of :class:`~mtlzoo.models.stl.SingleTaskModels`."""
    from mtlzoo.models.factory import MODELS
    from mtlzoo.models.stl import SingleTaskModels

    params = inspect.signature(MODELS.get(stl_name)).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        params = inspect.signature(SingleTaskModels.__init__).parameters
    return set(params) - {"self", "tasks"}


def _stl_model(name: str, kwargs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The stl architecture matching ``name``'s variant (hps_tiny -> stl_tiny, mmoe_mlp -> stl_mlp) with the
    options of ``kwargs`` it takes, or ``stl`` on its ``encoder``."""
    import mtlzoo

    variants = sorted((n.removeprefix("stl_") for n in mtlzoo.list_models("stl_*")), key=len, reverse=True)
    for variant in variants:
        if name.endswith(f"_{variant}"):
            accepted = _stl_options(f"stl_{variant}") - {"encoder"}
            return f"stl_{variant}", {k: v for k, v in kwargs.items() if k in accepted}
    if "encoder" in kwargs:
        return "stl", {k: v for k, v in kwargs.items() if k in _stl_options("stl")}
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

"""Saving and publishing a model: its config.json (arguments, tasks, preprocessing, results, recipe) and weights.

config.json holds everything needed to rebuild and use the model: ``architecture``, ``tasks`` (dicts),
``model_args``, ``preprocessing`` (mean, std, input_size), ``results`` (with the protocol that made
them), ``training`` (the recipe), ``weights`` (file, sha256, dtype), ``license``, ``name`` and
``mtlzoo_version``. The files themselves are written by :mod:`mtlzoo.hub`.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from mtlzoo.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from mtlzoo.hub.cache import validate_repo_id
from mtlzoo.hub.push import upload_checkpoint
from mtlzoo.hub.save import state_for_saving, write_checkpoint
from mtlzoo.metrics.protocols import get_protocol, list_protocols
from mtlzoo.models.factory import MODELS, load_checkpoint
from mtlzoo.version import __version__

if TYPE_CHECKING:  # annotations only: MultiTaskModel.save_pretrained imports this module
    from mtlzoo.models.base import MultiTaskModel

_PREPROCESSING_KEYS = ("mean", "std", "input_size")


def _preprocessing(model: MultiTaskModel, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """Mean, std and input size: the loaded checkpoint's, else ImageNet statistics for RGB, then ``overrides``."""
    info = getattr(model, "checkpoint_info", None) or {}
    rgb = model.in_chans == 3
    pre = dict(info.get("preprocessing") or {"mean": list(IMAGENET_MEAN) if rgb else None,
                                              "std": list(IMAGENET_STD) if rgb else None, "input_size": None})
    unknown = sorted(set(overrides or {}) - set(_PREPROCESSING_KEYS))
    if unknown:
        raise ValueError(f"unknown preprocessing field(s) {unknown}; accepted: {list(_PREPROCESSING_KEYS)}")
    pre.update(overrides or {})
    for key in ("mean", "std"):
        if pre.get(key) is not None:
            pre[key] = [float(v) for v in pre[key]]
            if len(pre[key]) != model.in_chans:
                raise ValueError(f"preprocessing {key} needs {model.in_chans} values (one per input channel), "
                                 f"got {pre[key]}")
    size = pre.get("input_size")
    if size is not None:
        size = [int(v) for v in size]
        if len(size) == 2:
            size = [model.in_chans, *size]
        if len(size) != 3 or size[0] != model.in_chans:
            raise ValueError(f"preprocessing input_size must be (H, W) or ({model.in_chans}, H, W), got {size}")
        pre["input_size"] = size
    return pre


def normalise_results(model: MultiTaskModel, results: Any, protocol: str | None) -> dict[str, Any] | None:
    """Results as ``{"protocol", "dataset", "metrics": {task: {metric: float}}, ...}`` (delta_m kept if present).

    Accepts an ``EvalResult`` (from ``mtlzoo.evaluate``), a dict with a ``"metrics"`` key, or a bare
    ``{task: {metric: value}}`` dict. A result must say which protocol made it, and every task and
    metric must exist on the model.
    """
    if results is None:
        if protocol is not None:
            raise ValueError(f"protocol={protocol!r} was given without results=")
        return None
    data = results.to_dict() if hasattr(results, "to_dict") else dict(results)
    if "metrics" not in data:
        data = {"metrics": data}
    recorded = data.get("protocol")
    if protocol is not None and recorded is not None and protocol != recorded:
        raise ValueError(f"protocol={protocol!r} contradicts the results, which were made under {recorded!r}")
    if not (protocol or recorded):
        raise ValueError(f"results need the protocol that made them: pass protocol=, one of {list_protocols()}")
    proto = get_protocol(protocol or recorded)
    metrics: dict[str, dict[str, float]] = {}
    for task_name, values in data["metrics"].items():
        task = model.task(task_name)
        metrics[task_name] = {}
        for metric, value in values.items():
            task.spec.direction(metric)  # raises for a metric the task kind does not have
            if value is None or not math.isfinite(float(value)):
                raise ValueError(f"result {task_name}/{metric} must be a finite number, got {value!r}")
            metrics[task_name][metric] = float(value)
    out = {**data, "protocol": proto.name, "metrics": metrics}
    if out.get("dataset") is None and proto.task_preset:
        out["dataset"] = proto.task_preset
    if out.get("delta_m") is not None:
        out["delta_m"] = float(out["delta_m"])
    return out


def build_config(model: MultiTaskModel, *, results: Any = None, protocol: str | None = None,
                 training: Mapping[str, Any] | None = None, preprocessing: Mapping[str, Any] | None = None,
                 name: str | None = None, license: str | None = "apache-2.0") -> dict[str, Any]:
    """config.json content except ``weights`` (added once the weight file exists)."""
    model_config = dict(model.config)
    if model_config["architecture"] not in MODELS:
        raise ValueError(f"model architecture {model_config['architecture']!r} is not a registered name, so "
                         f"config.json could not rebuild it; build models with mtlzoo.create_model(name, ...)")
    config = {
        "architecture": model_config.pop("architecture"), "tasks": model_config.pop("tasks"),
        "model_args": model_config, "preprocessing": _preprocessing(model, preprocessing),
        "results": normalise_results(model, results, protocol), "training": dict(training) if training else None,
        "architecture_module": MODELS.get(model.architecture).__module__,
        "name": name or model.architecture, "license": license, "mtlzoo_version": __version__,
    }
    try:
        json.dumps(config, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise TypeError(f"everything saved in config.json must be JSON-able (model arguments, results, training); "
                        f"{err}") from None
    return config


def save_pretrained(model: MultiTaskModel, save_directory: str | os.PathLike, *, results: Any = None,
                    protocol: str | None = None, training: Mapping[str, Any] | None = None,
                    preprocessing: Mapping[str, Any] | None = None, dtype: str | torch.dtype | None = None,
                    name: str | None = None, license: str | None = "apache-2.0", repo_id: str | None = None) -> Path:
    """Write ``model.safetensors``, ``config.json`` and a ``README.md`` model card into ``save_directory``.

    ``results`` (an EvalResult or ``{task: {metric: value}}``, with ``protocol``) and ``training`` (the
    recipe as a JSON-able dict) go into config.json and the card; ``dtype="float16"`` halves the file.
    Each file is written to a temporary file in the folder and moved into place, weights first and
    config.json (holding the weights' sha256) next, so a crash never leaves a half-written file.
    """
    if not (isinstance(model, torch.nn.Module) and hasattr(model, "tasks") and hasattr(model, "config")):
        raise TypeError(f"save_pretrained expects a MultiTaskModel, got {type(model).__name__}")
    config = build_config(model, results=results, protocol=protocol, training=training,
                          preprocessing=preprocessing, name=name, license=license)
    return write_checkpoint(save_directory, state_for_saving(model, dtype), config, repo_id=repo_id)


def publish(checkpoint_dir: str | os.PathLike, repo_id: str, **upload_kwargs: Any) -> Any:
    """Upload a checkpoint folder to ``repo_id`` after loading it strictly (what is published rebuilds and matches
    its hash); ``upload_kwargs`` go to :func:`mtlzoo.hub.push.upload_checkpoint` (revision, private, token...)."""
    validate_repo_id(repo_id)
    load_checkpoint(checkpoint_dir)
    return upload_checkpoint(checkpoint_dir, repo_id, **upload_kwargs)


def push_to_hub(model: MultiTaskModel, repo_id: str, *, revision: str | None = None, private: bool | None = None,
                token: str | None = None, commit_message: str | None = None, create_pr: bool = False,
                **save_kwargs: Any) -> Any:
    """Save ``model`` (``save_kwargs`` go to :func:`save_pretrained`: results, protocol, training...) and publish it."""
    with tempfile.TemporaryDirectory(prefix="mtlzoo-push-") as tmp:
        save_pretrained(model, tmp, repo_id=repo_id, **save_kwargs)
        return publish(tmp, repo_id, revision=revision, private=private, token=token,
                       commit_message=commit_message, create_pr=create_pr)

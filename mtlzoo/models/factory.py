"""Names are the API: the model registry, ``create_model`` and ``list_models``."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from mtlzoo.models.base import MultiTaskModel
from mtlzoo.registry import Registry, unknown_name_error
from mtlzoo.tasks import Task

MODELS: Registry[Callable[..., MultiTaskModel]] = Registry("model")


def register_model(fn: Callable[..., MultiTaskModel]) -> Callable[..., MultiTaskModel]:
    """Register a model entry point under its function name (``hps_resnet50``, ``squadnet_tiny``...)."""
    return MODELS.register(fn.__name__)(fn)


def split_model_name(name: str) -> tuple[str, str | None]:
    """``"squadnet_tiny.synthscenes"`` -> ``("squadnet_tiny", "synthscenes")``."""
    arch, _, tag = name.partition(".")
    return arch, tag or None


def list_models(pattern: str = "*", pretrained: bool = False) -> list[str]:
    """Sorted registered architecture names matching ``pattern`` (fnmatch).

    With ``pretrained=True``: the ``arch.tag`` names that have pretrained weights.
    """
    if not pretrained:
        return MODELS.names(pattern)
    from mtlzoo.models.pretrained import PRETRAINED_CFGS

    return sorted(n for n in PRETRAINED_CFGS.names() if fnmatch.fnmatchcase(n, pattern))


def create_model(name: str, tasks: str | Iterable[Task | Mapping[str, Any]] | None = None,
                 pretrained: bool = False, **kwargs: Any) -> MultiTaskModel:
    """Build a registered model by name, e.g. ``create_model("hps_resnet50", tasks="nyud")``.

    ``name`` may carry a pretrained tag (``"squadnet_tiny.synthscenes"``); ``tasks`` is a preset
    name or a list of Task / dict, and defaults to the pretrained tasks when ``pretrained=True``.
    """
    arch, tag = split_model_name(name)
    entry = MODELS.get(arch)
    if pretrained:
        from mtlzoo.models.pretrained import load_pretrained

        return load_pretrained(arch, tag, tasks=tasks, **kwargs)
    if tag is not None:
        raise ValueError(f"{name!r} names pretrained weights; pass pretrained=True or use {arch!r}")
    if tasks is None:
        raise ValueError(f"create_model({arch!r}) needs tasks=: a preset name (e.g. 'nyud') or a list of Task")
    model = entry(tasks=tasks, **kwargs)
    model.architecture = arch
    model.model_kwargs = dict(kwargs)
    return model


def create_model_from_config(config: Mapping[str, Any]) -> MultiTaskModel:
    """Rebuild a model (random weights) from ``model.config``."""
    config = dict(config)
    if "architecture" not in config:
        raise ValueError(f"a model config needs an 'architecture' key; got keys {sorted(config)}")
    arch = config.pop("architecture")
    if arch not in MODELS:
        raise unknown_name_error("model", arch, MODELS.names())
    return create_model(arch, **config)

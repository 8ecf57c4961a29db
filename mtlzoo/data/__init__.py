"""Datasets (synthscenes, mmoe_synthetic, the real benchmarks' standard layouts, your own as ``folder:PATH`` or
``hf:NAME``), their registry and joint transforms."""

from __future__ import annotations

from typing import Any

from torch.utils.data import Dataset

from mtlzoo.data.folder import FolderDataset
from mtlzoo.data.hf import HFDataset
from mtlzoo.data.mmoe_synthetic import MMoESynthetic
from mtlzoo.data.mtan import MTANCityscapes, MTANNYUv2
from mtlzoo.data.nyud import NYUD
from mtlzoo.data.pascal_context import PascalContext
from mtlzoo.data.synthscenes import GENERATOR_VERSION, SynthScenes, render_scene
from mtlzoo.registry import Registry
from mtlzoo.tasks import Task

DATASETS: Registry[Any] = Registry("dataset")
DATASETS.register("synthscenes")(SynthScenes)
DATASETS.register("mmoe_synthetic")(MMoESynthetic)
DATASETS.register("nyud")(NYUD)
DATASETS.register("pascal_context")(PascalContext)
DATASETS.register("nyuv2_mtan")(MTANNYUv2)
DATASETS.register("cityscapes_mtan")(MTANCityscapes)
DATASETS.register("folder")(FolderDataset)
DATASETS.register("hf")(HFDataset)
# "<prefix>:<location>" names: the data set and the keyword argument that takes the location
LOCATION_PREFIXES = {"folder": "root", "hf": "source"}


def split_dataset_name(name: str) -> tuple[str, dict[str, str]]:
    """``folder:PATH`` -> ("folder", {"root": PATH}), ``hf:NAME`` -> ("hf", {"source": NAME}); others as given."""
    prefix, sep, location = name.partition(":") if isinstance(name, str) else (name, "", "")
    if not sep or prefix not in LOCATION_PREFIXES:
        return name, {}
    if not location:
        raise ValueError(f"data set {name!r} names no location; expected {prefix}:PATH, e.g. {prefix}:data/my_set")
    return prefix, {LOCATION_PREFIXES[prefix]: location}


def resolve_dataset(name: str, options: dict[str, Any] | None = None,
                    located: bool = False) -> tuple[Any, dict[str, Any]]:
    """The data set class of ``name`` (a registered name or ``folder:`` / ``hf:``) and its options with the
    location filled in; a location given twice is refused, and with ``located`` a missing one too."""
    base, implied = split_dataset_name(name)
    factory = DATASETS.get(base)
    options = dict(options or {})
    for key, value in implied.items():
        if key in options and options[key] != value:
            raise ValueError(f"data set {name!r} already names its {key}; drop the option {key}={options[key]!r}")
        options[key] = value
    key = LOCATION_PREFIXES.get(base)
    if located and key is not None and key not in options:
        raise ValueError(f"data set {base!r} needs its location: {base}:PATH (or the option {key}=PATH)")
    return factory, options


def create_dataset(name: str, **kwargs: Any) -> Dataset:
    """Build the registered dataset ``name`` (see :func:`list_datasets`; also ``folder:PATH`` and ``hf:NAME``)
    with its keyword arguments."""
    factory, kwargs = resolve_dataset(name, kwargs, located=True)
    return factory(**kwargs)


def dataset_tasks(name: str, options: dict[str, Any] | None = None) -> list[Task] | None:
    """The tasks a data set declares itself (``folder:``, ``hf:``: from tasks.json or its columns), read without
    building it; None for a data set whose tasks come from a task preset."""
    factory, options = resolve_dataset(name, options, located=True)
    declared = getattr(factory, "declared_tasks", None)
    return None if declared is None else declared(**options)


def dataset_protocol(name: str) -> str | None:
    """The default evaluation protocol a data set class carries (``default_protocol``), None when it has none."""
    return getattr(resolve_dataset(name)[0], "default_protocol", None)


def dataset_task_preset(name: str) -> str | None:
    """The task preset a data set class carries (``task_preset``: the tasks a model built for it gets), or None."""
    return getattr(resolve_dataset(name)[0], "task_preset", None)


def list_datasets(pattern: str = "*") -> list[str]:
    """Names of the registered datasets."""
    return DATASETS.names(pattern)


__all__ = ["DATASETS", "GENERATOR_VERSION", "FolderDataset", "HFDataset", "MMoESynthetic", "MTANCityscapes",
           "MTANNYUv2", "NYUD", "PascalContext", "SynthScenes", "create_dataset", "dataset_protocol",
           "dataset_task_preset", "dataset_tasks", "list_datasets", "render_scene", "resolve_dataset",
           "split_dataset_name"]

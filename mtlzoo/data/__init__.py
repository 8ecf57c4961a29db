"""Datasets (synthscenes and the real benchmarks' standard layouts), their registry and joint transforms."""

from __future__ import annotations

from typing import Any

from torch.utils.data import Dataset

from mtlzoo.data.mtan import MTANCityscapes, MTANNYUv2
from mtlzoo.data.nyud import NYUD
from mtlzoo.data.pascal_context import PascalContext
from mtlzoo.data.synthscenes import GENERATOR_VERSION, SynthScenes, render_scene
from mtlzoo.registry import Registry

DATASETS: Registry[Any] = Registry("dataset")
DATASETS.register("synthscenes")(SynthScenes)
DATASETS.register("nyud")(NYUD)
DATASETS.register("pascal_context")(PascalContext)
DATASETS.register("nyuv2_mtan")(MTANNYUv2)
DATASETS.register("cityscapes_mtan")(MTANCityscapes)


def create_dataset(name: str, **kwargs: Any) -> Dataset:
    """Build the registered dataset ``name`` (see :func:`list_datasets`) with its keyword arguments."""
    return DATASETS.get(name)(**kwargs)


def list_datasets(pattern: str = "*") -> list[str]:
    """Names of the registered datasets."""
    return DATASETS.names(pattern)


__all__ = ["DATASETS", "GENERATOR_VERSION", "MTANCityscapes", "MTANNYUv2", "NYUD", "PascalContext", "SynthScenes",
           "create_dataset", "list_datasets", "render_scene"]

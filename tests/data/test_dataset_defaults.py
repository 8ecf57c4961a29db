"""Each data set class carries its own defaults (protocol, task preset, depth convention); nothing else names them."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

import mtlzoo
from mtlzoo.data import DATASETS, dataset_protocol, dataset_task_preset
from mtlzoo.metrics import get_protocol
from mtlzoo.train.run import build_augmentation, default_tasks

BENCHMARKS = {"synthscenes": ("synthscenes", "synthscenes"), "nyud": ("mtinet_nyud", "nyud"),
              "pascal_context": ("mtinet_pascal", "pascal_context"), "nyuv2_mtan": ("mtan_nyuv2", "nyuv2_mtan"),
              "cityscapes_mtan": ("mtan_cityscapes", "cityscapes2")}


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_benchmark_data_sets_carry_their_protocol_and_task_preset(name: str) -> None:
    protocol, preset = BENCHMARKS[name]
    assert dataset_protocol(name) == protocol and dataset_task_preset(name) == preset
    assert get_protocol(protocol).task_preset == preset  # the protocol scores exactly those tasks
    assert default_tasks(name) == preset and mtlzoo.task_preset(preset)


def test_every_registered_data_set_has_a_registered_default_protocol() -> None:
    for name in DATASETS.names():
        assert get_protocol(DATASETS.get(name).default_protocol).name


def test_inverse_depth_comes_from_the_data_set_class() -> None:
    """Zooming in 2x halves metric depth (NYUv2) but doubles MTAN Cityscapes' inverse depth."""
    sample = {"image": torch.rand(3, 16, 16), "depth": torch.ones(1, 16, 16)}
    zoom = {"scales": [2.0]}
    assert torch.allclose(build_augmentation("nyuv2_mtan", zoom)(dict(sample))["depth"], torch.tensor(0.5))
    assert torch.allclose(build_augmentation("cityscapes_mtan", zoom)(dict(sample))["depth"], torch.tensor(2.0))


def test_evaluate_defaults_to_the_data_sets_protocol_else_generic() -> None:
    torch.manual_seed(0)
    model = mtlzoo.create_model("hps_tiny", tasks=[{"name": "depth", "kind": "depth"}])
    data = mtlzoo.create_dataset("synthscenes", split="val", size=[32, 32], length=2, tasks=["depth"])
    assert mtlzoo.evaluate(model, DataLoader(data, batch_size=2), progress=False).protocol == "synthscenes"
    batches = [{k: v.unsqueeze(0) for k, v in data[0].items()}]  # a plain list carries no protocol
    assert mtlzoo.evaluate(model, batches, progress=False).protocol == "generic"

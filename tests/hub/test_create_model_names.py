"""create_model is the one entry point: ``hf-hub:`` and ``local-dir:`` names load what from_pretrained loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import mtlzoo
from mtlzoo.hub import CheckpointNotFoundError, install_to_hf_cache


def _same_state(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_hf_hub_name_loads_the_same_weights_as_from_pretrained(checkpoint: Path, model) -> None:
    snapshot = install_to_hf_cache(checkpoint, "org/tiny")  # HF_HUB_OFFLINE=1 and a fresh cache (conftest)
    created = mtlzoo.create_model("hf-hub:org/tiny")
    assert _same_state(created, mtlzoo.from_pretrained("hf-hub:org/tiny"))
    assert _same_state(created, model)
    pinned = mtlzoo.create_model(f"hf-hub:org/tiny@{snapshot.name}")
    assert _same_state(pinned, model) and pinned.checkpoint_info["source"] == str(snapshot)
    assert _same_state(mtlzoo.create_model("hf-hub:org/tiny", revision=snapshot.name), model)


def test_local_dir_name_loads_the_same_weights_as_from_pretrained(checkpoint: Path, model) -> None:
    created = mtlzoo.create_model(f"local-dir:{checkpoint}")
    assert _same_state(created, mtlzoo.from_pretrained(checkpoint))
    assert _same_state(created, mtlzoo.from_pretrained(f"local-dir:{checkpoint}"))
    assert _same_state(created, model) and not created.training
    assert created.checkpoint_info["results"]["metrics"] == {"semseg": {"miou": 0.25}}


def test_named_checkpoints_take_tasks_and_loading_options(checkpoint: Path) -> None:
    adapted = mtlzoo.create_model(f"local-dir:{checkpoint}", tasks=[{"name": "depth", "kind": "depth"}])
    assert adapted.task_names == ["depth"]
    with pytest.raises(ValueError, match="revision='v1' applies to 'hf-hub:' names"):
        mtlzoo.create_model(f"local-dir:{checkpoint}", revision="v1")
    with pytest.raises(CheckpointNotFoundError, match="absent is not a checkpoint folder"):
        mtlzoo.create_model(f"local-dir:{checkpoint / 'absent'}")


def test_unregistered_architecture_names_the_module_to_import(checkpoint: Path) -> None:
    config = json.loads((checkpoint / "config.json").read_text())
    assert config["architecture_module"] == "mtlzoo.models.hps"
    config.update(architecture="my_net_tiny", architecture_module="my_lab.nets")
    (checkpoint / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError) as err:
        mtlzoo.create_model(f"local-dir:{checkpoint}")
    message = str(err.value)
    assert "'my_net_tiny'" in message and "import my_lab.nets" in message and "mtlzoo --import my_lab.nets" in message
    del config["architecture_module"]
    (checkpoint / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="import the module that registers it"):
        mtlzoo.from_pretrained(checkpoint)

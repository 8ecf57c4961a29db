"""create_model("arch.tag", pretrained=True): from the HF cache, from the bundled copy, or a clear error."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import mtlzoo
from mtlzoo.hub import CheckpointNotFoundError, install_to_hf_cache
from mtlzoo.hub.files import sha256_file
from mtlzoo.models.pretrained import PretrainedCfg, resolve_pretrained


@pytest.fixture
def weights_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty stand-in for the repository's weights/ folder."""
    folder = tmp_path / "weights"
    folder.mkdir()
    monkeypatch.setattr("mtlzoo.hub.load.bundled_weights_dir", lambda: folder)
    return folder


def test_loads_the_bundled_copy_offline(checkpoint: Path, weights_dir: Path, register_cfg, model,
                                        outputs_close) -> None:
    shutil.copytree(checkpoint, weights_dir / "hps_tiny.t1")
    sha = sha256_file(checkpoint / "model.safetensors")
    register_cfg(PretrainedCfg("hps_tiny", "t1", "org/hps_tiny.t1", sha256=sha, bundled="hps_tiny.t1"))
    loaded = mtlzoo.create_model("hps_tiny.t1", pretrained=True)
    assert outputs_close(model, loaded)
    assert loaded.checkpoint_info["source"] == str(weights_dir / "hps_tiny.t1")
    assert "hps_tiny.t1" in mtlzoo.list_models("hps_tiny*", pretrained=True)


def test_the_hf_cache_comes_before_the_bundled_copy(checkpoint: Path, weights_dir: Path, register_cfg, model,
                                                    outputs_close) -> None:
    snapshot = install_to_hf_cache(checkpoint, "org/hps_tiny.t2", revision="v3")
    shutil.copytree(checkpoint, weights_dir / "hps_tiny.t2")
    register_cfg(PretrainedCfg("hps_tiny", "t2", "org/hps_tiny.t2", revision="v3", bundled="hps_tiny.t2"))
    loaded = mtlzoo.create_model("hps_tiny.t2", pretrained=True)
    assert loaded.checkpoint_info["source"] == str(snapshot)
    assert outputs_close(model, loaded)


def test_missing_weights_name_the_repo_and_how_to_fetch_them(weights_dir: Path, register_cfg) -> None:
    register_cfg(PretrainedCfg("hps_tiny", "t3", "org/hps_tiny.t3", revision="abc", bundled="hps_tiny.t3"))
    with pytest.raises(CheckpointNotFoundError) as err:
        mtlzoo.create_model("hps_tiny.t3", pretrained=True)
    message = str(err.value)
    assert "'hps_tiny.t3'" in message and "'org/hps_tiny.t3'" in message
    assert "hf download org/hps_tiny.t3 --revision abc" in message and "install_to_hf_cache" in message


def test_a_wrong_hash_in_the_pretrained_config_is_caught(checkpoint: Path, weights_dir: Path, register_cfg) -> None:
    shutil.copytree(checkpoint, weights_dir / "hps_tiny.t4")
    register_cfg(PretrainedCfg("hps_tiny", "t4", "org/hps_tiny.t4", sha256="12" * 32, bundled="hps_tiny.t4"))
    with pytest.raises(ValueError, match="the pretrained config expects 1212"):
        mtlzoo.create_model("hps_tiny.t4", pretrained=True)


def test_a_checkpoint_of_another_architecture_is_refused(checkpoint: Path, weights_dir: Path, register_cfg) -> None:
    shutil.copytree(checkpoint, weights_dir / "other")
    register_cfg(PretrainedCfg("hps_resnet18", "t5", "org/x", bundled="other"))
    with pytest.raises(ValueError, match="holds a 'hps_tiny' model"):
        mtlzoo.create_model("hps_resnet18.t5", pretrained=True)


def test_pretrained_tasks_can_be_changed(checkpoint: Path, weights_dir: Path, register_cfg) -> None:
    shutil.copytree(checkpoint, weights_dir / "hps_tiny.t6")
    register_cfg(PretrainedCfg("hps_tiny", "t6", "org/hps_tiny.t6", bundled="hps_tiny.t6"))
    loaded = mtlzoo.create_model("hps_tiny.t6", pretrained=True, tasks=[{"name": "depth", "kind": "depth"}])
    assert loaded.task_names == ["depth"]


def test_unknown_tags_list_close_matches(register_cfg) -> None:
    register_cfg(PretrainedCfg("hps_tiny", "t7", "org/hps_tiny.t7"))
    with pytest.raises(ValueError, match="Did you mean: hps_tiny.t7"):
        resolve_pretrained("hps_tiny", "t8")

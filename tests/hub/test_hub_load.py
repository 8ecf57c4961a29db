"""Loading: round trip, strict key checks, pickle refusal, sha256 checks, task adaptation, name resolution."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import mtlzoo
from mtlzoo.hub import CheckpointNotFoundError
from mtlzoo.models import from_pretrained, load_checkpoint
from mtlzoo.tasks import Task


def test_round_trip_matches_outputs_and_keeps_metadata(checkpoint: Path, model, outputs_close) -> None:
    loaded = from_pretrained(checkpoint)
    assert outputs_close(model, loaded)
    assert loaded.config == model.config
    assert loaded.checkpoint_info["results"]["metrics"] == {"semseg": {"miou": 0.25}}
    assert loaded.checkpoint_info["preprocessing"]["std"] == pytest.approx([0.229, 0.224, 0.225])
    resaved = loaded.save_pretrained(checkpoint.parent / "again", preprocessing={"input_size": (32, 32)})
    assert json.loads((resaved / "config.json").read_text())["preprocessing"]["mean"] == pytest.approx(
        [0.485, 0.456, 0.406])


def test_float16_checkpoint_loads_into_float32_model(tmp_path: Path, model, outputs_close) -> None:
    folder = model.save_pretrained(tmp_path / "half", dtype="float16")
    loaded = from_pretrained(folder)
    assert next(loaded.parameters()).dtype == torch.float32
    assert outputs_close(model, loaded, atol=5e-2)


def _rewrite_weights(folder: Path, edit) -> None:
    state = load_file(str(folder / "model.safetensors"))
    edit(state)
    save_file(state, str(folder / "model.safetensors"))
    config = json.loads((folder / "config.json").read_text())
    config["weights"]["sha256"] = None  # a deliberately edited file: skip the recorded hash
    (folder / "config.json").write_text(json.dumps(config))


def test_strict_loading_names_missing_unexpected_and_mismatched_keys(checkpoint: Path) -> None:
    def edit(state):
        del state["heads.depth.classifier.bias"]
        state["heads.extra.weight"] = torch.zeros(2)
        state["heads.semseg.classifier.weight"] = torch.zeros(1, 1, 1, 1)

    _rewrite_weights(checkpoint, edit)
    with pytest.raises(ValueError) as err:
        from_pretrained(checkpoint)
    message = str(err.value)
    assert "missing keys (1): heads.depth.classifier.bias" in message
    assert "unexpected keys (1): heads.extra.weight" in message
    assert ("mismatched keys (1): heads.semseg.classifier.weight (checkpoint (1, 1, 1, 1), model (8, 32, 1, 1))"
            in message)
    assert "strict=False" in message
    loaded = from_pretrained(checkpoint, strict=False)
    assert isinstance(loaded, mtlzoo.MultiTaskModel)


def test_pickle_only_folder_is_refused_unless_trusted(checkpoint: Path, model, outputs_close) -> None:
    torch.save(model.state_dict(), checkpoint / "pytorch_model.bin")
    (checkpoint / "model.safetensors").unlink()
    with pytest.raises(ValueError, match=r"pytorch_model.bin, a pickle file.*trust_pickle=True"):
        from_pretrained(checkpoint)
    loaded = from_pretrained(checkpoint, trust_pickle=True)
    assert outputs_close(model, loaded)


def test_trusted_pickle_still_uses_weights_only(checkpoint: Path) -> None:
    torch.save({"state": {"nested": torch.zeros(1)}, "fn": print}, checkpoint / "pytorch_model.bin")
    (checkpoint / "model.safetensors").unlink()
    with pytest.raises(Exception, match="weights_only|Unsupported global"):
        from_pretrained(checkpoint, trust_pickle=True)


def test_sha256_mismatch_is_reported(checkpoint: Path) -> None:
    with pytest.raises(ValueError, match="sha256 .* but the pretrained config expects 00ff"):
        load_checkpoint(checkpoint, sha256="00ff")
    config = json.loads((checkpoint / "config.json").read_text())
    config["weights"]["sha256"] = "ab" * 32
    (checkpoint / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="config.json expects abab"):
        from_pretrained(checkpoint)


def test_missing_files_are_explained(tmp_path: Path, checkpoint: Path) -> None:
    with pytest.raises(CheckpointNotFoundError, match="no config.json"):
        load_checkpoint(tmp_path)
    (checkpoint / "model.safetensors").unlink()
    with pytest.raises(CheckpointNotFoundError, match="holds no weights"):
        from_pretrained(checkpoint)


def test_tasks_adapt_heads_of_a_loaded_model(checkpoint: Path, model) -> None:
    wanted = [Task("semseg", "segmentation", 8), Task("depth", "depth"), Task("parts", "parts", 3),
              Task("count", "regression", 2)]
    loaded = from_pretrained(checkpoint, tasks=wanted)
    assert loaded.task_names == ["semseg", "depth", "count", "parts"]  # new and changed tasks go last
    assert loaded.task("parts").channels == 3
    kept = dict(loaded.heads["semseg"].state_dict())
    assert all(torch.equal(v, model.heads["semseg"].state_dict()[k]) for k, v in kept.items())
    out = loaded(torch.randn(1, 3, 32, 32))
    assert out["count"].shape == (1, 2) and out["parts"].shape == (1, 3, 32, 32)


def test_model_kwargs_override_saved_arguments(checkpoint: Path) -> None:
    with pytest.raises(ValueError, match="mismatched keys"):
        from_pretrained(checkpoint, head_width=16)


def test_unknown_names_list_pretrained_models(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a checkpoint folder, an 'hf-hub:org/name"):
        from_pretrained("no_such_model.tag")
    with pytest.raises(TypeError, match="from_pretrained expects"):
        from_pretrained(3)
    with pytest.raises(ValueError, match="looks like 'org/name'"):
        from_pretrained("hf-hub:justaname")


def test_architecture_with_weights_loads_its_default_tag(checkpoint: Path, register_cfg, monkeypatch,
                                                          tmp_path: Path, model, outputs_close) -> None:
    """The tag marked default loads, not the alphabetically first one (here 'synthscenes' < 'zzz')."""
    import dataclasses

    from mtlzoo.models.pretrained import PRETRAINED_CFGS, PretrainedCfg

    shutil.copytree(checkpoint, tmp_path / "weights" / "copy")
    monkeypatch.setattr("mtlzoo.hub.load.bundled_weights_dir", lambda: tmp_path / "weights")
    register_cfg(dataclasses.replace(PRETRAINED_CFGS.get("hps_tiny.synthscenes"), default=False))
    register_cfg(PretrainedCfg("hps_tiny", "zzz", "org/hps_tiny.zzz", bundled="copy", default=True))
    assert outputs_close(model, from_pretrained("hps_tiny"))
    assert from_pretrained("hps_tiny").checkpoint_info["pretrained"] == "hps_tiny.zzz"
    assert mtlzoo.create_model("hps_tiny", pretrained=True).checkpoint_info["pretrained"] == "hps_tiny.zzz"

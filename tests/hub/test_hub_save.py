"""save_pretrained: the three files, what config.json and the model card hold, atomic writes, result checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results
from safetensors.torch import load_file

import mtlzoo
from mtlzoo.hub.files import sha256_file
from mtlzoo.hub.save import state_for_saving
from mtlzoo.models import export as save_module


def test_writes_weights_config_and_card(checkpoint: Path, model: mtlzoo.MultiTaskModel) -> None:
    assert sorted(p.name for p in checkpoint.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((checkpoint / "config.json").read_text())
    assert config["architecture"] == "hps_tiny"
    assert [t["name"] for t in config["tasks"]] == model.task_names
    assert config["preprocessing"]["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert config["results"]["protocol"] == "synthscenes"
    assert config["results"]["dataset"] == "synthscenes"
    assert config["results"]["metrics"] == {"semseg": {"miou": 0.25}}
    assert config["training"] == {"epochs": 2, "lr": 3e-4}
    assert config["mtlzoo_version"] == mtlzoo.__version__
    assert config["weights"]["sha256"] == sha256_file(checkpoint / "model.safetensors")
    state = load_file(str(checkpoint / "model.safetensors"))
    assert set(state) == set(model.state_dict())


def test_model_card_front_matter_and_sections(checkpoint: Path) -> None:
    card = ModelCard.load(checkpoint / "README.md")
    assert card.data.library_name == "mtlzoo"
    assert card.data.license == "apache-2.0"
    assert {"mtlzoo", "multi-task-learning", "hps_tiny", "segmentation"} <= set(card.data.tags)
    name, results = model_index_to_eval_results(card.data.to_dict()["model-index"])
    assert name == "hps_tiny"
    assert [(r.metric_type, r.metric_value, r.dataset_type) for r in results] == [("miou", 0.25, "synthscenes")]
    for section in ("## Tasks", "## Training recipe", "## Results", "## Preprocessing", "## License"):
        assert section in card.text
    assert "| `semseg` | miou | 0.2500 | higher |" in card.text
    assert "| lr | 0.0003 |" in card.text


def test_delta_m_appears_in_card(tmp_path: Path, model: mtlzoo.MultiTaskModel) -> None:
    results = {"protocol": "synthscenes", "metrics": {"depth": {"rmse": 0.5}}, "delta_m": -1.5,
               "delta_style": "vandenhende", "baseline": "stl"}
    folder = model.save_pretrained(tmp_path / "c", results=results, repo_id="org/name")
    text = (folder / "README.md").read_text()
    assert "delta_m = -1.50 % (vandenhende style, against baseline `stl`" in text
    assert 'from_pretrained("hf-hub:org/name")' in text


def test_float16_halves_floats_and_keeps_integer_buffers(model: mtlzoo.MultiTaskModel) -> None:
    state = state_for_saving(model, "float16")
    floats = [v for v in state.values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)
    counters = [k for k in state if k.endswith("num_batches_tracked")]
    assert counters and all(state[k].dtype == torch.int64 for k in counters)
    with pytest.raises(ValueError, match="dtype must be one of"):
        state_for_saving(model, "float8")


def test_shared_storage_is_copied_not_rejected(model: mtlzoo.MultiTaskModel, tmp_path: Path) -> None:
    key, first = next((k, p) for k, p in model.named_parameters() if p.dim() > 1)
    model.register_buffer("alias", first.detach())  # same storage as a parameter: safetensors refuses that
    state = state_for_saving(model)
    assert state["alias"].untyped_storage().data_ptr() != state[key].untyped_storage().data_ptr()
    assert torch.equal(state["alias"], state[key])
    model.save_pretrained(tmp_path / "c")
    assert torch.equal(load_file(str(tmp_path / "c" / "model.safetensors"))["alias"], first)


def test_a_failed_save_leaves_the_previous_checkpoint_intact(checkpoint: Path, model: mtlzoo.MultiTaskModel,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    before = {p.name: p.read_bytes() for p in checkpoint.iterdir()}

    def crash(tensors, path, metadata=None):
        Path(path).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr("safetensors.torch.save_file", crash)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    with pytest.raises(OSError, match="disk full"):
        model.save_pretrained(checkpoint)
    assert {p.name: p.read_bytes() for p in checkpoint.iterdir()} == before  # no temp files, nothing changed


def test_results_need_a_protocol_and_known_tasks_and_metrics(tmp_path: Path, model: mtlzoo.MultiTaskModel) -> None:
    with pytest.raises(ValueError, match="protocol"):
        model.save_pretrained(tmp_path / "a", results={"semseg": {"miou": 0.5}})
    with pytest.raises(ValueError, match="unknown task 'sem'"):
        model.save_pretrained(tmp_path / "b", results={"sem": {"miou": 0.5}}, protocol="synthscenes")
    with pytest.raises(ValueError, match="Did you mean: miou"):
        model.save_pretrained(tmp_path / "c", results={"semseg": {"mio": 0.5}}, protocol="synthscenes")
    with pytest.raises(ValueError, match="finite"):
        model.save_pretrained(tmp_path / "d", results={"semseg": {"miou": float("nan")}}, protocol="synthscenes")
    with pytest.raises(ValueError, match="contradicts"):
        model.save_pretrained(tmp_path / "e", results={"protocol": "mtinet_nyud", "metrics": {}},
                              protocol="synthscenes")
    with pytest.raises(ValueError, match="Unknown protocol"):
        model.save_pretrained(tmp_path / "f", results={"semseg": {"miou": 0.5}}, protocol="synthscene")
    assert not any((tmp_path / name).exists() for name in "abcdef")


def test_eval_result_objects_are_accepted(tmp_path: Path, model: mtlzoo.MultiTaskModel) -> None:
    from mtlzoo.metrics import EvalResult

    result = EvalResult({"edge": {"odsf": 0.7}}, protocol="synthscenes", delta_m=2.0, delta_style="vandenhende",
                        baseline="synthscenes_stl")
    config = json.loads((model.save_pretrained(tmp_path / "c", results=result) / "config.json").read_text())
    assert config["results"]["metrics"] == {"edge": {"odsf": 0.7}}
    assert config["results"]["delta_m"] == 2.0


def test_preprocessing_overrides_are_checked(tmp_path: Path, model: mtlzoo.MultiTaskModel) -> None:
    folder = model.save_pretrained(tmp_path / "c", preprocessing={"input_size": (64, 96)})
    assert json.loads((folder / "config.json").read_text())["preprocessing"]["input_size"] == [3, 64, 96]
    with pytest.raises(ValueError, match="needs 3 values"):
        model.save_pretrained(tmp_path / "d", preprocessing={"mean": [0.5]})
    with pytest.raises(ValueError, match="unknown preprocessing"):
        model.save_pretrained(tmp_path / "e", preprocessing={"scale": 2})


def test_unregistered_or_non_json_models_are_refused(tmp_path: Path, model: mtlzoo.MultiTaskModel) -> None:
    model.architecture = "HardParameterSharing"
    with pytest.raises(ValueError, match="not a registered name"):
        model.save_pretrained(tmp_path / "a")
    model.architecture = "hps_tiny"
    with pytest.raises(TypeError, match="JSON-able"):
        model.save_pretrained(tmp_path / "b", training={"optimizer": torch.optim.SGD})
    with pytest.raises(TypeError, match="MultiTaskModel"):
        save_module.save_pretrained(torch.nn.Linear(2, 2), tmp_path / "c")


def test_scores_over_seeds_appear_in_the_card_as_mean_and_sample_std(tmp_path: Path,
                                                                      model: mtlzoo.MultiTaskModel) -> None:
    import numpy as np

    per_seed = {"0": {"depth": {"rmse": 0.5}}, "1": {"depth": {"rmse": 0.7}}, "2": {"depth": {"rmse": 0.6}}}
    values = [0.5, 0.7, 0.6]
    summary = {"seeds": [0, 1, 2], "per_seed": per_seed, "mean": {"depth": {"rmse": float(np.mean(values))}},
               "std": {"depth": {"rmse": float(np.std(values, ddof=1))}}, "delta_m": [1.0, -2.0, 0.5],
               "delta_m_mean": -0.5 / 3, "delta_m_std": float(np.std([1.0, -2.0, 0.5], ddof=1)), "baseline": "stl"}
    results = {"protocol": "synthscenes", "metrics": {"depth": {"rmse": 0.5}}, "over_seeds": summary}
    folder = model.save_pretrained(tmp_path / "c", results=results)
    text = (folder / "README.md").read_text()
    assert "over seeds 0, 1, 2 (these weights are seed 0's)" in text
    assert "| `depth` | rmse | 0.6000 ± 0.1000 | 0.5000, 0.7000, 0.6000 | lower |" in text
    assert "delta_m over seeds = -0.17 ± 1.61 % (per seed +1.00, -2.00, +0.50; against baseline `stl`)" in text
    assert json.loads((folder / "config.json").read_text())["results"]["over_seeds"] == summary

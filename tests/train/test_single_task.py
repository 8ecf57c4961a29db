"""`mtlzoo train --single-task` trains a config's single-task baselines; their run folder is a delta_m baseline."""

import json
from pathlib import Path

import pytest
import torch

import mtlzoo
from mtlzoo.cli import main
from mtlzoo.config import load_config, resolve_config_path
from mtlzoo.metrics.evaluate import recorded_results
from mtlzoo.train.single_task import single_task_config

TASKS = "model.tasks=[{name: semseg, kind: segmentation, channels: 8}, {name: depth, kind: depth}]"
SMALL = ["data.kwargs={size: [32, 48], length: 8}", "data.batch_size=4", "data.eval_batch_size=8",
         "train.progress=false", TASKS]


def _config(name, *overrides):
    return load_config(resolve_config_path(name), list(overrides))


def test_single_task_config_swaps_model_method_and_out_dir():
    config = single_task_config(_config("synthscenes_cross_stitch", "model.kwargs={self_weight: 0.8, head_width: 16}",
                                        "method.name=pcgrad", "eval.baseline=runs/somewhere"))
    assert config.model.name == "stl_tiny" and config.model.kwargs == {"head_width": 16}
    assert config.method.name == "ew" and config.train.out_dir == "runs/synthscenes_cross_stitch_stl"
    assert config.eval.baseline is None
    generic = single_task_config(_config("synthscenes_hps", "model.name=hps", "model.kwargs={encoder: resnet18}",
                                         "eval.baseline=auto"))
    assert generic.model.name == "stl" and generic.model.kwargs == {"encoder": "resnet18"}
    assert generic.eval.baseline == "auto"


def test_single_task_config_refuses_what_it_cannot_map():
    with pytest.raises(ValueError, match="already single-task"):
        single_task_config(_config("synthscenes_stl"))
    with pytest.raises(ValueError, match="no single-task counterpart of model 'hps_resnet50'"):
        single_task_config(_config("synthscenes_hps", "model.name=hps_resnet50"))


def test_one_command_trains_the_baselines_and_their_run_is_a_baseline(tmp_path: Path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--config", "synthscenes_hps", "--single-task", f"train.out_dir={out}", "train.steps=2",
                 "train.eval_every=2", *SMALL]) == 0
    baseline_run = tmp_path / "run_stl"
    root = baseline_run / "checkpoints"
    saved = json.loads((root / (root / "latest").read_text().strip() / "config.json").read_text())
    assert saved["architecture"] == "stl_tiny" and saved["results"]["protocol"] == "synthscenes"
    assert recorded_results(baseline_run)["metrics"] == saved["results"]["metrics"]
    capsys.readouterr()
    assert main(["train", "--config", "synthscenes_hps", f"train.out_dir={out}", "train.steps=2", "train.eval_every=2",
                 f"eval.baseline={baseline_run}", *SMALL]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["baseline"] == str(baseline_run) and isinstance(result["delta_m"], float)


def test_vector_models_map_to_stl_mlp_with_their_per_task_layout():
    config = single_task_config(_config("mmoe_synthetic_mmoe"))
    assert config.model.name == "stl_mlp" and config.model.kwargs == {"input_dim": 100, "expert_hidden": [16],
                                                                      "head_width": 8, "num_shared_experts": 8}
    ple = single_task_config(_config("mmoe_synthetic_mmoe", "model.name=ple_mlp", "model.kwargs.num_levels=2",
                                     "model.kwargs.num_task_experts=2", "model.kwargs.gate=dselect"))
    assert ple.model.kwargs["num_levels"] == 2 and ple.model.kwargs["num_task_experts"] == 2
    assert "gate" not in ple.model.kwargs  # single-task networks mix their experts with softmax gates


def test_the_vector_config_trains_end_to_end_and_against_its_single_task_baselines(tmp_path: Path, capsys):
    small = ["data.kwargs.length=256", "data.eval_batch_size=256", "train.steps=4", "train.eval_every=4",
             "train.progress=false"]
    out = tmp_path / "mmoe"
    assert main(["train", "--config", "mmoe_synthetic_mmoe", "--single-task", f"train.out_dir={out}", *small]) == 0
    root = tmp_path / "mmoe_stl" / "checkpoints"
    saved = json.loads((root / (root / "latest").read_text().strip() / "config.json").read_text())
    assert saved["architecture"] == "stl_mlp" and saved["results"]["protocol"] == "mmoe_synthetic"
    capsys.readouterr()
    assert main(["train", "--config", "mmoe_synthetic_mmoe", f"train.out_dir={out}", *small,
                 f"eval.baseline={tmp_path / 'mmoe_stl'}"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert sorted(result["metrics"]) == ["task1", "task2"] and isinstance(result["delta_m"], float)


def test_evaluate_takes_a_checkpoint_folder_as_baseline(tmp_path: Path):
    from mtlzoo.data import create_dataset

    tasks = [{"name": "semseg", "kind": "segmentation", "channels": 8}, {"name": "depth", "kind": "depth"}]
    model = mtlzoo.create_model("stl_tiny", tasks=tasks)
    data = torch.utils.data.DataLoader(create_dataset("synthscenes", split="val", size=[32, 48], length=4,
                                                      tasks=["semseg", "depth"]), batch_size=4)
    first = mtlzoo.evaluate(model, data, protocol="synthscenes", progress=False)
    model.save_pretrained(tmp_path / "ckpt", results=first)
    again = mtlzoo.evaluate(model, data, protocol="synthscenes", baseline=tmp_path / "ckpt", progress=False)
    assert again.delta_m == pytest.approx(0.0, abs=1e-9) and again.baseline == str(tmp_path / "ckpt")


def test_baseline_paths_without_results_say_what_to_do(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        recorded_results(tmp_path)
    mtlzoo.create_model("stl_tiny", tasks=[{"name": "depth", "kind": "depth"}]).save_pretrained(tmp_path / "bare")
    with pytest.raises(ValueError, match="records no results"):
        recorded_results(tmp_path / "bare")

"""`mtlzoo train|finetune|eval --data folder:PATH | hf:PATH` on data written by the test, and fine-tuning a
pretrained model on a task kind no shipped data set has (image classification)."""

import json
import sys

import pytest
import torch
from safetensors.torch import load_file

import mtlzoo
from mtlzoo.cli import main

LOOP = ["train.steps=2", "train.eval_every=2", "train.progress=false", "data.batch_size=2", "data.eval_batch_size=2"]
OLD_TASKS = ["semseg", "depth", "normals", "edge", "saliency", "parts"]


def _train(data: str, out, *extra: str) -> int:
    return main(["train", "--data", data, "model.name=hps_tiny", f"train.out_dir={out}", *LOOP, *extra])


def test_train_and_eval_on_a_folder_take_the_tasks_from_tasks_json(scene_folder, tmp_path, capsys):
    root, _ = scene_folder
    assert main(["train", "--config", "synthscenes_hps", "--data", f"folder:{root}", "train.best_metric=scene.accuracy",
                 f"train.out_dir={tmp_path / 'run'}", *LOOP, "data.augment={scales: [1.0, 1.25], flip: true}"]) == 0
    checkpoint = tmp_path / "run" / "checkpoints" / "step_0000002"
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["protocol"] for r in log if r["kind"] == "eval"] == ["generic"]  # not the config's synthscenes
    model = mtlzoo.from_pretrained(checkpoint)
    assert model.task_names == ["semseg", "depth", "normals", "scene"] and model.task("scene").channels == 2
    capsys.readouterr()
    assert main(["eval", str(checkpoint), "--data", f"folder:{root}", "--batch-size", "2"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["protocol"] == "generic" and set(result["metrics"]) == {"semseg", "depth", "normals", "scene"}
    assert 0.0 <= result["metrics"]["scene"]["accuracy"] <= 1.0


def test_data_options_of_train_fill_data_kwargs_and_data_replaces_them(tmp_path):
    tasks = "model.tasks=[{name: depth, kind: depth}]"
    loop = [*LOOP, "train.best_metric=null"]  # the config's semseg.miou names a task this model lacks
    config = tmp_path / "small.yaml"
    config.write_text("data: {name: synthscenes, kwargs: {size: [32, 48], length: 8}}\n")
    assert main(["train", "--config", str(config), "--data-opt", "length=4", tasks,
                 f"train.out_dir={tmp_path / 'a'}", *loop]) == 0
    run = json.loads((tmp_path / "a" / "checkpoints" / "step_0000002" / "run_config.json").read_text())
    assert run["data"]["kwargs"] == {"size": [32, 48], "length": 4}  # the config's other options stay
    assert main(["train", "--config", "synthscenes_hps", "--data", "synthscenes", "--data-opt", "length=4",
                 "--data-opt", "size=[32,32]", tasks, f"train.out_dir={tmp_path / 'b'}", *loop]) == 0
    run = json.loads((tmp_path / "b" / "checkpoints" / "step_0000002" / "run_config.json").read_text())
    assert run["data"] == {**run["data"], "name": "synthscenes", "kwargs": {"length": 4, "size": [32, 32]}}
    assert run["model"]["tasks"] == [{"name": "depth", "kind": "depth"}]  # a preset data set sets no tasks


def test_a_yaml_config_takes_the_tasks_the_data_declares(scene_folder, tmp_path, capsys):
    root, _ = scene_folder
    config = tmp_path / "mine.yaml"
    config.write_text(f"model: {{name: hps_tiny, tasks: data}}\ndata: {{name: 'folder:{root}', kwargs: {{}}}}\n")
    assert main(["train", "--config", str(config), f"train.out_dir={tmp_path / 'run'}", *LOOP]) == 0
    run_config = json.loads((tmp_path / "run" / "checkpoints" / "step_0000002" / "run_config.json").read_text())
    assert run_config["model"]["tasks"] == "data" and run_config["data"]["name"] == f"folder:{root}"
    assert mtlzoo.from_pretrained(tmp_path / "run" / "checkpoints" / "step_0000002").task_names == [
        "semseg", "depth", "normals", "scene"]
    assert main(["train", "--config", str(config), "data.name=synthscenes"]) == 2
    assert "model.tasks: 'data' takes the tasks a data set declares" in capsys.readouterr().err


def test_a_malformed_folder_is_one_error_listing_each_problem(scene_folder, tmp_path, capsys):
    root, _ = scene_folder
    (root / "normals" / "s1.npy").unlink()
    (root / "scene.json").write_text(json.dumps({"s0": "empty", "s1": "empty", "s2": "crowd", "s3": "people"}))
    assert _train(f"folder:{root}", tmp_path / "run") == 2
    err = capsys.readouterr().err
    assert "(split 'train'): 2 problem(s) found" in err.splitlines()[0]
    assert "task 'normals': no .png/.npy file in normals/ for 1 image(s): s1" in err
    assert "image 's2': class 'crowd' is not one of ['empty', 'people']" in err
    assert not (tmp_path / "run").exists()


def test_train_and_eval_on_hf_data_saved_to_disk_and_as_parquet(scene_folder, tmp_path, capsys, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_cache")
    root, _ = scene_folder
    splits = {}
    for split in ("train", "val"):
        data = mtlzoo.data.create_dataset(f"folder:{root}", split=split, tasks=["depth", "scene"])
        rows = [data.load_image(i) for i in range(len(data))]
        splits[split] = datasets.Dataset.from_dict({
            "image": [datasets.Image().encode_example(im) for im in rows],
            "depth": [data.load(i, "depth").tolist() for i in range(len(data))],
            "scene": [int(data.load(i, "scene")) for i in range(len(data))],
        }, features=datasets.Features({"image": datasets.Image(), "depth": datasets.Array2D((32, 32), "float32"),
                                       "scene": datasets.ClassLabel(names=["empty", "people"])}))
    saved = tmp_path / "saved"
    datasets.DatasetDict({"train": splits["train"], "validation": splits["val"]}).save_to_disk(str(saved))
    schema = 'schema={"tasks": {"depth": {"kind": "depth"}, "scene": {"kind": "classification", "classes": 2}}}'
    assert main(["train", "--data", f"hf:{saved}", "--data-opt", schema, "model.name=hps_tiny",
                 f"train.out_dir={tmp_path / 'run'}", *LOOP]) == 0
    checkpoint = tmp_path / "run" / "checkpoints" / "step_0000002"
    assert mtlzoo.from_pretrained(checkpoint).task_names == ["depth", "scene"]
    parquet = tmp_path / "parquet"
    splits["val"].to_parquet(str(parquet / "val-0.parquet"))
    capsys.readouterr()
    assert main(["eval", str(checkpoint), "--data", f"hf:{parquet}", "--batch-size", "2"]) == 0  # scene inferred
    result = json.loads(capsys.readouterr().out)
    assert result["protocol"] == "generic" and set(result["metrics"]) == {"scene"}


def test_hf_data_without_the_datasets_package_names_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)
    assert main(["eval", "hps_tiny.synthscenes", "--data", f"hf:{tmp_path}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install 'mtlzoo[datasets]'" in err


@pytest.fixture
def scene_only(tmp_path, folder_writer):
    """Images labelled only with the new task: scene (classification), the kind no shipped data set has."""
    root = tmp_path / "scene_only"
    folder_writer(root, tasks=("scene",), splits={"train": ["s0", "s1", "s2", "s3"], "val": ["s4", "s5"]})
    return root


def _weights(checkpoint) -> dict[str, torch.Tensor]:
    return load_file(str(checkpoint / "model.safetensors"))


def test_finetune_adds_a_classification_head_and_keeps_the_old_heads_bit_identical(scene_only, tmp_path):
    out = tmp_path / "ft"
    assert main(["finetune", "hps_tiny.synthscenes", "--data", f"folder:{scene_only}", "--add-task",
                 "scene:classification", "--freeze-encoder", "--only-new-tasks", f"train.out_dir={out}",
                 "train.steps=4", "train.eval_every=2", "train.progress=false", "data.batch_size=2",
                 "data.eval_batch_size=2", "optim.weight_decay=0.01"]) == 0
    before = mtlzoo.create_model("hps_tiny.synthscenes", pretrained=True).state_dict()
    step2, step4 = _weights(out / "checkpoints" / "step_0000002"), _weights(out / "checkpoints" / "step_0000004")
    assert set(step4) == set(before) | {k for k in step4 if k.startswith("heads.scene.")}
    for key, value in before.items():
        if value.is_floating_point():
            assert torch.equal(step4[key].to(value.dtype), value), key  # encoder and old heads untouched
    assert any(not torch.equal(step2[k], step4[k]) for k in step4 if k.startswith("heads.scene."))  # it trains
    card = (out / "checkpoints" / "step_0000004" / "README.md").read_text()
    for name in [*OLD_TASKS, "scene"]:
        assert f"| `{name}` |" in card
    assert "| `scene` | classification | 2 |" in card
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    losses = next(r["losses"] for r in log if r["kind"] == "train")
    assert losses["scene"] > 0 and all(losses[name] == 0 for name in OLD_TASKS)


def test_finetune_can_train_the_encoder_too_and_keeps_heads_the_data_does_not_label(scene_only, tmp_path, capsys):
    out = tmp_path / "ft"
    assert main(["finetune", "hps_tiny.synthscenes", "--data", f"folder:{scene_only}", "--add-task",
                 "scene:classification", f"train.out_dir={out}", *LOOP, "optim.weight_decay=0.01"]) == 0
    assert "has no labels for ['semseg', 'depth', 'normals', 'edge', 'saliency', 'parts']" in capsys.readouterr().err
    before = mtlzoo.create_model("hps_tiny.synthscenes", pretrained=True).state_dict()
    after = _weights(out / "checkpoints" / "step_0000002")
    changed = [k for k, v in before.items() if v.is_floating_point() and not torch.equal(after[k], v)]
    assert changed and all(k.startswith("encoder.") for k in changed)


@pytest.mark.parametrize(("spec", "fragment"), [
    ("scene:segmentation", "declares 'scene' as a classification task"),
    ("mood:classification:3", "labels none of the task(s) ['mood'] (it labels ['scene'])"),
])
def test_finetune_refuses_a_task_the_data_does_not_label_as_asked(scene_only, tmp_path, capsys, spec, fragment):
    assert main(["finetune", "hps_tiny.synthscenes", "--data", f"folder:{scene_only}", "--add-task", spec,
                 f"train.out_dir={tmp_path / 'ft'}", *LOOP]) == 2
    assert fragment in capsys.readouterr().err

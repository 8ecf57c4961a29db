"""Fine-tuning a checkpoint a user can finish: seeded new heads, --resume, a card that says where the model came
from and how it was trained, and add_task with a bare name."""

import json

import pytest
import torch
from safetensors.torch import load_file

import mtlzoo
from mtlzoo import Task
from mtlzoo.cli import main


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    """A two-task checkpoint folder whose card says it was trained at 96 x 128."""
    torch.manual_seed(0)
    model = mtlzoo.create_model("hps_tiny", tasks=[Task("semseg", "segmentation", 8), Task("depth", "depth")])
    folder = tmp_path_factory.mktemp("parent") / "hps_tiny-two"
    model.save_pretrained(folder, preprocessing={"input_size": [96, 128]})
    return folder


def _args(parent, out, steps, *extra):
    return ["finetune", str(parent), "--add-task", "saliency:saliency", "--config", "synthscenes_hps",
            f"train.out_dir={out}", f"train.steps={steps}", "train.eval_every=2", "train.progress=false",
            "schedule.name=constant", "schedule.warmup_steps=0", "data.kwargs={size: [32, 48], length: 8}",
            "data.batch_size=4", "data.eval_batch_size=8", *extra]


def _weights(out, step):
    return load_file(out / "checkpoints" / f"step_{step:07d}" / "model.safetensors")


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_seeded_finetune_is_reproducible(parent, tmp_path):
    runs = []
    for global_state in (1, 2):  # whatever ran before in the process must not matter, only train.seed
        torch.manual_seed(global_state)
        assert main(_args(parent, tmp_path / f"run{global_state}", 2, "train.seed=3")) == 0
        runs.append(_weights(tmp_path / f"run{global_state}", 2))
    assert _same(*runs)
    assert main(_args(parent, tmp_path / "other_seed", 2, "train.seed=4")) == 0
    assert not torch.equal(_weights(tmp_path / "other_seed", 2)["heads.saliency.fuse.0.weight"],
                           runs[0]["heads.saliency.fuse.0.weight"])


def test_finetune_resume_continues_the_run_as_the_error_says(parent, tmp_path, capsys):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert main(_args(parent, whole, 4)) == 0
    assert main(_args(parent, parts, 2)) == 0
    capsys.readouterr()
    assert main(_args(parent, parts, 4)) == 2  # a second start into the same folder is refused...
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pass --resume to continue it" in err
    assert main([*_args(parent, parts, 4), "--resume", "--overwrite"]) == 2
    assert "exclude each other" in capsys.readouterr().err
    assert main([*_args(parent, parts, 4), "--resume"]) == 0  # ...and --resume continues it
    assert _same(_weights(parts, 4), _weights(whole, 4))
    assert json.loads(capsys.readouterr().out)["step"] == 4


def test_the_card_names_the_parent_the_recipe_and_the_size_trained_at(parent, tmp_path):
    out = tmp_path / "ft"
    assert main(_args(parent, out, 2, "--freeze-encoder", "--only-new-tasks", "optim.lr=0.0005")) == 0
    folder = out / "checkpoints" / "step_0000002"
    config = json.loads((folder / "config.json").read_text())
    training = config["training"]
    parent_sha = json.loads((parent / "config.json").read_text())["weights"]["sha256"]
    assert training["parent_checkpoint"] == str(parent) and training["parent_sha256"] == parent_sha
    assert training["added_tasks"] == ["saliency"] and training["random_init"] is False
    assert (training["method"], training["lr"], training["steps"], training["trained_steps"]) == ("ew", 0.0005, 2, 2)
    assert training["frozen_encoder"] is True and training["frozen_tasks"] == ["semseg", "depth"]
    assert training["input_size"] == [3, 32, 48]
    assert config["preprocessing"]["input_size"] == [3, 32, 48]  # not the parent's 96 x 128
    card = (folder / "README.md").read_text()
    for text in (f"`{parent}`", "| method | `ew` |", "| lr | 0.0005 |", "| frozen_encoder | True |",
                 "| input_size | `[3, 32, 48]` |", "| steps | 2 |"):
        assert text in card, text
    assert mtlzoo.from_pretrained(folder).task_names == ["semseg", "depth", "saliency"]


def test_add_task_takes_a_preset_tasks_name_when_it_has_one_definition():
    model = mtlzoo.create_model("hps_tiny", tasks=[Task("semseg", "segmentation", 8), Task("depth", "depth")])
    model.add_task("saliency")
    assert model.task("saliency") == Task("saliency", "saliency")
    model.add_task("normals")  # l1 in synthscenes, the preset this model's tasks come from (nyuv2_mtan: cosine)
    assert model.task("normals").loss == "l1"
    mtan = mtlzoo.create_model("hps_tiny", tasks="nyuv2_mtan")
    mtan.remove_task("normals")
    mtan.add_task("normals")
    assert mtan.task("normals").loss == "cosine"
    assert model.eval()(torch.randn(1, 3, 32, 32))["saliency"].shape == (1, 1, 32, 32)


@pytest.mark.parametrize("name, match", [
    ("semseg", r"add_task\('semseg'\): the task presets define 'semseg' differently \(.*nyud: segmentation, 40 "
               r"channels.*; pass mtlzoo.Task\('semseg', 'segmentation', channels=...\)"),
    ("salency", r"add_task\('salency'\): no task preset has a task 'salency' .*did you mean saliency.*; pass "
                r"mtlzoo.Task\('salency', KIND"),
])
def test_add_task_with_a_name_it_cannot_resolve_says_to_pass_a_task(name, match):
    model = mtlzoo.create_model("hps_tiny", tasks="nyud")
    model.remove_task("semseg")  # depth, normals, edge: both nyud and synthscenes hold them
    with pytest.raises(ValueError, match=match) as raised:
        model.add_task(name)
    assert "\n" not in str(raised.value) and model.task_names == ["depth", "normals", "edge"]
    with pytest.raises(TypeError, match=r"add_task takes a mtlzoo.Task\(name, kind, ...\), its dict or a preset "
                                        r"task's name, got int 3"):
        model.add_task(3)

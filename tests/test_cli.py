"""Every `mtlzoo` subcommand runs (in-process through cli.main, on tiny synthscenes data)."""

import json
from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi

import mtlzoo
from mtlzoo.cli import build_parser, main

SMALL_DATA = ["data.kwargs={size: [32, 48], length: 16}", "data.batch_size=4", "data.eval_batch_size=8"]
DATA_OPTS = ["--data-opt", "size=[32,48]", "--data-opt", "length=8"]


def _train(out_dir: Path, *extra: str) -> None:
    args = ["train", "--config", "synthscenes_hps", f"train.out_dir={out_dir}", "train.steps=4", "train.eval_every=4",
            "train.progress=false", "model.tasks=[{name: semseg, kind: segmentation, channels: 8}, "
            "{name: depth, kind: depth}]", *SMALL_DATA, *extra]
    assert main(args) == 0


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli_run")
    _train(out)
    return out / "checkpoints" / "step_0000004"


def test_every_subcommand_has_help(capsys):
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert set(commands) == {"list", "info", "demo", "train", "eval", "finetune", "diagnose", "publish",
                             "benchmark"}
    for name in commands:
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0
    assert "usage: mtlzoo" in capsys.readouterr().out


def test_list_prints_every_registry(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for line in ("models", "balancers", "presets", "protocols", "pretrained", "datasets", "configs", "rules"):
        assert f"{line} (" in out
    assert "squadnet_tiny" in out and "aligned_mtl" in out and "mtinet_nyud" in out


def test_info_reports_parameters_and_flops(capsys):
    assert main(["info", "hps_tiny", "--tasks", "nyud", "--size", "64", "64", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["params"] > 0 and info["flops"] > 0
    assert main(["info", "hps_tiny", "--tasks", "nyud", "--size", "64", "64"]) == 0
    assert "GFLOPs/image" in capsys.readouterr().out


def test_info_takes_task_specs_for_vector_models(capsys):
    assert main(["info", "mmoe_mlp", "--tasks", "a:regression,b:classification:3", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["tasks"] == ["a", "b"] and info["params"] > 0
    assert main(["info", "mmoe_mlp", "--tasks", "a:regression,b"]) == 2
    assert "--tasks 'b' must look like NAME:KIND[:CHANNELS]" in capsys.readouterr().err


def test_train_writes_a_loadable_checkpoint(checkpoint):
    model = mtlzoo.from_pretrained(checkpoint)
    assert model.task_names == ["semseg", "depth"]
    log = (checkpoint.parents[1] / "log.jsonl").read_text().splitlines()
    assert any(json.loads(line)["kind"] == "eval" for line in log)


def test_train_rejects_unknown_config_keys(capsys):
    assert main(["train", "--config", "synthscenes_hps", "train.stepz=3"]) == 2
    assert "Did you mean 'steps'" in capsys.readouterr().err


def test_eval_scores_a_checkpoint(checkpoint, tmp_path, capsys):
    out_json = tmp_path / "result.json"
    assert main(["eval", str(checkpoint), *DATA_OPTS, "--json", str(out_json)]) == 0
    result = json.loads(out_json.read_text())
    assert result["protocol"] == "synthscenes" and set(result["metrics"]) == {"semseg", "depth"}
    assert json.loads(capsys.readouterr().out) == result


def test_diagnose_writes_report_and_plots(checkpoint, tmp_path, capsys):
    assert main(["diagnose", str(checkpoint), *DATA_OPTS, "--batch-size", "4", "--batches", "2",
                 "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "diagnose.json").read_text())
    assert report["tasks"] == ["semseg", "depth"] and report["batches"] == 2
    assert len(report["cosine"]) == 2 and report["condition_number"] >= 1.0
    assert {p.name for p in tmp_path.glob("*.png")} == {"gradient_cosine.png", "magnitude_similarity.png",
                                                        "layer_conflicts.png"}
    assert "most conflicting pair: semseg vs depth" in capsys.readouterr().out


def test_finetune_adds_a_task_and_keeps_old_outputs_when_frozen(checkpoint, tmp_path):
    out = tmp_path / "ft"
    args = ["finetune", str(checkpoint), "--add-task", "saliency:saliency", "--freeze-encoder", "--only-new-tasks",
            "--config", "synthscenes_hps", f"train.out_dir={out}", "train.steps=3", "train.eval_every=3",
            "train.progress=false", *SMALL_DATA]
    assert main([*args, "train.best_metric=saliency.maxff"]) == 2  # checked against the fine-tuned model's tasks
    assert not out.exists()
    assert main([*args, "train.best_metric=saliency.maxf"]) == 0  # an added task is a valid best_metric
    assert (out / "checkpoints" / "best").exists()
    before = mtlzoo.from_pretrained(checkpoint).eval()
    after = mtlzoo.from_pretrained(out / "checkpoints" / "step_0000003").eval()
    assert after.task_names == ["semseg", "depth", "saliency"]
    x = torch.randn(2, 3, 32, 48)
    with torch.no_grad():
        old, new = before(x), after(x)
    for name in ("semseg", "depth"):
        assert torch.equal(old[name], new[name])


def test_finetune_rejects_bad_task_specs(checkpoint, capsys):
    assert main(["finetune", str(checkpoint), "--add-task", "saliency"]) == 2
    assert "NAME:KIND" in capsys.readouterr().err


def test_publish_pushes_with_the_hub_client(checkpoint, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(HfApi, "create_repo", lambda api, repo_id, **kw: calls.append(("create_repo", repo_id)))
    monkeypatch.setattr(HfApi, "upload_folder", lambda api, **kw: calls.append(("upload", kw["repo_id"])) or "ok")
    assert main(["publish", str(checkpoint), "--repo-id", "org/tiny"]) == 0
    assert calls == [("create_repo", "org/tiny"), ("upload", "org/tiny")]
    assert "published" in capsys.readouterr().out


@pytest.mark.slow
def test_demo_quick_runs_end_to_end(tmp_path, capsys):
    assert main(["demo", "--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "delta_m" in out and "torch.hub.load" in out
    assert (tmp_path / "squadnet_tiny-synthscenes" / "model.safetensors").exists()
    assert (tmp_path / "gradient_cosine.png").exists()


def test_eval_accepts_a_pretrained_name(capsys):
    assert main(["eval", "hps_tiny.synthscenes", *DATA_OPTS]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["protocol"] == "synthscenes" and "parts" in result["metrics"]


def _one_line_error(capsys, command: str, *fragments: str) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith(f"mtlzoo {command}: error: ")]
    assert lines and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.mark.parametrize("override, fragments", [
    ("method.kwargs={bogus: 1}", ("method.kwargs", "bogus")),
    ("method.name=pcgard", ("method.name", "pcgrad")),
    ("data.kwargs={bogus: 1}", ("data.kwargs", "bogus", "length")),
    ("data.kwargs={size: [0, 0]}", ("data.kwargs", "size", "[0, 0]")),
    ("optim.betas=[0.9]", ("optim.betas", "[0.9]")),
    ("train.clip_grad=-1", ("train.clip_grad", "-1")),
    ("model.name=hps_tinny", ("model.name", "hps_tiny")),
    ("model.kwargs={bogus: 1}", ("model.kwargs", "bogus")),
    ("train.steps={", ("train.steps", "malformed YAML")),
    ("eval.protocol=mtinet_nyudd", ("eval.protocol", "mtinet_nyud")),
    ("eval.baseline=mtinet_hrnet18_nyudd", ("eval.baseline", "mtinet_hrnet18_nyud")),
])
def test_train_config_errors_are_one_line_with_the_key_path(tmp_path, capsys, override, fragments):
    assert main(["train", f"train.out_dir={tmp_path / 'run'}", "train.progress=false", *SMALL_DATA, override]) == 2
    _one_line_error(capsys, "train", *fragments)
    assert not (tmp_path / "run").exists(), "refused before anything is trained or written"


@pytest.mark.parametrize("text, fragments", [
    ("train: {steps: 3\n", ("bad.yaml", "malformed YAML at line")),
    ("- train\n- data\n", ("bad.yaml", "mapping", "list")),
])
def test_malformed_config_files_exit_2(tmp_path, capsys, text, fragments):
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    assert main(["train", "--config", str(path)]) == 2
    _one_line_error(capsys, "train", *fragments)


def test_eval_of_a_bare_name_loads_its_default_pretrained_tag(capsys):
    assert main(["eval", "hps_tiny", *DATA_OPTS]) == 0
    captured = capsys.readouterr()
    assert "hps_tiny.synthscenes" in captured.err
    assert main(["eval", "hps_tiny.synthscenes", *DATA_OPTS]) == 0
    assert json.loads(captured.out)["metrics"] == json.loads(capsys.readouterr().out)["metrics"]


def test_a_name_without_weights_is_refused_unless_random_init(capsys):
    assert main(["eval", "hps_resnet18", *DATA_OPTS]) == 2
    _one_line_error(capsys, "eval", "hps_resnet18", "--random-init")
    assert main(["finetune", "cs_resnet18", "--add-task", "sal:saliency"]) == 2
    _one_line_error(capsys, "finetune", "cs_resnet18", "--random-init")
    assert main(["eval", "hps_tiny", "--random-init", *DATA_OPTS]) == 0
    captured = capsys.readouterr()
    assert "random" in captured.err
    assert main(["eval", "hps_tiny", *DATA_OPTS]) == 0
    assert json.loads(captured.out)["metrics"] != json.loads(capsys.readouterr().out)["metrics"]


def test_a_mistyped_checkpoint_path_says_so(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "runs" / "step_0000004"), *DATA_OPTS]) == 2
    _one_line_error(capsys, "eval", "no such checkpoint directory", "step_0000004")
    assert main(["eval", "hps_tinny", *DATA_OPTS]) == 2
    _one_line_error(capsys, "eval", "hps_tinny", "hps_tiny")


def test_a_distributed_timeout_is_one_line_and_exit_1(monkeypatch, capsys):
    from mtlzoo.train import run
    from mtlzoo.train.distributed import DistTimeoutError

    def stalled(config, resume=False):
        raise DistTimeoutError("rank 0 of 2: waited more than 5 s (train.dist_timeout) for the other ranks")

    monkeypatch.setattr(run, "train_from_config", stalled)
    assert main(["train", "train.dist_timeout=5"]) == 1
    _one_line_error(capsys, "train", "train.dist_timeout")


def test_data_options_are_yaml_and_errors_name_the_option(checkpoint, capsys):
    assert main(["eval", str(checkpoint), "--data-opt", "size=[32,48", "--data-opt", "length=8"]) == 2
    _one_line_error(capsys, "eval", "--data-opt size", "malformed YAML")
    assert main(["eval", str(checkpoint), *DATA_OPTS, "--data-opt", "bogus=1"]) == 2
    _one_line_error(capsys, "eval", "--data-opt", "bogus", "length")
    assert main(["eval", str(checkpoint), "--data", "synthscene"]) == 2
    _one_line_error(capsys, "eval", "--data", "synthscenes")

"""`mtlzoo eval`, `diagnose`, `info`, `list --pretrained` and `--version`: what a model argument names, the data a
checkpoint is scored on, what is refused (before any work, on one line) and what a result says about its delta_m."""

import json
from pathlib import Path

import pytest

import mtlzoo
from mtlzoo.cli import main
from mtlzoo.metrics import get_baseline
from mtlzoo.models.pretrained import PRETRAINED_CFGS
from mtlzoo.tasks import Task

ONE_BATCH = ["--data-opt", "length=2", "--batch-size", "2"]
TWO_TASKS = "model.tasks=[{name: semseg, kind: segmentation, channels: 8}, {name: depth, kind: depth}]"


def _one_line_error(capsys, command: str, *fragments: str) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith(f"mtlzoo {command}: error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert lines[0].endswith("."), lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A 2-step run on synthscenes version 1 at 24x32: its run_config.json records the data it was trained on."""
    out = tmp_path_factory.mktemp("cli_eval") / "run"
    assert main(["train", "--config", "synthscenes_hps", f"train.out_dir={out}", "train.steps=2",
                 "train.eval_every=2", "train.progress=false", TWO_TASKS, "data.batch_size=2",
                 "data.eval_batch_size=2", "data.kwargs={size: [24, 32], length: 2, version: 1}"]) == 0
    return out


def _eval(capsys, *args: str) -> tuple[dict, str]:
    assert main(["eval", *args]) == 0
    captured = capsys.readouterr()
    return json.loads(captured.out), captured.err


def _saved_on(folder: Path, version: int) -> Path:
    """A tiny checkpoint whose results say synthscenes version ``version`` and whose preprocessing says 24x32."""
    model = mtlzoo.create_model("hps_tiny", tasks=[Task("semseg", "segmentation", 8), Task("depth", "depth")])
    results = {"protocol": "synthscenes", "dataset": f"synthscenes-v{version}", "metrics": {"semseg": {"miou": 0.1}}}
    model.save_pretrained(folder, results=results, preprocessing={"input_size": [24, 32]})
    return folder


def test_a_checkpoint_is_scored_on_the_data_it_recorded_unless_told_otherwise(tmp_path, capsys):
    checkpoint = str(_saved_on(tmp_path / "v1", 1))
    result, err = _eval(capsys, checkpoint, *ONE_BATCH)
    assert result["dataset"] == "synthscenes-v1" and result["data_version"] == 1
    assert "the settings the checkpoint recorded: version=1, size=[24, 32]" in err
    result, err = _eval(capsys, checkpoint, *ONE_BATCH, "--data-opt", "version=2")
    assert result["data_version"] == 2 and "version=1" not in err and "size=[24, 32]" in err


def test_a_pretrained_name_is_scored_on_the_data_its_weights_were_trained_on(capsys):
    from mtlzoo.metrics.provenance import measured_on
    from mtlzoo.models.pretrained import PRETRAINED_CFGS

    cfg = PRETRAINED_CFGS.get("squadnet_tiny.synthscenes")  # the bundled copy's config.json records 48x64
    version = int(measured_on(cfg.dataset).version)
    result, err = _eval(capsys, "squadnet_tiny.synthscenes", *ONE_BATCH)
    assert result["dataset"] == f"synthscenes-v{version}" and result["data_version"] == version
    assert f"the settings the checkpoint recorded: version={version}, size=[48, 64]" in err


def test_a_run_folder_and_its_latest_pointer_name_its_latest_checkpoint(run, capsys):
    result, err = _eval(capsys, str(run), "--data-opt", "length=2")
    assert set(result["metrics"]) == {"semseg", "depth"} and result["data_version"] == 1
    assert "version=1, size=[24, 32]" in err  # from the run's run_config.json
    assert _eval(capsys, str(run / "checkpoints" / "latest"), "--data-opt", "length=2")[0] == result
    assert main(["diagnose", str(run), *ONE_BATCH, "--batches", "1", "--out", str(run / "diag")]) == 0
    assert json.loads((run / "diag" / "diagnose.json").read_text())["tasks"] == ["semseg", "depth"]
    assert main(["diagnose", str(run), "--random-init"]) == 2
    _one_line_error(capsys, "diagnose", "--random-init", str(run))


def test_a_baseline_of_other_data_gives_no_delta_m_and_says_so_on_one_line(tmp_path, capsys):
    measured = get_baseline("synthscenes_hps_tiny").data_version
    other = 1 if measured != 1 else 2
    result, err = _eval(capsys, str(_saved_on(tmp_path / "old", other)), *ONE_BATCH, "--baseline", "auto")
    expected = (f"no delta_m: baseline 'synthscenes_hps_tiny' was measured on synthscenes version {measured}, the "
                f"data scored is synthscenes version {other}")
    assert "delta_m" not in result and result["delta_m_refused"].startswith(expected)
    notes = [line for line in err.splitlines() if "no delta_m" in line]
    assert len(notes) == 1 and notes[0].startswith(f"mtlzoo eval: {expected}") and "Warning" not in err


def test_a_fine_tuned_model_is_scored_on_the_tasks_the_data_labels(tmp_path, capsys):
    tasks = [Task("semseg", "segmentation", 8), Task("depth", "depth"), Task("scene", "classification", 2)]
    mtlzoo.create_model("hps_tiny", tasks=tasks).save_pretrained(tmp_path / "ft")
    result, err = _eval(capsys, str(tmp_path / "ft"), *ONE_BATCH, "--data-opt", "size=[24,32]")
    assert set(result["metrics"]) == {"semseg", "depth"}
    assert "data set 'synthscenes' has no labels for ['scene']: scoring ['semseg', 'depth'] only" in err


@pytest.mark.parametrize("task, fragments", [
    (Task("semseg", "segmentation", 40), ("task 'semseg'", "40 classes", "'synthscenes' labels 8")),
    (Task("semseg", "segmentation", 8, ignore_index=-1), ("task 'semseg'", "ignore index is -1", "with 255")),
    (Task("semseg", "parts", 8), ("task 'semseg'", "labels it as segmentation", "as parts")),
])
def test_a_model_whose_labels_differ_from_the_data_is_refused(tmp_path, capsys, task, fragments):
    mtlzoo.create_model("hps_tiny", tasks=[task, Task("depth", "depth")]).save_pretrained(tmp_path / "m")
    assert main(["eval", str(tmp_path / "m"), *ONE_BATCH]) == 2
    _one_line_error(capsys, "eval", *fragments)


@pytest.mark.parametrize("args, fragments", [
    (["--baseline", "synthscenes_hps_tinny"], ("--baseline 'synthscenes_hps_tinny'", "synthscenes_hps_tiny",
                                               "JSON result file")),
    (["--baseline", "runs/missing.json"], ("--baseline 'runs/missing.json'", "no such file")),
    (["--protocol", "mtan_nyuv2", "--compare", "nash_mtl_nyuv2"], ("data set 'synthscenes'", "'nyuv2_mtan'",
                                                                   "nash_mtl_nyuv2")),
    (["--compare", "nash_mtl_nyuv2"], ("protocol 'synthscenes'", "'mtan_nyuv2'")),
    (["--data", "synthscene"], ("--data", "synthscenes")),
])
def test_bad_arguments_are_one_line_before_any_work(capsys, args, fragments):
    assert main(["eval", "hps_tiny", *ONE_BATCH, *args]) == 2
    _one_line_error(capsys, "eval", *fragments)
    assert main(["eval", "hps_tiny", *ONE_BATCH, *args]) == 2
    assert "pretrained weights" not in capsys.readouterr().err  # refused before the model was loaded


def test_diagnose_takes_random_init_for_a_bare_name(tmp_path, capsys):
    assert main(["diagnose", "nddr_tiny", "--random-init", "--data-opt", "size=[32,32]", *ONE_BATCH,
                 "--batches", "1", "--out", str(tmp_path)]) == 0
    assert "random weights" in capsys.readouterr().err
    assert main(["diagnose", "hps_tiny.synthscenes", "--random-init"]) == 2
    _one_line_error(capsys, "diagnose", "--random-init", "hps_tiny.synthscenes")


def test_version_and_the_pretrained_table(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"mtlzoo {mtlzoo.__version__}"
    assert main(["list", "--pretrained"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "tag", "data", "version", "input", "params_M", "GFLOPs", "img/s", "delta_m_%",
                                "headline", "metrics", "(mean", "+-", "std", "over", "seeds)"]
    rows = {line.split()[0]: line for line in lines[2:]}
    assert set(rows) == {name.split(".")[0] for name in mtlzoo.list_models(pretrained=True)}
    version = PRETRAINED_CFGS.get("squadnet_tiny.synthscenes").dataset.rsplit("-v", 1)[1]
    assert rows["squadnet_tiny"].split()[1:6] == ["synthscenes", "(default)", "synthscenes", version, "48x64"]
    weights = Path(mtlzoo.__file__).parents[1] / "weights"
    recorded = json.loads((weights / "hps_tiny.synthscenes" / "config.json").read_text())["results"]
    seeds = recorded["over_seeds"]  # as the checkpoint records: the mean and std over its seeds
    assert f"{seeds['delta_m_mean']:.4g} +- {seeds['delta_m_std']:.2g} vs {recorded['baseline']}" in rows["hps_tiny"]
    on_synthscenes = {name: row for name, row in rows.items() if row.split()[1] == "synthscenes"}
    assert all("parts.miou " in row for row in on_synthscenes.values())
    assert all("task1.mse " in row for name, row in rows.items() if name not in on_synthscenes)  # vector families
    assert main(["list", "pretrained", "--pattern", "cs_*"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    assert main(["list", "--pretrained", "--sort", "fastest"]) == 2
    _one_line_error(capsys, "list", "cannot sort the pretrained table by 'fastest'", "delta_m", "semseg.miou")


def test_info_of_a_pretrained_name_and_of_a_path_with_a_dot(tmp_path, capsys):
    assert main(["info", "squadnet_tiny.synthscenes", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["model"] == "squadnet_tiny.synthscenes" and info["input_size"] == [48, 64] and "parts" in info["tasks"]
    mtlzoo.create_model("hps_tiny", tasks="nyud").save_pretrained(tmp_path / "v1.0")
    assert main(["info", str(tmp_path / "v1.0"), "--size", "32", "32", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["tasks"] == [t.name for t in mtlzoo.task_preset("nyud")] and info["input_size"] == [32, 32]
    assert main(["info", str(tmp_path / "v1.0"), "--tasks", "nyud"]) == 2
    _one_line_error(capsys, "info", "--tasks", "drop --tasks")
    assert main(["info", str(tmp_path / "missing.ckpt")]) == 2
    line = _one_line_error(capsys, "info", "missing.ckpt", "checkpoint")
    assert "pretrained=True" not in line
    assert main(["info", "hps_tiny.synthscene"]) == 2
    _one_line_error(capsys, "info", "hps_tiny.synthscenes")

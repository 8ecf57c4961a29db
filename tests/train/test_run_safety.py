"""A run's folder survives re-runs, corrupt files, resumes and full disks (issue 11, points 9, 10, 11, 14)."""

import errno
import json
import os
import re
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

import mtlzoo
from mtlzoo import Task
from mtlzoo.checkpoint import load_state
from mtlzoo.hub.files import sha256_file
from mtlzoo.schemes import create_update_rule
from mtlzoo.train import checkpoints
from mtlzoo.train.checkpoints import CheckpointWriteError, latest


def _steps(out):
    return sorted(p.name for p in (out / "checkpoints").glob("step_*"))


def test_a_fresh_run_into_a_finished_runs_folder_is_refused(tmp_path, toy_data, make_trainer):
    make_trainer(tmp_path / "run", toy_data, steps=6).fit()
    with pytest.raises(ValueError, match=r"already holds a run .*--resume.*--overwrite"):
        make_trainer(tmp_path / "run", toy_data, steps=2).fit()
    assert latest(tmp_path / "run").name == "step_0000006" and _steps(tmp_path / "run") == ["step_0000003",
                                                                                           "step_0000006"]
    resumed = make_trainer(tmp_path / "run", toy_data, steps=9)
    resumed.fit(resume=True)
    assert resumed.step == 9


def test_overwrite_starts_clean(tmp_path, toy_data, make_trainer):
    make_trainer(tmp_path / "run", toy_data, steps=6).fit()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    trainer = make_trainer(tmp_path / "run", toy_data, steps=2, overwrite=True)
    trainer.fit()
    assert _steps(tmp_path / "run") == ["step_0000002"] and latest(tmp_path / "run").name == "step_0000002"
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"  # only the run's own files go
    with pytest.raises(ValueError, match="exclude each other"):
        trainer.fit(resume=True)


def test_latest_never_points_at_a_pruned_checkpoint(tmp_path, toy_data, make_trainer):
    model = make_trainer(tmp_path / "run", toy_data).model
    for step in (60, 2):  # a lower step after a higher one: pruning by step number must spare the new one
        checkpoints.save(tmp_path / "run", step, model, {"step": step}, {}, {}, keep_last=1)
        assert latest(tmp_path / "run").name == f"step_{step:07d}"
        assert (latest(tmp_path / "run") / "model.safetensors").is_file()


def test_a_dangling_latest_pointer_falls_back_to_the_newest_complete_checkpoint(tmp_path, toy_data, make_trainer):
    make_trainer(tmp_path / "run", toy_data, steps=6).fit()
    (tmp_path / "run" / "checkpoints" / "latest").write_text("step_0000099")
    with pytest.warns(UserWarning, match="missing or incomplete"):
        assert latest(tmp_path / "run").name == "step_0000006"


def _flip_a_byte(path, offset_from_end=10):
    data = bytearray(path.read_bytes())
    data[-offset_from_end] ^= 0x40
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("name", ["model.safetensors", "trainer_state.safetensors"])
def test_resume_refuses_a_bit_flipped_checkpoint(tmp_path, toy_data, make_trainer, name):
    make_trainer(tmp_path / "run", toy_data, steps=3, eval_every=100).fit()
    _flip_a_byte(tmp_path / "run" / "checkpoints" / "step_0000003" / name)
    with pytest.raises(ValueError, match=rf"step_0000003/{name} does not match the sha256"):
        make_trainer(tmp_path / "run", toy_data, steps=6).fit(resume=True)


@pytest.mark.parametrize("name, damage", [("trainer_state.safetensors", lambda b: b[: len(b) // 2]),
                                          ("trainer_state.json", lambda b: b[:-7]),
                                          ("model.safetensors", lambda b: b[: len(b) // 2])])
def test_a_truncated_trainer_state_names_the_file(tmp_path, toy_data, make_trainer, name, damage):
    make_trainer(tmp_path / "run", toy_data, steps=3, eval_every=100).fit()
    folder = tmp_path / "run" / "checkpoints" / "step_0000003"
    (folder / name).write_bytes(damage((folder / name).read_bytes()))
    _record_hashes(folder)  # as if the file had been damaged before it was hashed
    with pytest.raises(ValueError, match=rf"{name} is truncated or (corrupt|malformed)"):
        make_trainer(tmp_path / "run", toy_data, steps=6).fit(resume=True)


def _record_hashes(folder):
    """Rewrite checksums.json with the files' present hashes (so only the checks after the hashes can object)."""
    files = ["model.safetensors", "trainer_state.safetensors", "trainer_state.json"]
    (folder / "checksums.json").write_text(json.dumps({f: sha256_file(folder / f) for f in files}))


def _one_line_error(make, match):
    with pytest.raises(ValueError, match=match) as raised:
        make().fit(resume=True)
    assert "\n" not in str(raised.value)
    return str(raised.value)


def _stepped_run(tmp_path, toy_data, make_trainer):
    make_trainer(tmp_path / "run", toy_data, steps=3, eval_every=100).fit()
    return tmp_path / "run" / "checkpoints" / "step_0000003"


@pytest.mark.parametrize("how", ["relative", "absolute", "symlink"])
def test_a_latest_pointing_outside_the_run_is_refused(tmp_path, toy_data, make_trainer, how):
    folder = _stepped_run(tmp_path, toy_data, make_trainer)
    elsewhere = tmp_path / "elsewhere" / "step_0000009"
    shutil.copytree(folder, elsewhere)  # a complete checkpoint, only not this run's
    pointer = folder.parent / "latest"
    pointer.unlink()
    if how == "symlink":
        pointer.symlink_to(elsewhere, target_is_directory=True)
    else:
        pointer.write_text(str(elsewhere) if how == "absolute" else "../../elsewhere/step_0000009")
    message = _one_line_error(lambda: make_trainer(tmp_path / "run", toy_data, steps=6),
                              r"checkpoints/latest points at .*elsewhere/step_0000009, which is not a step_N folder "
                              r"of this run")
    assert "delete it" in message
    pointer.unlink()
    (folder.parent / "step_0000012").symlink_to(elsewhere, target_is_directory=True)  # a linked-in step: never taken
    assert latest(tmp_path / "run") == folder


def test_resume_refuses_a_checkpoint_without_checksums(tmp_path, toy_data, make_trainer):
    folder = _stepped_run(tmp_path, toy_data, make_trainer)
    (folder / "checksums.json").unlink()
    _one_line_error(lambda: make_trainer(tmp_path / "run", toy_data, steps=6),
                    r"step_0000003/checksums.json is missing, so the checkpoint's files cannot be verified")
    (folder / "checksums.json").write_text(json.dumps({"trainer_state.json": "0" * 64}))
    _one_line_error(lambda: make_trainer(tmp_path / "run", toy_data, steps=6),
                    r"checksums.json records no sha256 for 'trainer_state.safetensors'")
    _record_hashes(folder)
    recorded = json.loads((folder / "checksums.json").read_text())
    (folder / "checksums.json").write_text(json.dumps({**recorded, "../../../etc/hostname": "0" * 64}))
    _one_line_error(lambda: make_trainer(tmp_path / "run", toy_data, steps=6),
                    r"checksums.json names '../../../etc/hostname', which is not a file of .*step_0000003")


def test_resume_refuses_nan_weights_naming_the_file_and_tensor(tmp_path, toy_data, make_trainer):
    folder = _stepped_run(tmp_path, toy_data, make_trainer)
    weights = load_file(folder / "model.safetensors")
    key = next(k for k, v in weights.items() if v.is_floating_point())
    weights[key].view(-1)[0] = float("nan")
    save_file(weights, folder / "model.safetensors")
    _record_hashes(folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "weights": None}))
    _one_line_error(lambda: make_trainer(tmp_path / "run", toy_data, steps=6),
                    rf"step_0000003/model.safetensors holds NaN or inf in '{re.escape(key)}'")


@pytest.mark.parametrize("tasks, match", [
    ([Task("semseg", "segmentation", 7), Task("depth", "depth"), Task("normals", "normals"), Task("edge", "edge")],
     r"model.safetensors holds 'heads.semseg\.[\w.]+' with shape \(40, .*\), where this model has shape \(7, "),
    ([Task("semseg", "segmentation", 40), Task("depth", "depth"), Task("normals", "normals")],
     r"model.safetensors holds 'heads.edge\.[\w.]+' with shape \(.*\), which this model lacks"),
    ([Task("semseg", "segmentation", 40), Task("depth", "depth"), Task("normals", "normals"), Task("edge", "edge"),
      Task("saliency", "saliency")],
     r"model.safetensors has no 'heads.saliency\.[\w.]+', where this model has shape \("),
])
def test_resume_into_another_model_names_the_first_mismatched_key_before_any_work(tmp_path, toy_data, make_trainer,
                                                                                  tasks, match):
    _stepped_run(tmp_path, toy_data, make_trainer)
    trainer = make_trainer(tmp_path / "run", toy_data, steps=6)
    trainer.model = mtlzoo.create_model("hps_tiny", tasks=tasks)
    start = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.rule = create_update_rule("ew", trainer.model, lambda params: torch.optim.Adam(params, lr=3e-3))
    _one_line_error(lambda: trainer, match + ".*another model")
    assert trainer.step == 0 and _steps(tmp_path / "run") == ["step_0000003"]
    assert all(torch.equal(v, start[k]) for k, v in trainer.model.state_dict().items())


def _scripted_rmse(trainer, values):
    """Make evaluation return the given depth RMSE values in turn (lower is better)."""
    queue = list(values)
    trainer.evaluate = lambda: {"protocol": "synthscenes", "metrics": {"depth": {"rmse": queue.pop(0)}}}
    return trainer


def test_resume_keeps_the_best_of_the_first_part(tmp_path, toy_data, make_trainer):
    first = _scripted_rmse(make_trainer(tmp_path / "run", toy_data, steps=6, best_metric="depth.rmse"), [1.0])
    first.fit(stop_at=3)
    second = _scripted_rmse(make_trainer(tmp_path / "run", toy_data, steps=6, best_metric="depth.rmse"), [2.0])
    second.fit(resume=True)
    best = checkpoints.best(tmp_path / "run")
    assert load_state(best / "trainer_state")["step"] == 3
    assert second.best == {"value": 1.0, "step": 3, "metric": "depth.rmse"}


def _no_temporary_files(out):
    return [p for p in out.rglob("*") if p.name.startswith(".")]


def _fail_at_step(monkeypatch, target, name, step, error):
    original = getattr(target, name)

    def failing(*args, **kwargs):
        if f"step_{step:07d}" in str(args[0]) + str(args[1] if len(args) > 1 else ""):
            raise error
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, failing)


@pytest.mark.parametrize("where, error", [
    ("save_state", OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))),
    ("publish_directory", OSError(errno.EROFS, os.strerror(errno.EROFS))),
])
def test_a_full_or_read_only_disk_gives_one_line_and_keeps_latest_and_best(tmp_path, toy_data, make_trainer,
                                                                           monkeypatch, where, error):
    out = tmp_path / "run"
    trainer = _scripted_rmse(make_trainer(out, toy_data, steps=6, best_metric="depth.rmse"), [1.0, 0.5])
    _fail_at_step(monkeypatch, checkpoints, where, 6, error)
    with pytest.raises(CheckpointWriteError) as raised:
        trainer.fit()
    message = str(raised.value)
    assert "\n" not in message and "step_0000006" in message and error.strerror in message
    assert _no_temporary_files(out) == []
    assert latest(out).name == "step_0000003" and _steps(out) == ["step_0000003"]
    assert load_state(checkpoints.best(out) / "trainer_state")["step"] == 3
    monkeypatch.undo()
    resumed = make_trainer(out, toy_data, steps=6)
    resumed.fit(resume=True)
    assert resumed.step == 6 and latest(out).name == "step_0000006"


def test_cli_reports_a_write_error_in_one_line(tmp_path, monkeypatch, capsys):
    from mtlzoo import cli

    def full_disk(args):
        raise CheckpointWriteError(f"could not write checkpoint {tmp_path}/step_0000001: No space left on device")

    monkeypatch.setattr(cli, "_cmd_train", full_disk)
    assert cli.main(["train"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("mtlzoo train: error: could not write checkpoint")


CLI_ARGS = ["train", "--config", "synthscenes_hps", "train.steps=2", "train.progress=false",
            "data.kwargs={size: [24, 32], length: 8}", "data.batch_size=4"]


def test_cli_refuses_a_non_empty_out_dir_and_contradictory_flags(tmp_path, capsys):
    from mtlzoo import cli

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "log.jsonl").write_text("{}\n")
    assert cli.main([*CLI_ARGS, f"train.out_dir={tmp_path / 'run'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "already holds files (log.jsonl)" in err and "--overwrite" in err
    assert cli.main([*CLI_ARGS, f"train.out_dir={tmp_path / 'run'}", "--resume", "--overwrite"]) == 2
    assert "exclude each other" in capsys.readouterr().err
    assert (tmp_path / "run" / "log.jsonl").read_text() == "{}\n"


def test_cli_reports_a_full_disk_while_logging_in_one_line(tmp_path, monkeypatch, capsys):
    from mtlzoo import cli
    from mtlzoo.train import runlog

    def full_disk(self, kind, step, **values):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))

    monkeypatch.setattr(runlog.RunLog, "write", full_disk)
    assert cli.main([*CLI_ARGS, f"train.out_dir={tmp_path / 'run'}"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "No space left on device" in err and "log.jsonl" in err

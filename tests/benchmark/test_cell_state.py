"""What a rerun does with what it finds in out_dir: a changed spec, a cell of another config, a corrupt record."""

import json

import pytest
from conftest import records, run_cli, write_spec

from mtlzoo.train.trainer import Trainer

ONE = {"architectures": ["hps_tiny"], "methods": ["ew"], "seeds": [0], "baselines": "none"}
CELL = "cells/hps_tiny/ew/seed0"


def _sweep(tmp_path, **changes):
    spec = write_spec(tmp_path, **{**ONE, **changes})
    return spec, tmp_path / "sweep"


def test_a_changed_spec_is_refused_unless_update_spec_and_a_changed_cell_unless_overwrite(tmp_path, capsys):
    spec, out_dir = _sweep(tmp_path)
    assert run_cli("run", spec) == 0
    first = records(out_dir)[CELL]
    capsys.readouterr()
    assert run_cli("run", spec, "optim.lr=0.01") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds a sweep of another spec (differs in ['overrides'])" in err
    assert "--update-spec" in err
    assert run_cli("run", spec, "optim.lr=0.01", "--update-spec") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{out_dir / CELL} holds a run of another config (config hash" in err
    assert "pass --overwrite" in err and records(out_dir)[CELL] == first
    assert run_cli("run", spec, "optim.lr=0.01", "--update-spec", "--overwrite") == 0
    assert records(out_dir)[CELL] != first
    saved = json.loads((out_dir / CELL / "checkpoints" / "step_0000003" / "run_config.json").read_text())
    assert saved["optim"]["lr"] == 0.01
    assert json.loads((out_dir / "spec.json").read_text())["overrides"][-1] == "optim.lr=0.01"


def test_an_interrupted_cell_of_another_config_is_refused_too(tmp_path, capsys):
    spec, out_dir = _sweep(tmp_path)
    assert run_cli("run", spec) == 0
    (out_dir / CELL / "benchmark_cell.json").unlink()  # as if killed after its last checkpoint
    capsys.readouterr()
    assert run_cli("run", spec, "optim.lr=0.01", "--update-spec") == 2
    assert "holds a run of another config" in capsys.readouterr().err
    assert json.loads((out_dir / "spec.json").read_text())["overrides"][-1] != "optim.lr=0.01"  # kept: refused
    assert run_cli("run", spec) == 0  # the same config again: resumed, nothing to train
    record = json.loads((out_dir / CELL / "benchmark_cell.json").read_text())
    assert record["resumed_from_step"] == 3 and record["timed_steps"] == 0 and record["steps_per_s"] is None


def test_a_corrupt_completion_record_is_refused_naming_the_file(tmp_path, capsys):
    spec, out_dir = _sweep(tmp_path)
    assert run_cli("run", spec) == 0
    path = out_dir / CELL / "benchmark_cell.json"
    path.write_text(path.read_text()[:40])  # truncated
    capsys.readouterr()
    assert run_cli("run", spec) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{path} is corrupt" in err and "--overwrite" in err
    assert run_cli("run", spec, "--overwrite") == 0
    assert json.loads(path.read_text())["resumed_from_step"] is None  # trained again from scratch


def test_a_run_killed_before_its_first_checkpoint_starts_again(tmp_path):
    spec, out_dir = _sweep(tmp_path)
    (out_dir / CELL).mkdir(parents=True)
    (out_dir / CELL / "log.jsonl").write_text('{"kind": "train", "step": 1}\n')
    assert run_cli("run", spec) == 0
    assert json.loads((out_dir / CELL / "benchmark_cell.json").read_text())["step"] == 3


def test_dry_run_says_what_each_run_would_do_and_trains_nothing(tmp_path, capsys):
    spec, out_dir = _sweep(tmp_path, seeds=[0, 1])
    assert run_cli("run", spec, "--seeds", "[0]") == 0
    capsys.readouterr()
    assert run_cli("run", spec, "--dry-run", "--update-spec") == 0
    err = capsys.readouterr().err
    assert f"{CELL}: finished (kept)" in err and "cells/hps_tiny/ew/seed1: train" in err
    assert "2 runs, 1 to train (dry run: nothing trained)" in err
    assert list(records(out_dir)) == [CELL]
    assert json.loads((out_dir / "spec.json").read_text())["seeds"] == [0]  # a dry run saves nothing


@pytest.mark.parametrize("left", [["notes.txt"], ["notes.txt", ".log.jsonl.swp", "log.jsonl"]])
def test_files_a_run_does_not_write_are_left_alone_and_do_not_fail_it(tmp_path, left):
    """A user's notes or an editor's swap file in a run folder (fresh, or killed before its first checkpoint)."""
    spec, out_dir = _sweep(tmp_path)
    (out_dir / CELL).mkdir(parents=True)
    for name in left:
        (out_dir / CELL / name).write_text("mine\n")
    assert run_cli("run", spec) == 0
    record = json.loads((out_dir / CELL / "benchmark_cell.json").read_text())
    assert record.get("status") != "failed" and record["step"] == 3, record.get("reason")
    assert (out_dir / CELL / "notes.txt").read_text() == "mine\n"
    assert (out_dir / CELL / "log.jsonl").read_text() != "mine\n"  # what a run writes is the new run's


def test_retry_failed_trains_a_failed_run_again_beside_a_users_file(tmp_path, monkeypatch):
    spec, out_dir = _sweep(tmp_path)
    real_step = Trainer.train_step

    def diverging(self, batch):
        raise RuntimeError("step 1: 20 consecutive steps had non-finite losses or gradients")

    monkeypatch.setattr(Trainer, "train_step", diverging)
    assert run_cli("run", spec) == 0
    assert json.loads((out_dir / CELL / "benchmark_cell.json").read_text())["status"] == "failed"
    (out_dir / CELL / "notes.txt").write_text("why did it diverge?\n")
    monkeypatch.setattr(Trainer, "train_step", real_step)
    assert run_cli("run", spec, "--retry-failed") == 0
    record = json.loads((out_dir / CELL / "benchmark_cell.json").read_text())
    assert record.get("status") != "failed" and record["step"] == 3, record.get("reason")
    assert (out_dir / CELL / "notes.txt").read_text() == "why did it diverge?\n"

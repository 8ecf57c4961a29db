"""The trainer totals the work its rule reports, records it with the training seconds at every evaluation, and a
resumed run ends with the totals and the curve of an uninterrupted one."""

import time

import pytest
import torch

import mtlzoo
from mtlzoo.config import ScheduleConfig, TrainConfig
from mtlzoo.schemes import create_update_rule
from mtlzoo.schemes.work import Work
from mtlzoo.train import EvalSetup, Trainer, seed_everything
from mtlzoo.train import trainer as trainer_module

T = 4  # the nyud tasks: ius with groups of one takes 4 forward / backward passes and updates per step


def _trainer(out, data, steps=6, method="ius"):
    train, val = data
    seed_everything(0)
    model = mtlzoo.create_model("hps_tiny", tasks="nyud")
    rule = create_update_rule(method, model, lambda params: torch.optim.Adam(params, lr=3e-3))
    options = TrainConfig(steps=steps, eval_every=3, log_every=1, out_dir=str(out), device="cpu", progress=False)
    return Trainer(model, rule, train, options=options, evaluation=EvalSetup(val, "synthscenes", batch_size=4),
                   schedule=ScheduleConfig(name="poly"), batch_size=4)


def _counts(curve):
    return [{k: v for k, v in point.items() if k != "train_s"} for point in curve]


def test_the_work_is_totalled_and_every_evaluation_records_it(tmp_path, toy_data):
    trainer = _trainer(tmp_path / "run", toy_data)
    trainer.fit()
    assert trainer.work == Work(6 * T, 6 * T, 6 * T)
    assert [(p["step"], p["forward_passes"], p["backward_passes"], p["optimizer_updates"]) for p in trainer.curve] \
        == [(3, 3 * T, 3 * T, 3 * T), (6, 6 * T, 6 * T, 6 * T)]
    assert 0 < trainer.curve[0]["train_s"] < trainer.curve[1]["train_s"]
    assert trainer.curve[-1]["metrics"] == trainer.last_metrics["metrics"]


def test_training_seconds_leave_evaluation_and_checkpoints_out(tmp_path, toy_data):
    trainer = _trainer(tmp_path / "run", toy_data)
    evaluate = trainer.evaluate

    def slow_evaluate():
        time.sleep(1.0)
        return evaluate()

    trainer.evaluate = slow_evaluate
    begin = time.perf_counter()
    trainer.fit()
    wall = time.perf_counter() - begin
    assert wall - trainer.curve[-1]["train_s"] >= 2.0  # both evaluations slept a second, outside the clock
    assert trainer.clock.total() == pytest.approx(trainer.curve[-1]["train_s"], abs=0.05)  # no step after the last


def test_a_resumed_run_ends_with_the_totals_and_curve_of_an_uninterrupted_one(tmp_path, toy_data):
    full = _trainer(tmp_path / "full", toy_data, steps=8)
    full.fit()
    part = _trainer(tmp_path / "part", toy_data, steps=8)
    part.fit(stop_at=5)
    assert part.work == Work(5 * T, 5 * T, 5 * T)
    resumed = _trainer(tmp_path / "part", toy_data, steps=8)
    resumed.fit(resume=True)
    assert resumed.work == full.work == Work(8 * T, 8 * T, 8 * T)
    assert _counts(resumed.curve) == _counts(full.curve) and [p["step"] for p in full.curve] == [3, 6, 8]
    assert resumed.curve[0]["train_s"] == part.curve[0]["train_s"]  # the evaluations before the stop came along
    assert resumed.curve[-1]["train_s"] > part.clock.total()  # the seconds before the stop count too


def test_a_checkpoint_from_before_work_was_counted_resumes_with_unknown_work(tmp_path, toy_data, monkeypatch):
    part = _trainer(tmp_path / "run", toy_data, steps=6)
    part.fit(stop_at=4)
    load = trainer_module.checkpoints.load

    def old_state(*args, **kwargs):
        state = load(*args, **kwargs)
        return {k: v for k, v in state.items() if k not in ("work", "train_s", "curve")}

    monkeypatch.setattr(trainer_module.checkpoints, "load", old_state)
    resumed = _trainer(tmp_path / "run", toy_data, steps=6)
    resumed.fit(resume=True)
    assert resumed.work is None and resumed.curve == []  # unknown, not counted from zero

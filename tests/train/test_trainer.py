import json

import pytest
import torch

import mtlzoo
from mtlzoo.config import ScheduleConfig, TrainConfig
from mtlzoo.schemes import create_update_rule
from mtlzoo.train import EvalSetup, Trainer, seed_everything
from mtlzoo.train.checkpoints import latest
from mtlzoo.train.runlog import read_log


def _trainer(tmp_path, data, method="ew", steps=6, method_kwargs=None, **options):
    train, val = data
    seed_everything(0)
    model = mtlzoo.create_model("hps_tiny", tasks="nyud")
    rule = create_update_rule(method, model, lambda params: torch.optim.Adam(params, lr=3e-3), **(method_kwargs or {}))
    opts = TrainConfig(steps=steps, eval_every=3, log_every=1, out_dir=str(tmp_path / "run"), device="cpu",
                       progress=False, **options)
    return Trainer(model, rule, train, options=opts, evaluation=EvalSetup(val, "synthscenes", batch_size=4),
                   schedule=ScheduleConfig(name="poly"), batch_size=4)


def test_training_lowers_the_loss_and_writes_logs_and_checkpoints(tmp_path, toy_data):
    trainer = _trainer(tmp_path, toy_data, steps=24)
    metrics = trainer.fit()
    totals = [sum(h["losses"].values()) for h in trainer.history]
    assert sum(totals[-4:]) < sum(totals[:4])
    assert metrics["protocol"] == "synthscenes" and set(metrics["metrics"]) == {"semseg", "depth", "normals", "edge"}
    kinds = {r["kind"] for r in read_log(tmp_path / "run" / "log.jsonl")}
    assert kinds == {"train", "eval", "checkpoint"}
    assert latest(tmp_path / "run").name == "step_0000024"
    steps = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("step_*"))
    assert steps == ["step_0000021", "step_0000024"]  # keep_last=2
    reloaded = mtlzoo.from_pretrained(latest(tmp_path / "run"))
    for name, value in trainer.model.state_dict().items():
        assert torch.equal(reloaded.state_dict()[name], value)


# "auto" picks the faster Jacobian path by timing, which two separate runs may resolve differently
@pytest.mark.parametrize("method, kwargs", [("ew", {}), ("pcgrad", {"jacobian_mode": "loop"}), ("ius", {})])
def test_resume_ends_with_the_same_weights_as_an_uninterrupted_run(tmp_path, toy_data, method, kwargs):
    full = _trainer(tmp_path / "full", toy_data, method=method, steps=8, method_kwargs=kwargs, ema=0.9)
    full.fit()
    part = _trainer(tmp_path / "part", toy_data, method=method, steps=8, method_kwargs=kwargs, ema=0.9)
    part.fit(stop_at=5)
    assert part.step == 5 and latest(tmp_path / "part" / "run").name == "step_0000005"
    resumed = _trainer(tmp_path / "part", toy_data, method=method, steps=8, method_kwargs=kwargs, ema=0.9)
    resumed.fit(resume=True)
    assert resumed.step == 8
    for name, value in full.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], value), name
    for name, value in full.ema.module.state_dict().items():
        assert torch.equal(resumed.ema.module.state_dict()[name], value), name


def test_best_checkpoint_follows_the_metric_direction(tmp_path, toy_data):
    trainer = _trainer(tmp_path, toy_data, steps=6, best_metric="depth.rmse")
    trainer.fit()
    best = trainer.best
    assert best["metric"] == "depth.rmse" and best["step"] in (3, 6)
    config = json.loads((tmp_path / "run" / "checkpoints" / "best" / "config.json").read_text())
    assert config["architecture"] == "hps_tiny"


def test_bf16_autocast_trains_without_nan(tmp_path, toy_data):
    trainer = _trainer(tmp_path, toy_data, method="aligned_mtl", steps=3, amp="bf16", clip_grad=1.0)
    trainer.fit()
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_resume_without_a_checkpoint_says_where_it_looked(tmp_path, toy_data):
    trainer = _trainer(tmp_path, toy_data)
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        trainer.fit(resume=True)


def test_a_balancer_name_and_an_optimizer_factory_are_enough(tmp_path, toy_data):
    train, _ = toy_data
    model = mtlzoo.create_model("hps_tiny", tasks="nyud")
    options = TrainConfig(steps=2, eval_every=2, out_dir=str(tmp_path), device="cpu", progress=False)
    trainer = Trainer(model, "pcgrad", train, options=options, batch_size=4,
                      optimizer=lambda params: torch.optim.SGD(params, lr=0.01))
    trainer.fit()
    assert trainer.step == 2 and type(trainer.rule).__name__ == "SingleStep"
    with pytest.raises(ValueError, match="optimizer="):
        Trainer(model, "pcgrad", train, options=options)


def test_fp16_with_grad_scaler_trains_without_nan(tmp_path, toy_data):
    trainer = _trainer(tmp_path, toy_data, method="pcgrad", steps=2, amp="fp16")
    trainer.fit()
    assert trainer.scaler is not None and trainer.scaler.get_scale() > 0
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())

"""NaN / inf steps in a Trainer run: skipped, warned, logged, stopped after train.max_bad_steps; no NaN checkpoint."""

import pytest
import torch

import mtlzoo
from mtlzoo.config import ScheduleConfig, TrainConfig, config_from_dict
from mtlzoo.schemes import create_update_rule
from mtlzoo.train import Trainer, seed_everything
from mtlzoo.train.checkpoints import latest
from mtlzoo.train.runlog import read_log


def _trainer(tmp_path, data, bad_steps, steps=8, method="ew", **options):
    """A Trainer whose depth loss is NaN at the (1-based) steps in ``bad_steps``."""
    seed_everything(0)
    model = mtlzoo.create_model("hps_tiny", tasks="nyud")
    rule = create_update_rule(method, model, lambda params: torch.optim.Adam(params, lr=3e-3))
    original, calls = model.losses, [0]

    def losses(outputs, targets):
        out = original(outputs, targets)
        calls[0] += 1
        if calls[0] in bad_steps:
            out["depth"] = out["depth"] * float("nan")
        return out

    model.losses = losses
    opts = TrainConfig(steps=steps, eval_every=100, log_every=1, out_dir=str(tmp_path / "run"), device="cpu",
                       progress=False, **options)
    return Trainer(model, rule, data[0], options=opts, schedule=ScheduleConfig(name="constant"), batch_size=4)


def test_isolated_nan_steps_are_skipped_warned_and_logged(tmp_path, toy_data):
    trainer = _trainer(tmp_path, toy_data, bad_steps={3, 5})
    with pytest.warns(RuntimeWarning, match="step 3: a loss or gradient is NaN or inf"):
        trainer.fit()
    assert trainer.step == 8 and trainer.bad_steps.total == 2
    records = read_log(tmp_path / "run" / "log.jsonl")
    skips = [r for r in records if r["kind"] == "skipped_step"]
    assert [r["step"] for r in skips] == [3, 5] and skips[-1]["total"] == 2
    assert skips[0]["losses"]["depth"] == "nan"
    train = {r["step"]: r for r in records if r["kind"] == "train"}
    assert train[2]["skipped_steps"] == 0 and train[8]["skipped_steps"] == 2
    assert train[3]["info"]["finite"] is False and train[4]["info"]["finite"] is True
    reloaded = mtlzoo.from_pretrained(latest(tmp_path / "run"))
    assert all(torch.isfinite(v).all() for v in reloaded.state_dict().values() if v.is_floating_point())


def test_a_run_stops_after_max_bad_steps_consecutive_skips_with_the_last_good_weights(tmp_path, toy_data):
    trainer = _trainer(tmp_path, toy_data, bad_steps=set(range(3, 20)), max_bad_steps=4)
    weights = {}
    original_step = trainer.train_step

    def train_step(batch):
        result = original_step(batch)
        if trainer.step == 2:
            weights.update({k: v.clone() for k, v in trainer.model.named_parameters()})
        return result

    trainer.train_step = train_step
    with pytest.warns(RuntimeWarning), pytest.raises(RuntimeError, match=r"step 6: 4 consecutive steps .*"
                                                                            r"max_bad_steps=4\); the weights are "
                                                                            r"those of step 2"):
        trainer.fit()
    for name, value in trainer.model.named_parameters():
        assert torch.equal(value, weights[name]), name


def test_no_checkpoint_is_written_from_non_finite_weights(tmp_path, toy_data):
    trainer = _trainer(tmp_path, toy_data, bad_steps=set(), steps=2)
    trainer.fit()
    saved = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("step_*"))
    with torch.no_grad():
        next(trainer.model.parameters()).view(-1)[0] = float("nan")
    trainer.step = 3
    with pytest.raises(RuntimeError, match="step 3: refusing to write a checkpoint.*NaN or inf"):
        trainer.save_checkpoint()
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("step_*")) == saved


@pytest.mark.parametrize("value", [0, -1, 2.5, "3"])
def test_max_bad_steps_must_be_a_positive_integer(value):
    with pytest.raises(ValueError, match="train.max_bad_steps"):
        config_from_dict({"train": {"max_bad_steps": value}})
    assert config_from_dict({"train": {"max_bad_steps": 5}}).train.max_bad_steps == 5

"""NaN / inf steps in a Trainer run: skipped, warned, logged, stopped after train.max_bad_steps; no NaN checkpoint."""

import math

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


class _OneNanPixel(torch.utils.data.Dataset):
    """``data`` with one NaN pixel in the image of sample ``index`` (a broken file, an fp16 overflow upstream)."""

    def __init__(self, data, index):
        self.data, self.index = data, index

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        sample = dict(self.data[i])
        if i == self.index:
            sample["image"] = sample["image"].clone()
            sample["image"][1, 5, 7] = float("nan")
        return sample


def test_a_nan_pixel_step_keeps_the_norm_statistics_so_eval_checkpoint_and_resume_work(tmp_path, toy_data,
                                                                                       make_trainer):
    data = (_OneNanPixel(toy_data[0], index=5), toy_data[1])
    trainer = make_trainer(tmp_path / "run", data, steps=6)
    seen, original = [], trainer.train_step

    def train_step(batch):
        poisoned = bool(batch["image"].isnan().any())
        before = {name: value.clone() for name, value in trainer.model.named_buffers()}
        result = original(batch)
        if poisoned:
            seen.append(result.skipped)
            for name, value in trainer.model.named_buffers():
                assert torch.equal(value, before[name]), name  # running mean / var and counters: bit-identical
        return result

    trainer.train_step = train_step
    with pytest.warns(RuntimeWarning, match="NaN or inf"):
        trainer.fit()  # evaluates and checkpoints at steps 3 and 6
    assert seen and all(seen) and trainer.bad_steps.total == len(seen)
    assert all(torch.isfinite(v).all() for v in trainer.model.state_dict().values() if v.is_floating_point())
    metrics = trainer.evaluate()["metrics"]
    assert all(math.isfinite(v) for values in metrics.values() for v in values.values()), metrics
    assert latest(tmp_path / "run").name == "step_0000006"
    resumed = make_trainer(tmp_path / "run", toy_data, steps=9)
    resumed.fit(resume=True)
    assert resumed.step == 9

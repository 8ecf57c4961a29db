"""Trainer.evaluate passes the run's autocast dtype and step to mtlzoo.evaluate (issue 11, points 1 and 19)."""

import pytest

import mtlzoo.metrics


@pytest.mark.parametrize("amp", ["bf16", "none"])
def test_evaluation_runs_under_the_training_dtype_and_step(amp, tmp_path, toy_data, make_trainer, monkeypatch):
    seen = []
    real = mtlzoo.metrics.evaluate

    def spy(*args, **kwargs):
        seen.append((kwargs.get("amp"), kwargs.get("step")))
        return real(*args, **kwargs)

    monkeypatch.setattr(mtlzoo.metrics, "evaluate", spy)
    trainer = make_trainer(tmp_path / "run", toy_data, steps=3, amp=amp)
    trainer.fit()
    assert seen == [(amp, 3)]

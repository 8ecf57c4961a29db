"""Ctrl-C / SIGTERM stop a run after the current step with a checkpoint, one line and exit code 130 / 143."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from mtlzoo.train.checkpoints import latest
from mtlzoo.train.interrupt import TrainingInterrupted


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_saves_the_current_step_and_raises(tmp_path, toy_data, make_trainer, monkeypatch, signum):
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    trainer = make_trainer(tmp_path / "run", toy_data, steps=50, eval_every=100)
    step = trainer.train_step

    def step_then_signal(batch):
        result = step(batch)
        if trainer.step == 4:
            os.kill(os.getpid(), signum)
        return result

    monkeypatch.setattr(trainer, "train_step", step_then_signal)
    with pytest.raises(TrainingInterrupted) as raised:
        trainer.fit()
    assert isinstance(raised.value, KeyboardInterrupt) and raised.value.exit_code == 128 + signum
    assert raised.value.step == 4 and latest(tmp_path / "run") == raised.value.path
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    resumed = make_trainer(tmp_path / "run", toy_data, steps=6, eval_every=100)
    resumed.fit(resume=True)
    assert resumed.step == 6


ARGS = ["train", "--config", "synthscenes_hps", "train.steps=100000", "train.eval_every=100000",
        "train.log_every=1", "train.progress=false",
        "model.tasks=[{name: semseg, kind: segmentation, channels: 8}, {name: depth, kind: depth}]",
        "data.kwargs={size: [24, 32], length: 16}", "data.batch_size=4"]


@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_the_cli_exits_with_one_line_and_the_signal_code(tmp_path, signum, code):
    out = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "mtlzoo.cli", *ARGS, f"train.out_dir={out}"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    log, deadline = out / "log.jsonl", time.time() + 300
    while process.poll() is None and time.time() < deadline and not (log.exists() and log.read_text().strip()):
        time.sleep(0.05)
    process.send_signal(signum)
    _, err = process.communicate(timeout=120)
    assert process.returncode == code, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "interrupted by" in lines[0] and "resume with --resume" in lines[0], err
    step = max(json.loads(line)["step"] for line in log.read_text().splitlines())
    assert latest(out).name == f"step_{step:07d}" and f"step_{step:07d}" in lines[0]


def test_workers_dying_of_the_same_ctrl_c_still_end_with_a_checkpoint(tmp_path, toy_data, make_trainer, monkeypatch):
    trainer = make_trainer(tmp_path / "run", toy_data, steps=50, eval_every=100)
    batches = trainer._batches

    def workers_die_after_two(stop_at):
        for count, batch in enumerate(batches(stop_at)):
            if count == 2:
                os.kill(os.getpid(), signal.SIGINT)  # the terminal signals the whole process group
                raise RuntimeError("DataLoader worker (pid(s) 4242) exited unexpectedly")
            yield batch

    monkeypatch.setattr(trainer, "_batches", workers_die_after_two)
    with pytest.raises(TrainingInterrupted) as raised:
        trainer.fit()
    assert raised.value.step == 2 and latest(tmp_path / "run").name == "step_0000002"


def test_a_loader_error_without_a_signal_is_not_hidden(tmp_path, toy_data, make_trainer, monkeypatch):
    trainer = make_trainer(tmp_path / "run", toy_data, steps=50, eval_every=100)

    def broken(stop_at):
        raise RuntimeError("a real data error")
        yield

    monkeypatch.setattr(trainer, "_batches", broken)
    with pytest.raises(RuntimeError, match="a real data error"):
        trainer.fit()

"""`mtlzoo train --resume` after a kill -9 ends with exactly the weights of an uninterrupted run (CPU, same seed)."""

import signal
import subprocess
import sys
import time

from safetensors.torch import load_file

ARGS = ["train", "--config", "synthscenes_hps", "train.steps=24", "train.eval_every=3", "train.log_every=1",
        "train.progress=false",
        "model.tasks=[{name: semseg, kind: segmentation, channels: 8}, {name: depth, kind: depth}]",
        "data.kwargs={size: [32, 48], length: 24}", "data.batch_size=4", "data.eval_batch_size=8"]


def _train(out_dir, *extra):
    return [sys.executable, "-m", "mtlzoo.cli", *ARGS, f"train.out_dir={out_dir}", *extra]


def test_kill_9_then_resume_matches_an_uninterrupted_run(tmp_path):
    subprocess.run(_train(tmp_path / "full"), check=True, capture_output=True, timeout=600)
    killed = tmp_path / "killed"
    process = subprocess.Popen(_train(killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pointer = killed / "checkpoints" / "latest"
    deadline = time.time() + 300
    while not pointer.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    interrupted_at = pointer.read_text().strip()
    assert interrupted_at != "step_0000024", "the run finished before it could be killed"
    subprocess.run(_train(killed, "--resume"), check=True, capture_output=True, timeout=600)
    expected = load_file(str(tmp_path / "full" / "checkpoints" / "step_0000024" / "model.safetensors"))
    resumed = load_file(str(killed / "checkpoints" / "step_0000024" / "model.safetensors"))
    assert expected.keys() == resumed.keys()
    for name, value in expected.items():
        assert (value == resumed[name]).all(), name

"""The process-group timeout: configurable, passed to init_process_group, and a stalled rank fails the others."""

import os
import subprocess
import sys
import time
from datetime import timedelta

import pytest
import torch

from mtlzoo.config import config_from_dict
from mtlzoo.train import distributed
from mtlzoo.train.distributed import explain_timeouts, init_distributed


def test_the_timeout_reaches_init_process_group(monkeypatch):
    calls = []
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(distributed.dist, "init_process_group", lambda **kw: calls.append(kw))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    info = init_distributed(torch.device("cpu"), timeout_s=7.5)
    assert info.rank == 1 and calls == [{"backend": "gloo", "timeout": timedelta(seconds=7.5)}]
    init_distributed(torch.device("cpu"))
    assert calls[-1]["timeout"] == timedelta(seconds=config_from_dict({}).train.dist_timeout)


def test_dist_timeout_is_a_checked_config_key():
    assert config_from_dict({"train": {"dist_timeout": 60}}).train.dist_timeout == 60
    with pytest.raises(ValueError, match=r"train\.dist_timeout: got 0"):
        config_from_dict({"train": {"dist_timeout": 0}})


def test_other_errors_pass_through_unchanged():
    with pytest.raises(RuntimeError, match="^boom$"), explain_timeouts(5):
        raise RuntimeError("boom")


_WORKER = """
import sys, time, torch, torch.distributed as dist
from mtlzoo.train.distributed import explain_timeouts, init_distributed
init_distributed(torch.device("cpu"), timeout_s=2)
if dist.get_rank() == 1:
    time.sleep(20)  # a rank that stops responding
else:
    start = time.monotonic()
    try:
        with explain_timeouts(2):
            dist.all_reduce(torch.ones(3))
    except Exception as error:
        print(f"{type(error).__name__} after {time.monotonic() - start:.1f}s: {error}", flush=True)
        sys.exit(3)
"""


@pytest.mark.slow
def test_a_stalled_rank_fails_the_others_within_the_timeout(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(_WORKER, encoding="utf-8")
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    start = time.monotonic()
    result = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", str(script)], env=env,
                            capture_output=True, text=True, timeout=120)
    out = result.stdout + result.stderr
    assert result.returncode != 0 and "DistTimeoutError after" in out, out[-3000:]
    waited = float(out.split("DistTimeoutError after ")[1].split("s:")[0])
    assert waited < 10, out[-3000:]
    assert "rank 0 of 2: waited more than 2 s (train.dist_timeout)" in out
    assert time.monotonic() - start < 110

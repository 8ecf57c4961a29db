"""Under torchrun (2 CPU processes, gloo) every rank runs the sweep, each run trains with DDP, rank 0 alone
writes; a second launch finds every run finished."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import records, write_spec


@pytest.mark.slow
def test_sweep_under_torchrun(tmp_path):
    spec = write_spec(tmp_path, architectures=["hps_tiny"], methods=["ew", "uw"], seeds=[0], baselines="none")
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    command = [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "mtlzoo.cli", "benchmark", "run",
               str(spec)]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    out_dir = tmp_path / "sweep"
    assert first.stderr.count("[1/2] cells/hps_tiny/ew/seed0") == 1  # rank 0 speaks
    results = json.loads((out_dir / "results.json").read_text())
    assert {c["world_size"] for c in results["cells"]} == {2}
    assert all(c["metrics"]["semseg"]["miou"] >= 0 for c in results["cells"])
    done = records(out_dir)
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "[1/2]" not in second.stderr and records(out_dir) == done

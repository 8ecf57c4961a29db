"""Tiny sweeps for the ``mtlzoo benchmark`` tests: synthscenes at 24x32, 16 images, 3 steps per run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mtlzoo.cli import main

SMALL = ["data.kwargs={size: [24, 32], length: 16}", "data.batch_size=4", "data.eval_batch_size=16",
         "train.steps=3", "train.eval_every=3", "train.progress=false", "schedule.warmup_steps=0"]
# 2 architectures x 2 methods x 2 seeds; cs_two_phase does not apply to hps_tiny (no task-specific BN)
SWEEP = {"config": "synthscenes_hps", "overrides": SMALL,
         "architectures": ["hps_tiny", {"name": "cs_tiny", "config": "synthscenes_cs"}],
         "methods": ["ew", "cs_two_phase"], "seeds": 2}
RUNS = 8  # 2 baselines + 3 applicable pairs x 2 seeds


def write_spec(folder: Path, name: str = "spec.yaml", **changes) -> Path:
    """A spec file in ``folder`` (out_dir ``folder/sweep`` unless changed)."""
    spec = {**SWEEP, "out_dir": str(folder / "sweep"), **changes}
    path = folder / name
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


def run_cli(*args) -> int:
    return main(["benchmark", *map(str, args)])


def records(out_dir: Path) -> dict[str, float]:
    """The modification time of every completion record under a sweep folder, by run folder."""
    return {str(p.parent.relative_to(out_dir)): p.stat().st_mtime_ns for p in out_dir.rglob("benchmark_cell.json")}


def subprocess_sweep(spec: Path, *extra) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "mtlzoo.cli", "benchmark", "run", str(spec), *extra], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """The 2 x 2 x 2 sweep, run once per test module: (spec path, out_dir, results)."""
    folder = tmp_path_factory.mktemp("bench")
    spec = write_spec(folder)
    assert run_cli("run", spec, "--tradeoff", "semseg.miou,depth.rmse") == 0
    out_dir = folder / "sweep"
    return spec, out_dir, json.loads((out_dir / "results.json").read_text())

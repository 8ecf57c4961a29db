"""Tiny sweeps for the ``mtlzoo benchmark`` tests: synthscenes at 24x32, 16 images, 3 steps per run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from mtlzoo.benchmark.plan import Cell, Plan
from mtlzoo.benchmark.results import build_results
from mtlzoo.cli import main
from mtlzoo.config import Config

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


# protocol -> {task: kind}, the metrics that enter delta_m with their direction (+1: higher is better)
CASES = {
    "synthscenes": ({"semseg": "segmentation", "depth": "depth", "normals": "normals", "edge": "edge",
                     "saliency": "saliency", "parts": "parts"},
                    {"semseg": {"miou": 1}, "depth": {"rmse": -1}, "normals": {"mean": -1},
                     "saliency": {"maxf": 1}, "parts": {"miou": 1}}),
    "mtan_nyuv2": ({"semseg": "segmentation", "depth": "depth", "normals": "normals"},
                   {"semseg": {"miou": 1, "pixel_acc": 1}, "depth": {"abs_err": -1, "abs_rel": -1},
                    "normals": {"mean": -1, "median": -1, "within_11_25": 1, "within_22_5": 1, "within_30": 1}}),
}
EXTRA = {"semseg": "mean_acc", "depth": "sq_rel", "normals": "rmse", "edge": "bce", "saliency": "miou",
         "parts": "pixel_acc"}  # metrics that are recorded but enter no delta_m
SEEDS = [0, 1, 2]


def _metrics(rng, tasks, used):
    return {t: {**{m: float(rng.uniform(0.2, 0.9)) for m in used.get(t, {})}, EXTRA[t]: float(rng.uniform(0.1, 1))}
            for t in tasks}


def fake_sweep(protocol, failed=()):
    """Results of a made-up sweep (2 architectures x 3 methods x 3 seeds, one pair not applicable) under
    ``protocol``, from random metrics; the runs keyed in ``failed`` (e.g. ``cells/a1/m2/seed1``) failed.
    Returns (results, records)."""
    tasks, used = CASES[protocol]
    rng = np.random.default_rng(7)
    cells, records = [], {}
    for arch in ("a1", "a2"):
        for method in ("m1", "m2", "m3"):
            for seed in SEEDS:
                key = f"cells/{arch}/{method}/seed{seed}"
                applies = not (arch == "a2" and method == "m3")
                cells.append(Cell("cell", arch, method, seed, key, Config() if applies else None,
                                  None if applies else "why not"))
                if applies:
                    records[key] = {"architecture": arch, "method": method, "seed": seed, "key": key,
                                    "metrics": _metrics(rng, tasks, used), "steps_per_s": float(rng.uniform(1, 9)),
                                    "peak_memory_mib": float(rng.uniform(10, 90))}
    baselines = []
    for seed in SEEDS:
        key = f"baselines/stl/seed{seed}"
        baselines.append(Cell("baseline", "stl", "single-task", seed, key, Config()))
        records[key] = {"architecture": "stl", "method": "single-task", "seed": seed, "key": key,
                        "metrics": _metrics(rng, tasks, used), "steps_per_s": 1.0, "peak_memory_mib": 1.0}
    for key in failed:
        records[key] = {**{k: records[key][k] for k in ("architecture", "method", "seed", "key")},
                        "status": "failed", "reason": "RuntimeError: diverged", "metrics": {}}
    plan = Plan(tuple(cells), tuple(baselines), protocol, tasks)
    return build_results({"seeds": SEEDS}, plan, records, "cmd"), records

"""Measure the shipped ``synthscenes_hps_tiny`` single-task baseline and write its JSON data file.

Per seed: ``mtlzoo train --config mtlzoo/configs/synthscenes_hps.yaml --single-task`` (stl_tiny: one hps_tiny
encoder + light head per task, 96x128, 1500 steps, one thread), scored on the val split under the
``synthscenes`` protocol at the last step; then the mean and the std (ddof=1) over seeds go to
``mtlzoo/metrics/data/baselines/synthscenes_hps_tiny.json``. A seed whose result file exists is not trained again.

Usage: python benchmarks/synthscenes_baseline.py [--seeds 0 1 2] [--root runs/baselines/synthscenes_hps_tiny]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from mtlzoo.benchmark.results import seed_mean_std
from mtlzoo.checkpoint import atomic_write_text
from mtlzoo.data import GENERATOR_VERSION

NAME = "synthscenes_hps_tiny"
CONFIG = "mtlzoo/configs/synthscenes_hps.yaml"
OUTPUT = Path(__file__).resolve().parents[1] / "mtlzoo" / "metrics" / "data" / "baselines" / f"{NAME}.json"


def train_command(seed: int | str, root: Path) -> list[str]:
    """The command that trains and scores the single-task networks of one seed (its stdout is the result)."""
    return ["mtlzoo", "train", "--config", CONFIG, "--single-task", f"train.seed={seed}",
            f"train.out_dir={root}/{NAME}_seed{seed}", f"data.kwargs.version={GENERATOR_VERSION}",
            f"data.kwargs.cache_dir={root}/synthscenes-cache", "train.progress=false"]


def _run_seed(seed: int, root: Path) -> dict:
    """The last evaluation of one seed's run, training it first unless its result file exists."""
    result = root / f"seed{seed}.json"
    if not result.exists():
        command = train_command(seed, root)
        command[0] = str(Path(sys.executable).with_name("mtlzoo"))
        start = time.time()
        out = subprocess.run(command, check=True, capture_output=True, text=True,
                             env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}).stdout
        print(f"seed {seed}: {time.time() - start:.0f} s", file=sys.stderr)
        atomic_write_text(result, out)
    return json.loads(result.read_text(encoding="utf-8"))


def aggregate(results: list[dict]) -> tuple[dict, dict]:
    """Mean and sample std (ddof=1; 0 for one seed) of every metric over the seeds' results."""
    mean, std = seed_mean_std([r["metrics"] for r in results])
    return tuple({t: {m: round(v, 6) for m, v in ms.items()} for t, ms in table.items()} for table in (mean, std))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--root", type=Path, default=Path(f"runs/baselines/{NAME}"))
    args = parser.parse_args()
    results = [_run_seed(seed, args.root) for seed in args.seeds]
    found = {(r["step"], r["protocol"]) for r in results}
    if len(found) != 1 or next(iter(found))[1] != "synthscenes":
        raise SystemExit(f"the seeds' results disagree on step or protocol: {sorted(found)}")
    mean, std = aggregate(results)
    record = {
        "name": NAME, "protocol": "synthscenes", "data_version": GENERATOR_VERSION,
        "source": f"stl_tiny (hps_tiny encoder + light head per task), synthscenes v{GENERATOR_VERSION} train 2000 "
                  f"images at 96x128, {results[0]['step']} steps, val split (500), mean over {len(args.seeds)} seeds",
        "command": f"python benchmarks/synthscenes_baseline.py --seeds {' '.join(map(str, args.seeds))} --root "
                   f"{args.root}  # per seed S, one thread: {' '.join(train_command('S', args.root))}",
        "seeds": list(args.seeds), "metrics": mean, "std": std,
    }
    atomic_write_text(OUTPUT, json.dumps(record, indent=2) + "\n")
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()

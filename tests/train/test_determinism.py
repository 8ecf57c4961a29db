"""Same machine, same seed: a tiny `mtlzoo train` run twice gives identical metrics and identical weights."""

import json
from pathlib import Path

from safetensors.torch import load_file

from mtlzoo.cli import main

ARGS = ["train", "--config", "synthscenes_hps", "train.steps=6", "train.eval_every=6", "train.progress=false",
        "train.seed=3", "method.name=dwa", "data.kwargs={size: [32, 48], length: 16}", "data.batch_size=4",
        "data.eval_batch_size=8",
        "model.tasks=[{name: semseg, kind: segmentation, channels: 8}, {name: depth, kind: depth}]"]


def _run(out: Path) -> tuple[list[dict], dict]:
    assert main([*ARGS, f"train.out_dir={out}"]) == 0
    evals = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    evals = [{k: v for k, v in e.items() if k in ("step", "metrics")} for e in evals if e["kind"] == "eval"]
    return evals, load_file(out / "checkpoints" / "step_0000006" / "model.safetensors")


def test_a_seeded_run_repeats_bit_for_bit(tmp_path):
    (first_metrics, first_weights), (second_metrics, second_weights) = _run(tmp_path / "a"), _run(tmp_path / "b")
    assert first_metrics and first_metrics == second_metrics
    assert first_weights.keys() == second_weights.keys()
    assert all(first_weights[k].equal(second_weights[k]) for k in first_weights)

"""Checkpoint folders of a run: ``checkpoints/step_N`` (model in HF layout + trainer state), ``latest``, ``best``.

Every folder is written under a temporary name and renamed into place, so a run killed at
any moment leaves only complete checkpoints behind.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model
from torch import nn

from mtlzoo.checkpoint import atomic_write_text, load_state, publish_directory, save_state

STATE_NAME = "trainer_state"


def _root(out_dir: Path) -> Path:
    return Path(out_dir) / "checkpoints"


def save(out_dir: Path, step: int, model: nn.Module, state: Mapping[str, Any], run_config: Mapping[str, Any],
         metrics: Mapping[str, Any], keep_last: int = 2) -> Path:
    """Write ``step_N`` completely, point ``latest`` at it, and drop older steps beyond ``keep_last``."""
    root = _root(out_dir)
    final = root / f"step_{step:07d}"
    tmp = root / f".step_{step:07d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp, results=dict(metrics) or None)
    save_state(tmp / STATE_NAME, dict(state))
    (tmp / "run_config.json").write_text(json.dumps(dict(run_config), indent=2), encoding="utf-8")
    publish_directory(tmp, final)
    atomic_write_text(root / "latest", final.name)
    _prune(root, keep_last)
    return final


def _prune(root: Path, keep_last: int) -> None:
    steps = sorted(p for p in root.glob("step_*") if p.is_dir())
    for old in steps[: max(0, len(steps) - max(keep_last, 1))]:
        shutil.rmtree(old, ignore_errors=True)


def mark_best(out_dir: Path, path: Path) -> Path:
    """Copy a checkpoint folder to ``checkpoints/best`` (atomically replacing the previous best)."""
    root = _root(out_dir)
    tmp = root / ".best.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(path, tmp)
    return publish_directory(tmp, root / "best")


def latest(out_dir: Path) -> Path:
    """The newest complete checkpoint of a run, or a FileNotFoundError saying where it looked."""
    pointer = _root(out_dir) / "latest"
    if not pointer.exists():
        raise FileNotFoundError(f"nothing to resume: no checkpoint under {_root(out_dir)} "
                                "(train without --resume first, or point train.out_dir at the run)")
    return _root(out_dir) / pointer.read_text(encoding="utf-8").strip()


def load(path: Path, model: nn.Module, map_location: torch.device | str = "cpu") -> dict[str, Any]:
    """Load the model weights (strict) and return the trainer state of a checkpoint folder."""
    weights = path / "model.safetensors"
    if not weights.exists():
        raise FileNotFoundError(f"{path} is not a training checkpoint: {weights.name} is missing")
    missing, unexpected = load_model(model, str(weights), strict=True, device=str(map_location))
    return load_state(path / STATE_NAME, map_location="cpu")


def metric_value(metrics: Mapping[str, Any], key: str) -> float | None:
    """Read ``delta_m`` or ``task.metric`` from an evaluation result dict."""
    if not metrics:
        return None
    if key == "delta_m":
        return metrics.get("delta_m")
    task, _, name = key.partition(".")
    value = metrics.get("metrics", {}).get(task, {}).get(name)
    if value is None and task not in metrics.get("metrics", {}):
        raise ValueError(f"best_metric {key!r} names no evaluated task; use 'delta_m' or one of "
                         f"{[f'{t}.{m}' for t, ms in metrics.get('metrics', {}).items() for m in ms]}")
    return value


def higher_is_better(key: str, model: Any, metrics: Mapping[str, Any]) -> bool:
    """Direction of a ``best_metric`` key from the task kinds (delta_m: per its style's sign)."""
    if key == "delta_m":
        return metrics.get("delta_style") != "nash"
    task, _, name = key.partition(".")
    return model.task(task).spec.direction(name) > 0


def summary(result: Mapping[str, Any]) -> str:
    """One line: each task's headline numbers, then delta_m."""
    parts = []
    for task, values in result.get("metrics", {}).items():
        shown = ", ".join(f"{k}={v:.3f}" for k, v in list(values.items())[:2] if isinstance(v, (int, float)))
        parts.append(f"{task}: {shown}")
    if result.get("delta_m") is not None:
        parts.append(f"delta_m={result['delta_m']:+.2f}%")
    return " | ".join(parts)
